package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/prompt"
)

// Decode rows that arrive while a batch runs wait and go together in the next one, which the first of them runs:
// one Model.Step for all, each row's output what it gets stepped alone.
func TestDecodeRowsWaitingTogetherShareOneStep(t *testing.T) {
	c, _ := goldenCase(t, "plain_greedy")
	e := openCase(t, c, bindings.F32)
	const n = 4
	seqs := make([][2]*bindings.Seq, n) // [batched, alone]
	for i := range seqs {
		for j := range seqs[i] {
			s, err := e.cache.NewSeq(bindings.Greedy)
			require.NoError(t, err)
			t.Cleanup(s.Close)
			_, err = e.Model.Step(e.cache, []bindings.StepInput{{Seq: s, Tokens: []int32{1, int32(100 + 7*i), 29871, 3}}})
			require.NoError(t, err)
			seqs[i][j] = s
		}
	}
	row := func(s *bindings.Seq, i int) bindings.StepInput {
		return bindings.StepInput{Seq: s, Tokens: []int32{int32(500 + i)}, Sample: true, Logits: true}
	}
	e.batch.mu.Lock()
	e.batch.running = true // as if another answer's batch were stepping
	e.batch.mu.Unlock()
	outs := make([]bindings.StepOutput, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []bindings.StepOutput
			if out, errs[i] = e.batchStep([]bindings.StepInput{row(seqs[i][0], i)}); errs[i] == nil {
				outs[i] = out[0]
			}
		}()
	}
	require.Eventually(t, func() bool {
		e.batch.mu.Lock()
		defer e.batch.mu.Unlock()
		return len(e.batch.pending) == n
	}, 10*time.Second, time.Millisecond)
	e.batch.mu.Lock()
	e.batch.pending[0].lead <- struct{}{} // that batch ends: the first waiting row runs the next
	e.batch.mu.Unlock()
	wg.Wait()
	assert.Equal(t, Stats{BatchedSteps: 1, BatchedSequences: n}, e.Stats())
	for i := range n {
		require.NoError(t, errs[i])
		alone, err := e.Model.Step(e.cache, []bindings.StepInput{row(seqs[i][1], i)})
		require.NoError(t, err)
		assert.Equal(t, alone[0].Token, outs[i].Token, "row %d", i)
		assert.InDeltaSlice(t, alone[0].Logits, outs[i].Logits, 1e-4, "row %d", i)
	}
	assert.False(t, e.batch.running, "the last batch found nothing waiting")
}

// A row the core refuses gets its own error; the rows batched with it still step.
func TestABadRowFailsAloneInItsBatch(t *testing.T) {
	c, _ := goldenCase(t, "plain_greedy")
	e := openCase(t, c, bindings.F32)
	good, err := e.cache.NewSeq(bindings.Greedy)
	require.NoError(t, err)
	t.Cleanup(good.Close)
	_, err = e.Model.Step(e.cache, []bindings.StepInput{{Seq: good, Tokens: []int32{1, 450}}})
	require.NoError(t, err)
	e.batch.mu.Lock()
	e.batch.running = true
	e.batch.mu.Unlock()
	var wg sync.WaitGroup
	var goodErr, badErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, goodErr = e.batchStep([]bindings.StepInput{{Seq: good, Tokens: []int32{3}, Sample: true}})
	}()
	go func() {
		defer wg.Done()
		_, badErr = e.batchStep([]bindings.StepInput{{Seq: good, Tokens: []int32{int32(e.Model.Vocab())}}})
	}()
	require.Eventually(t, func() bool {
		e.batch.mu.Lock()
		defer e.batch.mu.Unlock()
		return len(e.batch.pending) == 2
	}, 10*time.Second, time.Millisecond)
	e.batch.mu.Lock()
	e.batch.pending[0].lead <- struct{}{}
	e.batch.mu.Unlock()
	wg.Wait()
	assert.NoError(t, goodErr)
	require.ErrorIs(t, badErr, bindings.ErrInvalidArgument)
	assert.Contains(t, badErr.Error(), "outside the vocabulary")
	assert.Equal(t, 3, good.Len())
}

// Answers asked at once are stepped together (each batch waits briefly for the answers still taking in the last
// step's output) and each gets the tokens it gets alone.
func TestConcurrentAnswersAreBatched(t *testing.T) {
	c, g := goldenCase(t, "plain_greedy")
	e := openCase(t, c, bindings.F32, noPrefixCache)
	questions := []string{"What is in the image?", "Is there a dog?", "Describe the colours.", "Where is the sky?"}
	prepared := make([]Prepared, len(questions))
	gen := GenParams{MaxNewTokens: 12, Sampling: bindings.Greedy}
	want := make([][]int32, len(questions))
	for i, q := range questions {
		var err error
		prepared[i], err = e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: q}}, ImageFeatures: g["proj.out"].F32})
		require.NoError(t, err)
		r, err := e.Run(context.Background(), prepared[i], gen, nil)
		require.NoError(t, err)
		want[i] = r.Tokens
	}
	e.batch.wait = time.Minute // every batch waits for all answers in progress: the batching is not left to timing
	before := e.Stats()
	got := make([][]int32, len(questions))
	errs := make([]error, len(questions))
	var wg sync.WaitGroup
	for i := range questions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.Run(context.Background(), prepared[i], gen, nil)
			got[i], errs[i] = r.Tokens, err
		}()
	}
	wg.Wait()
	for i := range questions {
		require.NoError(t, errs[i])
		assert.Equal(t, want[i], got[i], questions[i])
	}
	after := e.Stats()
	steps, seqs := after.BatchedSteps-before.BatchedSteps, after.BatchedSequences-before.BatchedSequences
	assert.Equal(t, int64(len(questions)*12), seqs, "a prefill and 11 decode steps per answer")
	assert.GreaterOrEqual(t, float64(seqs)/float64(steps), 2.0, "%d sequences in %d steps", seqs, steps)
}

// While another request steps, a prompt is prefilled in chunks of PrefillChunk rows, each a batched step of its own,
// and the answer is the one a whole-prompt prefill gives.
func TestPromptsAreChunkedWhileOthersStep(t *testing.T) {
	c, g := goldenCase(t, "plain_greedy")
	const chunk = 16
	chunked := openCase(t, c, bindings.F32, noPrefixCache, func(o *Options) { o.PrefillChunk = chunk })
	whole := openCase(t, c, bindings.F32, noPrefixCache)
	p, err := whole.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: "What is in the image?"}},
		ImageFeatures: g["proj.out"].F32})
	require.NoError(t, err)
	gen := GenParams{MaxNewTokens: 6, Sampling: bindings.Greedy}
	want, err := whole.Run(context.Background(), p, gen, nil)
	require.NoError(t, err)
	assert.Equal(t, Stats{BatchedSteps: 6, BatchedSequences: 6}, whole.Stats(), "alone: one prefill step, five decode")

	chunked.batch.join() // another request in progress (it never sends a step: each batch waits 2 ms for it)
	got, err := chunked.Run(context.Background(), p, gen, nil)
	chunked.batch.leave()
	require.NoError(t, err)
	assert.Equal(t, want.Tokens, got.Tokens)
	chunks := int64((len(p.IDs) + chunk - 1) / chunk)
	assert.Equal(t, Stats{BatchedSteps: chunks + 5, BatchedSequences: chunks + 5}, chunked.Stats())
}

// Requests waiting for sequences are served in arrival order, and one that gives up lets the next in line go.
func TestSlotsAreServedInArrivalOrder(t *testing.T) {
	p := newSlotPool(3)
	require.NoError(t, p.acquire(context.Background(), 3))
	granted := make(chan string, 3)
	wait := func(name string, n int, ctx context.Context) {
		go func() {
			if err := p.acquire(ctx, n); err != nil {
				granted <- name + ": " + err.Error()
				return
			}
			granted <- name
		}()
		require.Eventually(t, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.queue) > 0 && p.queue[len(p.queue)-1].n == n
		}, 10*time.Second, time.Millisecond, name)
	}
	beams, cancelBeams := context.WithCancel(context.Background())
	wait("beams", 3, beams)
	wait("answer", 1, context.Background())
	p.release(2)
	select {
	case g := <-granted:
		t.Fatalf("%s was served before the beam search that waits first", g)
	case <-time.After(50 * time.Millisecond):
	}
	cancelBeams()
	assert.ElementsMatch(t, []string{"beams: waiting for 3 of the plan's 3 sequences: context canceled", "answer"},
		[]string{<-granted, <-granted}, "the next in line goes once the first gives up")
	p.release(1)
	p.release(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	assert.Equal(t, 3, p.free)
	assert.Empty(t, p.queue)
}

// Grounding's shared rows are chunked too while another request steps, with the boxes of a whole-prompt prefill.
func TestGroundingPrefixIsChunkedWhileOthersStep(t *testing.T) {
	c, g := goldenCase(t, "plain_greedy")
	const chunk = 16
	chunked := openCase(t, c, bindings.F32, noPrefixCache, func(o *Options) { o.PrefillChunk = chunk })
	whole := openCase(t, c, bindings.F32, noPrefixCache)
	exprs := []string{"the red circle", "the blue square"}
	want, err := whole.Ground(context.Background(), nil, g["proj.out"].F32, exprs)
	require.NoError(t, err)
	assert.Equal(t, Stats{BatchedSteps: 2, BatchedSequences: 3}, whole.Stats(), "the shared rows, then both expressions")

	chunked.batch.join() // another request in progress
	got, err := chunked.Ground(context.Background(), nil, g["proj.out"].F32, exprs)
	chunked.batch.leave()
	require.NoError(t, err)
	for i := range got {
		for j := range got[i].Box {
			assert.InDelta(t, want[i].Box[j], got[i].Box[j], 1e-5)
		}
	}
	steps := chunked.Stats().BatchedSteps
	assert.Greater(t, steps, int64(2), "the shared rows went in chunks")
}

// Preparing requests with region boxes (loc_encoder, which the core runs under the step's lock) while another answer
// steps fails neither: the boxes are encoded between steps, to the embeddings an idle engine gives.
func TestRegionsArePreparedWhileOthersStep(t *testing.T) {
	c, g := goldenCase(t, "region_caption")
	e := openCase(t, c, bindings.F32, noPrefixCache)
	req := request(t, c, g)
	want, err := e.Prepare(req)
	require.NoError(t, err)
	answer, err := e.Prepare(Request{Turns: []prompt.Turn{{Role: prompt.User, Text: "Tell a long story."}}})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(context.Background(), answer, GenParams{MaxNewTokens: 200, Sampling: bindings.Greedy}, nil)
		done <- err
	}()
	for prepared := 0; ; prepared++ {
		select {
		case err := <-done:
			require.NoError(t, err, "the answer's steps, with %d prepares meanwhile", prepared)
			assert.Positive(t, prepared)
			return
		default:
		}
		got, err := e.Prepare(req)
		require.NoError(t, err)
		require.Equal(t, want.Embeds, got.Embeds)
	}
}
