package annotate

import (
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nextchat/nextchat/internal/mask"
)

func TestDrawBlendsMasksAndOutlinesBoxes(t *testing.T) {
	base := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range base.Pix {
		base.Pix[i] = 200
	}
	m := mask.Mask{Width: 40, Height: 30, Bits: make([]uint8, 1200)}
	m.Bits[25*40+35] = 1 // a masked pixel far from the box and label
	out := Draw(base, []Item{{Box: [4]float64{5, 5, 20, 15}, Mask: &m, Label: "0"}})
	c := palette[0]
	assert.Equal(t, color.RGBA{uint8((200 + uint16(c.R)) / 2), uint8((200 + uint16(c.G)) / 2), uint8((200 + uint16(c.B)) / 2), 200},
		out.RGBAAt(35, 25), "mask at alpha 0.5")
	assert.Equal(t, c, out.RGBAAt(18, 15), "bottom edge")
	assert.Equal(t, c, out.RGBAAt(20, 10), "right edge")
	assert.Equal(t, color.RGBA{200, 200, 200, 200}, out.RGBAAt(30, 5), "untouched")
	assert.Equal(t, color.RGBA{200, 200, 200, 200}, base.RGBAAt(18, 15), "the base image is not modified")
}

func TestBoxesOutsideTheImageAreClipped(t *testing.T) {
	base := image.NewRGBA(image.Rect(0, 0, 10, 10))
	out := Draw(base, []Item{{Box: [4]float64{-50, -5, 400, 300}, Label: "12"}})
	assert.Equal(t, palette[0], out.RGBAAt(9, 9))
}
