package imageproc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSquareFrame(t *testing.T) {
	tests := []struct {
		w, h, side, dx, dy int
	}{
		{10, 10, 10, 0, 0},
		{91, 37, 91, 0, 27},
		{37, 91, 91, 27, 0},
		{333, 335, 335, 1, 0},
		{5, 1, 5, 0, 2},
		{1, 2, 2, 0, 0}, // (2-1)//2 = 0
		{4, 1, 4, 0, 1},
	}
	for _, tt := range tests {
		side, dx, dy := SquareFrame(tt.w, tt.h)
		assert.Equal(t, [3]int{tt.side, tt.dx, tt.dy}, [3]int{side, dx, dy}, "%dx%d", tt.w, tt.h)
	}
}

func TestExpand2Square(t *testing.T) {
	src := synthPixels(5, 2, 9, "noise")
	sq, dx, dy := Expand2Square(src)
	require.Equal(t, [4]int{5, 5, 0, 1}, [4]int{sq.W, sq.H, dx, dy})
	for y := 0; y < 5; y++ {
		for x := 0; x < 5; x++ {
			got := sq.Pix[(y*5+x)*3 : (y*5+x)*3+3]
			if y >= dy && y < dy+2 {
				i := ((y-dy)*5 + x) * 3
				assert.Equal(t, src.Pix[i:i+3], got, "image pixel (%d,%d)", x, y)
			} else {
				assert.Equal(t, []uint8{255, 255, 255}, got, "white fill at (%d,%d)", x, y)
			}
		}
	}
	// a square is copied, not aliased
	sq2, dx, dy := Expand2Square(sq)
	assert.Equal(t, [2]int{0, 0}, [2]int{dx, dy})
	assert.Equal(t, sq.Pix, sq2.Pix)
	sq2.Pix[0] = 1
	assert.NotEqual(t, sq.Pix[0], sq2.Pix[0])
}

func TestSAMResizeShape(t *testing.T) {
	tests := []struct {
		h, w, size int
		nh, nw     int
		err        error
	}{
		{720, 1280, 1024, 576, 1024, nil},
		{768, 1024, 1024, 768, 1024, nil},
		{700, 13, 256, 256, 5, nil},
		{13, 700, 1024, 19, 1024, nil},
		{1, 1, 256, 256, 256, nil},
		{300, 1, 256, 256, 1, nil},      // 1*256/300 = 0.853 rounds to 1
		{700, 1, 256, 0, 0, ErrBadSize}, // 0.366 rounds to 0: the reference raises
		{1100, 2, 256, 0, 0, ErrBadSize},
		{0, 5, 256, 0, 0, ErrEmptyImage},
		{5, 5, 0, 0, 0, ErrBadSize},
	}
	for _, tt := range tests {
		nh, nw, err := SAMResizeShape(tt.h, tt.w, tt.size)
		if tt.err != nil {
			assert.ErrorIs(t, err, tt.err, "%dx%d@%d", tt.w, tt.h, tt.size)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, [2]int{tt.nh, tt.nw}, [2]int{nh, nw}, "%dx%d@%d", tt.w, tt.h, tt.size)
	}
}

func TestSAMPixelsLayout(t *testing.T) {
	src := synthPixels(8, 4, 5, "noise")
	px, f, err := SAMPixels(src, 16)
	require.NoError(t, err)
	assert.Equal(t, SAMFrame{Size: 16, ResizedH: 8, ResizedW: 16, PadTop: 4, PadLeft: 0}, f)
	require.Len(t, px, 3*16*16)
	r, err := SAMResized(src, 16)
	require.NoError(t, err)
	for c := 0; c < 3; c++ {
		for y := 0; y < 16; y++ {
			for x := 0; x < 16; x++ {
				got := px[c*256+y*16+x]
				if y < f.PadTop || y >= f.PadTop+f.ResizedH {
					assert.Zero(t, got, "padding at c=%d (%d,%d)", c, x, y)
					continue
				}
				v := r.Pix[((y-f.PadTop)*r.W+x)*3+c]
				assert.Equal(t, (float32(v)-SAMMean[c])/SAMStd[c], got)
			}
		}
	}
}

func TestCLIPPixelsValues(t *testing.T) {
	// A constant image stays constant through expand2square (white fill on a
	// white image) and the resize, so every value is the normalized constant.
	src := NewRGB(3, 7)
	for i := range src.Pix {
		src.Pix[i] = 255
	}
	px, err := CLIPPixels(src, 5)
	require.NoError(t, err)
	require.Len(t, px, 75)
	for c := 0; c < 3; c++ {
		want := (float32(float64(255)*(1.0/255)) - CLIPMean[c]) / CLIPStd[c]
		for i := 0; i < 25; i++ {
			assert.Equal(t, want, px[c*25+i])
		}
	}
}

func TestPipelineErrors(t *testing.T) {
	img := synthPixels(4, 3, 1, "noise")
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"CLIP size 0", func() error { _, err := CLIPPixels(img, 0); return err }, ErrBadSize},
		{"CLIP nil image", func() error { _, err := CLIPPixels(nil, 336); return err }, ErrEmptyImage},
		{"CLIP inconsistent image", func() error { _, err := CLIPPixels(&RGB{W: 2, H: 2}, 336); return err }, ErrEmptyImage},
		{"SAM size -1", func() error { _, _, err := SAMPixels(img, -1); return err }, ErrBadSize},
		{"SAM extreme aspect", func() error { _, _, err := SAMPixels(NewRGB(1, 700), 256); return err }, ErrBadSize},
		{"SAM empty image", func() error { _, _, err := SAMPixels(&RGB{}, 256); return err }, ErrEmptyImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.run(), tt.want)
		})
	}
}
