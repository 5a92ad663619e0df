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
// generated tokens and locations.
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
