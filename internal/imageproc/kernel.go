package imageproc

import "math"

// precisionBits is Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2.
const precisionBits = 22

// kernel holds the fixed-point weights of one axis: output i reads the n[i]
// input samples starting at xmin[i] with weights k[i*ksize : i*ksize+n[i]].
type kernel struct {
	xmin, n []int
	k       []int32
	ksize   int
}

// makeKernel computes the weights of a resize of one axis from inSize to
// outSize samples, the way Pillow's precompute_coeffs and
// normalize_coeffs_8bpc do for the default box (0, inSize):
//
//   - half-pixel centres; when downscaling the kernel is stretched by the scale
//     factor (antialiasing), when upscaling it is the plain interpolation kernel;
//   - taps outside [0, inSize) are dropped and the rest renormalized to sum 1
//     (no edge replication, no mirroring);
//   - weights are computed and normalized in float64, then rounded half away
//     from zero to 22-bit fixed point.
func makeKernel(inSize, outSize int, f Filter) (*kernel, error) {
	fn, baseSupport, err := f.kernelFunc()
	if err != nil {
		return nil, err
	}
	scale := float64(inSize) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := baseSupport * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	ss := 1 / filterscale

	kr := &kernel{
		xmin:  make([]int, outSize),
		n:     make([]int, outSize),
		k:     make([]int32, outSize*ksize),
		ksize: ksize,
	}
	w := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := float64((float64(xx) + 0.5) * scale)
		xmin := int(center - support + 0.5) // C (int): truncation toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		n := xmax - xmin
		ww := 0.0
		for x := 0; x < n; x++ {
			w[x] = fn(float64((float64(x+xmin) - center + 0.5) * ss))
			ww += w[x]
		}
		k := kr.k[xx*ksize : xx*ksize+n]
		for x := range k {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			k[x] = quantize(v)
		}
		kr.xmin[xx], kr.n[xx] = xmin, n
	}
	return kr, nil
}

// quantize converts a normalized weight to 22-bit fixed point, rounding half
// away from zero like Pillow's (int)(w*2^22 ± 0.5).
func quantize(w float64) int32 {
	const one = 1 << precisionBits
	if w < 0 {
		return int32(-0.5 + w*one)
	}
	return int32(0.5 + w*one)
}

// clip8 turns a fixed-point accumulator (which started at 2^21, the rounding
// offset) into a uint8: an arithmetic shift (floor), then a clamp to 0..255.
func clip8(acc int32) uint8 {
	v := acc >> precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}
