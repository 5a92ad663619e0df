package answer

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
)

// Locations numbers an answer's locations in order; with an image each box is also in its pixels — raw as the
// model said (it does not clamp, MODEL_SPEC §3) and clipped to the image.
func TestLocations(t *testing.T) {
	res := engine.Result{Locations: []engine.Location{
		{TokenIndex: 3, Box: [4]float32{0.25, 0.25, 0.75, 0.75}},
		{TokenIndex: 9, Box: [4]float32{-0.1, 0, 1.2, 0.5}},
	}}
	bare, err := Locations(res, nil)
	require.NoError(t, err)
	require.Len(t, bare, 2)
	assert.Equal(t, 1, bare[1].Index)
	assert.Equal(t, 9, bare[1].TokenIndex)
	assert.Nil(t, bare[0].BoxPixel)

	img := &imageproc.RGB{W: 100, H: 50, Pix: make([]uint8, 100*50*3)} // expand2square: a 100-pixel square, y offset 25
	locs, err := Locations(res, img)
	require.NoError(t, err)
	assert.InDeltaSlice(t, []float64{25, 0, 75, 50}, locs[0].BoxPixel[:], 1e-4)
	assert.InDeltaSlice(t, []float64{-10, -25, 120, 25}, locs[1].BoxPixelRaw[:], 1e-4)
	assert.InDeltaSlice(t, []float64{0, 0, 100, 25}, locs[1].BoxPixel[:], 1e-4)

	empty, err := Locations(engine.Result{}, img)
	require.NoError(t, err)
	assert.NotNil(t, empty, "no locations is an empty list, not null, in JSON")
}
