package engine

import (
	"fmt"

	"github.com/nextchat/nextchat/bindings"
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
	out, err := e.decodeMasks(img, embedding, locs)
	if err != nil {
		return nil, err
	}
	segs := make([]Segmentation, len(locs))
	for i := range segs {
		segs[i] = Segmentation{Mask: mask.Mask{Width: img.W, Height: img.H, Bits: out.Mask(i)}, IoU: out.IoU[i]}
	}
	return segs, nil
}

// SAMStages are the SAM tensors behind an answer's masks, for dumps compared with the reference's goldens.
type SAMStages struct {
	Pixels    []float32 // [3, S, S]: the SAM encoder's input (§4)
	Embedding []float32 // [D, g, g]: the image embedding
	Masks     bindings.SAMMasks
}

// SAMStages computes what Segment does for the locations and returns every stage (the embedding from the cache
// when the image was encoded before).
func (e *Engine) SAMStages(img *imageproc.RGB, locs []Location) (SAMStages, error) {
	if len(locs) == 0 {
		return SAMStages{}, fmt.Errorf("SAM stages: no locations")
	}
	dims, err := e.Model.SAMDims()
	if err != nil {
		return SAMStages{}, err
	}
	pixels, _, err := imageproc.SAMPixels(img, dims.ImageSize)
	if err != nil {
		return SAMStages{}, fmt.Errorf("SAM preprocessing: %w", err)
	}
	embedding, err := e.samEmbedding(img)
	if err != nil {
		return SAMStages{}, err
	}
	masks, err := e.decodeMasks(img, embedding, locs)
	if err != nil {
		return SAMStages{}, err
	}
	return SAMStages{Pixels: pixels, Embedding: embedding, Masks: masks}, nil
}

// decodeMasks runs the prompt encoder and mask decoder for the locations with their <at> hidden states and boxes,
// the plan's locations per call at a time: an answer with more is split, not refused.
func (e *Engine) decodeMasks(img *imageproc.RGB, embedding []float32, locs []Location) (bindings.SAMMasks, error) {
	all := bindings.SAMMasks{Width: img.W, Height: img.H}
	for first := 0; first < len(locs); first += e.Plan.Request.MaxLocations {
		part := locs[first:min(first+e.Plan.Request.MaxLocations, len(locs))]
		var hidden, boxes []float32
		for _, l := range part {
			hidden = append(hidden, l.Hidden...)
			boxes = append(boxes, l.Box[:]...)
		}
		out, err := e.Model.SAMDecodeMasks(embedding, hidden, boxes, img.W, img.H)
		if err != nil {
			return bindings.SAMMasks{}, fmt.Errorf("masks: %w", err)
		}
		all.N += out.N
		all.LowRes = append(all.LowRes, out.LowRes...)
		all.IoU = append(all.IoU, out.IoU...)
		all.Masks = append(all.Masks, out.Masks...)
		all.Sparse = append(all.Sparse, out.Sparse...)
	}
	return all, nil
}

func (e *Engine) samEmbedding(img *imageproc.RGB) ([]float32, error) {
	return e.samImages.get(keyOf(img), func() ([]float32, error) {
		dims, err := e.Model.SAMDims()
		if err != nil {
			return nil, err
		}
		pixels, _, err := imageproc.SAMPixels(img, dims.ImageSize)
		if err != nil {
			return nil, fmt.Errorf("SAM preprocessing: %w", err)
		}
		return e.Model.SAMEncodeImage(pixels)
	})
}
