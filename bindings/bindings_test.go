package bindings_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
)

func TestABIAndVersion(t *testing.T) {
	require.NoError(t, bindings.CheckABI())
	assert.NotEmpty(t, bindings.Version())
}

func TestBackendsAlwaysIncludeCPU(t *testing.T) {
	backends, err := bindings.Backends()
	require.NoError(t, err)
	require.Len(t, backends, 2)
	assert.Equal(t, bindings.BackendInfo{Backend: bindings.CPU, Compiled: true, Devices: 1}, backends[0])
	assert.Equal(t, bindings.CUDA, backends[1].Backend)
}

func TestSevenBSpec(t *testing.T) {
	spec, err := bindings.Spec(bindings.DefaultConfig())
	require.NoError(t, err)
	var total, used int64
	for _, s := range spec {
		total += s.NumElements()
		if s.Used {
			used += s.NumElements()
		}
	}
	assert.InDelta(t, 7.742e9, float64(total), 1e6, "MODEL_SPEC §7.1 size check")
	assert.Less(t, used, total)
	assert.Equal(t, "model.embed_tokens.weight", spec[0].Name)
	assert.Equal(t, bindings.KindEmbedding, spec[0].Kind)
	assert.Equal(t, "llm", spec[0].Component.String())
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *config.Config)
		want string
	}{
		{"heads not dividing", func(c *config.Config) { c.NumAttentionHeads = 33 }, "num_attention_heads"},
		{"too many global indexes", func(c *config.Config) { c.SAM.GlobalAttnIndexes = make([]int, 9) }, "at most 8"},
		{"value beyond int32", func(c *config.Config) { c.HiddenSize = 1 << 40 }, "does not fit in 32 bits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := bindings.DefaultConfig()
			tc.edit(&c)
			err := bindings.ValidateConfig(c)
			require.Error(t, err)
			assert.ErrorIs(t, err, bindings.ErrConfig)
			assert.Contains(t, err.Error(), tc.want)
			_, err = bindings.Spec(c)
			assert.ErrorIs(t, err, bindings.ErrConfig)
		})
	}
}

// An empty file set fails naming the first missing tensor, with a typed error and the status name.
func TestOpenModelWithoutWeightsNamesMissingTensors(t *testing.T) {
	_, err := bindings.OpenModel(bindings.ModelParams{Config: bindings.DefaultConfig(), Backend: bindings.CPU})
	require.Error(t, err)
	assert.ErrorIs(t, err, bindings.ErrMissing)
	var coreErr *bindings.Error
	require.True(t, errors.As(err, &coreErr))
	assert.Equal(t, "NC_ERR_MISSING", coreErr.Status)
	assert.Contains(t, err.Error(), "model.embed_tokens.weight: missing (expected shape [32005, 4096])")
}

func TestOpenModelMissingFileIsIOError(t *testing.T) {
	_, err := bindings.OpenModel(bindings.ModelParams{
		Config: bindings.DefaultConfig(), Files: []string{filepath.Join(t.TempDir(), "absent.safetensors")},
		Backend: bindings.CPU,
	})
	assert.ErrorIs(t, err, bindings.ErrIO)
}

func TestOpenModelRejectsTooManyDims(t *testing.T) {
	f := filepath.Join(t.TempDir(), "w.bin")
	require.NoError(t, os.WriteFile(f, make([]byte, 64), 0o644))
	_, err := bindings.OpenModel(bindings.ModelParams{
		Config: bindings.DefaultConfig(), Files: []string{f}, Backend: bindings.CPU,
		Tensors: []bindings.TensorRef{{Name: "x", DType: bindings.F32, Shape: []int64{1, 1, 1, 1, 1}, Bytes: 4}},
	})
	assert.ErrorIs(t, err, bindings.ErrFormat)
}

func TestParseDTypeAndBackend(t *testing.T) {
	for in, want := range map[string]bindings.DType{"bf16": bindings.BF16, "F16": bindings.F16, "float32": bindings.F32} {
		got, err := bindings.ParseDType(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := bindings.ParseDType("int8")
	assert.Error(t, err)
	b, err := bindings.ParseBackend("cuda")
	require.NoError(t, err)
	assert.Equal(t, "cuda", b.String())
	_, err = bindings.ParseBackend("tpu")
	assert.Error(t, err)
}

// Sampling.Check is the core's check of a sequence's sampling, made before any sequence exists.
func TestSamplingCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    bindings.Sampling
		want string // "" for accepted
	}{
		{"greedy", bindings.Greedy, ""},
		{"sampled", bindings.Sampling{Temperature: 0.8, TopK: 5, TopP: 0.9, RepetitionPenalty: 1.1, Seed: 3}, ""},
		{"negative temperature", bindings.Sampling{Temperature: -1, TopP: 1, RepetitionPenalty: 1}, "temperature"},
		{"top_p zero", bindings.Sampling{TopP: 0, RepetitionPenalty: 1}, "top_p"},
		{"negative top_k", bindings.Sampling{TopK: -2, TopP: 1, RepetitionPenalty: 1}, "top_k"},
		{"zero repetition penalty", bindings.Sampling{TopP: 1}, "repetition_penalty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Check()
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, bindings.ErrInvalidArgument)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
