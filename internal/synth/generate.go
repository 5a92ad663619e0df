package synth

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
	"github.com/nextchat/nextchat/internal/half"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/shards"
)

// chunkElems is the unit of parallel generation. Fixed: it is part of what makes output deterministic.
const chunkElems = 1 << 20

// Options say what to generate and where.
type Options struct {
	Config     config.Config
	Preset     string // recorded in the files' metadata
	Seed       uint64
	DType      bindings.DType
	Out        string
	Tokenizer  string    // tokenizer.model to copy into Out
	ShardBytes int64     // 0: shards.DefaultBytes
	Force      bool      // overwrite a directory that already holds a model
	Progress   io.Writer // nil: silent
	Workers    int       // 0: GOMAXPROCS
}

// Result describes what was written.
type Result struct {
	Files  []string // weight files, in order
	Params int64
	Bytes  int64 // tensor bytes
}

// Generate writes config.json, generation_config.json, tokenizer.model and the safetensors weights
// (sharded with model.safetensors.index.json when larger than ShardBytes). Same options ⇒ same bytes.
// config.json is written last, so an interrupted run never leaves a directory that looks complete.
func Generate(ctx context.Context, o Options) (Result, error) {
	if err := prepareOut(o); err != nil {
		return Result{}, err
	}
	spec, err := bindings.Spec(o.Config)
	if err != nil {
		return Result{}, err
	}
	byName := make(map[string]bindings.TensorSpec, len(spec))
	layout := make([]safetensors.TensorSpec, len(spec))
	var res Result
	for i, t := range spec {
		byName[t.Name] = t
		layout[i] = safetensors.TensorSpec{Name: t.Name, DType: stDType(o.DType), Shape: t.Shape}
		res.Params += t.NumElements()
		res.Bytes += t.NumElements() * int64(o.DType.Size())
	}
	planned := shards.Plan(layout, o.ShardBytes)
	bar := progress.New(o.Progress, "gen", res.Bytes)
	meta := map[string]string{
		"format":             "pt",
		"nextchat.synthetic": fmt.Sprintf("random weights: preset=%s seed=%d", o.Preset, o.Seed),
	}
	fill := func(ctx context.Context, t safetensors.TensorSpec, w io.Writer) error {
		return generateTensor(ctx, o, byName[t.Name], w, bar)
	}
	for _, s := range planned {
		if err := shards.Write(ctx, o.Out, s, meta, fill); err != nil {
			return Result{}, err
		}
		res.Files = append(res.Files, filepath.Join(o.Out, s.Name))
	}
	bar.Finish()
	if err := shards.WriteIndex(o.Out, planned); err != nil {
		return Result{}, err
	}
	if err := shards.CopyFile(o.Tokenizer, filepath.Join(o.Out, "tokenizer.model")); err != nil {
		return Result{}, fmt.Errorf("copy tokenizer: %w", err)
	}
	if err := shards.WriteJSON(filepath.Join(o.Out, "generation_config.json"), generationConfig(o.Config)); err != nil {
		return Result{}, err
	}
	data, err := config.Marshal(o.Config)
	if err != nil {
		return Result{}, err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "config.json"), data, 0o644); err != nil {
		return Result{}, fmt.Errorf("write config.json: %w", err)
	}
	return res, nil
}

// prepareOut checks the inputs before any byte is written and creates the output directory.
func prepareOut(o Options) error {
	if o.DType != bindings.F32 && o.DType != bindings.F16 && o.DType != bindings.BF16 {
		return fmt.Errorf("unsupported dtype %v", o.DType)
	}
	if o.Out == "" {
		return errors.New("no output directory given")
	}
	st, err := os.Stat(o.Tokenizer)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("tokenizer %s is not a regular file", o.Tokenizer)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "config.json")); err == nil && !o.Force {
		return fmt.Errorf("%s already holds a model (config.json exists); pass --force to overwrite", o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	return nil
}

func stDType(d bindings.DType) safetensors.DType {
	switch d {
	case bindings.F16:
		return safetensors.F16
	case bindings.BF16:
		return safetensors.BF16
	}
	return safetensors.F32
}

// chunkJob is one chunk of one tensor: workers fill `out`, the writer consumes jobs in order.
type chunkJob struct {
	first int64
	n     int
	out   chan []byte
}

// generateTensor produces a tensor's bytes chunk by chunk on several workers and writes them in order,
// holding at most a few chunks in memory.
func generateTensor(ctx context.Context, o Options, t bindings.TensorSpec, w io.Writer, bar *progress.Bar) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dist := distributionFor(t)
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	total := t.NumElements()
	jobs := make(chan chunkJob)
	order := make(chan chunkJob, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := make([]float32, chunkElems)
			for job := range jobs {
				vals := scratch[:job.n]
				dist.fill(vals, newRNG(chunkSeed(o.Seed, t.Name, job.first/chunkElems)), job.first)
				job.out <- encode(vals, o.DType)
			}
		}()
	}
	go func() {
		defer close(order)
		defer close(jobs)
		for first := int64(0); first < total; first += chunkElems {
			job := chunkJob{first: first, n: int(min(chunkElems, total-first)), out: make(chan []byte, 1)}
			select {
			case order <- job:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job:
			case <-ctx.Done():
				return
			}
		}
	}()
	var err error
	for job := range order {
		var buf []byte
		select {
		case buf = <-job.out:
		case <-ctx.Done():
		}
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err == nil {
			if _, werr := w.Write(buf); werr != nil {
				err = werr
				cancel()
			}
			bar.Add(int64(len(buf)))
		}
	}
	wg.Wait()
	if err == nil {
		err = ctx.Err() // cancelled before every chunk was queued
	}
	return err
}

// encode converts values to the storage dtype, little-endian as safetensors stores them.
func encode(vals []float32, dtype bindings.DType) []byte {
	size := dtype.Size()
	out := make([]byte, len(vals)*size)
	for i, v := range vals {
		switch dtype {
		case bindings.F32:
			binary.LittleEndian.PutUint32(out[i*4:], math.Float32bits(v))
		case bindings.F16:
			binary.LittleEndian.PutUint16(out[i*2:], half.F16FromF32(v))
		default:
			binary.LittleEndian.PutUint16(out[i*2:], half.BF16FromF32(v))
		}
	}
	return out
}

// generationConfig mirrors what the release's generation_config.json holds: its token ids.
func generationConfig(c config.Config) map[string]any {
	return map[string]any{
		"bos_token_id":         c.BOSTokenID,
		"eos_token_id":         c.EOSTokenID,
		"pad_token_id":         c.PadTokenID,
		"transformers_version": "4.31.0",
	}
}
