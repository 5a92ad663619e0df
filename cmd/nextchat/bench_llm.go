package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
)

// benchLLM measures the language model on the CPU: prefill of a random prompt (compute-bound: % of the FMA
// peak), then decode steps with the KV cache at each batch size, greedy or sampled (--temperature: sampling's own
// cost, one sampler per sequence, is part of a production step). A batch-1 decode step reads every LLM
// matrix once (of embed_tokens one row), so its bytes per second are compared with the read bandwidth measured
// in the same run.
func benchLLM(ctx context.Context, o benchOptions) (benchReport, error) {
	kv, err := bindings.ParseDType(o.kvDType)
	if err != nil {
		return benchReport{}, usageError("--kv-dtype: %v", err)
	}
	sampling, describe := bindings.Greedy, "greedy"
	if o.temperature != 0 || o.topK != 0 || o.topP != 1 {
		sampling = bindings.Sampling{Temperature: o.temperature, TopK: o.topK, TopP: o.topP, RepetitionPenalty: 1}
		describe = fmt.Sprintf("temperature %g, top-k %d, top-p %g", o.temperature, o.topK, o.topP) // the core checks them
	}
	d, m, err := openBenchModel(o)
	if err != nil {
		return benchReport{}, err
	}
	defer m.Close()
	cfg := d.Config
	maxBatch := 1
	for _, b := range o.batches {
		if b < 1 {
			return benchReport{}, usageError("batch sizes must be ≥ 1")
		}
		maxBatch = max(maxBatch, b)
	}
	positions := max(o.tokens, 16+o.steps*(o.repeat+1)+1)
	cache, err := m.NewCache(16, int64(maxBatch*(positions/16+2)+positions/16+2), kv)
	if err != nil {
		return benchReport{}, err
	}
	defer cache.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = 3 + rng.Int32N(31000)
		}
		return out
	}
	params, err := llmParams(cfg)
	if err != nil {
		return benchReport{}, err
	}
	mem, err := m.Memory(kv)
	if err != nil {
		return benchReport{}, err
	}
	var embedBytes float64 // embed_tokens: a decode step reads one row of it, not all
	for _, t := range d.Tensors {
		if t.Name == "model.embed_tokens.weight" {
			embedBytes = float64(t.End - t.Begin)
		}
	}
	shape := map[string]int{"hidden": cfg.HiddenSize, "layers": cfg.NumHiddenLayers, "vocab": cfg.VocabSize}

	prefill := benchReport{Benchmark: "llm prefill", Model: d.Path, Unit: "token", ItemsPerRun: o.tokens,
		FLOPPerItem: 2 * params, Shape: shape, Synthetic: d.Headers[0].Metadata["nextchat.synthetic"] != ""}
	if prefill.RunSeconds, err = timeRuns(ctx, o.repeat, func() error {
		seq, err := cache.NewSeq(bindings.Greedy)
		if err != nil {
			return err
		}
		defer seq.Close()
		_, err = m.Step(cache, []bindings.StepInput{{Seq: seq, Tokens: ids(o.tokens), Sample: true}})
		return err
	}); err != nil {
		return benchReport{}, err
	}
	if prefill, err = finish(prefill, o); err != nil {
		return benchReport{}, err
	}
	bandwidth, err := bindings.ReadBandwidth(o.threads, time.Duration(o.probeSeconds*float64(time.Second)))
	if err != nil {
		return benchReport{}, err
	}
	for _, batch := range o.batches {
		r, err := benchDecode(ctx, o, m, cache, batch, ids, sampling)
		if err != nil {
			return benchReport{}, err
		}
		r.Model, r.Shape, r.FLOPPerItem, r.KVDType, r.Sampling = d.Path, shape, 2*params, o.kvDType, describe
		if r, err = finish(r, o); err != nil {
			return benchReport{}, err
		}
		// Per step every matrix is read once for the whole batch, plus each sequence's cached keys and values.
		stepBytes := float64(mem.WeightBytes[bindings.ComponentLLM]) - embedBytes + float64(batch)*float64(mem.KVBytesPerToken)*16
		r.BytesPerItem = stepBytes / float64(batch)
		r.GBPerSecond = r.ItemsPerSecond * r.BytesPerItem / 1e9
		r.ReadBandwidthGBps = bandwidth
		r.PercentOfBandwidth = 100 * r.GBPerSecond / bandwidth
		prefill.Stages = append(prefill.Stages, r)
	}
	prefill.Benchmark, prefill.KVDType = "llm", o.kvDType
	return prefill, nil
}

// benchDecode prefills `batch` sequences with 16 tokens, then times o.steps decode steps over all of them, each
// sequence choosing its tokens by `sampling` (seeded by its index).
func benchDecode(ctx context.Context, o benchOptions, m *bindings.Model, cache *bindings.Cache, batch int,
	ids func(int) []int32, sampling bindings.Sampling) (benchReport, error) {
	seqs := make([]*bindings.Seq, batch)
	inputs := make([]bindings.StepInput, batch)
	for i := range seqs {
		sampling.Seed = uint64(i)
		s, err := cache.NewSeq(sampling)
		if err != nil {
			return benchReport{}, err
		}
		defer s.Close()
		seqs[i] = s
		inputs[i] = bindings.StepInput{Seq: s, Tokens: ids(16), Sample: true}
	}
	out, err := m.Step(cache, inputs)
	if err != nil {
		return benchReport{}, err
	}
	r := benchReport{Benchmark: fmt.Sprintf("llm decode batch %d", batch), Unit: "token", ItemsPerRun: batch * o.steps}
	r.RunSeconds, err = timeRuns(ctx, o.repeat, func() error {
		for range o.steps {
			for i := range inputs {
				inputs[i] = bindings.StepInput{Seq: seqs[i], Tokens: []int32{out[i].Token}, Sample: true}
			}
			if out, err = m.Step(cache, inputs); err != nil {
				return err
			}
		}
		return nil
	})
	return r, err
}

// llmParams counts the language model's matrix parameters a token multiplies (embed_tokens is a lookup).
func llmParams(cfg config.Config) (float64, error) {
	spec, err := bindings.Spec(cfg)
	if err != nil {
		return 0, err
	}
	var params float64
	for _, t := range spec {
		if t.Component.String() == "llm" && t.Name != "model.embed_tokens.weight" {
			params += float64(t.NumElements())
		}
	}
	return params, nil
}
