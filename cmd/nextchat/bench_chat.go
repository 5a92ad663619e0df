package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/prompt"
)

// The questions of benchChat: the second is asked about the same image after the first.
const (
	chatFirstQuestion    = "What is in the image?"
	chatFollowUpQuestion = "Where is the car on the left, and what colour is it?"
)

// benchChat measures what the prefix cache saves a conversation about one image, through the engine as a Go
// backend calls it: the time to the first answer token of a question with nothing cached (every prompt row
// prefilled), then of another question about the same image asked after it (the system prompt and image rows
// continued from the first request's sequence; only the question's rows prefilled). Random features stand in for
// the image (bench vision measures CLIP); the model directory needs its real tokenizer.
func benchChat(ctx context.Context, o benchOptions) (benchReport, error) {
	e, err := openBenchEngine(o, 2) // an answer streams while a cold question arrives
	if err != nil {
		return benchReport{}, err
	}
	defer e.Close()
	cfg := e.Config()
	rng := rand.New(rand.NewPCG(1, 2))
	image := func() []float32 {
		features := make([]float32, cfg.ImageTokens()*cfg.HiddenSize)
		for i := range features {
			features[i] = float32(rng.NormFloat64() * 0.02)
		}
		return features
	}
	askAbout := func(features []float32, q string) (engine.Prepared, error) {
		return e.Prepare(engine.Request{Turns: []prompt.Turn{{Role: prompt.User, Text: q}}, ImageFeatures: features})
	}
	features := image()
	ask := func(q string) (engine.Prepared, error) { return askAbout(features, q) }
	first, err := ask(chatFirstQuestion)
	if err != nil {
		return benchReport{}, err
	}
	followUp, err := ask(chatFollowUpQuestion)
	if err != nil {
		return benchReport{}, err
	}
	oneToken := engine.GenParams{MaxNewTokens: 1, Sampling: bindings.Greedy}
	answer := func(p engine.Prepared) (engine.Result, error) { return e.Run(ctx, p, oneToken, nil) }
	var cached int
	cold, err := timeRuns(ctx, o.repeat, func() error {
		e.ClearPrefixCache()
		_, err := answer(first)
		return err
	})
	if err != nil {
		return benchReport{}, err
	}
	warm, err := timeRunsAfter(ctx, o.repeat, func() error {
		e.ClearPrefixCache()
		_, err := answer(first)
		return err
	}, func() error {
		r, err := answer(followUp)
		cached = r.CachedRows
		return err
	})
	if err != nil {
		return benchReport{}, err
	}
	params, err := llmParams(cfg)
	if err != nil {
		return benchReport{}, err
	}
	report := func(name string, seconds []float64, rows, cachedRows int) (benchReport, error) {
		return finish(benchReport{Benchmark: name, Model: o.model, Synthetic: e.Dir.Headers[0].Metadata["nextchat.synthetic"] != "",
			Unit: "answer", ItemsPerRun: 1, RunSeconds: seconds, FLOPPerItem: 2 * params * float64(rows-cachedRows),
			KVDType: o.kvDType, Shape: map[string]int{"prompt_rows": rows, "cached_rows": cachedRows,
				"hidden": cfg.HiddenSize, "layers": cfg.NumHiddenLayers}}, o)
	}
	r, err := report("chat first question (time to first token, nothing cached)", cold, len(first.IDs), 0)
	if err != nil {
		return r, err
	}
	s, err := report("chat follow-up question (time to first token, prefix cached)", warm, len(followUp.IDs), cached)
	r.Stages = append(r.Stages, s)
	if err != nil {
		return r, err
	}
	gap, coldCached, err := benchArrival(ctx, o, e, first, func() (engine.Prepared, error) {
		return askAbout(image(), chatFirstQuestion)
	})
	if err != nil {
		return r, err
	}
	if s, err = report("chat cold question arriving while an answer streams (time to first token)", gap.RunSeconds,
		gap.ItemsPerRun, coldCached); err != nil {
		return r, err
	}
	s.LongestGapSeconds = gap.LongestGapSeconds
	r.Stages = append(r.Stages, s)
	for _, b := range o.batches {
		s, err := benchConcurrentAnswers(ctx, o, e, first, b)
		if err != nil {
			return r, err
		}
		s.Model, s.Synthetic, s.KVDType, s.FLOPPerItem = o.model, r.Synthetic, o.kvDType, 2*params
		s.Shape = map[string]int{"answers": b, "tokens_per_answer": o.steps, "hidden": cfg.HiddenSize,
			"layers": cfg.NumHiddenLayers}
		if s, err = finish(s, o); err != nil {
			return r, err
		}
		r.Stages = append(r.Stages, s)
	}
	return r, nil
}

// openBenchEngine opens the engine the chat and serve benchmarks measure: context 1024, KV --kv-dtype, prompts in
// chunks of --prefill-chunk, sequences for the largest of --batches and at least `sequences`.
func openBenchEngine(o benchOptions, sequences int) (*engine.Engine, error) {
	kv, err := bindings.ParseDType(o.kvDType)
	if err != nil {
		return nil, usageError("--kv-dtype: %v", err)
	}
	eo := engine.DefaultOptions()
	eo.Threads, eo.KVDType, eo.ContextTokens, eo.PrefillChunk = o.threads, kv, 1024, o.prefillChunk
	eo.MaxSequences, eo.LLMWeights = sequences, o.weights
	for _, b := range o.batches {
		if b < 1 {
			return nil, usageError("batch sizes must be ≥ 1")
		}
		eo.MaxSequences = max(eo.MaxSequences, b)
	}
	return engine.Open(o.model, eo)
}

// benchArrival measures what a cold question (a new image: nothing cached) costs an answer that is streaming: the
// answer (the first question, sampled, 48 tokens) starts, and after its 8th text delta the cold question arrives.
// The report holds the cold question's time to first token per run (ItemsPerRun: its prompt rows) and the longest
// gap between the streaming answer's deltas while it was prefilled (chunked: Options.PrefillChunk); cached is how
// many of its rows the prefix cache held (the system prompt's).
func benchArrival(ctx context.Context, o benchOptions, e *engine.Engine, streaming engine.Prepared,
	coldQuestion func() (engine.Prepared, error)) (r benchReport, cached int, err error) {
	stream := engine.GenParams{MaxNewTokens: 48, Sampling: bindings.Sampling{Temperature: 1, TopP: 1, RepetitionPenalty: 1}}
	for run := 0; run <= o.repeat; run++ {
		cold, err := coldQuestion()
		if err != nil {
			return r, 0, err
		}
		var (
			last, arrived time.Time
			longest       time.Duration
			deltas        int
			ttft          = make(chan time.Duration, 1)
			coldRes       = make(chan engine.Result, 1)
			coldErr       = make(chan error, 1)
		)
		last = time.Now()
		_, err = e.Run(ctx, streaming, stream, func(string) error {
			now := time.Now()
			if !arrived.IsZero() && now.Sub(last) > longest {
				longest = now.Sub(last)
			}
			last = now
			if deltas++; deltas == 8 {
				arrived = now
				go func() {
					start := time.Now()
					res, err := e.Run(ctx, cold, engine.GenParams{MaxNewTokens: 1, Sampling: bindings.Greedy}, nil)
					ttft <- time.Since(start)
					coldRes <- res
					coldErr <- err
				}()
			}
			return nil
		})
		if err != nil {
			return r, 0, err
		}
		if arrived.IsZero() {
			return r, 0, fmt.Errorf("the streaming answer ended after %d text deltas, before the cold question arrived", deltas)
		}
		seconds, res := (<-ttft).Seconds(), <-coldRes
		if err := <-coldErr; err != nil {
			return r, 0, err
		}
		cached = res.CachedRows // the system prompt's rows: the image is new
		// The first run is a warm-up.
		if run > 0 {
			r.RunSeconds = append(r.RunSeconds, seconds)
			r.LongestGapSeconds = max(r.LongestGapSeconds, longest.Seconds())
		}
		r.ItemsPerRun = len(cold.IDs)
	}
	return r, cached, nil
}

// benchConcurrentAnswers times `answers` calls of Run at once on one engine, each o.steps tokens after the cached
// prompt (greedy, the same question): the engine batches their steps, so the tokens per second grow with them as
// the batched decode of bench llm does.
func benchConcurrentAnswers(ctx context.Context, o benchOptions, e *engine.Engine, p engine.Prepared, answers int) (
	benchReport, error) {
	g := engine.GenParams{MaxNewTokens: o.steps, Sampling: bindings.Greedy}
	before := e.Stats()
	seconds, err := timeRuns(ctx, o.repeat, func() error {
		errs := make(chan error, answers)
		for range answers {
			go func() {
				_, err := e.Run(ctx, p, g, nil)
				errs <- err
			}()
		}
		var first error
		for range answers {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	})
	after := e.Stats()
	r := benchReport{Benchmark: fmt.Sprintf("chat %d concurrent answers (tokens/s, steps batched)", answers),
		Unit: "token", ItemsPerRun: answers * o.steps, RunSeconds: seconds}
	if steps := after.BatchedSteps - before.BatchedSteps; steps > 0 {
		r.MeanBatch = float64(after.BatchedSequences-before.BatchedSequences) / float64(steps)
	}
	return r, err
}
