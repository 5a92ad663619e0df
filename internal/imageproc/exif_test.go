package imageproc

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tiffWithOrientation builds a minimal TIFF/EXIF block with one IFD0 entry.
func tiffWithOrientation(bo binary.ByteOrder, typ uint16, v uint32) []byte {
	b := make([]byte, 8+2+12+4)
	if bo == binary.LittleEndian {
		copy(b, "II")
	} else {
		copy(b, "MM")
	}
	bo.PutUint16(b[2:], 42)
	bo.PutUint32(b[4:], 8)
	bo.PutUint16(b[8:], 1)
	bo.PutUint16(b[10:], 0x0112)
	bo.PutUint16(b[12:], typ)
	bo.PutUint32(b[14:], 1)
	if typ == 3 {
		bo.PutUint16(b[18:], uint16(v))
	} else {
		bo.PutUint32(b[18:], v)
	}
	return b
}

func TestOrientationFromTIFF(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	tests := []struct {
		name string
		b    []byte
		want int
	}{
		{"little endian SHORT", tiffWithOrientation(le, 3, 6), 6},
		{"big endian SHORT", tiffWithOrientation(be, 3, 8), 8},
		{"LONG", tiffWithOrientation(le, 4, 3), 3},
		{"with Exif header", append([]byte(exifHeader), tiffWithOrientation(be, 3, 5)...), 5},
		{"wrong type", tiffWithOrientation(le, 2, 6), 0},
		{"empty", nil, 0},
		{"bad magic", []byte("II\x2b\x00\x08\x00\x00\x00"), 0},
		{"IFD offset past end", []byte("II\x2a\x00\xff\xff\x00\x00"), 0},
		{"truncated entry", tiffWithOrientation(le, 3, 6)[:15], 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, orientationFromTIFF(tt.b), tt.name)
	}
}

// Orient's eight cases against their definitions on a 3×2 image whose
// pixels are their own coordinates.
func TestOrient(t *testing.T) {
	src := NewRGB(3, 2)
	for y := 0; y < 2; y++ {
		for x := 0; x < 3; x++ {
			src.Pix[(y*3+x)*3], src.Pix[(y*3+x)*3+1] = uint8(x), uint8(y)
		}
	}
	// want[o] lists the source (x, y) of each output pixel, row by row.
	want := map[int][][2]int{
		1: {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}},
		2: {{2, 0}, {1, 0}, {0, 0}, {2, 1}, {1, 1}, {0, 1}},
		3: {{2, 1}, {1, 1}, {0, 1}, {2, 0}, {1, 0}, {0, 0}},
		4: {{0, 1}, {1, 1}, {2, 1}, {0, 0}, {1, 0}, {2, 0}},
		5: {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}, {2, 1}},
		6: {{0, 1}, {0, 0}, {1, 1}, {1, 0}, {2, 1}, {2, 0}},
		7: {{2, 1}, {2, 0}, {1, 1}, {1, 0}, {0, 1}, {0, 0}},
		8: {{2, 0}, {2, 1}, {1, 0}, {1, 1}, {0, 0}, {0, 1}},
		9: {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}}, // unknown: unchanged
	}
	for o, w := range want {
		got := Orient(src, o)
		if o >= 5 && o <= 8 {
			require.Equal(t, [2]int{2, 3}, [2]int{got.W, got.H}, "orientation %d", o)
		} else {
			require.Equal(t, [2]int{3, 2}, [2]int{got.W, got.H}, "orientation %d", o)
		}
		for i, xy := range w {
			assert.Equal(t, []uint8{uint8(xy[0]), uint8(xy[1])}, got.Pix[3*i:3*i+2], "orientation %d, pixel %d", o, i)
		}
	}
}

func TestEXIFContainers(t *testing.T) {
	tiff := tiffWithOrientation(binary.BigEndian, 3, 7)
	jpeg := append([]byte("\xff\xd8\xff\xe0\x00\x04ab\xff\xe1"), byte(0), byte(len(exifHeader)+len(tiff)+2))
	jpeg = append(append(append(jpeg, exifHeader...), tiff...), "\xff\xda\x00\x02"...)
	assert.Equal(t, 7, orientationFromTIFF(jpegEXIF(jpeg)))
	assert.Nil(t, jpegEXIF([]byte("\xff\xd8\xff\xe1\xff\xff")), "length past the end")
	assert.Nil(t, jpegEXIF([]byte("\xff\xd8\xff\xda\x00\x02")), "scan before any APP1")

	webp := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00EXIF")
	webp = binary.LittleEndian.AppendUint32(webp, uint32(len(tiff)))
	webp = append(webp, tiff...)
	assert.Equal(t, 7, orientationFromTIFF(webpEXIF(webp)))
	assert.Nil(t, webpEXIF(webp[:len(webp)-1]), "chunk past the end")
}
