package imageproc

import (
	"fmt"
)

// Normalization constants of the two vision inputs (MODEL_SPEC §1.4, §4).
var (
	// CLIPMean and CLIPStd are openai/clip-vit-large-patch14-336's
	// image_mean and image_std (for pixels rescaled to [0, 1]).
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
	// SAMMean and SAMStd are segment-anything's pixel_mean and pixel_std
	// (for pixels in [0, 255]).
	SAMMean = [3]float32{123.675, 116.28, 103.53}
	SAMStd  = [3]float32{58.395, 57.12, 57.375}
)

// SquareFrame returns the side of NExT-Chat's expand2square canvas for a w×h
// image and the offset of the image in it: (S-w)/2 horizontally when the
// image is tall, (S-h)/2 vertically when it is wide (integer division).
func SquareFrame(w, h int) (side, dx, dy int) {
	switch {
	case w > h:
		return w, 0, (w - h) / 2
	case h > w:
		return h, (h - w) / 2, 0
	}
	return w, 0, 0
}

// Expand2Square pastes img centred on a white square of side max(W, H)
// (NExT-Chat's Expand2square; LLaVA-1.5 would use the mean colour) and
// returns the square with the paste offset. A square input is returned as a
// copy with offset (0, 0). img must be a valid image (as Decode returns).
func Expand2Square(img *RGB) (sq *RGB, dx, dy int) {
	side, dx, dy := SquareFrame(img.W, img.H)
	if side == img.W && side == img.H {
		return img.Clone(), 0, 0
	}
	sq = NewRGB(side, side)
	white := make([]uint8, side*3)
	for i := range white {
		white[i] = 255
	}
	for y := 0; y < side; y++ {
		dst := sq.row(y)
		if y < dy || y >= dy+img.H {
			copy(dst, white)
			continue
		}
		copy(dst, white[:dx*3])
		copy(dst[dx*3:], img.row(y-dy))
		copy(dst[(dx+img.W)*3:], white)
	}
	return sq, dx, dy
}

// CLIPResized is the uint8 image the CLIP normalization starts from:
// Expand2Square, then Pillow's BICUBIC resize to size×size (which is what
// CLIPImageProcessor's shortest-edge resize and centre crop amount to on a
// square).
func CLIPResized(img *RGB, size int) (*RGB, error) {
	if err := checkInput(img, size); err != nil {
		return nil, err
	}
	sq, _, _ := Expand2Square(img)
	return Resize(sq, size, size, Bicubic)
}

// CLIPPixels is the CLIP vision tower input: float32 [3, size, size] (CHW),
// computed exactly as transformers 4.31's CLIPImageProcessor does:
// float32(float64(u8) * (1/255)), then (x - mean) / std in float32.
//
// Unlike transformers, it treats 1×1 and 3×3 squares like any other size
// (transformers misreads such arrays as channels-first).
func CLIPPixels(img *RGB, size int) ([]float32, error) {
	r, err := CLIPResized(img, size)
	if err != nil {
		return nil, err
	}
	var lut [3][256]float32
	for c := range 3 {
		for v := range 256 {
			x := float32(float64(v) * (1.0 / 255))
			lut[c][v] = (x - CLIPMean[c]) / CLIPStd[c]
		}
	}
	return toCHW(r, size, 0, 0, &lut), nil
}

// SAMFrame records where the resized image sits inside the padded SAM input,
// for mapping boxes and masks back.
type SAMFrame struct {
	Size               int // side of the square SAM input (1024 for the release)
	ResizedH, ResizedW int // size of the resized image inside it
	PadTop, PadLeft    int // offset of the resized image: ((Size-ResizedH)/2, (Size-ResizedW)/2)
}

// SAMResizeShape is NExT-Chat's ResizeAndPad shape rule: scale = size/max(h,
// w), then int(x*scale + 0.5) per side, all in float64 like Python. It fails
// when a side rounds to 0 (aspect ratio above 2×size), where the reference
// raises inside PIL.
func SAMResizeShape(h, w, size int) (nh, nw int, err error) {
	if h <= 0 || w <= 0 {
		return 0, 0, fmt.Errorf("%w: %dx%d", ErrEmptyImage, w, h)
	}
	if size <= 0 {
		return 0, 0, fmt.Errorf("%w: SAM input size %d", ErrBadSize, size)
	}
	scale := float64(size) / float64(max(h, w))
	nh = int(float64(float64(h)*scale) + 0.5)
	nw = int(float64(float64(w)*scale) + 0.5)
	if nh <= 0 || nw <= 0 {
		return 0, 0, fmt.Errorf("%w: a %dx%d image resized for SAM at %d would be %dx%d; "+
			"aspect ratios above %d:1 are not supported", ErrBadSize, w, h, size, nw, nh, 2*size)
	}
	return nh, nw, nil
}

// SAMResized is the uint8 image before SAM normalization: Pillow BILINEAR
// resize of the raw (not squared) image so the long side is size.
func SAMResized(img *RGB, size int) (*RGB, error) {
	if err := checkInput(img, size); err != nil {
		return nil, err
	}
	nh, nw, err := SAMResizeShape(img.H, img.W, size)
	if err != nil {
		return nil, err
	}
	return Resize(img, nw, nh, Bilinear)
}

// SAMPixels is the SAM image encoder input: float32 [3, size, size] (CHW):
// (float32(u8) - mean) / std in float32 on the SAMResized image, placed on a
// zero canvas at (PadTop, PadLeft), centred (original SAM pads bottom-right;
// NExT-Chat centres so the frame matches expand2square).
func SAMPixels(img *RGB, size int) ([]float32, SAMFrame, error) {
	r, err := SAMResized(img, size)
	if err != nil {
		return nil, SAMFrame{}, err
	}
	f := SAMFrame{Size: size, ResizedH: r.H, ResizedW: r.W, PadTop: (size - r.H) / 2, PadLeft: (size - r.W) / 2}
	var lut [3][256]float32
	for c := range 3 {
		for v := range 256 {
			lut[c][v] = (float32(v) - SAMMean[c]) / SAMStd[c]
		}
	}
	return toCHW(r, size, f.PadTop, f.PadLeft, &lut), f, nil
}

// toCHW writes img through per-channel lookup tables into a zeroed
// [3, size, size] tensor at (top, left).
func toCHW(img *RGB, size, top, left int, lut *[3][256]float32) []float32 {
	out := make([]float32, 3*size*size)
	plane := size * size
	for y := 0; y < img.H; y++ {
		src := img.row(y)
		base := (y+top)*size + left
		r := out[base : base+img.W]
		g := out[plane+base : plane+base+img.W]
		b := out[2*plane+base : 2*plane+base+img.W]
		for x := range r {
			r[x] = lut[0][src[3*x]]
			g[x] = lut[1][src[3*x+1]]
			b[x] = lut[2][src[3*x+2]]
		}
	}
	return out
}

func checkInput(img *RGB, size int) error {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
		return fmt.Errorf("%w: invalid input image", ErrEmptyImage)
	}
	if size <= 0 {
		return fmt.Errorf("%w: target size %d", ErrBadSize, size)
	}
	return nil
}
