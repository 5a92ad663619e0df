package prompt

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRenderSingleTurnWithImage(t *testing.T) {
	got, err := Render([]Turn{{User, "Where is the dog in the image?"}}, 2)
	require.NoError(t, err)
	assert.Equal(t, System+" USER: <im_start><im_patch><im_patch><im_end> Where is the dog in the image? ASSISTANT:", got)
}

func TestRender(t *testing.T) {
	tests := []struct {
		name  string
		turns []Turn
		image int
		want  string
	}{
		{"text only", []Turn{{User, "hi"}}, 0, System + " USER: hi ASSISTANT:"},
		{"multi-turn", []Turn{{User, "q1"}, {Assistant, "a1"}, {User, "q2"}}, 0,
			System + " USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:"},
		{"answer prefix", []Turn{{User, "Where is the cat?"}, {Assistant, "Answer: <at> <boxes> ."}}, 0,
			System + " USER: Where is the cat? ASSISTANT: Answer: <at> <boxes> ."},
		{"explicit image placeholder kept in place", []Turn{{User, "Look: <image> what?"}}, 1,
			System + " USER: Look: <im_start><im_patch><im_end> what? ASSISTANT:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.turns, tc.image)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRenderImageTokenCountFromConfig(t *testing.T) {
	got, err := Render([]Turn{{User, "x"}}, 576)
	require.NoError(t, err)
	assert.Equal(t, 576, strings.Count(got, "<im_patch>"))
}

func TestRenderRejects(t *testing.T) {
	for name, turns := range map[string][]Turn{
		"empty":            nil,
		"assistant first":  {{Assistant, "a"}},
		"two user turns":   {{User, "a"}, {User, "b"}},
		"image, no pixels": {{User, "<image> what?"}},
	} {
		_, err := Render(turns, 0)
		assert.ErrorIs(t, err, ErrBadPrompt, name)
	}
}

func TestExpandRegions(t *testing.T) {
	tests := []struct {
		text  string
		boxes int
		want  string
		order []int
	}{
		{"What is region [0]?", 1, "What is region <at> <boxes>?", []int{0}},
		{"Compare [1 0] and [2].", 3, "Compare <at> <boxes> <at> <boxes> and <at> <boxes>.", []int{1, 0, 2}},
		{"[0, 1]", 2, "<at> <boxes> <at> <boxes>", []int{0, 1}},
		{"no regions [here]", 0, "no regions [here]", nil},
	}
	for _, tc := range tests {
		got, order, err := ExpandRegions(tc.text, tc.boxes)
		require.NoError(t, err, tc.text)
		assert.Equal(t, tc.want, got)
		assert.Equal(t, tc.order, order)
	}
	_, _, err := ExpandRegions("What is [3]?", 2)
	assert.ErrorIs(t, err, ErrBadPrompt)
	assert.ErrorContains(t, err, "2 box(es)")
}
