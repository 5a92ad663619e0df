package modeldir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/synth"
)

// generated caches one synthetic tiny checkpoint per (dtype, sharding) for the whole test binary: generation
// is the slow part, and every test gets its own copy to break.
var (
	generatedMu sync.Mutex
	generated   = map[string]string{}
)

// tinyModel returns a fresh copy of a synthetic tiny checkpoint; shardBytes > 0 shards it. The tokenizer is a
// stand-in: loading only checks that it is there.
func tinyModel(t *testing.T, dtype bindings.DType, shardBytes int64) string {
	t.Helper()
	key := fmt.Sprintf("%v-%d", dtype, shardBytes)
	generatedMu.Lock()
	src, ok := generated[key]
	if !ok {
		cfg, err := synth.ResolveConfig("tiny")
		require.NoError(t, err)
		root, err := os.MkdirTemp("", "nextchat-modeldir-test-")
		require.NoError(t, err)
		tok := filepath.Join(root, "stand-in.model")
		require.NoError(t, os.WriteFile(tok, []byte("stand-in"), 0o644))
		src = filepath.Join(root, "model")
		_, err = synth.Generate(context.Background(), synth.Options{
			Config: cfg, Seed: 1, DType: dtype, Out: src, Tokenizer: tok, ShardBytes: shardBytes,
		})
		require.NoError(t, err)
		generated[key] = src
	}
	generatedMu.Unlock()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(src)))
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range generated {
		os.RemoveAll(filepath.Dir(dir))
	}
	os.Exit(code)
}

func openAndLoad(t *testing.T, dir string) (*modeldir.Dir, *bindings.Model, error) {
	d, err := modeldir.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	m, err := d.Load(bindings.CPU, 0)
	if err == nil {
		t.Cleanup(func() { m.Close() })
	}
	return d, m, err
}

func TestGoodModelsLoad(t *testing.T) {
	tests := []struct {
		name  string
		dtype bindings.DType
		shard int64
	}{
		{"f32 single file", bindings.F32, 0},
		{"bf16 sharded", bindings.BF16, 4 << 20},
		{"f16", bindings.F16, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, m, err := openAndLoad(t, tinyModel(t, tc.dtype, tc.shard))
			require.NoError(t, err)
			mem, err := m.Memory(bindings.BF16)
			require.NoError(t, err)
			spec, err := bindings.Spec(d.Config)
			require.NoError(t, err)
			inv := d.Inventory(spec)
			assert.Equal(t, uint64(inv.UsedParams)*uint64(tc.dtype.Size()), mem.WeightBytesTotal)
			assert.Empty(t, inv.Unknown)
			assert.NotEmpty(t, inv.Unused)
			assert.Contains(t, inv.Unused, "model.vision_tower.vision_model.post_layernorm.weight")
			assert.Equal(t, uint64(2*2*64*2), mem.KVBytesPerToken) // K+V × 2 layers × 64 wide × bf16
			require.NoError(t, m.Close())
			_, err = m.Memory(bindings.BF16)
			assert.ErrorIs(t, err, bindings.ErrInvalidArgument, "closed model")
			require.NoError(t, m.Close(), "Close is idempotent")
		})
	}
}

// rewriteHeader rewrites model.safetensors with the same tensor bytes and an edited tensor list.
func rewriteHeader(t *testing.T, dir string, edit func([]safetensors.TensorSpec) []safetensors.TensorSpec, data func(name string, old []byte) []byte) {
	path := filepath.Join(dir, "model.safetensors")
	h, err := safetensors.ReadHeaderFile(path)
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var specs []safetensors.TensorSpec
	bytesOf := map[string][]byte{}
	for _, tensor := range h.Tensors {
		specs = append(specs, safetensors.TensorSpec{Name: tensor.Name, DType: tensor.DType, Shape: tensor.Shape})
		bytesOf[tensor.Name] = raw[h.DataOffset+tensor.Begin : h.DataOffset+tensor.End]
	}
	specs = edit(specs)
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	w, err := safetensors.NewWriter(f, specs, nil)
	require.NoError(t, err)
	for _, s := range specs {
		require.NoError(t, w.WriteTensor(s.Name, data(s.Name, bytesOf[s.Name])))
	}
	require.NoError(t, w.Close())
}

func sameBytes(_ string, old []byte) []byte { return old }

// An HF-style directory keeps integer buffers such as CLIP's position_ids (MODEL_SPEC §7.2): tensors the spec does
// not name, in a dtype the core does not take, are set aside and the model loads as it is, without conversion.
func TestIntegerBuffersAreSetAside(t *testing.T) {
	dir := tinyModel(t, bindings.F32, 0)
	const buffer = "model.vision_tower.vision_model.embeddings.position_ids"
	rewriteHeader(t, dir, func(s []safetensors.TensorSpec) []safetensors.TensorSpec {
		return append(s, safetensors.TensorSpec{Name: buffer, DType: safetensors.I64, Shape: []int64{1, 5}})
	}, func(name string, old []byte) []byte {
		if name == buffer {
			return make([]byte, 5*8)
		}
		return old
	})
	d, _, err := openAndLoad(t, dir)
	require.NoError(t, err)
	require.Len(t, d.Buffers, 1)
	assert.Equal(t, buffer, d.Buffers[0].Name)
	for _, tensor := range d.Tensors {
		assert.NotEqual(t, buffer, tensor.Name, "a buffer is not handed to the core")
	}
}

func TestBrokenDirectories(t *testing.T) {
	tests := []struct {
		name   string
		shard  int64
		break_ func(t *testing.T, dir string)
		want   []string
		is     error
	}{
		{"truncated weights", 0, func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, st.Size()-100))
		}, []string{"model.safetensors"}, modeldir.ErrInvalid},
		{"garbage header length", 0, func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "model.safetensors"), os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, []string{"model.safetensors"}, modeldir.ErrInvalid},
		{"no weights", 0, func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "model.safetensors")))
		}, []string{"no *.safetensors"}, modeldir.ErrInvalid},
		{"no tokenizer", 0, func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "tokenizer.model")))
		}, []string{"tokenizer.model"}, modeldir.ErrInvalid},
		{"no config", 0, func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "config.json")))
		}, []string{"config.json"}, modeldir.ErrInvalid},
		{"config implies other shapes", 0, func(t *testing.T, dir string) {
			editConfig(t, dir, func(m map[string]any) { m["intermediate_size"] = 180 })
		}, []string{"model.layers.0.mlp.gate_proj.weight: shape [172, 64], config implies [180, 64]"}, bindings.ErrShape},
		{"inconsistent config", 0, func(t *testing.T, dir string) {
			editConfig(t, dir, func(m map[string]any) { m["num_attention_heads"] = 5 })
		}, []string{"num_attention_heads"}, bindings.ErrConfig},
		{"missing tensor", 0, func(t *testing.T, dir string) {
			rewriteHeader(t, dir, func(s []safetensors.TensorSpec) []safetensors.TensorSpec {
				for i := range s {
					if s[i].Name == "seg_prompt_mlp.2.bias" {
						return append(s[:i], s[i+1:]...)
					}
				}
				return s
			}, sameBytes)
		}, []string{"seg_prompt_mlp.2.bias: missing (expected shape [1024])"}, bindings.ErrMissing},
		{"unsupported dtype of a tensor the spec needs", 0, func(t *testing.T, dir string) {
			rewriteHeader(t, dir, func(s []safetensors.TensorSpec) []safetensors.TensorSpec {
				s[3].DType = safetensors.I32
				return s
			}, sameBytes)
		}, []string{"dtype I32 is not supported"}, modeldir.ErrInvalid},
		{"index points outside", 4 << 20, func(t *testing.T, dir string) {
			editIndex(t, dir, func(m map[string]string) { m["lm_head.weight"] = "../elsewhere.safetensors" })
		}, []string{"not a file name in the directory"}, modeldir.ErrInvalid},
		{"index disagrees with headers", 4 << 20, func(t *testing.T, dir string) {
			editIndex(t, dir, func(m map[string]string) { m["model.norm.weight"] = m["model.embed_tokens.weight"] })
		}, []string{"model.norm.weight"}, modeldir.ErrInvalid},
		{"index names an absent tensor", 4 << 20, func(t *testing.T, dir string) {
			editIndex(t, dir, func(m map[string]string) { m["extra.weight"] = m["model.embed_tokens.weight"] })
		}, []string{"extra.weight", "does not hold it"}, modeldir.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tinyModel(t, bindings.F32, tc.shard)
			tc.break_(t, dir)
			_, _, err := openAndLoad(t, dir)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.is)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestUnknownTensorsAreReportedNotFatal(t *testing.T) {
	dir := tinyModel(t, bindings.F32, 0)
	rewriteHeader(t, dir, func(s []safetensors.TensorSpec) []safetensors.TensorSpec {
		return append(s, safetensors.TensorSpec{Name: "model.layers.0.self_attn.rotary_emb.inv_freq", DType: safetensors.F32, Shape: []int64{8}})
	}, func(name string, old []byte) []byte {
		if old == nil {
			return make([]byte, 32)
		}
		return old
	})
	d, _, err := openAndLoad(t, dir)
	require.NoError(t, err)
	spec, err := bindings.Spec(d.Config)
	require.NoError(t, err)
	assert.Equal(t, []string{"model.layers.0.self_attn.rotary_emb.inv_freq"}, d.Inventory(spec).Unknown)
}

func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	p := filepath.Join(dir, "config.json")
	var m map[string]any
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &m))
	edit(m)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, out, 0o644))
}

func editIndex(t *testing.T, dir string, edit func(map[string]string)) {
	p := filepath.Join(dir, "model.safetensors.index.json")
	var index struct {
		Metadata  map[string]string `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &index))
	edit(index.WeightMap)
	out, err := json.Marshal(index)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, out, 0o644))
}

// The engine multiplies matrices where their files place them: generated (and converted) files start every one
// on a cache line, and a file that shifts them off it is reported with what to do (modeldir.AlignmentAdvice).
func TestMisalignedMatricesAreCounted(t *testing.T) {
	cfg, err := synth.ResolveConfig("tiny")
	require.NoError(t, err)
	spec, err := bindings.Spec(cfg)
	require.NoError(t, err)
	var matrices int
	var matrixBytes int64
	for _, s := range spec {
		if s.Used && s.Kind == bindings.KindMatrix {
			matrices++
			matrixBytes += s.NumElements() * 2
		}
	}
	for _, shard := range []int64{0, 1 << 20} {
		d, err := modeldir.Open(tinyModel(t, bindings.BF16, shard))
		require.NoError(t, err)
		n, b := d.MisalignedMatrices(spec)
		assert.Zero(t, n, "generated with %d-byte shards", shard)
		assert.Zero(t, b)
		assert.Empty(t, modeldir.AlignmentAdvice(n, b))
	}

	dir := tinyModel(t, bindings.BF16, 0)
	const lead = "lead.unknown" // declared first, its 2 bytes shift every tensor after it off the line
	rewriteHeader(t, dir, func(s []safetensors.TensorSpec) []safetensors.TensorSpec {
		return append([]safetensors.TensorSpec{{Name: lead, DType: safetensors.BF16, Shape: []int64{1}}}, s...)
	}, func(name string, old []byte) []byte {
		if name == lead {
			return []byte{0, 0}
		}
		return old
	})
	d, _, err := openAndLoad(t, dir)
	require.NoError(t, err, "misaligned matrices still load")
	n, b := d.MisalignedMatrices(spec)
	assert.Equal(t, matrices, n)
	assert.Equal(t, matrixBytes, b)
	advice := modeldir.AlignmentAdvice(n, b)
	assert.Contains(t, advice, fmt.Sprintf("%d matrices", matrices))
	assert.Contains(t, advice, "nextchat convert")
}
