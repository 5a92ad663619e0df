// Package modeldir reads an HF-style model directory (docs/ARCHITECTURE.md "Weights and model directory"):
// config.json, one or many *.safetensors (with model.safetensors.index.json when sharded), tokenizer.model
// and an optional generation_config.json. It checks every file before the core maps anything.
package modeldir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/shards"
)

// File names inside a model directory.
const (
	ConfigFile           = "config.json"
	IndexFile            = shards.IndexFile
	TokenizerFile        = "tokenizer.model"
	GenerationConfigFile = "generation_config.json"
)

// ErrInvalid marks a directory that is not a loadable model; the message says what is wrong.
var ErrInvalid = errors.New("invalid model directory")

// Tensor is a stored tensor: its header entry and the file it lives in.
type Tensor struct {
	safetensors.Tensor
	File int // index into Dir.Files
}

// Dir is a parsed model directory. Nothing is mapped yet: Load does that.
type Dir struct {
	Path             string
	Config           config.Config
	Files            []string // weight files, absolute paths
	Headers          []*safetensors.Header
	Tensors          []Tensor // every stored tensor the core can take, in file then offset order
	Buffers          []Tensor // stored tensors of other dtypes that the spec does not name (e.g. I64 position_ids), ignored
	TokenizerPath    string
	GenerationConfig map[string]any // nil when absent
}

// Open reads and checks a model directory: config (over the released defaults, then validated by the
// core), the weight file list (from the index when present), every safetensors header, and the tokenizer.
func Open(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("model directory %s: %w", path, err)
	}
	d := &Dir{Path: abs}
	if err := d.readConfig(); err != nil {
		return nil, err
	}
	files, index, err := d.weightFiles()
	if err != nil {
		return nil, err
	}
	if err := d.readHeaders(files, index); err != nil {
		return nil, err
	}
	d.TokenizerPath = filepath.Join(abs, TokenizerFile)
	if st, err := os.Stat(d.TokenizerPath); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s has no %s (the LLaMA SentencePiece model)", ErrInvalid, abs, TokenizerFile)
	}
	if err := d.readGenerationConfig(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dir) readConfig() error {
	data, err := os.ReadFile(filepath.Join(d.Path, ConfigFile))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	cfg, err := config.Parse(data, bindings.DefaultConfig())
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(d.Path, ConfigFile), err)
	}
	if err := bindings.ValidateConfig(cfg); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(d.Path, ConfigFile), err)
	}
	d.Config = cfg
	return nil
}

// weightFiles lists the weight files: those the index names, or every *.safetensors without an index.
// With an index it also returns the name → file map to check the headers against.
func (d *Dir) weightFiles() ([]string, map[string]string, error) {
	index, files, err := shards.ReadIndex(d.Path, IndexFile)
	if errors.Is(err, os.ErrNotExist) {
		files, err := filepath.Glob(filepath.Join(d.Path, "*.safetensors"))
		if err != nil {
			return nil, nil, err
		}
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("%w: %s has no *.safetensors files (convert a .bin release with nextchat convert)",
				ErrInvalid, d.Path)
		}
		sort.Strings(files)
		return files, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return files, index, nil
}

// readHeaders parses every header and checks the tensors: supported dtype (tensors of other dtypes that the spec
// does not name are set aside as buffers: HF directories keep position_ids as I64), no name stored twice, and with
// an index, each tensor in the file the index says and every indexed tensor present.
func (d *Dir) readHeaders(files []string, index map[string]string) error {
	spec, err := bindings.Spec(d.Config)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	named := make(map[string]bool, len(spec))
	for _, t := range spec {
		named[t.Name] = true
	}
	located := shards.NewLocator(IndexFile, index)
	for i, path := range files {
		h, err := safetensors.ReadHeaderFile(path)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		base := filepath.Base(path)
		for _, t := range h.Tensors {
			if err := located.Add(t.Name, base); err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			if _, err := bindingsDType(t.DType); err != nil {
				if !named[t.Name] {
					d.Buffers = append(d.Buffers, Tensor{Tensor: t, File: i})
					continue
				}
				return fmt.Errorf("%w: %s: tensor %s: %v", ErrInvalid, base, t.Name, err)
			}
			d.Tensors = append(d.Tensors, Tensor{Tensor: t, File: i})
		}
		d.Files = append(d.Files, path)
		d.Headers = append(d.Headers, h)
	}
	if err := located.Complete(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func (d *Dir) readGenerationConfig() error {
	data, err := os.ReadFile(filepath.Join(d.Path, GenerationConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := json.Unmarshal(data, &d.GenerationConfig); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, GenerationConfigFile, err)
	}
	return nil
}

// bindingsDType maps a stored dtype to one the core computes with.
func bindingsDType(d safetensors.DType) (bindings.DType, error) {
	switch d {
	case safetensors.F32:
		return bindings.F32, nil
	case safetensors.F16:
		return bindings.F16, nil
	case safetensors.BF16:
		return bindings.BF16, nil
	}
	return 0, fmt.Errorf("dtype %s is not supported (F32, F16 or BF16)", d)
}

// Refs turns the stored tensors into the core's tensor references (absolute offsets).
func (d *Dir) Refs() []bindings.TensorRef {
	refs := make([]bindings.TensorRef, len(d.Tensors))
	for i, t := range d.Tensors {
		dt, _ := bindingsDType(t.DType) // checked in readHeaders
		base := uint64(d.Headers[t.File].DataOffset)
		refs[i] = bindings.TensorRef{
			Name: t.Name, DType: dt, Shape: t.Shape, File: t.File,
			Offset: base + uint64(t.Begin), Bytes: uint64(t.End - t.Begin),
		}
	}
	return refs
}

// Load maps the weights on a backend; the core checks every tensor against the config first.
func (d *Dir) Load(backend bindings.Backend, device int) (*bindings.Model, error) {
	m, err := bindings.OpenModel(bindings.ModelParams{
		Config: d.Config, Files: d.Files, Tensors: d.Refs(), Backend: backend, Device: device,
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", d.Path, err)
	}
	return m, nil
}
