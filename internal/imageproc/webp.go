package imageproc

import (
	"image"
)

// webpToRGB converts Go's WebP decode the way libwebp (Pillow's decoder,
// through WebPAnimDecoder in MODE_RGBA) does: lossy frames are 4:2:0 YUV
// brought to RGB with libwebp's "fancy" upsampler and its 14-bit fixed-point
// YUV→RGB; alpha is dropped. Lossless frames are already RGBA.
func webpToRGB(data []byte, cfg image.Config, img image.Image) (*RGB, string, error) {
	mode := "RGB"
	switch {
	case len(data) >= 21 && string(data[12:16]) == "VP8X" && data[20]&0x10 != 0: // extended: alpha flag
		mode = "RGBA"
	case len(data) >= 25 && string(data[12:16]) == "VP8L" && data[24]&0x10 != 0: // lossless: alpha_is_used
		mode = "RGBA"
	}
	var m *image.YCbCr
	switch t := img.(type) {
	case *image.YCbCr:
		m = t
	case *image.NYCbCrA:
		m = &t.YCbCr
	}
	if m == nil || m.SubsampleRatio != image.YCbCrSubsampleRatio420 || m.Rect.Min != (image.Point{}) {
		rgb, _, err := genericToRGB(data, cfg, img)
		return rgb, mode, err
	}
	out := NewRGB(m.Rect.Dx(), m.Rect.Dy())
	if out.W == 0 || out.H == 0 {
		return nil, "", ErrEmptyImage
	}
	webpYUVToRGB(out, m)
	return out, mode, nil
}

// libwebp dsp/yuv.h: MultHi and VP8Clip8 with YUV_FIX2 = 6.
func webpMultHi(v, coeff int32) int32 { return (v * coeff) >> 8 }

func webpClip8(v int32) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func webpYUVPixel(dst []uint8, y, u, v int32) {
	yy := webpMultHi(y, 19077)
	dst[0] = webpClip8(yy + webpMultHi(v, 26149) - 14234)
	dst[1] = webpClip8(yy - webpMultHi(u, 6419) - webpMultHi(v, 13320) + 8708)
	dst[2] = webpClip8(yy + webpMultHi(u, 33050) - 17685)
}

// webpYUVToRGB is libwebp's UpsampleRgbaLinePair driven as EmitFancyRGB does
// for a whole picture. Output row y takes its chroma from a "near" row
// (weight 3) and a "far" row (weight 1): row 0 uses chroma row 0 twice, odd
// rows 2k-1 use (k-1, k), even rows 2k use (k, k-1), and the last row of an
// even-height picture uses the last chroma row twice. Along a row the same
// 9-3-3-1 scheme applies, with the first and (for even widths) last pixel
// interpolated vertically only.
func webpYUVToRGB(out *RGB, m *image.YCbCr) {
	w, h := out.W, out.H
	cw, ch := (w+1)/2, (h+1)/2
	crow := func(p []uint8, r int) []uint8 {
		if r >= ch {
			r = ch - 1
		}
		return p[r*m.CStride : r*m.CStride+cw]
	}
	u := make([]int32, w)
	v := make([]int32, w)
	for y := 0; y < h; y++ {
		near, far := 0, 0
		if y > 0 {
			if y%2 == 1 {
				near, far = (y-1)/2, (y+1)/2
			} else {
				near, far = y/2, y/2-1
			}
		}
		webpUpsampleRow(u, crow(m.Cb, near), crow(m.Cb, far))
		webpUpsampleRow(v, crow(m.Cr, near), crow(m.Cr, far))
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		dst := out.row(y)
		for x := 0; x < w; x++ {
			webpYUVPixel(dst[3*x:], int32(yrow[x]), u[x], v[x])
		}
	}
}

// webpUpsampleRow fills dst (the luma width) from a near and a far chroma row.
func webpUpsampleRow(dst []int32, n, f []uint8) {
	w := len(dst)
	dst[0] = (3*int32(n[0]) + int32(f[0]) + 2) >> 2
	last := (w - 1) >> 1
	for j := 1; j <= last; j++ {
		n0, n1, f0, f1 := int32(n[j-1]), int32(n[j]), int32(f[j-1]), int32(f[j])
		avg := n0 + n1 + f0 + f1 + 8
		dst[2*j-1] = (((avg + 2*(n1+f0)) >> 3) + n0) >> 1
		dst[2*j] = (((avg + 2*(n0+f1)) >> 3) + n1) >> 1
	}
	if w%2 == 0 {
		j := w/2 - 1
		dst[w-1] = (3*int32(n[j]) + int32(f[j]) + 2) >> 2
	}
}
