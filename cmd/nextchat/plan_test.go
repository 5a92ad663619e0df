package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInfoPlan(t *testing.T) {
	dir := realTokenizerModel(t)
	tests := []struct {
		name      string
		args      []string
		backend   string
		context   int64
		sequences int
		kvBlocks  int64
		onDevice  bool
	}{
		{"cpu default context", []string{"--batch", "1"}, "cpu", 2048, 1, 128, false},
		{"cpu batch of 3", []string{"--ctx", "100", "--batch", "3"}, "cpu", 100, 3, 3 * 7, false},
		{"cuda bf16", []string{"--ctx", "64", "--batch", "2", "--device", "cuda", "--kv-dtype", "bf16"}, "cuda", 64, 2, 2 * 4, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(append([]string{"info", "--model", dir, "--plan", "--json"}, tc.args...)...)
			require.Equal(t, 0, code, stderr)
			var r planReport
			require.NoError(t, json.Unmarshal([]byte(out), &r))
			assert.Equal(t, tc.backend, r.Backend)
			assert.Equal(t, tc.context, r.Context)
			assert.Equal(t, tc.sequences, r.Sequences)
			assert.Equal(t, tc.kvBlocks, r.KVBlocks)
			var host, device uint64
			items := map[string]bool{}
			for _, l := range r.Lines {
				items[l.Item] = true
				if l.Where == "device" {
					device += l.Bytes
				} else {
					host += l.Bytes
				}
			}
			assert.Equal(t, r.HostBytes, host, "host lines add up to the host total")
			assert.Equal(t, r.DeviceBytes, device, "device lines add up to the device total")
			assert.True(t, items["weights llm"])
			assert.True(t, items["workspace step"])
			assert.True(t, items["KV cache ("+strconv.FormatInt(tc.kvBlocks, 10)+" blocks of 16 positions)"])
			assert.Equal(t, tc.onDevice, r.DeviceBytes > 0)
			assert.Equal(t, !tc.onDevice, items["op scratch step"], "a GPU plan has no op scratch")
			if tc.onDevice {
				assert.Contains(t, r.Note, "the layout the CUDA backend will use")
			}
		})
	}

	code, out, stderr := runCLI("info", "--model", dir, "--plan", "--ctx", "256", "--batch", "2")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "memory plan: cpu, context 256 × 2 sequences")
	assert.Regexp(t, regexp.MustCompile(`(?m)^host total\s+[0-9,]+\s+[0-9.]+$`), out)
	assert.Regexp(t, regexp.MustCompile(`(?m)^KV cache \(32 blocks of 16 positions\)\s+host\s+[0-9,]+\s+[0-9.]+$`), out)

	// serve's plan steps one whole prompt at a time: --step-rows gives the same plan, with less workspace.
	stepRows := func(args ...string) planReport {
		code, out, stderr := runCLI(append([]string{"info", "--model", dir, "--plan", "--json", "--ctx", "256", "--batch", "4"}, args...)...)
		require.Equal(t, 0, code, stderr)
		var r planReport
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		return r
	}
	whole, served := stepRows(), stepRows("--step-rows", "256")
	assert.Equal(t, 1024, whole.StepRows)
	assert.Equal(t, 256, served.StepRows)
	assert.Less(t, served.HostBytes, whole.HostBytes)

	for _, bad := range [][]string{{"--batch", "0"}, {"--device", "tpu"}, {"--kv-dtype", "int4"}, {"--ctx", "-5"}, {"--step-rows", "-1"}} {
		code, _, _ := runCLI(append([]string{"info", "--model", dir, "--plan"}, bad...)...)
		assert.Equal(t, 2, code, "%v", bad)
	}
	code, _, stderr = runCLI("info", "--model", dir, "--plan", "--ctx", "999999")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "max_context 999999 out of range")
}

func TestGroundReportsPeakRSSAndRefusesOverPlan(t *testing.T) {
	dir := realTokenizerModel(t)
	image := "../../testdata/images/wide_64x48.png"
	code, _, stderr := runCLI("ground", "--model", dir, "--image", image, "--ctx", "256", "--report-rss", "the red circle")
	require.Equal(t, 0, code, stderr)
	m := regexp.MustCompile(`peak RSS (\d+) bytes .*plan host total (\d+) bytes .*RSS/plan ([0-9.]+)`).FindStringSubmatch(stderr)
	require.NotNil(t, m, stderr)
	rss, err := strconv.ParseUint(m[1], 10, 64)
	require.NoError(t, err)
	assert.Positive(t, rss)

	code, _, stderr = runCLI("ground", "--model", dir, "--image", image, "--ctx", "8", "the red circle")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "context too long")
	assert.Contains(t, stderr, "(--ctx)")
}

// --compact-weights and --llm-weights reach the core from info --plan and ground: the plan's LLM weights shrink (int8
// below compact), and grounding gives the same boxes with compact weights (the same weights; only sums over patched
// weights may round differently) and boxes near them with int8 weights (lossy).
func TestLLMWeightsFlags(t *testing.T) {
	dir := realTokenizerModel(t)
	llmWeights := func(args ...string) uint64 {
		code, out, stderr := runCLI(append([]string{"info", "--model", dir, "--plan", "--json", "--ctx", "64"}, args...)...)
		require.Equal(t, 0, code, stderr)
		var r planReport
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		for _, l := range r.Lines {
			if l.Item == "weights llm" {
				return l.Bytes
			}
		}
		t.Fatalf("no weights llm line in %s", out)
		return 0
	}
	stored, compact := llmWeights(), llmWeights("--compact-weights")
	assert.Less(t, compact, stored)
	assert.Equal(t, compact, llmWeights("--llm-weights", "compact"))
	int8 := llmWeights("--llm-weights", "int8")
	assert.Less(t, int8, compact)

	image := "../../testdata/images/wide_64x48.png"
	// ground's plan weights (its --report-rss line) and boxes.
	ground := func(args ...string) (uint64, []groundJSON) {
		code, out, stderr := runCLI(append([]string{"ground", "--model", dir, "--image", image, "--json", "--report-rss"}, args...)...)
		require.Equal(t, 0, code, stderr)
		var got []groundJSON
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.Len(t, got, 2)
		m := regexp.MustCompile(`plan: weights (\d+)`).FindStringSubmatch(stderr)
		require.NotNil(t, m, stderr)
		weights, err := strconv.ParseUint(m[1], 10, 64)
		require.NoError(t, err)
		return weights, got
	}
	storedWeights, want := ground("the red circle", "the blue square")
	compactWeights, got := ground("--compact-weights", "the red circle", "the blue square")
	assert.Equal(t, stored-compact, storedWeights-compactWeights, "the LLM's bytes are all that changes")
	for i := range want {
		for j := range want[i].Box {
			assert.InDelta(t, want[i].Box[j], got[i].Box[j], 1e-4, "expression %d coordinate %d", i, j)
		}
	}
	int8Weights, near := ground("--llm-weights", "int8", "the red circle", "the blue square")
	assert.Equal(t, stored-int8, storedWeights-int8Weights, "the LLM's bytes are all that changes")
	for i := range want {
		for j := range want[i].Box {
			assert.InDelta(t, want[i].Box[j], near[i].Box[j], 0.05, "expression %d coordinate %d", i, j)
		}
	}
}
