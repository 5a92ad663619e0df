package imageproc

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pngWithHeader returns a PNG that declares w×h (8-bit RGB) with one empty
// IDAT chunk: enough for the header checks, never decodable.
func pngWithHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// gifWithScreen returns a GIF whose logical screen is w×h and whose one frame
// is 1×1 at the origin.
func gifWithScreen(w, h uint16) []byte {
	var b bytes.Buffer
	b.WriteString("GIF89a")
	_ = binary.Write(&b, binary.LittleEndian, [2]uint16{w, h})
	b.Write([]byte{0x80, 0, 0})                      // global table of 2 entries
	b.Write([]byte{0, 0, 0, 255, 255, 255})          // black, white
	b.Write([]byte{0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0}) // 1×1 frame
	b.Write([]byte{2, 2, 0x4c, 0x01, 0, 0x3b})       // LZW: one pixel of index 1... and trailer
	return b.Bytes()
}

func TestDecodeErrors(t *testing.T) {
	small := readSource(t, loadManifest(t).source(t, "rgb_37x91"))
	tests := []struct {
		name string
		data []byte
		opts Options
		want error
	}{
		{"empty input", nil, Options{}, ErrUnknownFormat},
		{"text", []byte("hello, world"), Options{}, ErrUnknownFormat},
		{"file over MaxBytes", small, Options{Limits: Limits{MaxBytes: int64(len(small) - 1)}}, ErrFileTooLarge},
		{"pixels over MaxPixels", small, Options{Limits: Limits{MaxPixels: 37*91 - 1}}, ErrTooManyPixels},
		{"PNG bomb header", pngWithHeader(100000, 100000), Options{}, ErrTooManyPixels},
		{"PNG header, 2^31-1 sides (Go refuses)", pngWithHeader(1<<31-1, 1<<31-1), Options{}, ErrCorrupt},
		{"GIF bomb screen", gifWithScreen(65535, 65535), Options{}, ErrTooManyPixels},
		{"GIF 0x0 screen", gifWithScreen(0, 0), Options{}, ErrEmptyImage},
		{"GIF 0-height screen", gifWithScreen(5, 0), Options{}, ErrEmptyImage},
		{"PNG 0x0 header", pngWithHeader(0, 0), Options{}, ErrCorrupt},
		{"PNG with empty IDAT", pngWithHeader(2, 2), Options{}, ErrCorrupt},
		{"JPEG magic only", []byte("\xff\xd8\xff"), Options{}, ErrCorrupt},
		{"WebP magic only", []byte("RIFF\x00\x00\x00\x00WEBP"), Options{}, ErrCorrupt},
		{"BMP magic only", []byte("BM"), Options{}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, _, err := DecodeBytes(tt.data, tt.opts)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want, "got %v", err)
			assert.Nil(t, img)
			// The reader entry point agrees.
			_, _, err2 := Decode(bytes.NewReader(tt.data), tt.opts)
			assert.ErrorIs(t, err2, tt.want)
		})
	}
}

func TestDecodeLimitsDisabled(t *testing.T) {
	data := readSource(t, loadManifest(t).source(t, "rgb_37x91"))
	img, _, err := Decode(bytes.NewReader(data), Options{Limits: Limits{MaxBytes: -1, MaxPixels: -1}})
	require.NoError(t, err)
	assert.Equal(t, [2]int{37, 91}, [2]int{img.W, img.H})
	// exactly at the limits is fine
	_, _, err = DecodeBytes(data, Options{Limits: Limits{MaxBytes: int64(len(data)), MaxPixels: 37 * 91}})
	require.NoError(t, err)
}

// TestDecodeTruncated cuts every golden source (and the extra PIL files) at
// several points: each cut must give an error, never a panic or an image.
func TestDecodeTruncated(t *testing.T) {
	var files []string
	for _, s := range loadManifest(t).Sources {
		files = append(files, filepath.Join(goldenDir, s.File))
	}
	extra, err := filepath.Glob(filepath.Join(pilDir, "*.*"))
	require.NoError(t, err)
	for _, f := range extra {
		if !strings.HasSuffix(f, ".gz") && !strings.HasSuffix(f, ".json") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		if len(data) > 200_000 {
			continue // the large PNGs add time, not coverage
		}
		for _, n := range []int{1, 8, 16, 30, len(data) / 3, len(data) / 2, len(data) - 20, len(data) - 1} {
			if n <= 0 || n >= len(data) {
				continue
			}
			img, _, err := DecodeBytes(data[:n], Options{})
			if err == nil {
				// Some formats are complete before their last bytes (a GIF
				// without its trailer, a JPEG without EOI in Go's decoder):
				// that is an image, not a crash; it must still be consistent.
				t.Logf("%s cut at %d of %d bytes still decodes", filepath.Base(f), n, len(data))
				assert.Len(t, img.Pix, img.W*img.H*3, "%s cut at %d", f, n)
				continue
			}
			assert.True(t, isSentinel(err), "%s cut at %d: unclassified error %v", f, n, err)
		}
	}
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrFileTooLarge, ErrTooManyPixels, ErrEmptyImage, ErrUnknownFormat, ErrCorrupt} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestDecodeInfo(t *testing.T) {
	m := loadManifest(t)
	tests := []struct {
		source, format, mode string
		orientation          int
	}{
		{"rgb_37x91", "png", "RGB", 0},
		{"mode_L_97x61", "png", "L", 0},
		{"mode_I16_64x48", "png", "I;16", 0},
		{"mode_CMYK_90x70", "jpeg", "CMYK", 0},
		{"exif6_160x90", "jpeg", "RGB", 6},
		{"exif8_120x70", "png", "RGB", 8},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			s := m.source(t, tt.source)
			for _, apply := range []bool{false, true} {
				img, info, err := DecodeBytes(readSource(t, s), Options{ApplyEXIFOrientation: apply})
				require.NoError(t, err)
				assert.Equal(t, tt.format, info.Format)
				assert.Equal(t, tt.mode, info.Mode)
				assert.Equal(t, tt.orientation, info.Orientation)
				assert.Equal(t, s.Size, [2]int{info.Width, info.Height})
				rotated := apply && tt.orientation >= 5
				assert.Equal(t, apply && tt.orientation > 1, info.Oriented)
				if rotated {
					assert.Equal(t, [2]int{info.Height, info.Width}, [2]int{img.W, img.H})
				} else {
					assert.Equal(t, [2]int{info.Width, info.Height}, [2]int{img.W, img.H})
				}
			}
		})
	}
}

// A palette index past the PLTE entries is black in Pillow (checked with
// Pillow 13.0.0) and in Go's decoder.
func TestDecodePNGShortPalette(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, 7)
	binary.BigEndian.PutUint32(ihdr[4:], 1)
	ihdr[8], ihdr[9] = 8, 3
	chunk("IHDR", ihdr)
	chunk("PLTE", []byte{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120})
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write([]byte{0, 0, 1, 2, 3, 4, 200, 255})
	require.NoError(t, zw.Close())
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)

	img, info, err := DecodeBytes(b.Bytes(), Options{})
	require.NoError(t, err)
	assert.Equal(t, "P", info.Mode)
	assert.Equal(t, []uint8{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 0, 0, 0, 0, 0, 0, 0, 0, 0}, img.Pix)
}
