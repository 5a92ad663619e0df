package synth

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/half"
	"github.com/nextchat/nextchat/internal/safetensors"
)

// fakeTokenizer stands in for tokenizer.model: generation copies it byte for byte and nothing here parses it.
func fakeTokenizer(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "tokenizer.model")
	require.NoError(t, os.WriteFile(p, []byte("sentencepiece stand-in"), 0o644))
	return p
}

func generate(t *testing.T, o Options) (string, Result) {
	t.Helper()
	if o.Out == "" {
		o.Out = t.TempDir()
	}
	if o.Tokenizer == "" {
		o.Tokenizer = fakeTokenizer(t)
	}
	if o.Config.HiddenSize == 0 {
		cfg, err := ResolveConfig("tiny")
		require.NoError(t, err)
		o.Config = cfg
	}
	res, err := Generate(context.Background(), o)
	require.NoError(t, err)
	return o.Out, res
}

func readAll(t *testing.T, files []string) [][]byte {
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

func TestSameOptionsGiveIdenticalBytesWhateverTheWorkerCount(t *testing.T) {
	_, a := generate(t, Options{Seed: 3, DType: bindings.BF16, Workers: 1})
	_, b := generate(t, Options{Seed: 3, DType: bindings.BF16, Workers: 3})
	_, c := generate(t, Options{Seed: 4, DType: bindings.BF16, Workers: 2})
	assert.Equal(t, readAll(t, a.Files), readAll(t, b.Files))
	assert.NotEqual(t, readAll(t, a.Files), readAll(t, c.Files))
}

func TestEveryDTypeHoldsTheSameValuesRounded(t *testing.T) {
	_, f32 := generate(t, Options{Seed: 5, DType: bindings.F32})
	_, bf16 := generate(t, Options{Seed: 5, DType: bindings.BF16})
	_, f16 := generate(t, Options{Seed: 5, DType: bindings.F16})
	name := "model.layers.1.mlp.up_proj.weight"
	ref := tensorValues(t, f32.Files[0], name)
	gotBF := tensorValues(t, bf16.Files[0], name)
	gotF := tensorValues(t, f16.Files[0], name)
	require.Len(t, gotBF, len(ref))
	for i, v := range ref {
		require.Equal(t, half.F32FromBF16(half.BF16FromF32(v)), gotBF[i])
		require.Equal(t, half.F32FromF16(half.F16FromF32(v)), gotF[i])
	}
}

// tensorValues decodes one tensor of a safetensors file to float32.
func tensorValues(t *testing.T, file, name string) []float32 {
	h, err := safetensors.ReadHeaderFile(file)
	require.NoError(t, err)
	tensor, ok := h.Lookup(name)
	require.True(t, ok, name)
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	raw := data[h.DataOffset+tensor.Begin : h.DataOffset+tensor.End]
	out := make([]float32, tensor.NumElements())
	for i := range out {
		switch tensor.DType {
		case safetensors.F32:
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		case safetensors.BF16:
			out[i] = half.F32FromBF16(binary.LittleEndian.Uint16(raw[2*i:]))
		case safetensors.F16:
			out[i] = half.F32FromF16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	}
	return out
}

func meanStd(v []float32) (float64, float64) {
	var s, ss float64
	for _, x := range v {
		s += float64(x)
	}
	m := s / float64(len(v))
	for _, x := range v {
		ss += (float64(x) - m) * (float64(x) - m)
	}
	return m, math.Sqrt(ss / float64(len(v)))
}

// The scales of init.go: fan-in scaled matrices, norms around 1, peaked logits, boxes around a valid box.
func TestValueScales(t *testing.T) {
	_, res := generate(t, Options{Seed: 9, DType: bindings.F32})
	file := res.Files[0]
	tests := []struct {
		name      string
		mean, std float64
	}{
		{"model.layers.0.mlp.down_proj.weight", 0, 1 / math.Sqrt(172)},
		{"model.layers.0.input_layernorm.weight", 1, normScaleStd},
		{"lm_head.weight", 0, lmHeadGain / 8},
		{"model.embed_tokens.weight", 0, 1},
		{"sam.model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", 0, 1},
	}
	for _, tc := range tests {
		m, s := meanStd(tensorValues(t, file, tc.name))
		assert.InDelta(t, tc.mean, m, 0.1*tc.std+0.01, tc.name)
		assert.InDelta(t, tc.std, s, 0.12*tc.std, tc.name)
	}
	bias := tensorValues(t, file, "loc_decoder.2.bias")
	for i, want := range boxBias {
		assert.InDelta(t, want, bias[i], 2*biasStd)
	}
}

func TestShardsWithIndex(t *testing.T) {
	dir, res := generate(t, Options{Seed: 1, DType: bindings.F32, ShardBytes: 8 << 20})
	require.Greater(t, len(res.Files), 2)
	assert.Equal(t, "model-00001-of-0000"+string(rune('0'+len(res.Files)))+".safetensors", filepath.Base(res.Files[0]))
	assert.FileExists(t, filepath.Join(dir, "model.safetensors.index.json"))
	var total int64
	for _, f := range res.Files {
		h, err := safetensors.ReadHeaderFile(f)
		require.NoError(t, err)
		for _, tensor := range h.Tensors {
			total += tensor.End - tensor.Begin
		}
	}
	assert.Equal(t, res.Bytes, total)
}

func TestRefusesToOverwriteWithoutForce(t *testing.T) {
	dir, _ := generate(t, Options{Seed: 1, DType: bindings.BF16})
	cfg, err := ResolveConfig("tiny")
	require.NoError(t, err)
	o := Options{Config: cfg, Out: dir, Tokenizer: fakeTokenizer(t), DType: bindings.BF16}
	_, err = Generate(context.Background(), o)
	assert.ErrorContains(t, err, "--force")
	o.Force = true
	_, err = Generate(context.Background(), o)
	assert.NoError(t, err)
}

func TestCancelledGenerationLeavesNoModel(t *testing.T) {
	cfg, err := ResolveConfig("tiny")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err = Generate(ctx, Options{Config: cfg, Out: dir, Tokenizer: fakeTokenizer(t), DType: bindings.F32})
	assert.ErrorIs(t, err, context.Canceled)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no partial weights, no config.json")
}

func TestBadOptions(t *testing.T) {
	cfg, err := ResolveConfig("tiny")
	require.NoError(t, err)
	tok := fakeTokenizer(t)
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no out", Options{Config: cfg, Tokenizer: tok, DType: bindings.F32}, "no output directory"},
		{"no tokenizer", Options{Config: cfg, Out: t.TempDir(), Tokenizer: "/nonexistent/tokenizer.model", DType: bindings.F32}, "tokenizer"},
		{"tokenizer is a directory", Options{Config: cfg, Out: t.TempDir(), Tokenizer: t.TempDir(), DType: bindings.F32}, "not a regular file"},
		{"bad dtype", Options{Config: cfg, Out: t.TempDir(), Tokenizer: tok, DType: bindings.DType(9)}, "dtype"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(context.Background(), tc.o)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestResolveConfig(t *testing.T) {
	for _, name := range PresetNames() {
		_, err := ResolveConfig(name)
		assert.NoError(t, err, name)
	}
	_, err := ResolveConfig("huge")
	assert.ErrorContains(t, err, "neither a preset")
	p := filepath.Join(t.TempDir(), "c.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"vocab_size": 32005, "hidden_size": 48, "intermediate_size": 100,
		"num_hidden_layers": 1, "num_attention_heads": 3}`), 0o644))
	cfg, err := ResolveConfig(p)
	require.NoError(t, err)
	assert.Equal(t, 48, cfg.HiddenSize)
	require.NoError(t, os.WriteFile(p, []byte(`{"vocab_size": 32005, "hidden_size": 50, "intermediate_size": 100,
		"num_hidden_layers": 1, "num_attention_heads": 3}`), 0o644))
	_, err = ResolveConfig(p)
	assert.ErrorIs(t, err, bindings.ErrConfig)
}

func TestSmallPresetIsAboutOneBillionLLMParameters(t *testing.T) {
	cfg, err := ResolveConfig("small")
	require.NoError(t, err)
	spec, err := bindings.Spec(cfg)
	require.NoError(t, err)
	var llm int64
	for _, s := range spec {
		if s.Component.String() == "llm" {
			llm += s.NumElements()
		}
	}
	assert.InDelta(t, 1.0e9, float64(llm), 0.1e9)
}

func BenchmarkGenerateTinyBF16(b *testing.B) {
	cfg, err := ResolveConfig("tiny")
	require.NoError(b, err)
	tok := filepath.Join(b.TempDir(), "tokenizer.model")
	require.NoError(b, os.WriteFile(tok, []byte("x"), 0o644))
	var bytesOut int64
	for i := 0; i < b.N; i++ {
		res, err := Generate(context.Background(), Options{Config: cfg, Out: b.TempDir(), Tokenizer: tok, DType: bindings.BF16, Force: true})
		require.NoError(b, err)
		bytesOut = res.Bytes
	}
	b.SetBytes(bytesOut)
}
