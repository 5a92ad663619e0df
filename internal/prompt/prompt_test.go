package prompt

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRenderSingleTurnWithImage(t *testing.T) {
	got, err := Render([]Turn{{Role: User, Text: "Where is the dog in the image?"}}, 2)
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
		{"text only", []Turn{{Role: User, Text: "hi"}}, 0, System + " USER: hi ASSISTANT:"},
		{"multi-turn", []Turn{{Role: User, Text: "q1"}, {Role: Assistant, Text: "a1"}, {Role: User, Text: "q2"}}, 0,
			System + " USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:"},
		{"answer prefix", []Turn{{Role: User, Text: "Where is the cat?"}, {Role: Assistant, Text: "Answer: <at> <boxes> ."}}, 0,
			System + " USER: Where is the cat? ASSISTANT: Answer: <at> <boxes> ."},
		{"explicit image placeholder kept in place", []Turn{{Role: User, Text: "Look: <image> what?"}}, 1,
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
	got, err := Render([]Turn{{Role: User, Text: "x"}}, 576)
	require.NoError(t, err)
	assert.Equal(t, 576, strings.Count(got, "<im_patch>"))
}

func TestRenderRejects(t *testing.T) {
	for name, turns := range map[string][]Turn{
		"empty":            nil,
		"assistant first":  {{Role: Assistant, Text: "a"}},
		"two user turns":   {{Role: User, Text: "a"}, {Role: User, Text: "b"}},
		"image, no pixels": {{Role: User, Text: "<image> what?"}},
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
