package imageproc

import (
	"math"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Worked examples of PIL_RESAMPLING_NOTES.md §3.
func TestKernelExamples(t *testing.T) {
	tests := []struct {
		name      string
		in, out   int
		filter    Filter
		index     int
		wantXmin  int
		wantFloat []float64 // normalized weights before quantization
	}{
		{"2->5 bicubic border output", 2, 5, Bicubic, 0, 0, []float64{1.099057, -0.099057}},
		{"5->3 bilinear keeps a zero tap", 5, 3, Bilinear, 0, 0, []float64{4.0 / 7, 3.0 / 7, 0}},
		{"1-px axis upscaled replicates", 1, 7, Bicubic, 3, 0, []float64{1}},
		{"13->1 bicubic uses every pixel", 13, 1, Bicubic, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := makeKernel(tt.in, tt.out, tt.filter)
			require.NoError(t, err)
			assert.Equal(t, tt.wantXmin, kr.xmin[tt.index])
			k := kr.k[tt.index*kr.ksize : tt.index*kr.ksize+kr.n[tt.index]]
			if tt.wantFloat == nil {
				assert.Len(t, k, tt.in)
				return
			}
			require.Len(t, k, len(tt.wantFloat))
			for i, w := range tt.wantFloat {
				assert.InDelta(t, w*(1<<precisionBits), float64(k[i]), 1e-6*(1<<precisionBits))
			}
		})
	}
}

func TestQuantizeRoundsHalfAwayFromZero(t *testing.T) {
	tests := []struct {
		w    float64
		want int32
	}{
		{0, 0},
		{1, 1 << 22},
		{0.5 / (1 << 22), 1},   // exactly half a unit rounds up
		{-0.5 / (1 << 22), -1}, // and away from zero when negative
		{0.49 / (1 << 22), 0},  // below half truncates
		{-0.49 / (1 << 22), 0},
		{-0.099057, int32(math.Round(-0.099057 * (1 << 22)))},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, quantize(tt.w), "quantize(%g)", tt.w)
	}
}

func TestClip8(t *testing.T) {
	tests := []struct {
		acc  int32
		want uint8
	}{
		{0, 0},
		{-1, 0}, // arithmetic shift: floor, then clamp
		{-25 << 22, 0},
		{(1 << 22) - 1, 0},
		{1 << 22, 1},
		{255 << 22, 255},
		{256 << 22, 255},
		{300 << 22, 255},
		{math.MinInt32, 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, clip8(tt.acc), "clip8(%d)", tt.acc)
	}
}

func TestResizeExamples(t *testing.T) {
	t.Run("2->5 bicubic overshoots and clips", func(t *testing.T) {
		src := &RGB{W: 2, H: 1, Pix: []uint8{0, 0, 0, 255, 255, 255}}
		got, err := Resize(src, 5, 1, Bicubic)
		require.NoError(t, err)
		for x, want := range []uint8{0, 17, 128, 238, 255} {
			assert.Equal(t, []uint8{want, want, want}, got.Pix[3*x:3*x+3], "x=%d", x)
		}
	})
	t.Run("1x1 resizes to a constant image", func(t *testing.T) {
		src := &RGB{W: 1, H: 1, Pix: []uint8{10, 200, 255}}
		for _, f := range []Filter{Bilinear, Bicubic} {
			got, err := Resize(src, 9, 4, f)
			require.NoError(t, err)
			for i := 0; i < 9*4; i++ {
				assert.Equal(t, src.Pix, got.Pix[3*i:3*i+3])
			}
		}
	})
	t.Run("unchanged size is a copy", func(t *testing.T) {
		src := synthPixels(7, 5, 1, "noise")
		got, err := Resize(src, 7, 5, Bicubic)
		require.NoError(t, err)
		assert.Equal(t, src.Pix, got.Pix)
		got.Pix[0]++
		assert.NotEqual(t, src.Pix[0], got.Pix[0], "the result must not alias the input")
	})
}

func TestResizeErrors(t *testing.T) {
	img := synthPixels(4, 4, 1, "noise")
	tests := []struct {
		name string
		img  *RGB
		w, h int
		f    Filter
		want error
	}{
		{"zero width", img, 0, 4, Bicubic, ErrBadSize},
		{"negative height", img, 4, -1, Bilinear, ErrBadSize},
		{"nil image", nil, 4, 4, Bicubic, ErrEmptyImage},
		{"empty image", &RGB{}, 4, 4, Bicubic, ErrEmptyImage},
		{"short pixel buffer", &RGB{W: 4, H: 4, Pix: make([]uint8, 47)}, 2, 2, Bicubic, ErrEmptyImage},
		{"unknown filter", img, 2, 2, Filter(0), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resize(tt.img, tt.w, tt.h, tt.f)
			require.Error(t, err)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			}
		})
	}
}

// The pass-order rule of Pillow 13 (notes §5), at its boundary.
func TestPassOrder(t *testing.T) {
	tests := []struct {
		inW, inH, outW, outH int
		want                 string
	}{
		{100, 100, 100, 100, ""},
		{100, 100, 50, 100, "h"},
		{100, 100, 100, 50, "v"},
		{336, 336, 56, 56, "hv"},     // CLIP: squares never go vertical first
		{100, 300, 90, 279, "vh"},    // dH=21 > 2*dW=20
		{100, 300, 90, 280, "hv"},    // dH=20 = 2*dW: horizontal first
		{50, 100, 80, 90, "vh"},      // width grows, height shrinks
		{50, 100, 80, 120, "hv"},     // both grow
		{13, 700, 5, 256, "vh"},      // notes' SAM example
		{300, 1100, 279, 1024, "vh"}, // release size example
		{1280, 720, 1024, 576, "hv"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, passOrder(tt.inW, tt.inH, tt.outW, tt.outH), "%dx%d -> %dx%d",
			tt.inW, tt.inH, tt.outW, tt.outH)
	}
}

// Splitting work across goroutines must not change a single value.
func TestResizeDeterministicAcrossSplits(t *testing.T) {
	src := synthPixels(640, 480, 3, "binary")
	a, err := Resize(src, 333, 250, Bicubic)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		b, err := Resize(src, 333, 250, Bicubic)
		require.NoError(t, err)
		require.Equal(t, a.Pix, b.Pix)
	}
	// one goroutine: a single parallelRows call over everything
	prev := runtime.GOMAXPROCS(1)
	seq, err := Resize(src, 333, 250, Bicubic)
	runtime.GOMAXPROCS(prev)
	require.NoError(t, err)
	assert.Equal(t, a.Pix, seq.Pix)
}
