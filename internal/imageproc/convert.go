package imageproc

import (
	"fmt"
	"image"
	"image/color"
)

// This file converts Go's decoded images to RGB the way Pillow's
// Image.convert("RGB") converts the mode the same file opens as in Pillow
// (Convert.c): L is replicated, alpha is dropped without compositing, palette
// entries are looked up with any transparency ignored, 16-bit grey saturates,
// 16-bit colour keeps the high byte, CMYK uses Pillow's integer formula.

// genericToRGB converts by concrete type; it is also the fallback of the
// format-specific converters.
func genericToRGB(_ []byte, _ image.Config, img image.Image) (*RGB, string, error) {
	return imageToRGB(img, false)
}

// imageToRGB converts img. gray16Saturates selects Pillow's I;16 rule
// (min(v, 255)) for 16-bit grey, which Go may hand back as Gray16 or, with a
// tRNS chunk, as NRGBA64; otherwise 16-bit samples keep their high byte.
func imageToRGB(img image.Image, gray16Saturates bool) (*RGB, string, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, "", fmt.Errorf("%w: decoded %dx%d", ErrEmptyImage, w, h)
	}
	out := NewRGB(w, h)
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+w]
			dst := out.row(y)
			for x, v := range src {
				dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
			}
		}
		return out, "L", nil
	case *image.Gray16:
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+2*w]
			dst := out.row(y)
			for x := 0; x < w; x++ {
				v := sample16(src[2*x:], gray16Saturates)
				dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
			}
		}
		return out, "I;16", nil
	case *image.RGBA:
		copy4to3(out, m.Pix, m.Stride)
		return out, "RGB", nil
	case *image.NRGBA:
		copy4to3(out, m.Pix, m.Stride)
		return out, "RGBA", nil
	case *image.RGBA64:
		copy16(out, m.Pix, m.Stride, gray16Saturates)
		return out, "RGB", nil
	case *image.NRGBA64:
		copy16(out, m.Pix, m.Stride, gray16Saturates)
		return out, "RGBA", nil
	case *image.Paletted:
		lut := paletteLUT(m.Palette, nil)
		palettedToRGB(out, m.Pix, m.Stride, &lut)
		return out, "P", nil
	case *image.CMYK:
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+4*w]
			dst := out.row(y)
			for x := 0; x < w; x++ {
				dst[3*x], dst[3*x+1], dst[3*x+2] = cmykToRGB(src[4*x], src[4*x+1], src[4*x+2], src[4*x+3])
			}
		}
		return out, "CMYK", nil
	case *image.YCbCr:
		ycbcrNearestToRGB(out, m)
		return out, "RGB", nil
	case *image.NYCbCrA:
		ycbcrNearestToRGB(out, &m.YCbCr)
		return out, "RGBA", nil
	}
	// Anything else: un-premultiply through the generic colour model.
	for y := 0; y < h; y++ {
		dst := out.row(y)
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			dst[3*x], dst[3*x+1], dst[3*x+2] = c.R, c.G, c.B
		}
	}
	return out, "RGB", nil
}

// sample16 turns a big-endian 16-bit sample into 8 bits: Pillow's I;16 → RGB
// saturates (high byte non-zero → 255); its 16-bit colour unpackers keep the
// high byte.
func sample16(p []uint8, saturate bool) uint8 {
	if !saturate {
		return p[0]
	}
	if p[0] != 0 {
		return 255
	}
	return p[1]
}

// copy4to3 drops the fourth byte of 8-bit 4-sample pixels (alpha, or the
// padding of an opaque RGBA).
func copy4to3(out *RGB, pix []uint8, stride int) {
	for y := 0; y < out.H; y++ {
		src := pix[y*stride : y*stride+4*out.W]
		dst := out.row(y)
		for x := 0; x < out.W; x++ {
			dst[3*x], dst[3*x+1], dst[3*x+2] = src[4*x], src[4*x+1], src[4*x+2]
		}
	}
}

// copy16 converts 16-bit 4-sample pixels. For grey sources (R = G = B) with
// saturate set, Pillow's I;16 rule applies to each sample, which replicates.
func copy16(out *RGB, pix []uint8, stride int, saturate bool) {
	for y := 0; y < out.H; y++ {
		src := pix[y*stride : y*stride+8*out.W]
		dst := out.row(y)
		for x := 0; x < out.W; x++ {
			s := src[8*x : 8*x+8]
			dst[3*x] = sample16(s[0:], saturate)
			dst[3*x+1] = sample16(s[2:], saturate)
			dst[3*x+2] = sample16(s[4:], saturate)
		}
	}
}

// paletteLUT builds a 256-entry RGB table from a Go palette. Entries are taken
// as stored (color.NRGBA keeps the colour of a transparent entry; Go's PNG
// decoder uses it for tRNS). raw, when non-nil, overrides Go's palette with
// colours read from the file itself (GIF, whose decoder blanks the
// transparent entry). Missing entries are black.
func paletteLUT(p color.Palette, raw [][3]uint8) [256][3]uint8 {
	var lut [256][3]uint8
	for i, c := range p {
		if i >= 256 {
			break
		}
		switch c := c.(type) {
		case color.NRGBA:
			lut[i] = [3]uint8{c.R, c.G, c.B}
		case color.RGBA:
			if c.A == 0xff || c.A == 0 {
				lut[i] = [3]uint8{c.R, c.G, c.B}
				continue
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{n.R, n.G, n.B}
		default:
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{n.R, n.G, n.B}
		}
	}
	for i, c := range raw {
		if i < 256 {
			lut[i] = c
		}
	}
	return lut
}

func palettedToRGB(out *RGB, pix []uint8, stride int, lut *[256][3]uint8) {
	for y := 0; y < out.H; y++ {
		src := pix[y*stride : y*stride+out.W]
		dst := out.row(y)
		for x, i := range src {
			c := lut[i]
			dst[3*x], dst[3*x+1], dst[3*x+2] = c[0], c[1], c[2]
		}
	}
}

// cmykToRGB is Pillow's cmyk2rgb: v = 255-K; X' = clip(v - MULDIV255(X, v)).
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	v := 255 - int32(k)
	f := func(x uint8) uint8 {
		t := int32(x)*v + 128
		r := v - ((t + (t >> 8)) >> 8)
		if r < 0 {
			return 0
		}
		if r > 255 {
			return 255
		}
		return uint8(r)
	}
	return f(c), f(m), f(y)
}

// ycbcrNearestToRGB converts with nearest-neighbour chroma and Go's
// color.YCbCrToRGB: the fallback for YCbCr images of unknown origin.
func ycbcrNearestToRGB(out *RGB, m *image.YCbCr) {
	b := m.Rect
	for y := 0; y < out.H; y++ {
		dst := out.row(y)
		for x := 0; x < out.W; x++ {
			yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
			dst[3*x], dst[3*x+1], dst[3*x+2] = color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
		}
	}
}
