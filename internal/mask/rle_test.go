package mask

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Known answers computed with pycocotools' mask.encode on Fortran-ordered uint8 arrays.
func TestEncodeKnownAnswers(t *testing.T) {
	tests := []struct {
		name string
		m    Mask
		want string
	}{
		{"all background 2x3", Mask{3, 2, []uint8{0, 0, 0, 0, 0, 0}}, "6"},
		{"all object 2x2", Mask{2, 2, []uint8{1, 1, 1, 1}}, "04"},
		{"one pixel at (row 1, col 0) of 2x2", Mask{2, 2, []uint8{0, 0, 1, 0}}, "112"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Encode(tc.m)
			assert.Equal(t, tc.want, r.Counts)
			assert.Equal(t, [2]int{tc.m.Height, tc.m.Width}, r.Size)
		})
	}
}

func TestRoundTripRandomMasks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200; i++ {
		w, h := 1+rng.IntN(40), 1+rng.IntN(40)
		m := Mask{Width: w, Height: h, Bits: make([]uint8, w*h)}
		density := rng.Float64()
		for j := range m.Bits {
			if rng.Float64() < density {
				m.Bits[j] = 1
			}
		}
		back, err := Decode(Encode(m))
		require.NoError(t, err)
		require.Equal(t, m, back)
	}
	// Long runs exercise multi-group counts and negative differences.
	big := Mask{Width: 300, Height: 200, Bits: make([]uint8, 60000)}
	for j := 10000; j < 45000; j++ {
		big.Bits[j] = 1
	}
	back, err := Decode(Encode(big))
	require.NoError(t, err)
	assert.Equal(t, big, back)
	assert.True(t, strings.HasPrefix(Encode(big).Counts, "R1d3d20000000000"), "pycocotools' counts")
	assert.Equal(t, 35000, big.Area())
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, r := range []RLE{{Size: [2]int{2, 2}, Counts: "9"}, {Size: [2]int{2, 2}, Counts: "1"},
		{Size: [2]int{-1, 2}, Counts: ""}, {Size: [2]int{2, 2}, Counts: "`"}} {
		_, err := Decode(r)
		assert.ErrorIs(t, err, ErrBadRLE, "%+v", r)
	}
}
