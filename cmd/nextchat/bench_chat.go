package main

import (
	"context"
	"math/rand/v2"

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
	kv, err := bindings.ParseDType(o.kvDType)
	if err != nil {
		return benchReport{}, usageError("--kv-dtype: %v", err)
	}
	eo := engine.DefaultOptions()
	eo.Threads, eo.KVDType, eo.ContextTokens = o.threads, kv, 1024
	e, err := engine.Open(o.model, eo)
	if err != nil {
		return benchReport{}, err
	}
	defer e.Close()
	cfg := e.Config()
	rng := rand.New(rand.NewPCG(1, 2))
	features := make([]float32, cfg.ImageTokens()*cfg.HiddenSize)
	for i := range features {
		features[i] = float32(rng.NormFloat64() * 0.02)
	}
	ask := func(q string) (engine.Prepared, error) {
		return e.Prepare(engine.Request{Turns: []prompt.Turn{{Role: prompt.User, Text: q}}, ImageFeatures: features})
	}
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
	return r, err
}
