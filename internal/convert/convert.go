// Package convert turns a released NExT-Chat checkpoint into a model directory the engine loads: the official
// PyTorch .bin shards (read by internal/torchbin, never unpickled) or an HF-style safetensors directory in,
// sharded safetensors with an index, config.json in our schema and the tokenizer out (MODEL_SPEC §7). Every
// kept tensor is checked against the tensor spec the config implies, tensors the engine never reads are
// dropped and reported, and the result is opened with the engine before it takes the output's name.
package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/shards"
)

// ErrInvalid marks input that cannot become a NExT-Chat model directory; the message lists why.
var ErrInvalid = errors.New("cannot convert")

// Options say what to convert and how.
type Options struct {
	From       string
	To         string
	CLIP       string            // optional: a CLIP checkpoint directory whose vision_model.* replaces the checkpoint's tower
	Tokenizer  string            // tokenizer.model to use; "": From's
	DType      safetensors.DType // "": keep each tensor's dtype; F16 or BF16: convert
	ShardBytes int64             // 0: shards.DefaultBytes
	KeepUnused bool              // keep the spec's unused tensors instead of dropping them
	Force      bool              // replace an existing model directory at To
	Progress   io.Writer         // nil: silent
}

// Report says what a conversion read, wrote and left out.
type Report struct {
	From           string         `json:"from"`
	Format         string         `json:"format"` // FormatTorch or FormatSafetensors
	InputFiles     int            `json:"input_files"`
	InputBytes     int64          `json:"input_bytes"`
	CLIPFrom       string         `json:"clip_from"` // "checkpoint" or the --clip directory
	To             string         `json:"to"`
	Files          []string       `json:"files"` // weight files written, base names
	Copied         []string       `json:"copied"`
	Tensors        int            `json:"tensors"`
	Params         int64          `json:"params"`
	Bytes          int64          `json:"bytes"` // tensor bytes written
	TensorsByDType map[string]int `json:"tensors_by_dtype"`
	Converted      int            `json:"converted"` // tensors whose dtype changed
	FlushedToZero  int64          `json:"flushed_to_zero"`
	Dropped        []Dropped      `json:"dropped"`
	Seconds        float64        `json:"seconds"`
}

// DroppedCount counts dropped tensors and their bytes for one reason.
func (r Report) DroppedCount(reason string) (n int, bytes int64) {
	for _, d := range r.Dropped {
		if d.Reason == reason {
			n++
			bytes += d.Bytes
		}
	}
	return n, bytes
}

// Files copied beside the weights when the source has them (the release's tokenizer and generation files).
var sideFiles = []string{modeldir.GenerationConfigFile, "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"}

// Convert reads From and writes To. The output is written into a temporary directory beside To, opened with
// the engine, and only then renamed to To, so To is either absent, the old model (on failure), or a model that
// loads.
func Convert(ctx context.Context, o Options) (Report, error) {
	start := time.Now()
	rep := Report{From: o.From, To: o.To, CLIPFrom: "checkpoint", TensorsByDType: map[string]int{}}
	if err := checkOptions(o); err != nil {
		return rep, err
	}
	in, err := readInput(o, &rep)
	if err != nil {
		return rep, err
	}
	defer in.Close()
	tmp, err := makeTempDir(o.To)
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp) // after the rename this is a no-op
	if err := writeModel(ctx, o, tmp, in, &rep); err != nil {
		return rep, err
	}
	if err := checkLoads(tmp, in.cfg); err != nil {
		return rep, err
	}
	if err := replaceDir(tmp, o.To); err != nil {
		return rep, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// input is what a conversion reads: the release's config and the tensors to write, with their files open.
type input struct {
	rawConfig []byte
	cfg       config.Config
	sel       selection
	sources   []*source
}

func (in *input) Close() error {
	var errs []error
	for _, s := range in.sources {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// readInput reads the config, opens the weights (and --clip's), and selects the tensors against the spec.
func readInput(o Options, rep *Report) (_ *input, err error) {
	in := &input{}
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	if in.rawConfig, err = os.ReadFile(filepath.Join(o.From, modeldir.ConfigFile)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if in.cfg, err = parseConfig(in.rawConfig); err != nil {
		return nil, err
	}
	spec, err := bindings.Spec(in.cfg)
	if err != nil {
		return nil, err
	}
	src, err := openSource(o.From)
	if err != nil {
		return nil, err
	}
	in.sources = append(in.sources, src)
	rep.Format, rep.InputFiles, rep.InputBytes = src.format, len(src.files), src.bytes
	tensors := src.tensors
	var replaced []Dropped
	if o.CLIP != "" {
		clip, err := openSource(o.CLIP)
		if err != nil {
			return nil, fmt.Errorf("--clip: %w", err)
		}
		in.sources = append(in.sources, clip)
		if tensors, replaced, err = substituteCLIP(tensors, clip.tensors); err != nil {
			return nil, err
		}
		rep.CLIPFrom = o.CLIP
	}
	if in.sel, err = selectTensors(spec, tensors, o.DType, o.KeepUnused); err != nil {
		return nil, err
	}
	rep.Dropped = append(replaced, in.sel.dropped...)
	return in, nil
}

// checkOptions refuses, before reading anything, what would destroy data: an output that is the input (or
// holds it), or a non-empty directory that is not a model.
func checkOptions(o Options) error {
	if o.From == "" || o.To == "" {
		return errors.New("both a source (--from) and an output (--to) directory are needed")
	}
	if o.DType != "" && o.DType != safetensors.F16 && o.DType != safetensors.BF16 {
		return fmt.Errorf("output dtype %s: keep, bf16 or f16", o.DType)
	}
	to, err := filepath.Abs(o.To)
	if err != nil {
		return err
	}
	for _, in := range []string{o.From, o.CLIP} {
		if in == "" {
			continue
		}
		abs, err := filepath.Abs(in)
		if err != nil {
			return err
		}
		if abs == to || strings.HasPrefix(abs, to+string(filepath.Separator)) {
			return fmt.Errorf("the output %s would replace the input %s", o.To, in)
		}
	}
	entries, err := os.ReadDir(o.To)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(o.To, modeldir.ConfigFile)); err != nil {
		return fmt.Errorf("%s is not empty and holds no model (no config.json); refusing to replace it", o.To)
	}
	if !o.Force {
		return fmt.Errorf("%s already holds a model; pass --force to replace it", o.To)
	}
	return nil
}

// makeTempDir creates the directory the output is written into: beside To, so the final rename stays on one
// file system.
func makeTempDir(to string) (string, error) {
	parent := filepath.Dir(filepath.Clean(to))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create output: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(to)+".converting-")
	if err != nil {
		return "", fmt.Errorf("create output: %w", err)
	}
	return tmp, os.Chmod(tmp, 0o755)
}

// parseConfig reads the release's config.json over the released defaults, as the engine does.
func parseConfig(raw []byte) (config.Config, error) {
	cfg, err := config.Parse(raw, bindings.DefaultConfig())
	if err != nil {
		return config.Config{}, fmt.Errorf("%s: %w", modeldir.ConfigFile, err)
	}
	if err := bindings.ValidateConfig(cfg); err != nil {
		return config.Config{}, fmt.Errorf("%s: %w", modeldir.ConfigFile, err)
	}
	return cfg, nil
}

// writeModel writes the weights, the side files and config.json into dir.
func writeModel(ctx context.Context, o Options, dir string, in *input, rep *Report) error {
	layout := make([]safetensors.TensorSpec, len(in.sel.kept))
	byName := make(map[string]keptTensor, len(in.sel.kept))
	bytesByDType := map[safetensors.DType]int64{}
	for i, k := range in.sel.kept {
		layout[i] = safetensors.TensorSpec{Name: k.src.name, DType: k.out, Shape: k.src.shape}
		byName[k.src.name] = k
		n := k.src.numel
		rep.Tensors++
		rep.Params += n
		rep.Bytes += n * int64(k.out.Size())
		bytesByDType[k.out] += n * int64(k.out.Size())
		rep.TensorsByDType[string(k.out)]++
		if k.out != k.src.dtype {
			rep.Converted++
		}
	}
	bar := progress.New(o.Progress, "convert", rep.Bytes)
	tc := newTranscoder(bar)
	fill := func(ctx context.Context, t safetensors.TensorSpec, w io.Writer) error {
		k := byName[t.Name]
		return tc.copyTensor(ctx, k.src, k.out, w)
	}
	meta := map[string]string{"format": "pt", "nextchat.converted_from": filepath.Base(filepath.Clean(o.From)) + " (" + rep.Format + ")"}
	planned := shards.Plan(layout, o.ShardBytes)
	for _, s := range planned {
		if err := shards.Write(ctx, dir, s, meta, fill); err != nil {
			return err
		}
		rep.Files = append(rep.Files, s.Name)
	}
	bar.Finish()
	rep.FlushedToZero = tc.flushed
	if err := shards.WriteIndex(dir, planned); err != nil {
		return err
	}
	if err := copySideFiles(o, dir, rep); err != nil {
		return err
	}
	out, err := translateConfig(in.rawConfig, in.cfg, bytesByDType)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, modeldir.ConfigFile), out, 0o644)
}

func copySideFiles(o Options, dir string, rep *Report) error {
	tok := o.Tokenizer
	if tok == "" {
		tok = filepath.Join(o.From, modeldir.TokenizerFile)
	}
	if err := shards.CopyFile(tok, filepath.Join(dir, modeldir.TokenizerFile)); err != nil {
		return fmt.Errorf("%w: tokenizer: %v (pass --tokenizer FILE when the checkpoint has none)", ErrInvalid, err)
	}
	rep.Copied = append(rep.Copied, modeldir.TokenizerFile)
	for _, name := range sideFiles {
		err := shards.CopyFile(filepath.Join(o.From, name), filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", name, err)
		}
		rep.Copied = append(rep.Copied, name)
	}
	return nil
}

// torchDTypes are HF's torch_dtype spellings.
var torchDTypes = map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}

// translateConfig writes the release's config.json in our schema: every original field kept (mm_vision_tower,
// sam_path, use_cache ... stay for provenance), every field of ours explicit, and torch_dtype saying what most
// of the weights' bytes now are (the release says float32 over 16-bit tensors, MODEL_SPEC §1.1).
func translateConfig(raw []byte, cfg config.Config, bytesByDType map[safetensors.DType]int64) ([]byte, error) {
	ours, err := config.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var merged, oursFields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &merged); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(ours, &oursFields); err != nil {
		return nil, err
	}
	for k, v := range oursFields {
		merged[k] = v
	}
	var most safetensors.DType
	for d, n := range bytesByDType {
		if most == "" || n > bytesByDType[most] || (n == bytesByDType[most] && d < most) {
			most = d
		}
	}
	if name, ok := torchDTypes[most]; ok {
		merged["torch_dtype"] = json.RawMessage(`"` + name + `"`)
	}
	out, err := json.MarshalIndent(merged, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// checkLoads opens the written directory as the engine does and maps it on the CPU backend, where the core
// checks every tensor against the spec once more; the config must read back as the one converted.
func checkLoads(dir string, want config.Config) error {
	d, err := modeldir.Open(dir)
	if err != nil {
		return fmt.Errorf("the converted model does not open: %w", err)
	}
	if !reflect.DeepEqual(d.Config, want) {
		return fmt.Errorf("the converted config.json reads back differently from the source's")
	}
	m, err := d.Load(bindings.CPU, 0)
	if err != nil {
		return fmt.Errorf("the converted model does not load: %w", err)
	}
	return m.Close()
}

// replaceDir moves the finished directory to its name; an existing model there (checkOptions allowed it) is
// moved aside first and removed only once the new one is in place.
func replaceDir(tmp, to string) error {
	old := ""
	if entries, err := os.ReadDir(to); err == nil {
		if len(entries) == 0 {
			if err := os.Remove(to); err != nil {
				return err
			}
		} else {
			old = tmp + ".old"
			if err := os.Rename(to, old); err != nil {
				return fmt.Errorf("move the old model aside: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, to); err != nil {
		if old != "" {
			os.Rename(old, to)
		}
		return fmt.Errorf("move the converted model to %s: %w", to, err)
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}
