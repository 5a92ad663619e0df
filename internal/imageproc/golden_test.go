package imageproc

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGoldenManifest checks every case of the manifest is one this file's
// tests know how to check, so a regenerated manifest cannot silently grow
// untested cases.
func TestGoldenManifest(t *testing.T) {
	m := loadManifest(t)
	kinds := map[string]int{}
	for _, c := range m.Cases {
		kinds[c.Kind]++
	}
	assert.Equal(t, len(m.Cases), kinds["decoded_u8"]+kinds["rgb_u8"]+kinds["resized_u8"]+kinds["pixels_f32"],
		"unknown case kinds: %v", kinds)
	assert.NotZero(t, kinds["resized_u8"])
	t.Logf("%d golden cases: %v", len(m.Cases), kinds)
}

// TestGoldenResize holds the CLIP (expand2square + bicubic) and SAM (bilinear
// long side) uint8 outputs to Pillow's, bit for bit.
func TestGoldenResize(t *testing.T) {
	m := loadManifest(t)
	n := 0
	for _, c := range m.Cases {
		if c.Kind != "resized_u8" {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(c.File, ".u8.gz"), func(t *testing.T) {
			t.Parallel()
			want := loadRGB(t, &c)
			src := sourceRGB(t, m, c.Source, c.transposed())
			var got *RGB
			var err error
			switch c.Path {
			case "clip":
				require.Equal(t, "bicubic", c.Filter)
				side, dx, dy := SquareFrame(src.W, src.H)
				assert.Equal(t, c.SquareSide, side)
				assert.Equal(t, c.PasteOff, []int{dx, dy})
				assert.Equal(t, c.PassOrder, manifestOrder(passOrder(side, side, c.Target, c.Target)))
				got, err = CLIPResized(src, c.Target)
			case "sam":
				require.Equal(t, "bilinear", c.Filter)
				nh, nw, err := SAMResizeShape(src.H, src.W, c.Target)
				require.NoError(t, err)
				assert.Equal(t, c.ResizedHW, []int{nh, nw})
				assert.Equal(t, c.PassOrder, manifestOrder(passOrder(src.W, src.H, nw, nh)))
				got, err = SAMResized(src, c.Target)
				require.NoError(t, err)
			default:
				t.Fatalf("unknown path %q", c.Path)
			}
			require.NoError(t, err)
			require.Equal(t, [2]int{want.W, want.H}, [2]int{got.W, got.H})
			maxDiff, nDiff := diffStats(got.Pix, want.Pix)
			assert.Zero(t, nDiff, "%d of %d values differ from Pillow, max by %d", nDiff, len(want.Pix), maxDiff)
		})
	}
	require.Equal(t, 108, n)
}

// manifestOrder spells a pass order the way the manifest does.
func manifestOrder(o string) string {
	switch o {
	case "":
		return "none"
	case "hv":
		return "h,v"
	case "vh":
		return "v,h"
	}
	return o
}

// TestGoldenPixels holds the float32 model inputs to transformers' /
// the reference's, within 1e-6 (and reports whether they are bit-identical).
func TestGoldenPixels(t *testing.T) {
	m := loadManifest(t)
	n := 0
	for _, c := range m.Cases {
		if c.Kind != "pixels_f32" {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(c.File, ".f32.gz"), func(t *testing.T) {
			t.Parallel()
			want := loadF32(t, &c)
			src := sourceRGB(t, m, c.Source, c.transposed())
			var got []float32
			switch c.Path {
			case "clip":
				var err error
				got, err = CLIPPixels(src, c.Target)
				require.NoError(t, err)
			case "sam":
				px, frame, err := SAMPixels(src, c.Target)
				require.NoError(t, err)
				assert.Equal(t, c.ResizedHW, []int{frame.ResizedH, frame.ResizedW})
				assert.Equal(t, c.PadTopLeft, []int{frame.PadTop, frame.PadLeft})
				assert.Equal(t, c.Target, frame.Size)
				got = px
			}
			require.Len(t, got, len(want))
			require.Equal(t, []int{3, c.Target, c.Target}, c.Shape)
			maxAbs, over, inexact := f32Stats(got, want, 1e-6)
			assert.Zero(t, over, "%d values off by more than 1e-6 (max %g)", over, maxAbs)
			assert.Zero(t, inexact, "%d values not bit-identical (max diff %g)", inexact, maxAbs)
		})
	}
	require.Equal(t, 10, n)
}
