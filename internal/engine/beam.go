package engine

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/nextchat/nextchat/bindings"
)

// BeamParams configure beam search (NExT-Chat's demo default is 5 beams, MODEL_SPEC §2.4).
type BeamParams struct {
	Beams         int
	LengthPenalty float64 // scores are Σ log p / length^LengthPenalty (HF's length_penalty; 1 is the default)
}

// beam is one live hypothesis: its sequence in the cache (forks share blocks) and its own locations — unlike
// the reference, whose beam reordering mixes <at> states across beams (§2.3), each beam keeps its own.
type beam struct {
	seq       *bindings.Seq
	tokens    []int32
	logprob   float64
	locations []Location
	next      int32 // the token this beam feeds at the next step
}

type hypothesis struct {
	tokens    []int32
	locations []Location
	score     float64
}

// RunBeams decodes with beam search: forced tokens first (shared by all beams), then at each step every live
// beam proposes its best continuations; the best Beams of all are kept, a beam ending in EOS becomes a
// finished hypothesis. A beam that just fed <at> continues with <boxes> (probability 1: never chosen).
// Stops when Beams hypotheses are finished and no live beam can still beat the worst of them, or at
// MaxNewTokens. Returns the best hypothesis.
func (e *Engine) RunBeams(ctx context.Context, p Prepared, g GenParams, bp BeamParams) (Result, error) {
	if bp.Beams < 1 || len(p.IDs) == 0 || g.MaxNewTokens <= 0 {
		return Result{}, fmt.Errorf("beam search needs beams ≥ 1, a prompt and max new tokens > 0")
	}
	g.Forced = append(append([]int32(nil), p.Forced...), g.Forced...)
	// Every beam is a sequence of its own after the prefill, forked from the prompt's.
	positions := make([]int, bp.Beams)
	for i := range positions {
		positions[i] = len(p.IDs)
	}
	if err := e.admit(positions, g.MaxNewTokens, len(p.IDs)); err != nil {
		return Result{}, err
	}
	if err := e.slots.acquire(ctx, bp.Beams); err != nil {
		return Result{}, err
	}
	defer e.slots.release(bp.Beams)
	e.batch.join() // the prefill and every beam step are batched with other requests' steps
	defer e.batch.leave()
	prompt := bindings.StepInput{Tokens: p.IDs, Embeds: p.Embeds, EmbedRows: p.EmbedRows, Logits: true}
	root, cached, out, err := e.prefill(prompt, e.prefixes.keys(prompt, e.Model.Hidden(), p.RowBoxes), bindings.Greedy)
	if err != nil {
		return Result{}, err
	}
	live := []*beam{{seq: root}}
	logits := [][]float32{out.Logits}
	defer func() {
		e.closeSeqs(beamSeqs(live)...)
	}()
	var done []hypothesis
	eos := int32(e.Dir.Config.EOSTokenID)
	atID, boxesID := int32(e.Dir.Config.AtTokenID), int32(e.Dir.Config.BoxesTokenID)
	for step := 0; len(live) > 0 && step < g.MaxNewTokens; step++ {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		cands := candidates(live, logits, step, g.Forced, bp.Beams, atID, boxesID)
		next, ended, err := e.nextBeams(live, cands, bp.Beams, func(tokens []int32, c candidate) bool {
			return c.token == eos || (len(tokens) == g.MaxNewTokens && c.token != atID)
		})
		for _, h := range ended {
			h.score = normalized(h.score, len(h.tokens), bp.LengthPenalty)
			done = append(done, h)
		}
		live = next // the sequences to close from here on, whatever happens
		if err != nil {
			return Result{}, err
		}
		if len(live) == 0 || finished(done, live, bp) {
			break
		}
		inputs := make([]bindings.StepInput, len(live))
		for i, b := range live {
			inputs[i] = bindings.StepInput{Seq: b.seq, Tokens: []int32{b.next}, Logits: true}
			if b.next == atID {
				inputs[i].Locate = []bool{true}
			}
		}
		outs, err := e.batchStep(inputs)
		if err != nil {
			return Result{}, fmt.Errorf("beam step %d: %w", step, err)
		}
		logits = logits[:0]
		for i, o := range outs {
			h := e.Model.Hidden()
			for j, box := range o.Boxes {
				live[i].locations = append(live[i].locations, Location{TokenIndex: len(live[i].tokens) - 1, Box: box,
					Hidden: o.AtHidden[j*h : (j+1)*h]})
			}
			logits = append(logits, o.Logits)
		}
		if len(live[0].tokens) == g.MaxNewTokens { // only <at>-ended beams remain at the limit: they got their boxes
			for _, b := range live {
				done = append(done, hypothesis{b.tokens, b.locations, normalized(b.logprob, len(b.tokens), bp.LengthPenalty)})
			}
			break
		}
	}
	if len(done) == 0 {
		return Result{}, fmt.Errorf("beam search produced no hypothesis")
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].score > done[j].score })
	best := done[0]
	res := Result{Tokens: best.tokens, Locations: best.locations, Finish: FinishLength, CachedRows: cached}
	if best.tokens[len(best.tokens)-1] == eos {
		res.Finish = FinishEOS
	}
	res.Text, err = e.Tok.Decode(best.tokens, true)
	return res, err
}

// nextBeams keeps the best candidates as the next live beams (at most width; a candidate that ends — ends says —
// becomes a hypothesis instead, its score the raw log-probability for the caller to normalize) and closes the
// beams none continues: a beam's first
// continuation takes over its sequence, the others fork it. Under e.mu. On a failed fork the beams made so far are
// returned with the error; every sequence of live is then either closed or in them.
func (e *Engine) nextBeams(live []*beam, cands []candidate, width int, ends func([]int32, candidate) bool) (
	next []*beam, ended []hypothesis, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	forks := map[*beam]int{}
	for _, c := range cands {
		if len(next) == width {
			break
		}
		tokens := append(append([]int32(nil), c.parent.tokens...), c.token)
		if ends(tokens, c) {
			ended = append(ended, hypothesis{tokens, c.parent.locations, c.logprob})
			continue
		}
		seq := c.parent.seq
		if forks[c.parent]++; forks[c.parent] > 1 {
			if seq, err = c.parent.seq.Fork(); err != nil {
				break
			}
		}
		next = append(next, &beam{seq: seq, tokens: tokens, logprob: c.logprob,
			locations: append([]Location(nil), c.parent.locations...), next: c.token})
	}
	for _, b := range live {
		if forks[b] == 0 {
			b.seq.Close()
		}
	}
	return next, ended, err
}

func beamSeqs(beams []*beam) []*bindings.Seq {
	seqs := make([]*bindings.Seq, len(beams))
	for i, b := range beams {
		seqs[i] = b.seq
	}
	return seqs
}

type candidate struct {
	parent  *beam
	token   int32
	logprob float64
}

// candidates lists the continuations of every live beam, best first: the forced token while forcing, <boxes>
// after <at>, otherwise each beam's 2·beams most likely tokens.
func candidates(live []*beam, logits [][]float32, step int, forced []int32, beams int, atID, boxesID int32) []candidate {
	var out []candidate
	for i, b := range live {
		switch {
		case step < len(forced):
			out = append(out, candidate{b, forced[step], b.logprob})
		case len(b.tokens) > 0 && b.tokens[len(b.tokens)-1] == atID:
			out = append(out, candidate{b, boxesID, b.logprob})
		default:
			lp := logSoftmax(logits[i])
			for _, t := range topK(lp, 2*beams) {
				out = append(out, candidate{b, int32(t), b.logprob + lp[t]})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].logprob > out[j].logprob })
	return out
}

// finished: enough hypotheses, and no live beam's normalized score can still beat the worst of them.
func finished(done []hypothesis, live []*beam, bp BeamParams) bool {
	if len(done) < bp.Beams {
		return false
	}
	worst := math.Inf(1)
	for _, h := range done {
		worst = math.Min(worst, h.score)
	}
	for _, b := range live {
		if normalized(b.logprob, len(b.tokens), bp.LengthPenalty) > worst {
			return false
		}
	}
	return true
}

func normalized(logprob float64, length int, penalty float64) float64 {
	return logprob / math.Pow(float64(max(length, 1)), penalty)
}

func logSoftmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - mx)
	}
	lse := mx + math.Log(sum)
	out := make([]float64, len(logits))
	for i, l := range logits {
		out[i] = float64(l) - lse
	}
	return out
}

// topK returns the indices of the k largest values, largest first, ties by lower index.
func topK(v []float64, k int) []int {
	idx := make([]int, 0, k+1)
	for i, x := range v {
		if len(idx) == k && x <= v[idx[k-1]] {
			continue
		}
		j := sort.Search(len(idx), func(j int) bool { return v[idx[j]] < x })
		idx = append(idx, 0)
		copy(idx[j+1:], idx[j:])
		idx[j] = i
		if len(idx) > k {
			idx = idx[:k]
		}
	}
	return idx
}
