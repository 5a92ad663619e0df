package imageproc

import (
	"encoding/binary"
	"image"
)

// bmpToRGB converts a BMP decode; pixels need nothing format-specific (Go's
// decoder keeps 32-bit samples unpremultiplied), only Pillow's mode is
// worked out from the header: P for palettes, RGBA for 32-bit bitfields with
// an alpha mask, RGB otherwise.
func bmpToRGB(data []byte, cfg image.Config, img image.Image) (*RGB, string, error) {
	rgb, mode, err := genericToRGB(data, cfg, img)
	if err != nil || mode == "P" {
		return rgb, mode, err
	}
	mode = "RGB"
	if len(data) >= 14+56 {
		le := binary.LittleEndian
		infoLen := le.Uint32(data[14:])
		bpp := le.Uint16(data[28:])
		compression := le.Uint32(data[30:])
		if infoLen >= 56 && bpp == 32 && (compression == 3 || compression == 6) && le.Uint32(data[14+52:]) != 0 {
			mode = "RGBA"
		}
	}
	return rgb, mode, nil
}
