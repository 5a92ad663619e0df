package imageproc

import (
	"encoding/binary"
	"image"
)

// pngHeader returns the IHDR bit depth and colour type (ok=false if the
// header is not where the PNG spec puts it; Go's decoder would have refused
// such a file already).
func pngHeader(data []byte) (depth, colorType uint8, ok bool) {
	if len(data) < 26 || string(data[12:16]) != "IHDR" {
		return 0, 0, false
	}
	return data[24], data[25], true
}

// pngMode is the mode Pillow 13's PngImagePlugin opens a file as.
func pngMode(depth, colorType uint8) string {
	switch colorType {
	case 0:
		switch depth {
		case 1:
			return "1"
		case 16:
			return "I;16"
		}
		return "L"
	case 2:
		return "RGB"
	case 3:
		return "P"
	case 4:
		if depth == 16 {
			return "RGBA" // Pillow reads LA;16B into RGBA
		}
		return "LA"
	}
	return "RGBA"
}

func pngToRGB(data []byte, _ image.Config, img image.Image) (*RGB, string, error) {
	depth, ct, ok := pngHeader(data)
	rgb, mode, err := imageToRGB(img, ok && ct == 0 && depth == 16)
	if err != nil {
		return nil, "", err
	}
	if ok {
		mode = pngMode(depth, ct)
	}
	return rgb, mode, nil
}

// pngEXIF returns the payload of the first eXIf chunk (any position; Pillow
// reads the whole file for it), or nil.
func pngEXIF(data []byte) []byte {
	p := 8
	for p+12 <= len(data) {
		n := binary.BigEndian.Uint32(data[p:])
		typ := string(data[p+4 : p+8])
		if uint64(n) > uint64(len(data)-p-12) {
			return nil
		}
		if typ == "eXIf" {
			return data[p+8 : p+8+int(n)]
		}
		if typ == "IEND" {
			return nil
		}
		p += 12 + int(n)
	}
	return nil
}
