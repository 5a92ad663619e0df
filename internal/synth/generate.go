package synth

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
	"github.com/nextchat/nextchat/internal/half"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/safetensors"
)

// DefaultShardBytes keeps shards near the size HF tooling writes, so the 7B checkpoint has a few files.
const DefaultShardBytes = 5_000_000_000

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
	ShardBytes int64     // 0: DefaultShardBytes
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

// shard is one weight file and the spec entries it holds.
type shard struct {
	name    string
	tensors []bindings.TensorSpec
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
	shards := planShards(spec, o.DType, orDefault(o.ShardBytes, DefaultShardBytes))
	var res Result
	for _, t := range spec {
		res.Params += t.NumElements()
		res.Bytes += t.NumElements() * int64(o.DType.Size())
	}
	bar := progress.New(o.Progress, "gen", res.Bytes)
	for _, s := range shards {
		if err := writeShard(ctx, o, s, bar); err != nil {
			return Result{}, err
		}
		res.Files = append(res.Files, filepath.Join(o.Out, s.name))
	}
	bar.Finish()
	if len(shards) > 1 {
		if err := writeIndex(o.Out, shards, res.Bytes); err != nil {
			return Result{}, err
		}
	}
	if err := copyFile(o.Tokenizer, filepath.Join(o.Out, "tokenizer.model")); err != nil {
		return Result{}, fmt.Errorf("copy tokenizer: %w", err)
	}
	if err := writeJSON(filepath.Join(o.Out, "generation_config.json"), generationConfig(o.Config)); err != nil {
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

func orDefault(v, fallback int64) int64 {
	if v > 0 {
		return v
	}
	return fallback
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

// planShards fills files in spec order up to limit bytes each (a bigger tensor gets a file of its own).
func planShards(spec []bindings.TensorSpec, dtype bindings.DType, limit int64) []shard {
	var shards []shard
	var size int64
	for _, t := range spec {
		b := t.NumElements() * int64(dtype.Size())
		if len(shards) == 0 || (size+b > limit && size > 0) {
			shards = append(shards, shard{})
			size = 0
		}
		shards[len(shards)-1].tensors = append(shards[len(shards)-1].tensors, t)
		size += b
	}
	for i := range shards {
		if len(shards) == 1 {
			shards[i].name = "model.safetensors"
		} else {
			shards[i].name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		}
	}
	return shards
}

// writeShard writes one file through a temporary name, so a failure never leaves a plausible partial file.
func writeShard(ctx context.Context, o Options, s shard, bar *progress.Bar) (err error) {
	final := filepath.Join(o.Out, s.name)
	tmp := final + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	specs := make([]safetensors.TensorSpec, len(s.tensors))
	for i, t := range s.tensors {
		specs[i] = safetensors.TensorSpec{Name: t.Name, DType: stDType(o.DType), Shape: t.Shape}
	}
	meta := map[string]string{
		"format":             "pt",
		"nextchat.synthetic": fmt.Sprintf("random weights: preset=%s seed=%d", o.Preset, o.Seed),
	}
	w, err := safetensors.NewWriter(f, specs, meta)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	for _, t := range s.tensors {
		tw, err := w.TensorWriter(t.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := generateTensor(ctx, o, t, tw, bar); err != nil {
			return fmt.Errorf("%s: tensor %s: %w", s.name, t.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	return os.Rename(tmp, final)
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

// writeIndex writes model.safetensors.index.json as HF does: total tensor bytes and a name → file map.
func writeIndex(dir string, shards []shard, totalBytes int64) error {
	weightMap := map[string]string{}
	for _, s := range shards {
		for _, t := range s.tensors {
			weightMap[t.Name] = s.name
		}
	}
	index := map[string]any{
		"metadata":   map[string]string{"total_size": strconv.FormatInt(totalBytes, 10)},
		"weight_map": weightMap,
	}
	return writeJSON(filepath.Join(dir, "model.safetensors.index.json"), index)
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

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
