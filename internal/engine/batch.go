package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nextchat/nextchat/bindings"
)

// slotPool counts the plan's sequences (MaxSequences) among the requests that run at once: a request takes the
// sequences it needs (one answer, its beams, its expressions) before it starts and gives them back when it ends, so
// their KV blocks and bookkeeping are always within the plan. Requests that must wait are served in arrival order:
// a beam search waiting for four sequences is not overtaken by the single answers arriving after it.
type slotPool struct {
	mu    sync.Mutex
	free  int
	total int
	queue []*slotWaiter // waiting requests, oldest first
}

type slotWaiter struct {
	n       int
	granted chan struct{} // closed when its sequences are taken for it
}

func newSlotPool(n int) *slotPool {
	return &slotPool{free: n, total: n}
}

func (p *slotPool) acquire(ctx context.Context, n int) error {
	p.mu.Lock()
	if len(p.queue) == 0 && p.free >= n {
		p.free -= n
		p.mu.Unlock()
		return nil
	}
	w := &slotWaiter{n: n, granted: make(chan struct{})}
	p.queue = append(p.queue, w)
	p.mu.Unlock()
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.granted: // granted meanwhile: give them back
		p.free += n
	default:
		for i, q := range p.queue {
			if q == w {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
	}
	p.grant() // the next in line may fit now
	return fmt.Errorf("waiting for %d of the plan's %d sequences: %w", n, p.total, ctx.Err())
}

func (p *slotPool) release(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free += n
	p.grant()
}

// usage is the sequences taken and the requests waiting for theirs.
func (p *slotPool) usage() (taken, waiting int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total - p.free, len(p.queue)
}

// grant serves the waiting requests in order while the oldest fits.
func (p *slotPool) grant() {
	for len(p.queue) > 0 && p.free >= p.queue[0].n {
		w := p.queue[0]
		p.queue = p.queue[1:]
		p.free -= w.n
		close(w.granted)
	}
}

// stepCall is one request's part of a step (its sequences' rows) waiting for a batched step.
type stepCall struct {
	in   []bindings.StepInput
	out  []bindings.StepOutput
	err  error
	done chan struct{} // closed once out and err are set
	lead chan struct{} // receives when this call is to run the next batch
}

// batcher merges the steps of concurrent requests — answers' prompts past their cached rows and decode rows, beam
// steps, grounding steps — into one Model.Step: a step reads every weight once for all its rows, so requests
// stepping together cost little more than one (docs/ARCHITECTURE.md "Batching"). Whoever finds no batch running
// runs one with the calls pending once every member's is there or b.wait has passed (as many as the plan's rows
// per step take); calls arriving meanwhile wait, and the first of them runs the next batch.
type batcher struct {
	mu      sync.Mutex
	pending []*stepCall
	running bool
	// members are the requests between their start and their end, which each step (their next call is on its way
	// while they take in the last output and stream it); arrived wakes a batch waiting for them.
	members int
	arrived chan struct{}
	wait    time.Duration // batchWait (tests lengthen it)
	steps   int64         // batched steps run, and the sequences they held (Stats)
	seqs    int64
}

// batchWait bounds how long a batch waits for members still taking in the previous step's output: microseconds
// when they only record a token, up to this when a stream callback is slow.
const batchWait = 2 * time.Millisecond

func newBatcher() *batcher { return &batcher{arrived: make(chan struct{}, 1), wait: batchWait} }

// join and leave bracket a request's steps.
func (b *batcher) join() {
	b.mu.Lock()
	b.members++
	b.mu.Unlock()
}

func (b *batcher) leave() {
	b.mu.Lock()
	b.members--
	b.mu.Unlock()
	b.signal()
}

// others: whether requests besides the caller (a member) are stepping.
func (b *batcher) others() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.members > 1
}

func (b *batcher) signal() {
	select {
	case b.arrived <- struct{}{}:
	default:
	}
}

// gather waits until every member's call is pending or b.wait has passed; it returns with b.mu held.
func (b *batcher) gather() {
	deadline := time.NewTimer(b.wait)
	defer deadline.Stop()
	b.mu.Lock()
	for len(b.pending) < b.members {
		b.mu.Unlock()
		select {
		case <-b.arrived:
			b.mu.Lock()
		case <-deadline.C:
			b.mu.Lock()
			return
		}
	}
}

// batchStep runs in as one request's part of the next batched step and returns its outputs.
func (e *Engine) batchStep(in []bindings.StepInput) ([]bindings.StepOutput, error) {
	c := &stepCall{in: in, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	b := e.batch
	b.mu.Lock()
	b.pending = append(b.pending, c)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	b.signal()
	if !lead {
		select {
		case <-c.done:
			return c.out, c.err
		case <-c.lead:
		}
	}
	for {
		e.runBatch()
		select {
		case <-c.done:
			return c.out, c.err
		case <-c.lead: // its rows did not fit the batch it ran: it runs the next one too
		}
	}
}

// runBatch steps every pending row, then hands the next batch to the first row that arrived meanwhile.
func (e *Engine) runBatch() {
	b := e.batch
	b.gather()
	n, rows := 0, 0
	for n < len(b.pending) && (n == 0 || rows+callRows(b.pending[n]) <= e.Plan.Request.MaxStepRows) {
		rows += callRows(b.pending[n])
		n++
	}
	calls := b.pending[:n:n]
	b.pending = b.pending[n:]
	var inputs []bindings.StepInput
	for _, c := range calls {
		inputs = append(inputs, c.in...)
	}
	b.steps++
	b.seqs += int64(len(inputs))
	b.mu.Unlock()
	e.mu.Lock()
	outs, err := e.step(inputs)
	if err != nil && len(calls) > 1 {
		// The core checks a step before any compute, so nothing ran: step each call alone to give each its own error.
		for _, c := range calls {
			c.out, c.err = e.step(c.in)
		}
	}
	e.mu.Unlock()
	first := 0
	for _, c := range calls {
		switch {
		case err == nil:
			c.out = outs[first : first+len(c.in)]
		case len(calls) == 1:
			c.err = err
		}
		first += len(c.in)
		close(c.done)
	}
	b.mu.Lock()
	if len(b.pending) > 0 {
		b.pending[0].lead <- struct{}{}
	} else {
		b.running = false
	}
	b.mu.Unlock()
}

func callRows(c *stepCall) int {
	n := 0
	for _, in := range c.in {
		n += len(in.Tokens)
	}
	return n
}

// Stats are the engine's counters since it opened.
type Stats struct {
	BatchedSteps     int64 // steps run for requests: prefills past the cached rows, decode and beam steps, grounding
	BatchedSequences int64 // the sequences they held: BatchedSequences / BatchedSteps is the mean batch
	// Now: the plan's sequences running requests hold, and the requests waiting for theirs.
	SequencesTaken, RequestsWaiting int
}

// Stats reads the counters.
func (e *Engine) Stats() Stats {
	taken, waiting := e.slots.usage()
	e.batch.mu.Lock()
	defer e.batch.mu.Unlock()
	return Stats{BatchedSteps: e.batch.steps, BatchedSequences: e.batch.seqs, SequencesTaken: taken,
		RequestsWaiting: waiting}
}
