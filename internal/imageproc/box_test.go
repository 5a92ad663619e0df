package imageproc

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBoxFromSquareNorm(t *testing.T) {
	tests := []struct {
		name string
		b    Box
		w, h int
		want Box
	}{
		{"square image", Box{0.1, 0.2, 0.5, 0.6}, 100, 100, Box{10, 20, 50, 60}},
		{"wide: y shifted by (W-H)//2", Box{0, 0.25, 1, 0.75}, 200, 100, Box{0, 0, 200, 100}},
		{"tall: x shifted by (H-W)//2", Box{0.25, 0, 0.75, 1}, 100, 200, Box{0, 0, 100, 200}},
		{"odd padding floors", Box{0, 0, 1, 1}, 91, 37, Box{0, -27, 91, 64}},
		{"outside [0,1] is not clipped", Box{-0.1, 1.2, 1.5, 1.3}, 10, 10, Box{-1, 12, 15, 13}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BoxFromSquareNorm(tt.b, tt.w, tt.h)
			require.NoError(t, err)
			assert.InDelta(t, tt.want.X1, got.X1, 1e-9)
			assert.InDelta(t, tt.want.Y1, got.Y1, 1e-9)
			assert.InDelta(t, tt.want.X2, got.X2, 1e-9)
			assert.InDelta(t, tt.want.Y2, got.Y2, 1e-9)
		})
	}
}

func TestBoxToSquareNorm(t *testing.T) {
	tests := []struct {
		name string
		b    Box
		w, h int
		want Box
		err  error
	}{
		{"wide image", Box{0, 0, 200, 100}, 200, 100, Box{0, 0.25, 1, 0.75}, nil},
		{"tall image", Box{10, 20, 30, 40}, 37, 91, Box{37.0 / 91, 20.0 / 91, 57.0 / 91, 40.0 / 91}, nil},
		{"degenerate box is allowed", Box{5, 5, 5, 5}, 10, 10, Box{0.5, 0.5, 0.5, 0.5}, nil},
		{"NaN", Box{math.NaN(), 0, 1, 1}, 10, 10, Box{}, ErrBadBox},
		{"Inf", Box{0, 0, math.Inf(1), 1}, 10, 10, Box{}, ErrBadBox},
		{"x2 < x1", Box{5, 0, 4, 1}, 10, 10, Box{}, ErrBadBox},
		{"y2 < y1", Box{0, 5, 1, 4}, 10, 10, Box{}, ErrBadBox},
		{"negative x1", Box{-1, 0, 1, 1}, 10, 10, Box{}, ErrBadBox},
		{"x2 past width", Box{0, 0, 10.5, 1}, 10, 10, Box{}, ErrBadBox},
		{"y2 past height", Box{0, 0, 1, 11}, 10, 10, Box{}, ErrBadBox},
		{"empty image", Box{0, 0, 1, 1}, 0, 10, Box{}, ErrEmptyImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BoxToSquareNorm(tt.b, tt.w, tt.h)
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.InDelta(t, tt.want.X1, got.X1, 1e-12)
			assert.InDelta(t, tt.want.Y1, got.Y1, 1e-12)
			assert.InDelta(t, tt.want.X2, got.X2, 1e-12)
			assert.InDelta(t, tt.want.Y2, got.Y2, 1e-12)
		})
	}
}

func TestBoxRoundTrip(t *testing.T) {
	for _, size := range [][2]int{{640, 480}, {480, 640}, {91, 37}, {1, 300}, {5, 5}} {
		w, h := size[0], size[1]
		b := Box{0.1 * float64(w), 0.2 * float64(h), 0.9 * float64(w), float64(h)}
		n, err := BoxToSquareNorm(b, w, h)
		require.NoError(t, err)
		back, err := BoxFromSquareNorm(n, w, h)
		require.NoError(t, err)
		assert.InDelta(t, b.X1, back.X1, 1e-9)
		assert.InDelta(t, b.Y1, back.Y1, 1e-9)
		assert.InDelta(t, b.X2, back.X2, 1e-9)
		assert.InDelta(t, b.Y2, back.Y2, 1e-9)
	}
	_, err := BoxFromSquareNorm(Box{math.NaN(), 0, 0, 0}, 10, 10)
	assert.ErrorIs(t, err, ErrBadBox)
	_, err = BoxFromSquareNorm(Box{}, 10, -1)
	assert.ErrorIs(t, err, ErrEmptyImage)
}
