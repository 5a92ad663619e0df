package imageproc

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// goldenDir holds the image goldens made by tools/reference/image_goldens.py
// with Pillow 13.0.0 and transformers 4.31.0.
const goldenDir = "../../testdata/golden/image"

type goldenManifest struct {
	Sources []goldenSource `json:"sources"`
	Cases   []goldenCase   `json:"cases"`
}

type goldenSource struct {
	Name            string `json:"name"`
	File            string `json:"file"`
	Format          string `json:"format"`
	Mode            string `json:"mode"`
	Size            [2]int `json:"size"`
	ExifOrientation int    `json:"exif_orientation"`
}

type goldenCase struct {
	File       string  `json:"file"`
	Source     string  `json:"source"`
	Kind       string  `json:"kind"` // decoded_u8, rgb_u8, resized_u8, pixels_f32
	Path       string  `json:"path"` // clip, sam
	Exif       *string `json:"exif"` // raw, transposed, or null (no orientation)
	Dtype      string  `json:"dtype"`
	Shape      []int   `json:"shape"`
	Sha256     string  `json:"sha256"`
	Target     int     `json:"target"`
	Filter     string  `json:"filter"`
	PassOrder  string  `json:"pass_order"`
	SquareSide int     `json:"square_side"`
	PasteOff   []int   `json:"paste_offset"` // (x, y)
	ResizedHW  []int   `json:"resized_hw"`
	PadTopLeft []int   `json:"pad_top_left"`
}

func (c goldenCase) transposed() bool { return c.Exif != nil && *c.Exif == "transposed" }

var (
	manifestOnce sync.Once
	manifest     goldenManifest
	manifestErr  error
)

func loadManifest(t testing.TB) *goldenManifest {
	t.Helper()
	manifestOnce.Do(func() {
		var b []byte
		b, manifestErr = os.ReadFile(filepath.Join(goldenDir, "manifest.json"))
		if manifestErr == nil {
			manifestErr = json.Unmarshal(b, &manifest)
		}
	})
	require.NoError(t, manifestErr)
	return &manifest
}

func (m *goldenManifest) source(t testing.TB, name string) goldenSource {
	t.Helper()
	for _, s := range m.Sources {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no source %q in the manifest", name)
	return goldenSource{}
}

// find returns the case of a kind for a source (and exif variant), or nil.
func (m *goldenManifest) find(kind, source string, transposed bool) *goldenCase {
	for i, c := range m.Cases {
		if c.Kind == kind && c.Source == source && c.transposed() == transposed {
			return &m.Cases[i]
		}
	}
	return nil
}

// loadRaw reads and gunzips a golden array and checks its sha256.
func loadRaw(t testing.TB, c *goldenCase) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(goldenDir, c.File))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	raw, err := io.ReadAll(zr)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	require.Equal(t, c.Sha256, hex.EncodeToString(sum[:]), "sha256 of %s", c.File)
	n := 1
	for _, d := range c.Shape {
		n *= d
	}
	if c.Dtype == "float32" {
		n *= 4
	}
	require.Len(t, raw, n, "size of %s", c.File)
	return raw
}

// loadRGB reads an HWC uint8 golden with 3 channels.
func loadRGB(t testing.TB, c *goldenCase) *RGB {
	t.Helper()
	require.Equal(t, "uint8", c.Dtype)
	require.Len(t, c.Shape, 3)
	require.Equal(t, 3, c.Shape[2], "%s is not RGB", c.File)
	img, err := FromHWC(c.Shape[1], c.Shape[0], loadRaw(t, c))
	require.NoError(t, err)
	return img
}

func loadF32(t testing.TB, c *goldenCase) []float32 {
	t.Helper()
	raw := loadRaw(t, c)
	out := make([]float32, len(raw)/4)
	require.NoError(t, binary.Read(bytes.NewReader(raw), binary.LittleEndian, out))
	return out
}

func readSource(t testing.TB, s goldenSource) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, s.File))
	require.NoError(t, err)
	return b
}

// sourceRGB is the RGB image a resize golden starts from. PNG sources go
// through our decoder (their conversion is exact); JPEG sources start from
// Pillow's own decode (rgb/*), since Go's IDCT is not libjpeg-turbo's.
func sourceRGB(t testing.TB, m *goldenManifest, name string, transposed bool) *RGB {
	t.Helper()
	s := m.source(t, name)
	if s.Format == "JPEG" {
		c := m.find("rgb_u8", name, transposed)
		require.NotNil(t, c, "no rgb golden for %s", name)
		return loadRGB(t, c)
	}
	img, info, err := DecodeBytes(readSource(t, s), Options{ApplyEXIFOrientation: transposed})
	require.NoError(t, err)
	require.Equal(t, transposed && s.ExifOrientation > 1, info.Oriented)
	return img
}

// diffStats compares two uint8 arrays.
func diffStats(a, b []uint8) (maxDiff, nDiff int) {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d > 0 {
			nDiff++
		}
		maxDiff = max(maxDiff, d)
	}
	return maxDiff, nDiff
}

// f32Stats compares float arrays: the largest absolute difference, the
// number of values off by more than tol, and the number not bit-identical.
func f32Stats(got, want []float32, tol float64) (maxAbs float64, over, inexact int) {
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		maxAbs = math.Max(maxAbs, d)
		if d > tol {
			over++
		}
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			inexact++
		}
	}
	return maxAbs, over, inexact
}

func readGz(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	raw, err := io.ReadAll(zr)
	require.NoError(t, err)
	return raw
}
