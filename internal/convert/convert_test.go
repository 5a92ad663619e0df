package convert

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/half"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/safetensors"
)

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// usedNames is the set of spec tensors the engine reads for the fixture's config.
func usedNames(t *testing.T, dir string) map[string]bool {
	d, err := modeldir.Open(dir)
	require.NoError(t, err)
	spec, err := bindings.Spec(d.Config)
	require.NoError(t, err)
	used := map[string]bool{}
	for _, s := range spec {
		if s.Used {
			used[s.Name] = true
		}
	}
	return used
}

// The acceptance check: the .bin release converts to exactly the bytes torch held (as the safetensors library
// wrote them), keeping each tensor's bf16 or fp16 storage, with every tensor the engine reads and nothing else.
func TestReleaseConvertsBitIdentically(t *testing.T) {
	rep, out, err := convertFixture(t, func(o *Options) { o.ShardBytes = 200_000 })
	require.NoError(t, err)
	got := readModel(t, out)
	want := readSafetensors(t, expectedFile)
	used := usedNames(t, out)
	require.Equal(t, keys(used), keys(got), "exactly the tensors the engine reads")
	for name, tn := range got {
		assert.Equal(t, want[name], tn, name)
	}
	assert.Equal(t, map[string]int{"BF16": 58, "F16": 143}, rep.TensorsByDType)
	assert.Equal(t, FormatTorch, rep.Format)
	assert.Equal(t, 3, rep.InputFiles)
	assert.Greater(t, len(rep.Files), 1, "sharded at 200 kB")
	assert.FileExists(t, filepath.Join(out, "model.safetensors.index.json"))
	assert.Zero(t, rep.Converted)

	buffers, _ := rep.DroppedCount(DropBuffer)
	assert.Equal(t, 3, buffers, "two rotary inv_freq and the CLIP position_ids")
	unused, _ := rep.DroppedCount(DropUnused)
	assert.Equal(t, len(want)-len(used), unused)
	var dropped []string
	for _, d := range rep.Dropped {
		dropped = append(dropped, d.Name)
	}
	for _, name := range []string{"model.vision_tower.vision_model.post_layernorm.weight",
		"sam.model.prompt_encoder.mask_downscaling.0.weight", "model.layers.1.self_attn.rotary_emb.inv_freq",
		"model.vision_tower.vision_model.embeddings.position_ids"} {
		assert.Contains(t, dropped, name)
	}
	assert.ElementsMatch(t, []string{"tokenizer.model", "generation_config.json", "tokenizer_config.json",
		"special_tokens_map.json", "added_tokens.json"}, rep.Copied)
}

// config.json keeps every field of the release and states ours explicitly; torch_dtype says what the weights
// now are.
func TestConfigKeepsTheReleaseFields(t *testing.T) {
	_, out, err := convertFixture(t, nil)
	require.NoError(t, err)
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(out, "config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	assert.Equal(t, "/home/zhangao/model/sam/sam_vit_h_4b8939.pth", cfg["sam_path"])
	assert.Equal(t, "/data/models/clip-vit-large-patch14-336/", cfg["mm_vision_tower"])
	assert.Equal(t, false, cfg["use_cache"])
	assert.Nil(t, cfg["rope_scaling"])
	assert.Equal(t, "bfloat16", cfg["torch_dtype"], "the release says float32 over 16-bit tensors")
	assert.Equal(t, 10000.0, cfg["rope_theta"], "our fields explicit, released defaults filled in")
	assert.Equal(t, 32003.0, cfg["at_token_id"])
	sam := cfg["sam_config"].(map[string]any)
	assert.Equal(t, 16.0, sam["prompt_embed_dim"])
	assert.Equal(t, 2.0, sam["decoder_depth"], "from the released defaults")
}

// --keep-unused keeps the spec's unused tensors (the whole expected set); buffers still go.
func TestKeepUnused(t *testing.T) {
	rep, out, err := convertFixture(t, func(o *Options) { o.KeepUnused = true })
	require.NoError(t, err)
	assert.Equal(t, readSafetensors(t, expectedFile), readModel(t, out))
	n, _ := rep.DroppedCount(DropUnused)
	assert.Zero(t, n)
	n, _ = rep.DroppedCount(DropBuffer)
	assert.Equal(t, 3, n)
}

// --dtype rounds each value to nearest even through float32 (exact for both 16-bit formats), as torch's .to()
// does; tensors already in the target dtype keep their bytes.
func TestDTypeConversion(t *testing.T) {
	want := readSafetensors(t, expectedFile)
	for _, target := range []safetensors.DType{safetensors.F16, safetensors.BF16} {
		t.Run(string(target), func(t *testing.T) {
			rep, out, err := convertFixture(t, func(o *Options) { o.DType = target })
			require.NoError(t, err)
			got := readModel(t, out)
			assert.Equal(t, map[string]int{string(target): len(got)}, rep.TensorsByDType)
			converted := 0
			for name, tn := range got {
				src := want[name]
				require.Equal(t, target, tn.DType, name)
				if src.DType == target {
					assert.Equal(t, src.Bytes, tn.Bytes, name)
					continue
				}
				converted++
				for i := 0; i < len(src.Bytes); i += 2 {
					v := decode(src.Bytes[i:], src.DType)
					var h uint16
					if target == safetensors.F16 {
						h = half.F16FromF32(v)
					} else {
						h = half.BF16FromF32(v)
					}
					require.Equal(t, h, binary.LittleEndian.Uint16(tn.Bytes[i:]), "%s element %d", name, i/2)
				}
			}
			assert.Equal(t, converted, rep.Converted)
			assert.Positive(t, converted)
		})
	}
}

// An HF-style safetensors directory converts too (no pickle involved), to the same bytes.
func TestSafetensorsSourceGivesTheSameModel(t *testing.T) {
	_, fromBin, err := convertFixture(t, nil)
	require.NoError(t, err)
	rep, fromST, err := convertFixture(t, func(o *Options) { o.From = safetensorsRelease(t, 300_000, nil) })
	require.NoError(t, err)
	assert.Equal(t, FormatSafetensors, rep.Format)
	assert.Equal(t, readModel(t, fromBin), readModel(t, fromST))

	// Both formats in one directory: the safetensors are read, no pickle is opened (the .bin here is hostile).
	both := safetensorsRelease(t, 0, nil)
	writeZip(t, filepath.Join(both, "pytorch_model.bin"), []byte("\x80\x02cos\nsystem\n."))
	rep, _, err = convertFixture(t, func(o *Options) { o.From = both })
	require.NoError(t, err)
	assert.Equal(t, FormatSafetensors, rep.Format)
}

// --clip takes the vision tower from an openai CLIP checkpoint (vision_model.* names, float32, a text tower
// beside it): those tensors replace the checkpoint's copy.
func TestCLIPSubstitution(t *testing.T) {
	expected := readSafetensors(t, expectedFile)
	clip := map[string]storedTensor{
		"logit_scale":                        {safetensors.F32, []int64{}, make([]byte, 4)},
		"text_model.final_layer_norm.weight": {safetensors.F32, []int64{2}, make([]byte, 8)},
	}
	for name, tn := range expected {
		if rest, ok := strings.CutPrefix(name, clipPrefix); ok {
			f32 := make([]byte, 0, 2*len(tn.Bytes))
			for i := 0; i < len(tn.Bytes); i += 2 {
				f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(decode(tn.Bytes[i:], tn.DType)+0.5))
			}
			clip[rest] = storedTensor{safetensors.F32, tn.Shape, f32}
		}
	}
	replaced := len(clip) - 2 + 1 // the tower, and the checkpoint's position_ids buffer
	clipDir := t.TempDir()
	writeTensors(t, clipDir, clip, 0)

	rep, out, err := convertFixture(t, func(o *Options) { o.CLIP = clipDir })
	require.NoError(t, err)
	assert.Equal(t, clipDir, rep.CLIPFrom)
	got := readModel(t, out)
	for name, tn := range got {
		if rest, ok := strings.CutPrefix(name, clipPrefix); ok {
			assert.Equal(t, clip[rest], tn, name)
		} else {
			assert.Equal(t, expected[name], tn, name)
		}
	}
	assert.Positive(t, rep.TensorsByDType["F32"])
	n, _ := rep.DroppedCount(DropReplaced)
	assert.Equal(t, replaced, n, "every model.vision_tower.* tensor of the checkpoint")

	_, _, err = convertFixture(t, func(o *Options) { o.CLIP = safetensorsRelease(t, 0, nil) })
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "has no vision_model.* tensors")
}
