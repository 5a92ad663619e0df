// Package answer turns an engine result into what users read (MODEL_SPEC §6.4): each location's box in the
// image's pixels as well as normalized, and its SAM mask as COCO RLE. The CLI and the HTTP server print the same
// fields.
package answer

import (
	"fmt"

	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/mask"
)

// DefaultIoUThreshold is NExT-Chat's demo's: masks whose predicted IoU is below it are dropped.
const DefaultIoUThreshold = 0.3

// Location is one location of an answer, the k-th "<at> <boxes>" group (marked "[k]" in the text).
type Location struct {
	Index       int         `json:"index"`
	TokenIndex  int         `json:"token_index"`
	Box         [4]float32  `json:"box"`                     // normalized xyxy in the expand2square frame, raw
	BoxPixel    *[4]float64 `json:"box_pixel,omitempty"`     // original image pixels, clipped to the image
	BoxPixelRaw *[4]float64 `json:"box_pixel_raw,omitempty"` // unclipped (MODEL_SPEC §3: the model does not clamp)
	IoU         *float32    `json:"iou,omitempty"`           // SAM's predicted IoU
	MaskArea    int         `json:"mask_area,omitempty"`     // pixels, 0 when the mask was dropped
	MaskRLE     *mask.RLE   `json:"mask_rle,omitempty"`      // COCO RLE in the original image size
	Mask        *mask.Mask  `json:"-"`                       // the mask itself, for drawing
}

// Locations describes a result's locations, in pixels when there is an image (img may be nil).
func Locations(res engine.Result, img *imageproc.RGB) ([]Location, error) {
	locs := []Location{}
	for k, l := range res.Locations {
		j := Location{Index: k, TokenIndex: l.TokenIndex, Box: l.Box}
		if img != nil {
			raw, clipped, err := engine.PixelBox(l.Box, img.W, img.H)
			if err != nil {
				return nil, fmt.Errorf("location %d: %w", k, err)
			}
			j.BoxPixel, j.BoxPixelRaw = &clipped, &raw
		}
		locs = append(locs, j)
	}
	return locs, nil
}

// AddMasks segments the engine's locations with SAM and attaches each mask to its description in out; a mask
// whose predicted IoU is below threshold is dropped (its IoU is still reported), as the demo does.
func AddMasks(eng *engine.Engine, img *imageproc.RGB, locs []engine.Location, out []Location, threshold float64) error {
	segs, err := eng.Segment(img, locs)
	if err != nil {
		return err
	}
	for i, s := range segs {
		iou := s.IoU
		out[i].IoU = &iou
		if threshold > 0 && float64(s.IoU) < threshold {
			continue
		}
		m := s.Mask
		rle := mask.Encode(m)
		out[i].Mask, out[i].MaskRLE, out[i].MaskArea = &m, &rle, m.Area()
	}
	return nil
}
