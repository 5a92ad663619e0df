package engine

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
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
