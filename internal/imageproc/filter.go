package imageproc

import "fmt"

// Filter selects a resampling kernel. The values are Pillow's Image.Resampling
// numbers, so a PIL "resample=3" in a config maps to Filter(3).
type Filter int

const (
	// Bilinear is Pillow's BILINEAR: the triangle 1-|x| on [-1, 1] (SAM path).
	Bilinear Filter = 2
	// Bicubic is Pillow's BICUBIC: Keys' cubic with a = -0.5 on [-2, 2] (CLIP path).
	Bicubic Filter = 3
)

// String returns Pillow's name of the filter.
func (f Filter) String() string {
	switch f {
	case Bilinear:
		return "BILINEAR"
	case Bicubic:
		return "BICUBIC"
	}
	return fmt.Sprintf("Filter(%d)", int(f))
}

// kernelFunc returns the filter function and its support at scale 1.
func (f Filter) kernelFunc() (func(float64) float64, float64, error) {
	switch f {
	case Bilinear:
		return bilinearFilter, 1.0, nil
	case Bicubic:
		return bicubicFilter, 2.0, nil
	}
	return nil, 0, fmt.Errorf("imageproc: unsupported resampling filter %v", f)
}

// The float64(...) conversions below are not decoration: Go may fuse a*b+c
// into one FMA instruction on some targets (and on amd64 with GOAMD64=v3),
// which would round differently from Pillow's C. An explicit conversion forces
// the intermediate rounding and forbids the fusion (Go spec, "Floating-point
// operators"). Every expression keeps Pillow's evaluation order.

func bilinearFilter(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func bicubicFilter(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		// ((a + 2)*x - (a + 3))*x*x + 1
		t := float64((a+2)*x) - (a + 3)
		t = float64(t * x)
		t = float64(t * x)
		return t + 1
	}
	if x < 2 {
		// (((x - 5)*x + 8)*x - 4)*a
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return t * a
	}
	return 0
}
