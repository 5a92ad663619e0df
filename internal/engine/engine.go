// Package engine answers one NExT-Chat request: it builds the prompt (template, image rows, region boxes),
// runs prefill and the decode loop of tools/reference/nextchat_ref/generate.py on the core, streams text,
// and collects the locations (boxes) the model produced.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/tokenizer"
)

// Options configure an engine.
type Options struct {
	Backend bindings.Backend
	Device  int
	Threads int // CPU threads; 0: all
	// KV cache: dtype, positions per block and total context positions to hold (0: the model's maximum).
	KVDType       bindings.DType
	KVBlockSize   int
	ContextTokens int
}

// DefaultOptions: CPU, F16 KV cache in blocks of 16.
func DefaultOptions() Options {
	return Options{Backend: bindings.CPU, KVDType: bindings.F16, KVBlockSize: 16}
}

// Engine serves requests on one loaded model. Generate calls are serialized.
type Engine struct {
	Dir   *modeldir.Dir
	Model *bindings.Model
	Tok   *tokenizer.Tokenizer
	cache  *bindings.Cache
	mu     sync.Mutex
	images featureCache // CLIP features by image content
	// SAM image embeddings by image content: the encoder runs once per image, and only for answers with
	// locations (ARCHITECTURE "Memory and scheduling").
	samImages featureCache
}

// Open loads a model directory and allocates its KV cache.
func Open(path string, o Options) (*Engine, error) {
	d, err := modeldir.Open(path)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(d.TokenizerPath)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() != d.Config.VocabSize {
		return nil, fmt.Errorf("tokenizer has %d ids, config.json says vocab_size %d", tok.VocabSize(), d.Config.VocabSize)
	}
	m, err := bindings.OpenModel(bindings.ModelParams{Config: d.Config, Files: d.Files, Tensors: d.Refs(),
		Backend: o.Backend, Device: o.Device, Threads: o.Threads})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", d.Path, err)
	}
	ctxTokens := o.ContextTokens
	if ctxTokens <= 0 || ctxTokens > d.Config.MaxPositionEmbeddings {
		ctxTokens = d.Config.MaxPositionEmbeddings
	}
	block := o.KVBlockSize
	if block <= 0 {
		block = 16
	}
	cache, err := m.NewCache(block, int64((ctxTokens+block-1)/block), o.KVDType)
	if err != nil {
		m.Close()
		return nil, err
	}
	slog.Debug("engine ready", "model", d.Path, "context", ctxTokens, "kv_dtype", o.KVDType)
	return &Engine{Dir: d, Model: m, Tok: tok, cache: cache}, nil
}

// Close releases the model.
func (e *Engine) Close() error {
	e.cache.Close()
	return e.Model.Close()
}

// Config is the model's configuration.
func (e *Engine) Config() config.Config { return e.Dir.Config }

// Prepared is a prompt ready for prefill: one token per row and, where rows carry something else (image
// features, user boxes), their embeddings.
type Prepared struct {
	Forced    []int32 // tokens of an answer prefix, teacher-forced before anything is generated
	IDs       []int32
	Embeds    []float32 // [len(IDs) × hidden] or nil
	EmbedRows []bool    // rows of Embeds that apply (nil: all)
}

// GenParams control decoding.
type GenParams struct {
	MaxNewTokens int
	Sampling     bindings.Sampling
	Forced       []int32  // teacher-forced first tokens of the answer (never sampled)
	Stop         []string // stop when the text ends with one of these (not included in the answer)
}

// Finish reasons.
const (
	FinishEOS    = "eos"
	FinishLength = "length"
	FinishStop   = "stop"
)

// Location is one <at> the model produced, decoded by loc_decoder (MODEL_SPEC §3).
type Location struct {
	TokenIndex int        // index of the <at> in Result.Tokens
	Box        [4]float32 // normalized xyxy in the expand2square frame, raw (no clamping, §3)
	Hidden     []float32  // h_at: the SAM prompt source (§4)
}

// Result is a finished generation.
type Result struct {
	Tokens    []int32
	Text      string
	Locations []Location
	Finish    string
}

// ErrEmptyPrompt marks a prepared prompt without rows.
var ErrEmptyPrompt = errors.New("empty prompt")

// Run prefills a prepared prompt and decodes (generate.py's contract): forced tokens first, <boxes> after every
// <at> (the core decodes the box and feeds it back), then greedy or sampled tokens until EOS, a stop string or
// MaxNewTokens; an <at> that is the last allowed token is still fed so it gets its box. stream, when not nil,
// receives text as it becomes final.
func (e *Engine) Run(ctx context.Context, p Prepared, g GenParams, stream func(delta string) error) (Result, error) {
	if len(p.IDs) == 0 {
		return Result{}, ErrEmptyPrompt
	}
	if g.MaxNewTokens <= 0 {
		return Result{}, fmt.Errorf("max new tokens must be positive, got %d", g.MaxNewTokens)
	}
	g.Forced = append(append([]int32(nil), p.Forced...), g.Forced...)
	e.mu.Lock()
	defer e.mu.Unlock()
	seq, err := e.cache.NewSeq(g.Sampling)
	if err != nil {
		return Result{}, err
	}
	defer seq.Close()
	sampleAt := func(generated int) bool { return generated >= len(g.Forced) }
	out, err := e.Model.Step(e.cache, []bindings.StepInput{{Seq: seq, Tokens: p.IDs, Embeds: p.Embeds,
		EmbedRows: p.EmbedRows, Sample: sampleAt(0)}})
	if err != nil {
		return Result{}, fmt.Errorf("prefill: %w", err)
	}
	var res Result
	text := newTextStream(e.Tok, g.Stop, stream)
	next := out[0].Token
	atID := int32(e.Dir.Config.AtTokenID)
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		tok := next
		if i := len(res.Tokens); i < len(g.Forced) {
			tok = g.Forced[i]
		}
		res.Tokens = append(res.Tokens, tok)
		stopped, err := text.push(res.Tokens)
		if err != nil {
			return res, err
		}
		full := len(res.Tokens) == g.MaxNewTokens
		switch {
		case tok == int32(e.Dir.Config.EOSTokenID):
			res.Finish = FinishEOS
		case stopped:
			res.Finish = FinishStop
		case full && tok != atID:
			res.Finish = FinishLength
		}
		if res.Finish != "" {
			break
		}
		in := bindings.StepInput{Seq: seq, Tokens: []int32{tok}, Sample: sampleAt(len(res.Tokens))}
		if tok == atID {
			in.Locate = []bool{true}
		}
		out, err := e.Model.Step(e.cache, []bindings.StepInput{in})
		if err != nil {
			return res, fmt.Errorf("decode step %d: %w", len(res.Tokens), err)
		}
		for i, b := range out[0].Boxes {
			h := e.Model.Hidden()
			res.Locations = append(res.Locations, Location{TokenIndex: len(res.Tokens) - 1, Box: b,
				Hidden: out[0].AtHidden[i*h : (i+1)*h]})
		}
		if full {
			res.Finish = FinishLength
			break
		}
		next = out[0].Token
	}
	res.Text, err = text.finish()
	return res, err
}
