package engine

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/prompt"
	"github.com/nextchat/nextchat/internal/tokenizer"
)

// GroundingQuestion is NExT-Chat's referring-expression prompt (MODEL_SPEC §6.2, REC.json's first template).
const GroundingQuestion = "Where is %s in the image?"

// groundingAnswer is the start of the answer REC evaluation teacher-forces (generate_rec: "Answer: <at> <boxes> ."):
// the box is read at its <at>, so the rest is never needed.
const groundingAnswer = "Answer: <at>"

// Ground locates each expression in the image (the REC path, §6.2): every expression's prompt and the
// teacher-forced "Answer: <at>" are prefilled — the rows they all share once, their own rows in one batched step —
// and the <at> row's hidden state is decoded into the box. Deterministic: nothing is sampled. features, when not
// nil, replaces encoding the image (the caller already has them).
func (e *Engine) Ground(ctx context.Context, img *imageproc.RGB, features []float32, exprs []string) ([]Location, error) {
	if len(exprs) == 0 {
		return nil, fmt.Errorf("%w: no expression to ground", prompt.ErrBadPrompt)
	}
	var err error
	if features == nil {
		if img == nil {
			return nil, fmt.Errorf("%w: grounding needs an image", prompt.ErrBadPrompt)
		}
		if features, err = e.ImageFeatures(img); err != nil {
			return nil, err
		}
	}
	hidden := e.Model.Hidden()
	inputs := make([]bindings.StepInput, len(exprs))
	for i, expr := range exprs {
		p, err := e.Prepare(Request{Turns: groundingTurns(expr), ImageFeatures: features, AnswerPrefix: groundingAnswer})
		if err != nil {
			return nil, fmt.Errorf("expression %d: %w", i, err)
		}
		inputs[i] = groundingRows(p, hidden)
	}
	shared := sharedRows(inputs, hidden)
	if err := e.admit(groundingPositions(inputs), 0, groundingStepRows(inputs, shared)); err != nil {
		return nil, err
	}
	if err := e.slots.acquire(ctx, len(inputs)); err != nil {
		return nil, err
	}
	defer e.slots.release(len(inputs))
	e.batch.join() // both steps are batched with other requests' steps
	defer e.batch.leave()
	rows := e.prefixes.keys(inputs[0], hidden, nil) // the grounding prompt has no <boxes> row
	start, err := e.startGrounding(inputs, rows, shared)
	if err != nil {
		return nil, err
	}
	suffixes := make([]bindings.StepInput, len(inputs))
	for i, in := range inputs {
		suffixes[i] = rowsFrom(in, start, hidden)
	}
	out, err := e.batchStep(suffixes)
	if err != nil {
		e.closeSeqs(inputSeqs(inputs)...)
		return nil, fmt.Errorf("grounding step: %w", err)
	}
	e.mu.Lock()
	e.prefixes.put(inputs[0].Seq, rows)
	e.mu.Unlock()
	e.closeSeqs(inputSeqs(inputs[1:])...)
	locs := make([]Location, len(exprs))
	for i, o := range out {
		locs[i] = Location{TokenIndex: len(inputs[i].Tokens) - 1, Box: o.Boxes[0], Hidden: o.AtHidden}
	}
	return locs, nil
}

// GroundingNeeds is what grounding some expressions asks of a memory plan (the engine's Options).
type GroundingNeeds struct {
	Sequences int // one per expression
	Context   int // positions of the longest expression's sequence
	StepRows  int // rows of the larger of grounding's two steps
}

// PlanGrounding sizes a plan for grounding exprs on the model in dir: nothing is generated, so the context is the
// longest prompt, not the model's maximum, and the shared rows are prefilled once (Ground).
func PlanGrounding(dir string, exprs []string) (GroundingNeeds, error) {
	if len(exprs) == 0 {
		return GroundingNeeds{}, fmt.Errorf("%w: no expression to ground", prompt.ErrBadPrompt)
	}
	d, err := modeldir.Open(dir)
	if err != nil {
		return GroundingNeeds{}, err
	}
	tok, err := tokenizer.Load(d.TokenizerPath)
	if err != nil {
		return GroundingNeeds{}, err
	}
	inputs := make([]bindings.StepInput, len(exprs))
	for i, expr := range exprs {
		p, _, err := promptRows(tok, groundingTurns(expr), nil, d.Config.ImageTokens(), groundingAnswer)
		if err != nil {
			return GroundingNeeds{}, fmt.Errorf("expression %d: %w", i, err)
		}
		inputs[i] = bindings.StepInput{Tokens: append(p.IDs, p.Forced...)}
	}
	need := GroundingNeeds{Sequences: len(exprs), StepRows: groundingStepRows(inputs, sharedRows(inputs, 0))}
	for _, in := range inputs {
		need.Context = max(need.Context, len(in.Tokens))
	}
	return need, nil
}

func groundingTurns(expr string) []prompt.Turn {
	return []prompt.Turn{{Role: prompt.User, Text: fmt.Sprintf(GroundingQuestion, expr)}}
}

// startGrounding gives every input its sequence and returns the row their own step starts from. The first input's
// continues a cached sequence holding its first rows where there is one (the prefix cache; rows are its keys).
// The rows all expressions share (the system prompt, the image, the question's first words) are prefilled once in
// it and it is forked for the others: its cache blocks are shared, not recomputed (the last partial block is copied
// on the first write). Prefill attends to what the KV cache holds either way, so the boxes are those of one
// prefill per expression.
func (e *Engine) startGrounding(inputs []bindings.StepInput, rows []rowKey, shared int) (int, error) {
	limit := shared
	if len(inputs) == 1 {
		limit = len(rows) - 1
	}
	e.mu.Lock()
	root, cached, err := e.startSequence(rows, limit, bindings.Greedy)
	e.mu.Unlock()
	if err != nil {
		return 0, err
	}
	inputs[0].Seq = root
	start := max(shared, cached)
	if start > cached {
		if _, err := e.prefillRows(inputs[0], cached, start); err != nil {
			e.closeSeqs(root)
			return 0, fmt.Errorf("grounding prefix: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := 1; i < len(inputs); i++ {
		if start > 0 {
			inputs[i].Seq, err = root.Fork()
		} else {
			inputs[i].Seq, err = e.cache.NewSeq(bindings.Greedy)
		}
		if err != nil {
			for _, in := range inputs[:i] {
				in.Seq.Close()
			}
			return 0, err
		}
	}
	return start, nil
}

// sharedRows is how many leading rows every input has in common — the same token, and the same embedding where
// one replaces it — when there are several inputs; each keeps at least its last row (the located <at>).
func sharedRows(inputs []bindings.StepInput, hidden int) int {
	if len(inputs) < 2 {
		return 0
	}
	n := len(inputs[0].Tokens) - 1
	for _, in := range inputs[1:] {
		n = min(n, len(in.Tokens)-1)
	}
	first := inputs[0]
	for r := 0; r < n; r++ {
		for _, in := range inputs[1:] {
			if !sameRow(first, in, r, hidden) {
				return r
			}
		}
	}
	return n
}

func sameRow(a, b bindings.StepInput, r, hidden int) bool {
	if a.Tokens[r] != b.Tokens[r] {
		return false
	}
	ea, eb := embedsRow(a, r), embedsRow(b, r)
	if ea != eb {
		return false
	}
	if !ea {
		return true
	}
	// Bitwise, so that rows holding a NaN still count as the same.
	return slices.EqualFunc(a.Embeds[r*hidden:(r+1)*hidden], b.Embeds[r*hidden:(r+1)*hidden],
		func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// embedsRow: whether row r's embedding replaces its token's.
func embedsRow(in bindings.StepInput, r int) bool {
	return in.Embeds != nil && (in.EmbedRows == nil || in.EmbedRows[r])
}

// rowsFrom is the input's rows from row `from` on, for the same sequence.
func rowsFrom(in bindings.StepInput, from, hidden int) bindings.StepInput {
	return rowsBetween(in, from, len(in.Tokens), hidden)
}

// rowsBetween is the input's rows [from, to) for the same sequence; what it asks of the last row (a sampled token,
// logits) only when that row is among them.
func rowsBetween(in bindings.StepInput, from, to, hidden int) bindings.StepInput {
	out := bindings.StepInput{Seq: in.Seq, Tokens: in.Tokens[from:to]}
	if to == len(in.Tokens) {
		out.Sample, out.Logits = in.Sample, in.Logits
	}
	if in.Locate != nil {
		out.Locate = in.Locate[from:to]
	}
	if in.Embeds != nil {
		out.Embeds = in.Embeds[from*hidden : to*hidden]
		if in.EmbedRows != nil {
			out.EmbedRows = in.EmbedRows[from:to]
		}
	}
	return out
}

// groundingPositions: every expression's sequence holds its whole prompt.
func groundingPositions(inputs []bindings.StepInput) []int {
	n := make([]int, len(inputs))
	for i, in := range inputs {
		n[i] = len(in.Tokens)
	}
	return n
}

// groundingStepRows is the larger of grounding's two steps: the shared rows once, then every expression's own.
func groundingStepRows(inputs []bindings.StepInput, shared int) int {
	own := 0
	for _, in := range inputs {
		own += len(in.Tokens) - shared
	}
	return max(shared, own)
}

// groundingRows appends the forced answer to the prompt rows and marks its final <at> for decoding.
func groundingRows(p Prepared, hidden int) bindings.StepInput {
	ids := append(append([]int32(nil), p.IDs...), p.Forced...)
	in := bindings.StepInput{Tokens: ids, Locate: make([]bool, len(ids))}
	in.Locate[len(ids)-1] = true
	if p.Embeds != nil {
		in.Embeds = append(p.Embeds, make([]float32, len(p.Forced)*hidden)...)
		in.EmbedRows = append(p.EmbedRows, make([]bool, len(p.Forced))...)
	}
	return in
}

func inputSeqs(inputs []bindings.StepInput) []*bindings.Seq {
	seqs := make([]*bindings.Seq, len(inputs))
	for i, in := range inputs {
		seqs[i] = in.Seq
	}
	return seqs
}
