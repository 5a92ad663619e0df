package imageproc

import (
	"testing"
)

// BenchmarkCLIPPixels1080p is the CLIP preprocessing of a 1920×1080 photo at
// the release size: expand2square to 1920², bicubic to 336², normalize.
func BenchmarkCLIPPixels1080p(b *testing.B) {
	img := synthPixels(1920, 1080, 1, "noise")
	b.SetBytes(int64(len(img.Pix)))
	for b.Loop() {
		if _, err := CLIPPixels(img, 336); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSAMPixels1080p is the SAM preprocessing of the same photo at
// 1024: bilinear to 1024×576, normalize, pad.
func BenchmarkSAMPixels1080p(b *testing.B) {
	img := synthPixels(1920, 1080, 1, "noise")
	b.SetBytes(int64(len(img.Pix)))
	for b.Loop() {
		if _, _, err := SAMPixels(img, 1024); err != nil {
			b.Fatal(err)
		}
	}
}
