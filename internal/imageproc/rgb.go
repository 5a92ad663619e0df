package imageproc

import (
	"fmt"
	"image"
	"image/color"
)

// RGB is an 8-bit RGB image stored row-major, channels interleaved (HWC):
// the sample of channel c at (x, y) is Pix[(y*W+x)*3+c]. There is no stride
// padding, so Pix has exactly W*H*3 bytes.
type RGB struct {
	W, H int
	Pix  []uint8
}

// NewRGB returns a black w×h image. It panics on negative sizes, like make.
func NewRGB(w, h int) *RGB {
	if w < 0 || h < 0 {
		panic(fmt.Sprintf("imageproc: negative image size %dx%d", w, h))
	}
	return &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
}

// FromHWC wraps an HWC uint8 buffer (for example a golden array) without
// copying it.
func FromHWC(w, h int, pix []uint8) (*RGB, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("%w: %dx%d", ErrEmptyImage, w, h)
	}
	if len(pix) != w*h*3 {
		return nil, fmt.Errorf("imageproc: %dx%d RGB needs %d bytes, got %d", w, h, w*h*3, len(pix))
	}
	return &RGB{W: w, H: h, Pix: pix}, nil
}

// Clone returns a deep copy.
func (m *RGB) Clone() *RGB {
	return &RGB{W: m.W, H: m.H, Pix: append([]uint8(nil), m.Pix...)}
}

// row returns the 3*W bytes of row y.
func (m *RGB) row(y int) []uint8 { return m.Pix[y*m.W*3 : (y+1)*m.W*3] }

// ColorModel, Bounds and At make *RGB an image.Image (handy for encoding a
// debug dump with image/png); the pipeline itself never uses them.
func (m *RGB) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (m *RGB) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// At implements image.Image.
func (m *RGB) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.RGBA{}
	}
	i := (y*m.W + x) * 3
	return color.RGBA{m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff}
}
