package engine

import (
	"context"
	"fmt"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/prompt"
)

// GroundingQuestion is NExT-Chat's referring-expression prompt (MODEL_SPEC §6.2, REC.json's first template).
const GroundingQuestion = "Where is %s in the image?"

// groundingAnswer is the start of the answer REC evaluation teacher-forces (generate_rec: "Answer: <at> <boxes> ."):
// the box is read at its <at>, so the rest is never needed.
const groundingAnswer = "Answer: <at>"

// Ground locates each expression in the image (the REC path, §6.2): for every expression the prompt and the
// teacher-forced "Answer: <at>" go through one prefill — all expressions in one batched step — and the <at>
// row's hidden state is decoded into the box. Deterministic: nothing is sampled. features, when not nil,
// replaces encoding the image (the caller already has them).
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
	inputs := make([]bindings.StepInput, len(exprs))
	for i, expr := range exprs {
		p, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: fmt.Sprintf(GroundingQuestion, expr)}},
			ImageFeatures: features, AnswerPrefix: groundingAnswer})
		if err != nil {
			return nil, fmt.Errorf("expression %d: %w", i, err)
		}
		inputs[i] = groundingRows(p, e.Model.Hidden())
	}
	rows := make([]int, len(inputs))
	for i, in := range inputs {
		rows[i] = len(in.Tokens)
	}
	if err := e.admit(rows, 0); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range inputs {
		if inputs[i].Seq, err = e.cache.NewSeq(bindings.Greedy); err != nil {
			closeSeqs(inputs[:i])
			return nil, err
		}
	}
	defer closeSeqs(inputs)
	out, err := e.Model.Step(e.cache, inputs)
	if err != nil {
		return nil, fmt.Errorf("grounding step: %w", err)
	}
	locs := make([]Location, len(exprs))
	for i, o := range out {
		locs[i] = Location{TokenIndex: len(inputs[i].Tokens) - 1, Box: o.Boxes[0], Hidden: o.AtHidden}
	}
	return locs, nil
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

func closeSeqs(inputs []bindings.StepInput) {
	for _, in := range inputs {
		if in.Seq != nil {
			in.Seq.Close()
		}
	}
}
