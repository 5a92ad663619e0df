package imageproc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecode feeds arbitrary bytes to DecodeBytes and, when it succeeds, to
// both pipelines. Properties:
//   - nothing panics (the fuzzer catches that);
//   - every error wraps one of the package's sentinels;
//   - an accepted image is non-empty, consistent and within the limits.
//
// Seeds: testdata/fuzz/FuzzDecode (tiny files of every format and mode, made
// by testdata/make_fuzz_seeds.py) plus the small golden and extra sources.
func FuzzDecode(f *testing.F) {
	for _, pattern := range []string{
		filepath.Join(goldenDir, "src", "*"),
		filepath.Join(pilDir, "*.*"),
	} {
		files, err := filepath.Glob(pattern)
		require.NoError(f, err)
		for _, p := range files {
			if filepath.Ext(p) == ".gz" || filepath.Ext(p) == ".json" {
				continue
			}
			if b, err := os.ReadFile(p); err == nil && len(b) <= 8<<10 {
				f.Add(b)
			}
		}
	}
	limits := Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, info, err := DecodeBytes(data, Options{Limits: limits, ApplyEXIFOrientation: len(data)%2 == 0})
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
			t.Fatalf("inconsistent image %dx%d with %d bytes", img.W, img.H, len(img.Pix))
		}
		if int64(img.W)*int64(img.H) > limits.MaxPixels {
			t.Fatalf("%dx%d exceeds the pixel limit", img.W, img.H)
		}
		if info.Format == "" || info.Mode == "" {
			t.Fatalf("incomplete info %+v", info)
		}
		if _, err := CLIPPixels(img, 8); err != nil {
			t.Fatalf("CLIPPixels: %v", err)
		}
		if _, _, err := SAMPixels(img, 16); err != nil && !errors.Is(err, ErrBadSize) {
			t.Fatalf("SAMPixels: %v", err)
		}
	})
}
