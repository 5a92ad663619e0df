package imageproc

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrBadSize means a requested output size is not positive.
var ErrBadSize = errors.New("imageproc: bad size")

// Resize resamples img to w×h with Pillow 13's Image.resize(size, filter)
// semantics for an RGB image and the default box and reducing_gap: the
// result is bit-identical to Pillow's.
//
// A pass whose axis keeps its size is skipped (an unchanged image is copied).
// When both passes run, the horizontal one runs first unless the height
// shrinks by more than twice as much as the width does (Pillow PR #9549):
// the uint8 intermediate makes the order visible in the output.
func Resize(img *RGB, w, h int, f Filter) (*RGB, error) {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
		return nil, fmt.Errorf("%w: cannot resize an empty or inconsistent image", ErrEmptyImage)
	}
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("%w: resize to %dx%d", ErrBadSize, w, h)
	}
	if _, _, err := f.kernelFunc(); err != nil {
		return nil, err
	}
	out := img
	for _, p := range passOrder(img.W, img.H, w, h) {
		var err error
		if p == 'h' {
			out, err = resampleHorizontal(out, w, f)
		} else {
			out, err = resampleVertical(out, h, f)
		}
		if err != nil {
			return nil, err
		}
	}
	if out == img {
		out = img.Clone()
	}
	return out, nil
}

// passOrder returns the passes Pillow 13 runs for a resize, as a string of
// 'h' and 'v' in execution order ("" when the size is unchanged).
func passOrder(inW, inH, outW, outH int) string {
	needH, needV := outW != inW, outH != inH
	switch {
	case needH && needV:
		if outH < inH && inH-outH > 2*(inW-outW) {
			return "vh"
		}
		return "hv"
	case needH:
		return "h"
	case needV:
		return "v"
	}
	return ""
}

// resampleHorizontal resizes the rows of in to outW samples.
func resampleHorizontal(in *RGB, outW int, f Filter) (*RGB, error) {
	kr, err := makeKernel(in.W, outW, f)
	if err != nil {
		return nil, err
	}
	out := NewRGB(outW, in.H)
	const half = 1 << (precisionBits - 1)
	parallelRows(in.H, outW*kr.ksize*3, func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			src, dst := in.row(y), out.row(y)
			// Equal input rows give equal output rows; padding rows of an
			// expand2square canvas make this common and it is exact.
			if y > y0 && bytes.Equal(src, in.row(y-1)) {
				copy(dst, out.row(y-1))
				continue
			}
			for xx := 0; xx < outW; xx++ {
				xmin, n := kr.xmin[xx], kr.n[xx]
				k := kr.k[xx*kr.ksize : xx*kr.ksize+n]
				s := src[xmin*3 : (xmin+n)*3]
				r, g, b := int32(half), int32(half), int32(half)
				for i, w := range k {
					j := 3 * i
					if j+2 >= len(s) {
						break // never: len(s) == 3*len(k); lets the compiler drop bounds checks
					}
					r += int32(s[j]) * w
					g += int32(s[j+1]) * w
					b += int32(s[j+2]) * w
				}
				d := dst[xx*3 : xx*3+3 : xx*3+3]
				d[0], d[1], d[2] = clip8(r), clip8(g), clip8(b)
			}
		}
	})
	return out, nil
}

// resampleVertical resizes the columns of in to outH samples. Each output row
// is a weighted sum of whole input rows; the integer sums are the same as
// Pillow's per-pixel loop (same terms, same order per sample).
func resampleVertical(in *RGB, outH int, f Filter) (*RGB, error) {
	kr, err := makeKernel(in.H, outH, f)
	if err != nil {
		return nil, err
	}
	out := NewRGB(in.W, outH)
	rowLen := in.W * 3
	const half = 1 << (precisionBits - 1)
	parallelRows(outH, rowLen*kr.ksize, func(y0, y1 int) {
		acc := make([]int32, rowLen)
		for yy := y0; yy < y1; yy++ {
			for j := range acc {
				acc[j] = half
			}
			ymin, n := kr.xmin[yy], kr.n[yy]
			k := kr.k[yy*kr.ksize : yy*kr.ksize+n]
			for i, w := range k {
				src := in.row(ymin + i)
				src = src[:len(acc)]
				for j, v := range src {
					acc[j] += int32(v) * w
				}
			}
			dst := out.row(yy)
			dst = dst[:len(acc)]
			for j, a := range acc {
				dst[j] = clip8(a)
			}
		}
	})
	return out, nil
}
