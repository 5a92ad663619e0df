package imageproc

import (
	"fmt"
	"image"
)

// gifToRGB reproduces Pillow's first GIF frame: a canvas of the logical
// screen size filled with the transparent index (or index 0), the frame's
// indices pasted at its offset, then the palette lookup of convert("RGB")
// with the transparent entry keeping its colour. Go's decoder blanks that
// entry, so the palette is re-read from the file.
func gifToRGB(data []byte, cfg image.Config, img image.Image) (*RGB, string, error) {
	m, ok := img.(*image.Paletted)
	if !ok {
		return genericToRGB(data, cfg, img)
	}
	g, err := parseGIFFirstFrame(data)
	if err != nil {
		return nil, "", err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, "", fmt.Errorf("%w: gif screen %dx%d", ErrEmptyImage, cfg.Width, cfg.Height)
	}
	fill := uint8(0)
	if g.transparent >= 0 {
		fill = uint8(g.transparent)
	}
	idx := make([]uint8, cfg.Width*cfg.Height)
	for i := range idx {
		idx[i] = fill
	}
	r := m.Rect.Intersect(image.Rect(0, 0, cfg.Width, cfg.Height))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		src := m.Pix[m.PixOffset(r.Min.X, y):m.PixOffset(r.Max.X, y)]
		copy(idx[y*cfg.Width+r.Min.X:], src)
	}
	lut := paletteLUT(nil, g.palette)
	if g.greyIdentity {
		// Pillow opens such a file as mode L, where the "colour" of an index
		// beyond the table is the index itself.
		for i := len(g.palette); i < 256; i++ {
			lut[i] = [3]uint8{uint8(i), uint8(i), uint8(i)}
		}
	}
	out := NewRGB(cfg.Width, cfg.Height)
	palettedToRGB(out, idx, cfg.Width, &lut)
	mode := "P"
	if g.greyIdentity {
		mode = "L"
	}
	return out, mode, nil
}

type gifFrameInfo struct {
	palette      [][3]uint8 // local table of the first frame, else the global one
	transparent  int        // transparent index of the first frame, -1 if none
	greyIdentity bool       // every entry i is (i, i, i): Pillow uses mode L
}

// parseGIFFirstFrame walks the GIF blocks up to the first image descriptor.
func parseGIFFirstFrame(data []byte) (*gifFrameInfo, error) {
	errShort := fmt.Errorf("gif: truncated before the first frame")
	if len(data) < 13 {
		return nil, errShort
	}
	g := &gifFrameInfo{transparent: -1}
	p := 13
	readTable := func(flags uint8) ([][3]uint8, error) {
		n := 1 << (int(flags&7) + 1)
		if p+3*n > len(data) {
			return nil, errShort
		}
		t := make([][3]uint8, n)
		for i := range t {
			t[i] = [3]uint8{data[p+3*i], data[p+3*i+1], data[p+3*i+2]}
		}
		p += 3 * n
		return t, nil
	}
	var global [][3]uint8
	if flags := data[10]; flags&0x80 != 0 {
		t, err := readTable(flags)
		if err != nil {
			return nil, err
		}
		global = t
	}
	for {
		if p >= len(data) {
			return nil, errShort
		}
		switch data[p] {
		case 0x21: // extension: label, then sub-blocks
			if p+2 > len(data) {
				return nil, errShort
			}
			label := data[p+1]
			p += 2
			first := true
			for {
				if p >= len(data) {
					return nil, errShort
				}
				n := int(data[p])
				if p+1+n > len(data) {
					return nil, errShort
				}
				if label == 0xf9 && first && n >= 4 {
					if data[p+1]&1 != 0 { // like Pillow, a later GCE without the flag keeps it
						g.transparent = int(data[p+4])
					}
				}
				first = false
				p += 1 + n
				if n == 0 {
					break
				}
			}
		case 0x2c: // image descriptor
			if p+10 > len(data) {
				return nil, errShort
			}
			flags := data[p+9]
			p += 10
			g.palette = global
			if flags&0x80 != 0 {
				t, err := readTable(flags)
				if err != nil {
					return nil, err
				}
				g.palette = t
			}
			g.greyIdentity = true
			for i, c := range g.palette {
				if int(c[0]) != i || int(c[1]) != i || int(c[2]) != i {
					g.greyIdentity = false
					break
				}
			}
			return g, nil
		default:
			return nil, fmt.Errorf("gif: unexpected block 0x%02x before the first frame", data[p])
		}
	}
}
