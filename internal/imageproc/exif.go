package imageproc

import (
	"encoding/binary"
)

// exifHeader prefixes the TIFF structure in a JPEG APP1 segment; PNG eXIf
// and WebP EXIF chunks usually omit it, but some writers keep it.
const exifHeader = "Exif\x00\x00"

// orientationFromTIFF returns the Orientation tag (0x0112) of IFD0 of a TIFF
// structured EXIF block, or 0 when it is absent or the block is malformed.
func orientationFromTIFF(b []byte) int {
	if len(b) >= len(exifHeader) && string(b[:len(exifHeader)]) == exifHeader {
		b = b[len(exifHeader):]
	}
	if len(b) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(b[2:]) != 42 {
		return 0
	}
	ifd := uint64(bo.Uint32(b[4:]))
	if ifd+2 > uint64(len(b)) {
		return 0
	}
	n := uint64(bo.Uint16(b[ifd:]))
	for i := uint64(0); i < n; i++ {
		e := ifd + 2 + 12*i
		if e+12 > uint64(len(b)) {
			return 0
		}
		if bo.Uint16(b[e:]) != 0x0112 {
			continue
		}
		typ, count := bo.Uint16(b[e+2:]), bo.Uint32(b[e+4:])
		if count < 1 {
			return 0
		}
		switch typ {
		case 3: // SHORT, stored in the first two bytes of the value field
			return int(bo.Uint16(b[e+8:]))
		case 4: // LONG (out of spec, but seen in the wild)
			return int(bo.Uint32(b[e+8:]))
		}
		return 0
	}
	return 0
}

// jpegEXIF returns the body of the first APP1 "Exif" segment before the scan.
func jpegEXIF(data []byte) []byte {
	p := 2
	for p+4 <= len(data) {
		if data[p] != 0xff {
			return nil
		}
		marker := data[p+1]
		switch {
		case marker == 0xff: // fill byte
			p++
			continue
		case marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7): // no length
			p += 2
			continue
		case marker == 0xda || marker == 0xd9: // start of scan, end of image
			return nil
		}
		n := int(binary.BigEndian.Uint16(data[p+2:]))
		if n < 2 || p+2+n > len(data) {
			return nil
		}
		body := data[p+4 : p+2+n]
		if marker == 0xe1 && len(body) >= len(exifHeader) && string(body[:len(exifHeader)]) == exifHeader {
			return body
		}
		p += 2 + n
	}
	return nil
}

// webpEXIF returns the payload of the EXIF chunk of an extended WebP file.
func webpEXIF(data []byte) []byte {
	p := 12
	for p+8 <= len(data) {
		n := uint64(binary.LittleEndian.Uint32(data[p+4:]))
		if n > uint64(len(data)-p-8) {
			return nil
		}
		if string(data[p:p+4]) == "EXIF" {
			return data[p+8 : p+8+int(n)]
		}
		p += 8 + int(n) + int(n&1) // chunks are padded to even sizes
	}
	return nil
}

// Orient returns img transformed as EXIF orientation o prescribes, i.e. what
// PIL's ImageOps.exif_transpose does: 2 mirror left-right, 3 rotate 180,
// 4 mirror top-bottom, 5 transpose, 6 rotate 90° clockwise, 7 transverse,
// 8 rotate 90° counter-clockwise. 1 and unknown values return a copy.
func Orient(img *RGB, o int) *RGB {
	w, h := img.W, img.H
	// src(x, y) gives the source pixel of output (x, y); swap says whether the
	// output is h×w.
	var src func(x, y int) (int, int)
	swap := false
	switch o {
	case 2:
		src = func(x, y int) (int, int) { return w - 1 - x, y }
	case 3:
		src = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	case 4:
		src = func(x, y int) (int, int) { return x, h - 1 - y }
	case 5:
		src, swap = func(x, y int) (int, int) { return y, x }, true
	case 6:
		src, swap = func(x, y int) (int, int) { return y, h - 1 - x }, true
	case 7:
		src, swap = func(x, y int) (int, int) { return w - 1 - y, h - 1 - x }, true
	case 8:
		src, swap = func(x, y int) (int, int) { return w - 1 - y, x }, true
	default:
		return img.Clone()
	}
	ow, oh := w, h
	if swap {
		ow, oh = h, w
	}
	out := NewRGB(ow, oh)
	for y := 0; y < oh; y++ {
		dst := out.row(y)
		for x := 0; x < ow; x++ {
			sx, sy := src(x, y)
			i := (sy*w + sx) * 3
			copy(dst[3*x:3*x+3], img.Pix[i:i+3])
		}
	}
	return out
}
