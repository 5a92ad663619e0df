package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/safetensors"
)

// stageTensor is one named tensor of a --dump file, with the golden names of tools/reference/goldens.py.
type stageTensor struct {
	name  string
	dtype safetensors.DType
	shape []int64
	data  []byte
}

func f32Tensor(name string, shape []int64, v []float32) stageTensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return stageTensor{name, safetensors.F32, shape, b}
}

func i64Tensor(name string, v []int32) stageTensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(x)))
	}
	return stageTensor{name, safetensors.I64, []int64{int64(len(v))}, b}
}

// dumpStages writes what this run computed under the golden names, so any checkpoint's run can be compared
// with the reference's goldens.py output: the vision stages when there is an image, the prompt rows, the
// generated tokens and locations, and the SAM stages when there are locations on an image.
func dumpStages(path string, eng *engine.Engine, img *imageproc.RGB, p engine.Prepared, res engine.Result) error {
	cfg := eng.Config()
	hidden := cfg.HiddenSize
	tensors := []stageTensor{i64Tensor("prompt.input_ids", p.IDs), i64Tensor("gen.tokens", res.Tokens)}
	if img != nil {
		pixels, clip, projected, err := eng.ImageStages(img)
		if err != nil {
			return err
		}
		s, tokens := int64(cfg.Vision.ImageSize), int64(cfg.ImageTokens())
		tensors = append(tensors, f32Tensor("clip.pixels", []int64{1, 3, s, s}, pixels),
			f32Tensor("clip.features", []int64{1, tokens, int64(cfg.Vision.HiddenSize)}, clip),
			f32Tensor("proj.out", []int64{1, tokens, int64(hidden)}, projected))
	}
	n := int64(len(res.Locations))
	var boxes, atHidden []float32
	positions := make([]int32, 0, n)
	for _, l := range res.Locations {
		boxes = append(boxes, l.Box[:]...)
		atHidden = append(atHidden, l.Hidden...)
		positions = append(positions, int32(l.TokenIndex))
	}
	tensors = append(tensors, i64Tensor("gen.at_positions", positions),
		f32Tensor("gen.boxes", []int64{n, 4}, boxes), f32Tensor("gen.at_hidden", []int64{n, int64(hidden)}, atHidden))
	if img != nil && n > 0 {
		sam, err := samTensors(eng, img, res.Locations)
		if err != nil {
			return err
		}
		tensors = append(tensors, sam...)
	}
	specs := make([]safetensors.TensorSpec, len(tensors))
	for i, t := range tensors {
		specs[i] = safetensors.TensorSpec{Name: t.name, DType: t.dtype, Shape: t.shape}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, specs, map[string]string{"nextchat.dump": "stage tensors of nextchat run"})
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.name, t.data); err != nil {
			return fmt.Errorf("dump %s: %w", t.name, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	return f.Close()
}

// samTensors are the location boxes in pixels and the SAM stages of an answer's locations (MODEL_SPEC §3, §4, §5).
func samTensors(eng *engine.Engine, img *imageproc.RGB, locs []engine.Location) ([]stageTensor, error) {
	st, err := eng.SAMStages(img, locs)
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	dims, err := eng.Model.SAMDims()
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	n := int64(len(locs))
	pixelBoxes := make([]float32, 0, 4*n)
	for _, l := range locs {
		raw, _, err := engine.PixelBox(l.Box, img.W, img.H)
		if err != nil {
			return nil, fmt.Errorf("dump: %w", err)
		}
		for _, v := range raw {
			pixelBoxes = append(pixelBoxes, float32(v))
		}
	}
	s, g, d, m := int64(dims.ImageSize), int64(dims.Grid), int64(dims.EmbedDim), int64(dims.MaskSize)
	return []stageTensor{
		f32Tensor("gen.boxes_pixel", []int64{n, 4}, pixelBoxes),
		f32Tensor("sam.pixels", []int64{3, s, s}, st.Pixels),
		f32Tensor("sam.image_embedding", []int64{d, g, g}, st.Embedding),
		f32Tensor("sam.sparse", []int64{n, int64(dims.SparseTokens), d}, st.Masks.Sparse),
		f32Tensor("sam.mask_logits_lowres", []int64{n, 1, m, m}, st.Masks.LowRes),
		f32Tensor("sam.iou", []int64{n, 1}, st.Masks.IoU),
		{"sam.masks", safetensors.U8, []int64{n, int64(img.H), int64(img.W)}, st.Masks.Masks},
	}, nil
}
