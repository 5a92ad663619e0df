package imageproc

import (
	"errors"
	"fmt"
	"math"
)

// ErrBadBox means a box is not finite, inverted, or outside its image.
var ErrBadBox = errors.New("imageproc: invalid box")

// Box is an axis-aligned box in xyxy order: (X1, Y1) top-left, (X2, Y2)
// bottom-right. Depending on context it is in original-image pixels or
// normalized to the expand2square frame (the square of side max(W, H) with
// the image centred in it, where the model's boxes live).
type Box struct {
	X1, Y1, X2, Y2 float64
}

func (b Box) finite() bool {
	for _, v := range [4]float64{b.X1, b.Y1, b.X2, b.Y2} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// BoxFromSquareNorm maps a box predicted by the model (normalized to the
// expand2square frame of a w×h image) to original-image pixels, like the
// demo's de_transform_box (MODEL_SPEC §3): multiply by max(w, h), then
// subtract the padding (max-min)/2 from the y's of a wide image or the x's of
// a tall one. There is no clipping: the model's raw output may fall outside
// [0, 1] and so may the result. Only non-finite values are rejected.
func BoxFromSquareNorm(b Box, w, h int) (Box, error) {
	if w <= 0 || h <= 0 {
		return Box{}, fmt.Errorf("%w: %dx%d", ErrEmptyImage, w, h)
	}
	if !b.finite() {
		return Box{}, fmt.Errorf("%w: non-finite %v", ErrBadBox, b)
	}
	side, dx, dy := SquareFrame(w, h)
	s := float64(side)
	return Box{
		X1: b.X1*s - float64(dx), Y1: b.Y1*s - float64(dy),
		X2: b.X2*s - float64(dx), Y2: b.Y2*s - float64(dy),
	}, nil
}

// BoxToSquareNorm maps a user box in original-image pixels of a w×h image to
// the normalized expand2square frame the model expects (MODEL_SPEC §3.3):
// shift by the paste offset, divide by max(w, h). The box must be finite,
// ordered (X1 <= X2, Y1 <= Y2) and inside [0, w]×[0, h].
func BoxToSquareNorm(b Box, w, h int) (Box, error) {
	if w <= 0 || h <= 0 {
		return Box{}, fmt.Errorf("%w: %dx%d", ErrEmptyImage, w, h)
	}
	switch {
	case !b.finite():
		return Box{}, fmt.Errorf("%w: non-finite %v", ErrBadBox, b)
	case b.X2 < b.X1 || b.Y2 < b.Y1:
		return Box{}, fmt.Errorf("%w: %v is inverted (need x1 <= x2 and y1 <= y2)", ErrBadBox, b)
	case b.X1 < 0 || b.Y1 < 0 || b.X2 > float64(w) || b.Y2 > float64(h):
		return Box{}, fmt.Errorf("%w: %v lies outside the %dx%d image", ErrBadBox, b, w, h)
	}
	side, dx, dy := SquareFrame(w, h)
	s := float64(side)
	return Box{
		X1: (b.X1 + float64(dx)) / s, Y1: (b.Y1 + float64(dy)) / s,
		X2: (b.X2 + float64(dx)) / s, Y2: (b.Y2 + float64(dy)) / s,
	}, nil
}
