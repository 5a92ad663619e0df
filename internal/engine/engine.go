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

// Options configure an engine. The limits are the memory plan's (docs/ARCHITECTURE.md "Memory plan"): the core
// allocates everything for them when the engine opens, and a request beyond them is rejected before any compute.
type Options struct {
	Backend bindings.Backend
	Device  int
	Threads int // CPU threads; 0: all
	// LLMWeights is how the language model's matrices are held (bindings.LLMWeights; the zero value: as stored).
	LLMWeights bindings.LLMWeights
	// KV cache: dtype and positions per block.
	KVDType     bindings.DType
	KVBlockSize int
	// ContextTokens: positions per sequence, prompt and answer (0: the model's maximum).
	ContextTokens int
	// MaxSequences: sequences at once — expressions of one Ground call, beams of RunBeams (0: 1).
	MaxSequences int
	// MaxStepRows: prompt rows of one step, all sequences together (0: ContextTokens × MaxSequences).
	MaxStepRows int
	// MaxLocations: user boxes per request and locations per SAM call (0: 8; Segment splits larger answers).
	MaxLocations int
	// Image caches by content: CLIP features and SAM embeddings (0: 16 and 4; negative: none).
	FeatureCacheImages int
	SAMCacheImages     int
	// PrefixCache: finished sequences kept so that requests sharing their first rows prefill only the rest
	// (0: MaxSequences; negative: none; at most MaxSequences, whose KV blocks they use between requests).
	PrefixCache int
	// PrefillChunk: while other requests step, an answer's prompt is prefilled this many rows per step, so that
	// their tokens keep coming (0: 128; negative: whole prompts).
	PrefillChunk int
}

// DefaultOptions: CPU, F16 KV cache in blocks of 16.
func DefaultOptions() Options {
	return Options{Backend: bindings.CPU, KVDType: bindings.F16, KVBlockSize: 16}
}

// PlanRequest is the memory plan request the options make (one image per CLIP call: the engine encodes each
// image on its own).
func (o Options) PlanRequest() bindings.PlanRequest {
	return bindings.PlanRequest{Backend: o.Backend, Threads: o.Threads, MaxContext: int64(o.ContextTokens),
		MaxSequences: o.MaxSequences, MaxStepRows: o.MaxStepRows, MaxImages: 1, MaxLocations: o.MaxLocations,
		KVBlockSize: o.KVBlockSize, KVDType: o.KVDType, FeatureCacheImages: optionOr(o.FeatureCacheImages, 16),
		SAMCacheImages: optionOr(o.SAMCacheImages, 4)}
}

// optionOr reads a count option whose 0 means a default and a negative value none.
func optionOr(n, def int) int {
	switch {
	case n < 0:
		return 0
	case n == 0:
		return def
	}
	return n
}

// Engine serves requests on one loaded model. Safe for concurrent use: requests take their sequences from the plan
// and their steps are batched together (docs/ARCHITECTURE.md "Batching").
type Engine struct {
	Dir   *modeldir.Dir
	Model *bindings.Model
	Tok   *tokenizer.Tokenizer
	// Plan is the memory plan the core reserved: every limit a request is admitted against.
	Plan bindings.Plan
	// LLMWeights is how the language model's matrices are held (Options.LLMWeights): int8 is lossy, and a server
	// says so.
	LLMWeights bindings.LLMWeights
	cache      *bindings.Cache
	// mu guards the KV cache: steps, and starting, forking and closing sequences (and the prefix cache with them).
	mu     sync.Mutex
	images featureCache // CLIP features by image content
	// SAM image embeddings by content: the encoder runs once per image, and only for answers with locations.
	samImages featureCache
	prefixes  prefixCache // finished sequences by the rows they hold
	slots     *slotPool   // the plan's sequences among running requests
	// prefillChunk: rows per prefill step while others step (Options.PrefillChunk; 0: whole prompts).
	prefillChunk int
	batch        *batcher // concurrent requests' steps, merged
}

// Open loads a model directory, reserves its memory plan and allocates the KV cache the plan sizes.
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
		Backend: o.Backend, Device: o.Device, Threads: o.Threads, LLMWeights: o.LLMWeights})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", d.Path, err)
	}
	plan, err := m.Reserve(o.PlanRequest())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("memory plan: %w", err)
	}
	cache, err := m.NewCache(plan.Request.KVBlockSize, plan.KVBlocks, plan.Request.KVDType)
	if err != nil {
		m.Close()
		return nil, err
	}
	if spec, err := bindings.Spec(d.Config); err == nil {
		if advice := modeldir.AlignmentAdvice(d.MisalignedMatrices(spec)); advice != "" {
			slog.Warn("weights not aligned", "model", d.Path, "advice", advice)
		}
	}
	slog.Debug("engine ready", "model", d.Path, "context", plan.Request.MaxContext, "sequences",
		plan.Request.MaxSequences, "kv_dtype", o.KVDType, "host_bytes", plan.HostBytes)
	return &Engine{Dir: d, Model: m, Tok: tok, Plan: plan, LLMWeights: o.LLMWeights, cache: cache,
		images:    featureCache{capacity: plan.Request.FeatureCacheImages},
		samImages: featureCache{capacity: plan.Request.SAMCacheImages},
		prefixes:  newPrefixCache(min(optionOr(o.PrefixCache, plan.Request.MaxSequences), plan.Request.MaxSequences)),
		slots:     newSlotPool(plan.Request.MaxSequences), batch: newBatcher(), prefillChunk: optionOr(o.PrefillChunk, 128)}, nil
}

// startSequence gives a request its first sequence: a continuation of the cached one sharing most of its rows (at
// most limit of them), or a new one; it returns the rows already in the cache. Under e.mu.
func (e *Engine) startSequence(rows []rowKey, limit int, s bindings.Sampling) (*bindings.Seq, int, error) {
	src, shared := e.prefixes.match(rows, limit)
	if src == nil {
		seq, err := e.cache.NewSeq(s)
		return seq, 0, err
	}
	seq, err := src.seq.ForkPrefix(shared, s)
	if err != nil {
		return nil, 0, err
	}
	slog.Debug("prefix cache hit", "rows", shared, "of", len(rows))
	return seq, shared, nil
}

// step runs one Model.Step (under e.mu). When the KV cache is full it closes cached sequences, least recently used
// first, and tries again: the core takes blocks before any compute and keeps them on failure, and the plan holds
// every running request's sequences once no cached one is left.
func (e *Engine) step(inputs []bindings.StepInput) ([]bindings.StepOutput, error) {
	for {
		outs, err := e.Model.Step(e.cache, inputs)
		if err == nil || !errors.Is(err, bindings.ErrOutOfMemory) || len(e.prefixes.entries) == 0 {
			return outs, err
		}
		e.prefixes.trim(len(e.prefixes.entries) - 1)
	}
}

// prefill starts a request's sequence (an answer's, a beam search's root) and runs its prompt rows past the cached
// ones, batched with what other requests step meanwhile. It returns the sequence, the cached rows and the output
// of the prompt's last row (what prompt asks of it: a sampled token, logits).
func (e *Engine) prefill(prompt bindings.StepInput, rows []rowKey, s bindings.Sampling) (
	*bindings.Seq, int, bindings.StepOutput, error) {
	e.mu.Lock()
	seq, cached, err := e.startSequence(rows, len(rows)-1, s)
	e.mu.Unlock()
	if err != nil {
		return nil, 0, bindings.StepOutput{}, err
	}
	prompt.Seq = seq
	out, err := e.prefillRows(prompt, cached, len(prompt.Tokens))
	if err != nil {
		e.closeSeqs(seq)
		return nil, 0, bindings.StepOutput{}, fmt.Errorf("prefill: %w", err)
	}
	return seq, cached, out, nil
}

// prefillRows steps rows [from, to) of one sequence's input and returns the output of the last. While other
// requests step, the rows go in chunks of prefillChunk, each batched with their rows: they keep streaming instead of
// waiting for the whole prefill.
func (e *Engine) prefillRows(in bindings.StepInput, from, to int) (bindings.StepOutput, error) {
	for {
		end := to
		if e.prefillChunk > 0 && end-from > e.prefillChunk && e.batch.others() {
			end = from + e.prefillChunk
		}
		out, err := e.batchStep([]bindings.StepInput{rowsBetween(in, from, end, e.Model.Hidden())})
		if err != nil {
			return bindings.StepOutput{}, err
		}
		if end == to {
			return out[0], nil
		}
		from = end
	}
}

// closeSeqs closes sequences (under e.mu: their blocks go back to the cache).
func (e *Engine) closeSeqs(seqs ...*bindings.Seq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range seqs {
		if s != nil {
			s.Close()
		}
	}
}

// ClearPrefixCache closes the finished sequences kept for their prefixes, returning their KV blocks.
func (e *Engine) ClearPrefixCache() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.prefixes.trim(0)
}

// KVBlocks reports the KV cache's free and total blocks; the prefix cache's entries hold theirs until a step needs
// them. It waits for a running step.
func (e *Engine) KVBlocks() (free, total int64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cache.Blocks()
}

// admit rejects, before any compute, a request whose sequences or rows the plan does not cover: prompt[i] are the
// positions sequence i's prompt fills, extra the positions each may still add (new tokens), stepRows the most
// prompt rows one step runs, all sequences together.
func (e *Engine) admit(prompt []int, extra, stepRows int) error {
	r := e.Plan.Request
	if len(prompt) > r.MaxSequences {
		return fmt.Errorf("%w: %d sequences at once, the plan has %d (--batch)", bindings.ErrOverPlan, len(prompt), r.MaxSequences)
	}
	for _, n := range prompt {
		if int64(n+extra) > r.MaxContext {
			return fmt.Errorf("%w: context too long: %d prompt rows + %d new tokens > %d planned positions (--ctx)",
				bindings.ErrOverPlan, n, extra, r.MaxContext)
		}
	}
	if stepRows > r.MaxStepRows {
		return fmt.Errorf("%w: %d prompt rows in one step, the plan has %d", bindings.ErrOverPlan, stepRows, r.MaxStepRows)
	}
	return nil
}

// Close releases the model.
func (e *Engine) Close() error {
	e.ClearPrefixCache()
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
	// RowBoxes: the box (normalized xyxy) each <boxes> row's embedding encodes, by row — what the prefix cache keys
	// those rows by.
	RowBoxes map[int][4]float32
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
	// CachedRows: prompt rows a cached sequence already held (the prefix cache), not computed again.
	CachedRows int
}

// ErrEmptyPrompt marks a prepared prompt without rows.
var ErrEmptyPrompt = errors.New("empty prompt")

// Run prefills a prepared prompt and decodes (generate.py's contract): forced tokens first, <boxes> after every
// <at> (the core decodes the box and feeds it back), then greedy or sampled tokens until EOS, a stop string or
// MaxNewTokens; an <at> that is the last allowed token is still fed so it gets its box. stream, when not nil,
// receives text as it becomes final.
func (e *Engine) Run(ctx context.Context, p Prepared, g GenParams, stream func(delta string) error) (_ Result, err error) {
	if len(p.IDs) == 0 {
		return Result{}, ErrEmptyPrompt
	}
	if g.MaxNewTokens <= 0 {
		return Result{}, fmt.Errorf("max new tokens must be positive, got %d", g.MaxNewTokens)
	}
	g.Forced = append(append([]int32(nil), p.Forced...), g.Forced...)
	if err := e.admit([]int{len(p.IDs)}, g.MaxNewTokens, len(p.IDs)); err != nil {
		return Result{}, err
	}
	if err := e.slots.acquire(ctx, 1); err != nil {
		return Result{}, err
	}
	defer e.slots.release(1)
	e.batch.join()
	defer e.batch.leave()
	sampleAt := func(generated int) bool { return generated >= len(g.Forced) }
	prompt := bindings.StepInput{Tokens: p.IDs, Embeds: p.Embeds, EmbedRows: p.EmbedRows, Sample: sampleAt(0)}
	rows := e.prefixes.keys(prompt, e.Model.Hidden(), p.RowBoxes)
	seq, cached, out, err := e.prefill(prompt, rows, g.Sampling)
	if err != nil {
		return Result{}, err
	}
	res := Result{CachedRows: cached}
	defer func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if err != nil {
			seq.Close()
			return
		}
		fed := seq.Len() - len(rows)
		e.prefixes.put(seq, append(rows, e.prefixes.generatedKeys(res.Tokens, fed, int32(e.Dir.Config.AtTokenID),
			res.Locations)...))
	}()
	text := newTextStream(e.Tok, g.Stop, stream)
	next := out.Token
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
		outs, err := e.batchStep([]bindings.StepInput{in})
		if err != nil {
			return res, fmt.Errorf("decode step %d: %w", len(res.Tokens), err)
		}
		for i, b := range outs[0].Boxes {
			h := e.Model.Hidden()
			res.Locations = append(res.Locations, Location{TokenIndex: len(res.Tokens) - 1, Box: b,
				Hidden: outs[0].AtHidden[i*h : (i+1)*h]})
		}
		if full {
			res.Finish = FinishLength
			break
		}
		next = outs[0].Token
	}
	res.Text, err = text.finish()
	return res, err
}
