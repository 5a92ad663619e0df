package imageproc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Extra Pillow 13.0.0 cases made by testdata/make_pil_cases.py: formats and
// modes the goldens lack, and many resize size pairs.
const pilDir = "testdata/pil"

type pilManifest struct {
	Pillow string          `json:"pillow"`
	Resize []pilResizeCase `json:"resize"`
	Decode []pilDecodeCase `json:"decode"`
}

// pilResizeCase is one row [in_w, in_h, out_w, out_h, filter, content,
// seed, first 16 hex digits of the sha256 of Pillow's output].
type pilResizeCase struct {
	In, Out [2]int
	Filter  string
	Content string
	Seed    uint64
	Sha256  string
}

func (c *pilResizeCase) UnmarshalJSON(b []byte) error {
	row := []any{&c.In[0], &c.In[1], &c.Out[0], &c.Out[1], &c.Filter, &c.Content, &c.Seed, &c.Sha256}
	return json.Unmarshal(b, &row)
}

type pilDecodeCase struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	Format      string `json:"format"`
	Mode        string `json:"mode"`
	Orientation int    `json:"orientation"`
	Exif        string `json:"exif"`
	RGB         string `json:"rgb"`
	Shape       [3]int `json:"shape"`
	Lossy       bool   `json:"lossy"`
}

func loadPILManifest(t *testing.T) *pilManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pilDir, "manifest.json"))
	require.NoError(t, err)
	var m pilManifest
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "13.0.0", m.Pillow)
	return &m
}

// synthPixels is make_pil_cases.py's synth: a 32-bit integer hash of the
// sample index and a seed; "binary" keeps only 0 and 255.
func synthPixels(w, h int, seed uint64, content string) *RGB {
	img := NewRGB(w, h)
	s := uint32(seed * 0x85EBCA77)
	for i := range img.Pix {
		v := uint32(i)*0x9E3779B1 + s
		v ^= v >> 15
		v *= 0x2C1B3C6D
		v ^= v >> 12
		v *= 0x297A2D39
		v ^= v >> 15
		b := uint8(v)
		if content == "binary" {
			b = 255 * (b & 1)
		}
		img.Pix[i] = b
	}
	return img
}

// TestPILResizePairs checks Resize against Pillow on random size pairs (both
// directions, 1-px sides, strong reductions) and on the boundary of the
// pass-order rule, by hash of the output.
func TestPILResizePairs(t *testing.T) {
	m := loadPILManifest(t)
	filters := map[string]Filter{"bicubic": Bicubic, "bilinear": Bilinear}
	bad := 0
	for _, c := range m.Resize {
		src := synthPixels(c.In[0], c.In[1], c.Seed, c.Content)
		got, err := Resize(src, c.Out[0], c.Out[1], filters[c.Filter])
		require.NoError(t, err)
		sum := sha256.Sum256(got.Pix)
		if hex.EncodeToString(sum[:8]) != c.Sha256 {
			bad++
			if bad <= 10 {
				t.Errorf("%s %dx%d -> %dx%d (%s, order %q) differs from Pillow",
					c.Filter, c.In[0], c.In[1], c.Out[0], c.Out[1], c.Content,
					passOrder(c.In[0], c.In[1], c.Out[0], c.Out[1]))
			}
		}
	}
	assert.Zero(t, bad, "%d of %d resizes differ", bad, len(m.Resize))
	t.Logf("%d resize pairs checked", len(m.Resize))
}

// TestPILDecode checks Decode against Pillow's convert("RGB") (and
// exif_transpose) for WebP, GIF, BMP, more PNG modes, every EXIF
// orientation and JPEG subsampling variants. Lossless sources must be exact;
// JPEGs are held to the JPEG tolerance; lossy WebP is expected exact too
// (libwebp's upsampler and YUV→RGB are reproduced).
func TestPILDecode(t *testing.T) {
	m := loadPILManifest(t)
	for _, c := range m.Decode {
		t.Run(fmt.Sprintf("%s/%s", c.Name, c.Exif), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(pilDir, c.File))
			require.NoError(t, err)
			got, info, err := DecodeBytes(data, Options{ApplyEXIFOrientation: c.Exif == "transposed"})
			require.NoError(t, err)
			assert.Equal(t, c.Mode, info.Mode)
			assert.Equal(t, c.Orientation, info.Orientation)
			want := readGz(t, filepath.Join(pilDir, c.RGB))
			require.Equal(t, [2]int{c.Shape[1], c.Shape[0]}, [2]int{got.W, got.H})
			if c.Format == "jpeg" {
				assertJPEGClose(t, want, got.Pix)
				return
			}
			maxDiff, nDiff := diffStats(got.Pix, want)
			assert.Zero(t, nDiff, "%d of %d values differ, max by %d", nDiff, len(want), maxDiff)
		})
	}
}
