package engine

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nextchat/nextchat/internal/prompt"
)

func TestMarkLocations(t *testing.T) {
	assert.Equal(t, "A man [0] rides a horse [1] .", MarkLocations("A man <at> <boxes> rides a horse <at> <boxes> ."))
	assert.Equal(t, "no locations", MarkLocations("no locations"))
	assert.Equal(t, "Answer: [0] .", MarkLocations("Answer: <at> <boxes> ."))
}

func TestMarkingStreamMatchesMarkingTheWhole(t *testing.T) {
	for _, raw := range []string{"A man <at> <boxes> rides <at> a horse <at> <boxes> .", "Answer: <at> <box"} {
		for _, size := range []int{1, 2, 3, 5, 7} {
			var got strings.Builder
			push, finish := MarkingStream(func(s string) error { got.WriteString(s); return nil })
			for i := 0; i < len(raw); i += size {
				assert.NoError(t, push(raw[i:min(len(raw), i+size)]))
			}
			assert.NoError(t, finish())
			assert.Equal(t, MarkLocations(raw), got.String(), "chunks of %d", size)
		}
	}
}

// An answer sent back with its locations' boxes becomes the raw text and boxes in marker order again.
func TestUnmarkLocations(t *testing.T) {
	a, b := [4]float32{0.1, 0.2, 0.3, 0.4}, [4]float32{0.5, 0.6, 0.7, 0.8}
	cases := []struct {
		name, marked, text string
		boxes, ordered     [][4]float32
		err                bool
	}{
		{name: "in order", marked: "A man [0] rides a horse [1] .", boxes: [][4]float32{a, b},
			text: "A man <at> <boxes> rides a horse <at> <boxes> .", ordered: [][4]float32{a, b}},
		{name: "reordered and repeated", marked: "[1] and [0] near [1]", boxes: [][4]float32{a, b},
			text: "<at> <boxes> and <at> <boxes> near <at> <boxes>", ordered: [][4]float32{b, a, b}},
		{name: "what MarkLocations wrote", marked: MarkLocations("a <at> <boxes> b <at> <boxes>"), boxes: [][4]float32{a, b},
			text: "a <at> <boxes> b <at> <boxes>", ordered: [][4]float32{a, b}},
		{name: "no markers", marked: "plain [text]", boxes: nil, text: "plain [text]"},
		{name: "marker without box", marked: "A man [2]", boxes: [][4]float32{a, b}, err: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text, ordered, err := UnmarkLocations(c.marked, c.boxes)
			if c.err {
				assert.ErrorIs(t, err, prompt.ErrBadPrompt)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, c.text, text)
			assert.Equal(t, c.ordered, ordered)
		})
	}
}
