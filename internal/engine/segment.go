package engine

import (
	"fmt"

	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/mask"
)

// Segmentation is a location's mask in the original image's pixels (logits > 0, MODEL_SPEC §4) and SAM's
// predicted IoU.
type Segmentation struct {
	Mask mask.Mask
	IoU  float32
}

// Segment runs SAM for the locations of an answer about img (§4): the image encoder once per image (its
// embedding cached by content, and only computed when there is a location), then the prompt encoder and mask
// decoder for all locations at once with their <at> hidden states and boxes.
func (e *Engine) Segment(img *imageproc.RGB, locs []Location) ([]Segmentation, error) {
	if len(locs) == 0 {
		return nil, nil
	}
	embedding, err := e.samEmbedding(img)
	if err != nil {
		return nil, err
	}
	// The plan's locations per call at a time: an answer with more is split, not refused.
	segs := make([]Segmentation, 0, len(locs))
	for first := 0; first < len(locs); first += e.Plan.Request.MaxLocations {
		part := locs[first:min(first+e.Plan.Request.MaxLocations, len(locs))]
		var hidden, boxes []float32
		for _, l := range part {
			hidden = append(hidden, l.Hidden...)
			boxes = append(boxes, l.Box[:]...)
		}
		out, err := e.Model.SAMDecodeMasks(embedding, hidden, boxes, img.W, img.H)
		if err != nil {
			return nil, fmt.Errorf("masks: %w", err)
		}
		for i := range part {
			segs = append(segs, Segmentation{Mask: mask.Mask{Width: img.W, Height: img.H, Bits: out.Mask(i)}, IoU: out.IoU[i]})
		}
	}
	return segs, nil
}

func (e *Engine) samEmbedding(img *imageproc.RGB) ([]float32, error) {
	k := keyOf(img)
	if emb, ok := e.samImages.get(k); ok {
		return emb, nil
	}
	dims, err := e.Model.SAMDims()
	if err != nil {
		return nil, err
	}
	pixels, _, err := imageproc.SAMPixels(img, dims.ImageSize)
	if err != nil {
		return nil, fmt.Errorf("SAM preprocessing: %w", err)
	}
	emb, err := e.Model.SAMEncodeImage(pixels)
	if err != nil {
		return nil, err
	}
	e.samImages.put(k, emb)
	return emb, nil
}
