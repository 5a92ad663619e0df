// Package annotate draws an answer's locations on its image, as NExT-Chat's demo shows them (MODEL_SPEC §6.4):
// each mask blended at alpha 0.5 and each box outlined and labelled with its index k.
package annotate

import (
	"image"
	"image/color"
	"image/draw"
	"math"

	"github.com/nextchat/nextchat/internal/mask"
)

// Item is one location: its box in image pixels (xyxy, may lie partly outside), optional mask, label.
type Item struct {
	Box   [4]float64
	Mask  *mask.Mask
	Label string
}

// palette gives each location a distinct colour.
var palette = []color.RGBA{
	{230, 25, 75, 255}, {60, 180, 75, 255}, {0, 130, 200, 255}, {245, 130, 48, 255},
	{145, 30, 180, 255}, {70, 240, 240, 255}, {240, 50, 230, 255}, {210, 245, 60, 255},
}

// Draw returns a copy of base with every item drawn.
func Draw(base image.Image, items []Item) *image.RGBA {
	b := base.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), base, b.Min, draw.Src)
	for k, it := range items {
		c := palette[k%len(palette)]
		if it.Mask != nil {
			blendMask(out, *it.Mask, c)
		}
	}
	for k, it := range items {
		c := palette[k%len(palette)]
		drawBox(out, it.Box, c)
		drawLabel(out, it.Label, int(math.Round(it.Box[0])), int(math.Round(it.Box[1])), c)
	}
	return out
}

// blendMask mixes the colour into masked pixels at alpha 0.5.
func blendMask(img *image.RGBA, m mask.Mask, c color.RGBA) {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	for y := 0; y < min(h, m.Height); y++ {
		for x := 0; x < min(w, m.Width); x++ {
			if m.Bits[y*m.Width+x] == 0 {
				continue
			}
			i := img.PixOffset(x, y)
			img.Pix[i] = uint8((uint16(img.Pix[i]) + uint16(c.R)) / 2)
			img.Pix[i+1] = uint8((uint16(img.Pix[i+1]) + uint16(c.G)) / 2)
			img.Pix[i+2] = uint8((uint16(img.Pix[i+2]) + uint16(c.B)) / 2)
		}
	}
}

// drawBox outlines the box (clipped to the image) with a line 2 pixels wide.
func drawBox(img *image.RGBA, box [4]float64, c color.RGBA) {
	r := img.Bounds()
	clip := func(v float64, hi int) int { return int(math.Max(0, math.Min(float64(hi-1), math.Round(v)))) }
	x0, y0, x1, y1 := clip(box[0], r.Dx()), clip(box[1], r.Dy()), clip(box[2], r.Dx()), clip(box[3], r.Dy())
	for t := 0; t < 2; t++ {
		for x := x0; x <= x1; x++ {
			img.SetRGBA(x, min(y0+t, r.Dy()-1), c)
			img.SetRGBA(x, max(y1-t, 0), c)
		}
		for y := y0; y <= y1; y++ {
			img.SetRGBA(min(x0+t, r.Dx()-1), y, c)
			img.SetRGBA(max(x1-t, 0), y, c)
		}
	}
}

// digits is a 3×5 bitmap font for labels (rows top to bottom, 3 bits each, most significant = left).
var digits = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 7, 1, 7}, '4': {5, 5, 7, 1, 1},
	'5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 1, 1}, '8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7},
}

// drawLabel writes the label in white on the location's colour at the box's top-left corner, at 2× scale.
func drawLabel(img *image.RGBA, label string, x, y int, c color.RGBA) {
	const scale = 2
	r := img.Bounds()
	x = max(0, min(x, r.Dx()-1))
	y = max(0, min(y, r.Dy()-1))
	width := (4*len(label) + 1) * scale
	for dy := 0; dy < 7*scale; dy++ {
		for dx := 0; dx < width; dx++ {
			if image.Pt(x+dx, y+dy).In(r) {
				img.SetRGBA(x+dx, y+dy, c)
			}
		}
	}
	for i, ch := range label {
		glyph, ok := digits[ch]
		if !ok {
			continue
		}
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if glyph[row]&(4>>col) == 0 {
					continue
				}
				for sy := 0; sy < scale; sy++ {
					for sx := 0; sx < scale; sx++ {
						p := image.Pt(x+(1+4*i+col)*scale+sx, y+(1+row)*scale+sy)
						if p.In(r) {
							img.SetRGBA(p.X, p.Y, color.RGBA{255, 255, 255, 255})
						}
					}
				}
			}
		}
	}
}
