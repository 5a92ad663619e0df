// Package golden reads the reference's golden tensors (testdata/golden/model, written by
// tools/reference/make_model_goldens.py) and rebuilds the synthetic checkpoints they were made from, so
// engine stages can be compared with the PyTorch reference without PyTorch.
package golden

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/synth"
)

// Root is the repository root (this file's grandparent directory).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// SharedTokenizer is the real LLaMA tokenizer beside the checkout, or "" when it is absent.
func SharedTokenizer() string {
	p := filepath.Join(Root(), "..", "shared", "testdata", "tokenizer", "llama.model")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Checkpoint is how a golden's weights were generated.
type Checkpoint struct {
	Config        string `json:"config"` // preset name or a path relative to the repository root
	Seed          uint64 `json:"seed"`
	DType         string `json:"dtype"`
	WeightsSHA256 string `json:"weights_sha256"`
}

// Sampling is a case's sampling parameters (nil: greedy).
type Sampling struct {
	Temperature       float32 `json:"temperature"`
	TopK              int     `json:"top_k"`
	TopP              float32 `json:"top_p"`
	RepetitionPenalty float32 `json:"repetition_penalty"`
	Seed              uint64  `json:"seed"`
}

// Case is one golden recipe of cases.json.
type Case struct {
	Name         string       `json:"name"`
	File         string       `json:"file"`
	Checkpoint   Checkpoint   `json:"checkpoint"`
	Image        string       `json:"image"`
	Prompt       string       `json:"prompt"`
	Boxes        [][4]float64 `json:"boxes"`
	ForcedText   string       `json:"forced_text"` // the assistant's answer so far, teacher-forced
	ForcedIDs    []int32      `json:"forced_ids"`
	Sampling     *Sampling    `json:"sampling"`
	MaxNewTokens int          `json:"max_new_tokens"`
	Result       struct {
		Tokens  []int32 `json:"tokens"`
		AtCount int     `json:"at_count"`
	} `json:"result"`
}

// Cases reads testdata/golden/model/cases.json.
func Cases() ([]Case, error) {
	data, err := os.ReadFile(filepath.Join(Root(), "testdata", "golden", "model", "cases.json"))
	if err != nil {
		return nil, err
	}
	var doc struct {
		Cases []Case `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("cases.json: %w", err)
	}
	return doc.Cases, nil
}

// CaseNamed is the case of that name and its golden tensors.
func CaseNamed(name string) (Case, map[string]Tensor, error) {
	cases, err := Cases()
	if err != nil {
		return Case{}, nil, err
	}
	for _, c := range cases {
		if c.Name == name {
			g, err := Load(filepath.Join(Root(), "testdata", "golden", "model", c.File))
			return c, g, err
		}
	}
	return Case{}, nil, fmt.Errorf("golden case %s not found", name)
}

// Tensor is a decoded golden tensor.
type Tensor struct {
	Shape []int64
	F32   []float32 // F32 tensors
	I64   []int64   // I64 tensors
	U8    []uint8   // U8 tensors
}

// Load decodes every tensor of a golden file (F32, I64 and U8 only).
func Load(path string) (map[string]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h, err := safetensors.ParseHeader(f, st.Size())
	if err != nil {
		return nil, err
	}
	out := map[string]Tensor{}
	for _, t := range h.Tensors {
		raw, err := io.ReadAll(h.Section(f, t))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		g := Tensor{Shape: t.Shape}
		n := int(t.NumElements())
		switch t.DType {
		case safetensors.F32:
			g.F32 = make([]float32, n)
			for i := range g.F32 {
				g.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case safetensors.I64:
			g.I64 = make([]int64, n)
			for i := range g.I64 {
				g.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		case safetensors.U8:
			g.U8 = raw
		default:
			return nil, fmt.Errorf("%s: golden dtype %s not handled", t.Name, t.DType)
		}
		out[t.Name] = g
	}
	return out, nil
}

// NMSE is Σ(got−want)² / Σwant².
func NMSE(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return num / math.Max(den, 1e-30)
}

// MaskIoU is |a ∧ b| / |a ∨ b| of two binary masks (1 when both are empty).
func MaskIoU(a, b []uint8) float64 {
	var inter, union int
	for i := range a {
		x, y := a[i] != 0, b[i] != 0
		if x && y {
			inter++
		}
		if x || y {
			union++
		}
	}
	if union == 0 {
		return 1
	}
	return float64(inter) / float64(union)
}

var (
	checkpointsMu sync.Mutex
	checkpoints   = map[string]string{}
)

// BuildCheckpoint regenerates a case's checkpoint (in dtype, which may differ from the golden's to test 16-bit
// weights) under dir, once per process, and checks it is the one the goldens were made from when the dtype
// is the golden's. tokenizer is copied into it.
func BuildCheckpoint(ctx context.Context, c Checkpoint, dtype bindings.DType, dir, tokenizer string) (string, error) {
	key := fmt.Sprintf("%s/%d/%v", c.Config, c.Seed, dtype)
	checkpointsMu.Lock()
	defer checkpointsMu.Unlock()
	if p, ok := checkpoints[key]; ok {
		return p, nil
	}
	cfgName := c.Config
	if _, err := os.Stat(filepath.Join(Root(), cfgName)); err == nil {
		cfgName = filepath.Join(Root(), cfgName)
	}
	cfg, err := synth.ResolveConfig(cfgName)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, fmt.Sprintf("ckpt-%d", len(checkpoints)))
	if _, err := synth.Generate(ctx, synth.Options{Config: cfg, Preset: filepath.Base(c.Config), Seed: c.Seed,
		DType: dtype, Out: out, Tokenizer: tokenizer}); err != nil {
		return "", err
	}
	want, err := bindings.ParseDType(c.DType)
	if err != nil {
		return "", err
	}
	if dtype == want {
		sum, err := fileSHA256(filepath.Join(out, "model.safetensors"))
		if err != nil {
			return "", err
		}
		if sum != c.WeightsSHA256 {
			return "", fmt.Errorf("regenerated %s seed %d weights differ from the goldens' (sha256 %s, want %s): "+
				"nextchat gen changed, regenerate the goldens with make goldens", c.Config, c.Seed, sum, c.WeightsSHA256)
		}
	}
	checkpoints[key] = out
	return out, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
