package golden

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
)

// MODEL_SPEC §1.2–1.3 on the goldens: the reference's CLIP pixels through the engine's tower and projector give
// its clip.features (hidden_states[-2] without CLS) and proj.out, for every case, within NMSE 1e-6 with fp32
// weights and 1e-3 with the same checkpoint in bf16.
func TestVisionMatchesReference(t *testing.T) {
	cases, err := Cases()
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	for _, dtype := range []struct {
		dtype bindings.DType
		limit float64
	}{{bindings.F32, 1e-6}, {bindings.BF16, 1e-3}} {
		for _, c := range cases {
			t.Run(dtype.dtype.String()+"/"+c.Name, func(t *testing.T) {
				g, err := Load(filepath.Join(Root(), "testdata", "golden", "model", c.File))
				require.NoError(t, err)
				m := openModel(t, c, dtype.dtype)
				pixels := g["clip.pixels"]
				require.Len(t, pixels.Shape, 4)
				n := int(pixels.Shape[0])
				projected, clip, err := m.EncodeImages(pixels.F32, n)
				require.NoError(t, err)
				want := g["clip.features"]
				require.Len(t, clip, len(want.F32))
				require.Len(t, projected, len(g["proj.out"].F32))
				clipErr, projErr := NMSE(clip, want.F32), NMSE(projected, g["proj.out"].F32)
				t.Logf("clip.features NMSE %.3g, proj.out NMSE %.3g", clipErr, projErr)
				assert.Less(t, clipErr, dtype.limit)
				assert.Less(t, projErr, dtype.limit)
			})
		}
	}
}

// Shapes are checked before the core is called.
func TestEncodeImagesChecksShapes(t *testing.T) {
	cases, err := Cases()
	require.NoError(t, err)
	m := openModel(t, cases[0], bindings.F32)
	d, err := m.Dims()
	require.NoError(t, err)
	per := 3 * d.ImageSize * d.ImageSize
	_, _, err = m.EncodeImages(make([]float32, per-1), 1)
	assert.ErrorIs(t, err, bindings.ErrShape)
	_, _, err = m.EncodeImages(make([]float32, 2*per), 1)
	assert.ErrorIs(t, err, bindings.ErrShape)
	_, _, err = m.EncodeImages(nil, 0)
	assert.ErrorIs(t, err, bindings.ErrInvalidArgument)
	pixels := make([]float32, per)
	pixels[5] = float32(math.Inf(1))
	_, _, err = m.EncodeImages(pixels, 1)
	assert.ErrorIs(t, err, bindings.ErrInvalidArgument)
	assert.Equal(t, d.ImageTokens, (d.ImageSize/d.PatchSize)*(d.ImageSize/d.PatchSize))
}
