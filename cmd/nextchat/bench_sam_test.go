package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/config"
)

// `bench sam` on the tiny checkpoint: the encoder report with the decoder as its stage, work counted from the
// config, rates from the runs; the decoder alone; and its flag checks.
func TestBenchSAM(t *testing.T) {
	dir := benchTiny(t, "--seed", "3")
	code, out, stderr := runCLI("bench", "sam", "--model", dir, "--threads", "2", "--prompts", "3", "--repeat", "1",
		"--probe-seconds", "0.05", "--json")
	require.Equal(t, 0, code, stderr)
	var r benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "sam image encoder", r.Benchmark)
	assert.Equal(t, "image", r.Unit)
	assert.True(t, r.Synthetic)
	assert.Len(t, r.RunSeconds, 1)
	assert.Positive(t, r.ItemsPerSecond)
	assert.Positive(t, r.FLOPPerItem)
	assert.Positive(t, r.PercentOfPeak)
	if r.AMXPeakGFLOPS > 0 { // a machine whose kernels use the AMX tiles: the rate against their exact-product ceiling
		assert.InDelta(t, 100*r.GFLOPS/(r.AMXPeakGFLOPS/3), r.PercentOfAMXExact, 1e-9)
	}
	require.Len(t, r.Stages, 1)
	dec := r.Stages[0]
	assert.Equal(t, "sam mask decoder", dec.Benchmark)
	assert.Equal(t, "prompt", dec.Unit)
	assert.Equal(t, 3, dec.ItemsPerRun)
	assert.Positive(t, dec.ItemsPerSecond)
	assert.Equal(t, 3, dec.Shape["prompts_per_call"])

	code, out, stderr = runCLI("bench", "sam", "--model", dir, "--prompts", "1", "--repeat", "1", "--probe-seconds", "0.05")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "sam image encoder")
	assert.Contains(t, out, "sam mask decoder")
	assert.Contains(t, out, "per prompt")

	// --encoder=false: the decoder's report alone, on a random embedding.
	code, out, stderr = runCLI("bench", "sam", "--model", dir, "--prompts", "2", "--repeat", "1", "--probe-seconds", "0.05",
		"--encoder=false", "--json")
	require.Equal(t, 0, code, stderr)
	var alone benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &alone))
	assert.Equal(t, "sam mask decoder", alone.Benchmark)
	assert.Equal(t, 2, alone.ItemsPerRun)
	assert.Positive(t, alone.ItemsPerSecond)
	assert.Empty(t, alone.Stages)

	code, _, stderr = runCLI("bench", "sam", "--model", dir, "--prompts", "0")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "--prompts ≥ 1")
}

// The encoder's work at SAM ViT-H's dimensions (§5.1): ≈ 2.9 T multiply-adds per image, of which the four global
// blocks' attention is 0.34 TFLOP.
func TestSAMEncoderFLOPAtRealSize(t *testing.T) {
	s := config.SAM{ImageSize: 1024, PatchSize: 16, EncoderEmbedDim: 1280, EncoderDepth: 32, EncoderMLPDim: 5120,
		WindowSize: 14, GlobalAttnIndexes: []int{7, 15, 23, 31}, PromptEmbedDim: 256}
	flop := samEncoderFLOP(s)
	assert.InDelta(t, 5.67e12, flop, 0.02e12)
	global := samEncoderFLOP(config.SAM{ImageSize: 1024, PatchSize: 16, EncoderEmbedDim: 1280, EncoderDepth: 32,
		EncoderMLPDim: 5120, WindowSize: 14, GlobalAttnIndexes: []int{7, 15, 23, 31, 0}, PromptEmbedDim: 256})
	assert.Greater(t, global, flop) // a fifth global block attends over 4096 keys instead of 196
}
