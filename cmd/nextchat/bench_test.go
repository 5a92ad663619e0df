package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// benchTiny generates a tiny synthetic checkpoint (gen's extra flags appended) with a stand-in tokenizer file, for
// the benchmarks, which never tokenize.
func benchTiny(t *testing.T, gen ...string) string {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "tokenizer.model")
	require.NoError(t, os.WriteFile(tok, []byte("stand-in"), 0o644))
	dir := filepath.Join(t.TempDir(), "tiny")
	code, _, stderr := runCLI(append([]string{"gen", "--config", "tiny", "--tokenizer", tok, "--out", dir}, gen...)...)
	require.Equal(t, 0, code, stderr)
	return dir
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--model", "x"}, "needs one benchmark name"},
		{[]string{"bench", "nope", "--model", "x"}, `unknown benchmark "nope"`},
		{[]string{"bench", "vision"}, "needs --model"},
		{[]string{"bench", "vision", "--model", "x", "--images", "0"}, "--images ≥ 1"},
		{[]string{"bench", "sam", "--model", "x", "--compact-weights"}, "--llm-weights and --compact-weights apply to the llm, chat and serve"},
		{[]string{"bench", "vision", "--model", "x", "--llm-weights", "int8"}, "--llm-weights and --compact-weights apply to the llm, chat and serve"},
		{[]string{"bench", "llm", "--model", "x", "--llm-weights", "int4"}, `unknown LLM weights "int4" (want stored, compact or int8)`},
		{[]string{"bench", "llm", "--model", "x", "--llm-weights", "int8", "--compact-weights"}, "--compact-weights and --llm-weights int8 ask for different weights"},
	} {
		code, _, stderr := runCLI(tc.args...)
		assert.Equal(t, 2, code, tc.args)
		assert.Contains(t, stderr, tc.want, tc.args)
	}
}

// The vision benchmark on the tiny preset: the report's rates follow from its runs and its FLOP count from the
// config (tiny: CLIP 32 wide, MLP 80, 3 layers of which 2 run, 16 patches of 14²; LLM width 64).
func TestBenchVisionOnTiny(t *testing.T) {
	dir := benchTiny(t)
	code, out, stderr := runCLI("bench", "vision", "--model", dir, "--images", "3", "--repeat", "2", "--threads", "2",
		"--probe-seconds", "0.05", "--json")
	require.Equal(t, 0, code, stderr)
	var r benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "vision", r.Benchmark)
	assert.True(t, r.Synthetic)
	assert.Equal(t, 2, r.Threads)
	assert.Equal(t, 3, r.ItemsPerRun)
	require.Len(t, r.RunSeconds, 2)
	P, D, I, H, T := 16.0, 32.0, 80.0, 64.0, 17.0
	want := 2*P*3*14*14*D + 2*(2*T*D*D*4+2*T*D*I*2+2*T*T*D*2) + 2*P*D*H + 2*P*H*H
	assert.Equal(t, 2, r.Shape["vision_layers"])
	assert.InDelta(t, want, r.FLOPPerItem, 1)
	assert.Greater(t, r.ItemsPerSecond, 0.0)
	assert.InDelta(t, r.ItemsPerSecond*r.FLOPPerItem/1e9, r.GFLOPS, 1e-9)
	assert.InDelta(t, 100*r.GFLOPS/r.FMAPeakGFLOPS, r.PercentOfPeak, 1e-9)

	code, out, stderr = runCLI("bench", "vision", "--model", dir, "--images", "1", "--repeat", "1", "--probe-seconds", "0.05")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "of the FMA peak")
}

// The LLM benchmark on the tiny preset, with the CLI's default KV dtype: prefill and one report per decode batch,
// each memory-bound rate against the bandwidth measured in the run; an unknown KV dtype is a usage error.
func TestBenchLLMOnTiny(t *testing.T) {
	dir := benchTiny(t)
	code, out, stderr := runCLI("bench", "llm", "--model", dir, "--prompt-tokens", "24", "--steps", "2", "--batches",
		"1,3", "--repeat", "2", "--threads", "2", "--probe-seconds", "0.05", "--kv-dtype", "f16", "--json")
	require.Equal(t, 0, code, stderr)
	var r benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "llm", r.Benchmark)
	assert.Equal(t, "f16", r.KVDType)
	assert.Equal(t, 24, r.ItemsPerRun)
	require.Len(t, r.RunSeconds, 2)
	assert.InDelta(t, 24/min(r.RunSeconds[0], r.RunSeconds[1]), r.ItemsPerSecond, 1e-6)
	require.Len(t, r.Stages, 2)
	for i, batch := range []int{1, 3} {
		s := r.Stages[i]
		assert.Equal(t, fmt.Sprintf("llm decode batch %d", batch), s.Benchmark)
		assert.Equal(t, "f16", s.KVDType)
		assert.Equal(t, 2*batch, s.ItemsPerRun)
		assert.Greater(t, s.BytesPerItem, 0.0)
		assert.InDelta(t, s.ItemsPerSecond*s.BytesPerItem/1e9, s.GBPerSecond, 1e-9)
		assert.InDelta(t, 100*s.GBPerSecond/s.ReadBandwidthGBps, s.PercentOfBandwidth, 1e-9)
	}

	// Sampled decode: every stage says how it chose its tokens; a bad sampling parameter is refused by the core.
	code, out, stderr = runCLI("bench", "llm", "--model", dir, "--prompt-tokens", "8", "--steps", "2", "--batches", "2",
		"--repeat", "1", "--probe-seconds", "0.05", "--temperature", "0.8", "--top-p", "0.9", "--top-k", "7", "--json")
	require.Equal(t, 0, code, stderr)
	var sampled benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &sampled))
	require.Len(t, sampled.Stages, 1)
	assert.Equal(t, "temperature 0.8, top-k 7, top-p 0.9", sampled.Stages[0].Sampling)
	assert.Equal(t, "greedy", r.Stages[0].Sampling)
	code, _, stderr = runCLI("bench", "llm", "--model", dir, "--temperature", "0.8", "--top-p", "1.5")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "top_p must be in (0, 1]")

	// The tiny checkpoint is float32: compact weights (bf16 only) are refused, not silently skipped.
	code, _, stderr = runCLI("bench", "llm", "--model", dir, "--compact-weights")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "compact LLM weights re-code bf16 matrices")

	code, _, stderr = runCLI("bench", "llm", "--model", dir, "--kv-dtype", "int8")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `--kv-dtype: unknown dtype "int8"`)
}

// The chat benchmark on the tiny preset with the real tokenizer: the follow-up question continues the first one's
// cached system prompt and image rows, so its report counts only the question's rows as work.
func TestBenchChatOnTiny(t *testing.T) {
	dir := realTokenizerModel(t)
	code, out, stderr := runCLI("bench", "chat", "--model", dir, "--repeat", "2", "--threads", "2",
		"--probe-seconds", "0.05", "--steps", "5", "--batches", "1,3", "--json")
	require.Equal(t, 0, code, stderr)
	var r benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "chat first question (time to first token, nothing cached)", r.Benchmark)
	assert.Equal(t, 0, r.Shape["cached_rows"])
	require.Len(t, r.RunSeconds, 2)
	require.Len(t, r.Stages, 4)
	follow := r.Stages[0]
	assert.Equal(t, "chat follow-up question (time to first token, prefix cached)", follow.Benchmark)
	rows, cached := follow.Shape["prompt_rows"], follow.Shape["cached_rows"]
	assert.Greater(t, cached, 16, "the tiny preset's 16 image rows and the system prompt are cached")
	assert.Less(t, cached, rows)
	assert.InDelta(t, r.FLOPPerItem/float64(r.Shape["prompt_rows"])*float64(rows-cached), follow.FLOPPerItem, 1)
	arrival := r.Stages[1]
	assert.Equal(t, "chat cold question arriving while an answer streams (time to first token)", arrival.Benchmark)
	require.Len(t, arrival.RunSeconds, 2)
	assert.Greater(t, arrival.LongestGapSeconds, 0.0)
	assert.Equal(t, r.Shape["prompt_rows"], arrival.Shape["prompt_rows"], "the same question about another image")
	assert.Less(t, arrival.Shape["cached_rows"], 50, "only the system prompt: the image is new")
	for i, answers := range []int{1, 3} {
		s := r.Stages[2+i]
		assert.Equal(t, fmt.Sprintf("chat %d concurrent answers (tokens/s, steps batched)", answers), s.Benchmark)
		assert.Equal(t, answers*5, s.ItemsPerRun)
		assert.GreaterOrEqual(t, s.MeanBatch, 1.0)
		assert.LessOrEqual(t, s.MeanBatch, float64(answers))
	}

	code, _, stderr = runCLI("bench", "chat", "--model", benchTiny(t))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "tokenizer")
}

// The serve benchmark on the tiny preset: per batch size, the answers streamed over HTTP and the same answers
// through the engine, both counting every client's tokens.
func TestBenchServeOnTiny(t *testing.T) {
	dir := realTokenizerModel(t)
	code, out, stderr := runCLI("bench", "serve", "--model", dir, "--repeat", "2", "--threads", "2",
		"--probe-seconds", "0.05", "--steps", "5", "--batches", "1,3", "--json")
	require.Equal(t, 0, code, stderr)
	var r benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	reports := append([]benchReport{r}, r.Stages...)
	require.Len(t, reports, 4)
	for i, answers := range []int{1, 3} {
		web, direct := reports[2*i], reports[2*i+1]
		assert.Equal(t, fmt.Sprintf("serve: %d concurrent answers streamed over HTTP (tokens/s)", answers), web.Benchmark)
		assert.Equal(t, fmt.Sprintf("serve: the same %d answers through the engine directly (tokens/s)", answers), direct.Benchmark)
		for _, s := range []benchReport{web, direct} {
			assert.Equal(t, answers*5, s.ItemsPerRun)
			require.Len(t, s.RunSeconds, 2)
			assert.Greater(t, s.ItemsPerSecond, 0.0)
		}
		assert.Greater(t, web.FirstTokenSeconds, 0.0)
		assert.Greater(t, web.Shape["prompt_rows"], 16, "the image's rows are in the prompt")
	}
}
