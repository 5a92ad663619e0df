package imageproc

import (
	"image"
)

// jpegToRGB converts Go's JPEG decode the way libjpeg-turbo (Pillow's
// decoder) finishes a decode: fancy (triangle) chroma upsampling and its
// fixed-point YCbCr→RGB. Only the IDCT still differs (Go's is not libjpeg's
// "islow"), which leaves differences of a few steps; 4-component files are
// CMYK (Go's decoder applies the Adobe inversion Pillow's "CMYK;I" rawmode
// does) and go through Pillow's CMYK formula.
func jpegToRGB(data []byte, cfg image.Config, img image.Image) (*RGB, string, error) {
	if m, ok := img.(*image.YCbCr); ok {
		out := NewRGB(m.Rect.Dx(), m.Rect.Dy())
		if out.W == 0 || out.H == 0 {
			return genericToRGB(data, cfg, img)
		}
		jpegYCbCrToRGB(out, m)
		return out, "RGB", nil
	}
	return genericToRGB(data, cfg, img)
}

// libjpeg's jdcolor.c tables, SCALEBITS = 16.
var jpegCrR, jpegCbB, jpegCrG, jpegCbG [256]int32

func init() {
	const half = 1 << 15
	for i := range 256 {
		x := int32(i - 128)
		jpegCrR[i] = (91881*x + half) >> 16  // FIX(1.40200)
		jpegCbB[i] = (116130*x + half) >> 16 // FIX(1.77200)
		jpegCrG[i] = -46802 * x              // -FIX(0.71414)
		jpegCbG[i] = -22554*x + half         // -FIX(0.34414), with the rounding
	}
}

func clampByte(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

func jpegYCCPixel(dst []uint8, y, cb, cr uint8) {
	yy := int32(y)
	dst[0] = clampByte(yy + jpegCrR[cr])
	dst[1] = clampByte(yy + (jpegCbG[cb]+jpegCrG[cr])>>16)
	dst[2] = clampByte(yy + jpegCbB[cb])
}

// jpegYCbCrToRGB upsamples the chroma planes like libjpeg-turbo's jdsample.c
// with do_fancy_upsampling (its default, which Pillow keeps): h2v1 and h2v2
// use the triangle filter when the downsampled width exceeds 2, h1v2 always,
// anything else (and narrow h2 planes) replicates. Context rows above the
// first and below the last chroma row repeat the edge row.
func jpegYCbCrToRGB(out *RGB, m *image.YCbCr) {
	w, h := out.W, out.H
	cw := (w + 1) / 2
	var hf, vf int // chroma subsampling factors
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		hf, vf = 1, 1
	case image.YCbCrSubsampleRatio422:
		hf, vf = 2, 1
	case image.YCbCrSubsampleRatio420:
		hf, vf = 2, 2
	case image.YCbCrSubsampleRatio440:
		hf, vf = 1, 2
	default: // 4:1:1, 4:1:0: libjpeg's int_upsample replicates, as COffset does
		for y := 0; y < h; y++ {
			dst := out.row(y)
			for x := 0; x < w; x++ {
				ci := m.COffset(m.Rect.Min.X+x, m.Rect.Min.Y+y)
				jpegYCCPixel(dst[3*x:], m.Y[m.YOffset(m.Rect.Min.X+x, m.Rect.Min.Y+y)], m.Cb[ci], m.Cr[ci])
			}
		}
		return
	}
	fancyH := hf == 2 && cw > 2
	fancyV := vf == 2 && (hf == 1 || fancyH)
	ch := h
	if vf == 2 {
		ch = (h + 1) / 2
	}
	planeW := w
	if hf == 2 {
		planeW = cw
	}
	crow := func(p []uint8, r int) []uint8 {
		if r < 0 {
			r = 0
		}
		if r >= ch {
			r = ch - 1
		}
		return p[r*m.CStride : r*m.CStride+planeW]
	}
	cb := make([]uint8, 2*planeW+2)
	cr := make([]uint8, 2*planeW+2)
	colsum := make([]int32, planeW)
	for y := 0; y < h; y++ {
		ucb, ucr := cb[:w], cr[:w]
		switch {
		case vf == 2 && fancyV:
			// near row (weight 3) and far row (weight 1)
			near := y / 2
			far := near - 1
			if y%2 == 1 {
				far = near + 1
			}
			for _, pl := range [2]struct {
				src []uint8
				dst []uint8
			}{{m.Cb, ucb}, {m.Cr, ucr}} {
				a, b := crow(pl.src, near), crow(pl.src, far)
				for i := range colsum {
					colsum[i] = 3*int32(a[i]) + int32(b[i])
				}
				if hf == 2 {
					h2v2Row(pl.dst, colsum)
				} else {
					// h1v2: bias 1 for the upper row of a pair, 2 for the lower
					bias := int32(1)
					if y%2 == 1 {
						bias = 2
					}
					for i := range pl.dst {
						pl.dst[i] = uint8((colsum[i] + bias) >> 2)
					}
				}
			}
		default:
			r := y
			if vf == 2 {
				r = y / 2
			}
			for _, pl := range [2]struct {
				src []uint8
				dst []uint8
			}{{m.Cb, ucb}, {m.Cr, ucr}} {
				s := crow(pl.src, r)
				switch {
				case hf == 1:
					copy(pl.dst, s)
				case fancyH:
					h2v1Row(pl.dst, s)
				default:
					for i := range pl.dst {
						pl.dst[i] = s[i/2]
					}
				}
			}
		}
		dst := out.row(y)
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		for x := 0; x < w; x++ {
			jpegYCCPixel(dst[3*x:], yrow[x], ucb[x], ucr[x])
		}
	}
}

// h2v1Row is libjpeg's h2v1_fancy_upsample for one row (len(s) > 2): each
// output is 3/4 of the nearer and 1/4 of the further input sample, with
// alternating rounding biases; the outermost samples are copied.
func h2v1Row(dst, s []uint8) {
	n := len(s)
	put := func(i int, v int32) {
		if i < len(dst) {
			dst[i] = uint8(v)
		}
	}
	put(0, int32(s[0]))
	put(1, (3*int32(s[0])+int32(s[1])+2)>>2)
	for i := 1; i < n-1; i++ {
		v := 3 * int32(s[i])
		put(2*i, (v+int32(s[i-1])+1)>>2)
		put(2*i+1, (v+int32(s[i+1])+2)>>2)
	}
	put(2*n-2, (3*int32(s[n-1])+int32(s[n-2])+1)>>2)
	put(2*n-1, int32(s[n-1]))
}

// h2v2Row is libjpeg's h2v2_fancy_upsample for one output row, given the
// vertical column sums 3*near + far (len > 2).
func h2v2Row(dst []uint8, cs []int32) {
	n := len(cs)
	put := func(i int, v int32) {
		if i < len(dst) {
			dst[i] = uint8(v)
		}
	}
	put(0, (cs[0]*4+8)>>4)
	put(1, (cs[0]*3+cs[1]+7)>>4)
	for i := 1; i < n-1; i++ {
		put(2*i, (cs[i]*3+cs[i-1]+8)>>4)
		put(2*i+1, (cs[i]*3+cs[i+1]+7)>>4)
	}
	put(2*n-2, (cs[n-1]*3+cs[n-2]+8)>>4)
	put(2*n-1, (cs[n-1]*4+7)>>4)
}
