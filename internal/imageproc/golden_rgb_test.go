package imageproc

import (
	"bytes"
	"image"
	"image/jpeg"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jpegTolerance bounds how far our JPEG decode may be from Pillow's
// (libjpeg-turbo): chroma upsampling and colour conversion follow libjpeg,
// but Go's IDCT does not, so isolated samples differ by a few steps.
const (
	jpegMaxDiff  = 4
	jpegMeanDiff = 0.5
)

// TestGoldenRGB checks convert("RGB") for every rgb/ golden: bit-exact from
// the file for PNG sources; for JPEG sources bit-exact from Pillow's decode
// (decoded/*, and Orient for the transposed variant), and within the JPEG
// tolerance from the file.
func TestGoldenRGB(t *testing.T) {
	m := loadManifest(t)
	n := 0
	for _, c := range m.Cases {
		if c.Kind != "rgb_u8" {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(c.File, ".u8.gz"), func(t *testing.T) {
			want := loadRGB(t, &c)
			s := m.source(t, c.Source)
			got, info, err := DecodeBytes(readSource(t, s), Options{ApplyEXIFOrientation: c.transposed()})
			require.NoError(t, err)
			assert.Equal(t, s.Mode, info.Mode)
			assert.Equal(t, s.Size, [2]int{info.Width, info.Height})
			assert.Equal(t, s.ExifOrientation, info.Orientation)
			require.Equal(t, [2]int{want.W, want.H}, [2]int{got.W, got.H})
			if s.Format != "JPEG" {
				assert.Equal(t, want.Pix, got.Pix, "convert(\"RGB\") of %s", s.Mode)
				return
			}
			assertJPEGClose(t, want.Pix, got.Pix)

			// Exact from Pillow's decode.
			dec := m.find("decoded_u8", c.Source, false)
			require.NotNil(t, dec)
			raw := loadRaw(t, dec)
			var conv *RGB
			switch dec.Shape[2] {
			case 4:
				conv = cmykPixToRGB(dec.Shape[1], dec.Shape[0], raw)
			case 3:
				conv, err = FromHWC(dec.Shape[1], dec.Shape[0], raw)
				require.NoError(t, err)
			}
			if c.transposed() {
				conv = Orient(conv, s.ExifOrientation)
			}
			assert.Equal(t, want.Pix, conv.Pix, "conversion of Pillow's decode")
		})
	}
	require.Equal(t, 11, n)
}

func cmykPixToRGB(w, h int, pix []uint8) *RGB {
	out := NewRGB(w, h)
	for i := 0; i < w*h; i++ {
		out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = cmykToRGB(pix[4*i], pix[4*i+1], pix[4*i+2], pix[4*i+3])
	}
	return out
}

func assertJPEGClose(t *testing.T, want, got []uint8) {
	t.Helper()
	require.Len(t, got, len(want))
	maxDiff, nDiff := diffStats(got, want)
	sum := 0
	for i := range got {
		d := int(got[i]) - int(want[i])
		sum += max(d, -d)
	}
	mean := float64(sum) / float64(len(got))
	t.Logf("JPEG decode vs libjpeg-turbo: max diff %d, %d of %d values differ, mean abs diff %.4f",
		maxDiff, nDiff, len(got), mean)
	assert.LessOrEqual(t, maxDiff, jpegMaxDiff)
	assert.LessOrEqual(t, mean, jpegMeanDiff)
}

// TestGoldenDecodedJPEG compares Go's JPEG decode before conversion with
// Pillow's (decoded/*): the CMYK file checks that Go's Adobe inversion is
// Pillow's "CMYK;I".
func TestGoldenDecodedJPEG(t *testing.T) {
	m := loadManifest(t)
	n := 0
	for _, c := range m.Cases {
		if c.Kind != "decoded_u8" {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(c.File, ".u8.gz"), func(t *testing.T) {
			want := loadRaw(t, &c)
			data := readSource(t, m.source(t, c.Source))
			switch c.Shape[2] {
			case 4:
				img, err := jpeg.Decode(bytes.NewReader(data))
				require.NoError(t, err)
				cmyk, ok := img.(*image.CMYK)
				require.True(t, ok, "Go decoded a %T", img)
				assertJPEGClose(t, want, cmyk.Pix)
			case 3:
				got, _, err := DecodeBytes(data, Options{})
				require.NoError(t, err)
				assertJPEGClose(t, want, got.Pix)
			}
		})
	}
	require.Equal(t, 2, n)
}
