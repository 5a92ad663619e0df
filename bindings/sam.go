package bindings

// #include "nextchat.h"
import "C"

import (
	"fmt"
)

// SAMDims are the mask path's dimensions of an open model (nc_model_dims, MODEL_SPEC §4, §5).
type SAMDims struct {
	ImageSize    int // S: SAM input side in pixels
	Grid         int // g: image embedding side
	EmbedDim     int // D: image embedding channels = prompt token width
	MaskSize     int // 4g: low-res mask side
	SparseTokens int // sparse prompt tokens per location (seg_prompt_tokens + 2 box corners)
	HiddenSize   int // LLM width: the <at> hidden states' length
}

// SAMDims reports the model's SAM dimensions.
func (m *Model) SAMDims() (SAMDims, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return SAMDims{}, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	return m.samDims()
}

func (m *Model) samDims() (SAMDims, error) {
	d := C.nc_model_dims{struct_size: C.size_t(C.sizeof_nc_model_dims)}
	if err := call(func() C.nc_status { return C.nc_model_get_dims(m.handle, &d) }); err != nil {
		return SAMDims{}, err
	}
	return SAMDims{ImageSize: int(d.sam_image_size), Grid: int(d.sam_grid), EmbedDim: int(d.sam_embed_dim),
		MaskSize: int(d.sam_mask_size), SparseTokens: int(d.sam_sparse_tokens), HiddenSize: int(d.hidden_size)}, nil
}

// SAMEncodeImage runs SAM's image encoder (§5.1) over pixels [3, S, S] — the raw image resized to a long side of
// S, SAM-normalized and zero-padded centred (§4) — and returns the image embedding [D, g, g]. Safe for concurrent
// use, also alongside Step and EncodeImages; concurrent SAM calls on one model run one after the other.
func (m *Model) SAMEncodeImage(pixels []float32) ([]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return nil, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	d, err := m.samDims()
	if err != nil {
		return nil, err
	}
	if want := 3 * d.ImageSize * d.ImageSize; len(pixels) != want {
		return nil, fmt.Errorf("%w: %d SAM pixel values, want 3×%d×%d = %d", ErrShape, len(pixels), d.ImageSize,
			d.ImageSize, want)
	}
	embedding := make([]float32, d.EmbedDim*d.Grid*d.Grid)
	// Float slices hold no Go pointers, so cgo lets C read and write them for the duration of the call.
	if err := call(func() C.nc_status {
		return C.nc_sam_encode_image(m.handle, (*C.float)(&pixels[0]), (*C.float)(&embedding[0]))
	}); err != nil {
		return nil, fmt.Errorf("SAM image encoder: %w", err)
	}
	return embedding, nil
}

// SAMMasks are the mask decoder's results for n locations.
type SAMMasks struct {
	N      int
	Width  int
	Height int
	LowRes []float32 // [n, 4g, 4g] low-res mask logits
	IoU    []float32 // [n] predicted IoU (the demo drops masks below 0.3; nothing is dropped here)
	Masks  []uint8   // [n, height, width]: 1 inside the mask; nil when no image size was given
	Sparse []float32 // [n, SparseTokens, D] the sparse prompt tokens
}

// Mask is location i's binary mask [height, width].
func (s SAMMasks) Mask(i int) []uint8 { return s.Masks[i*s.Width*s.Height : (i+1)*s.Width*s.Height] }

// SAMDecodeMasks segments n located <at> tokens of one image (§4, §5.2, §5.3): embedding [D, g, g] from
// SAMEncodeImage, atHidden [n, hidden] and boxes [n, 4] as a step returns them for the <at> rows (normalized xyxy
// in the expand2square frame), width × height the original image's size — 0 × 0 for the low-res logits and IoU
// only, without the masks. Safe for concurrent use like SAMEncodeImage.
func (m *Model) SAMDecodeMasks(embedding, atHidden, boxes []float32, width, height int) (SAMMasks, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return SAMMasks{}, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	d, err := m.samDims()
	if err != nil {
		return SAMMasks{}, err
	}
	n := len(boxes) / 4
	switch {
	case len(embedding) != d.EmbedDim*d.Grid*d.Grid:
		return SAMMasks{}, fmt.Errorf("%w: image embedding of %d values, want %d×%d×%d", ErrShape, len(embedding),
			d.EmbedDim, d.Grid, d.Grid)
	case n == 0 || len(boxes) != 4*n:
		return SAMMasks{}, fmt.Errorf("%w: %d box values, want 4 per location and at least one location", ErrShape,
			len(boxes))
	case n > 1<<16:
		return SAMMasks{}, fmt.Errorf("%w: %d locations, at most %d per call", ErrInvalidArgument, n, 1<<16)
	case len(atHidden) != n*d.HiddenSize:
		return SAMMasks{}, fmt.Errorf("%w: %d at_hidden values for %d locations of width %d", ErrShape, len(atHidden), n,
			d.HiddenSize)
	case (width != 0 || height != 0) && (width < 1 || height < 1 || width > 1<<15 || height > 1<<15):
		return SAMMasks{}, fmt.Errorf("%w: image size %dx%d, each side 1 to %d (or 0x0: no masks)", ErrInvalidArgument,
			width, height, 1<<15)
	}
	r := SAMMasks{N: n, Width: width, Height: height, LowRes: make([]float32, n*d.MaskSize*d.MaskSize),
		IoU: make([]float32, n), Sparse: make([]float32, n*d.SparseTokens*d.EmbedDim)}
	var masks *C.uint8_t
	cw, ch := C.int32_t(width), C.int32_t(height)
	if width > 0 {
		r.Masks = make([]uint8, n*width*height)
		masks = (*C.uint8_t)(&r.Masks[0])
	} else {
		cw, ch = 1, 1 // checked by the core even when no masks are wanted
	}
	if err := call(func() C.nc_status {
		return C.nc_sam_decode_masks(m.handle, (*C.float)(&embedding[0]), C.int32_t(n), (*C.float)(&atHidden[0]),
			(*C.float)(&boxes[0]), cw, ch, (*C.float)(&r.LowRes[0]), (*C.float)(&r.IoU[0]), masks,
			(*C.float)(&r.Sparse[0]))
	}); err != nil {
		return SAMMasks{}, fmt.Errorf("SAM mask decoder, %d locations: %w", n, err)
	}
	return r, nil
}
