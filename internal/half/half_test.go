package half

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every finite 16-bit value converts to float32 and back to itself.
func TestRoundTripEveryValue(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		if f := F32FromF16(h); !isNaN(f) {
			require.Equal(t, h, F16FromF32(f), "f16 %#04x (%g)", h, f)
		} else {
			require.True(t, isNaN(F32FromF16(F16FromF32(f))), "f16 NaN %#04x", h)
		}
		if f := F32FromBF16(h); !isNaN(f) {
			require.Equal(t, h, BF16FromF32(f), "bf16 %#04x (%g)", h, f)
		} else {
			require.True(t, isNaN(F32FromBF16(BF16FromF32(f))), "bf16 NaN %#04x", h)
		}
	}
}

func isNaN(f float32) bool { return f != f }

// nearest finds the closest representable value by brute force over all 65536 codes, ties to even code.
func nearest(f float32, decode func(uint16) float32) uint16 {
	best, bestErr := uint16(0), math.Inf(1)
	for i := 0; i < 1<<16; i++ {
		v := decode(uint16(i))
		if isNaN(v) || math.IsInf(float64(v), 0) {
			continue
		}
		e := math.Abs(float64(v) - float64(f))
		if e < bestErr || (e == bestErr && i&1 == 0 && math.Signbit(float64(v)) == math.Signbit(float64(f))) {
			best, bestErr = uint16(i), e
		}
	}
	return best
}

func TestRoundingMatchesBruteForceNearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []float32{1 + 1.0/2048, 1 + 3.0/2048, 5.9604645e-08, 2.9802322e-08 * 1.5, 65504, 1e-5, -0.3333, 0.1}
	for i := 0; i < 40; i++ {
		cases = append(cases, float32(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(8)-5))))
	}
	for _, f := range cases {
		assert.Equal(t, nearest(f, F32FromF16), F16FromF32(f), "f16 of %g", f)
		assert.Equal(t, nearest(f, F32FromBF16), BF16FromF32(f), "bf16 of %g", f)
	}
}

func TestSpecialValues(t *testing.T) {
	tests := []struct {
		name     string
		in       float32
		f16, b16 uint16
	}{
		{"zero", 0, 0, 0},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{"one", 1, 0x3c00, 0x3f80},
		{"f16 overflow", 70000, 0x7c00, 0x4789},
		{"inf", float32(math.Inf(1)), 0x7c00, 0x7f80},
		{"below f16 subnormals", 1e-9, 0, 0x3089},
		{"smallest f16 subnormal", 5.9604645e-08, 0x0001, 0x3380},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.f16, F16FromF32(tc.in))
			assert.Equal(t, tc.b16, BF16FromF32(tc.in))
		})
	}
	assert.True(t, isNaN(F32FromF16(F16FromF32(float32(math.NaN())))))
	assert.True(t, isNaN(F32FromBF16(BF16FromF32(float32(math.NaN())))))
}
