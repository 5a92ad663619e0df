package config_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
)

// releasedConfig is the text of AoZhang/nextchat-7b-336's config.json as MODEL_SPEC §1.1 records it.
const releasedConfig = `{
  "_name_or_path": "output/stage2_3epoch/checkpoint-4950/",
  "architectures": ["NextChatForSegLM"],
  "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
  "max_position_embeddings": 4096, "mm_depth": 2, "mm_hidden_size": 1024, "mm_use_im_start_end": true,
  "mm_vision_select_layer": -2, "mm_vision_tower": "/data/clip-vit-large-patch14-336",
  "model_type": "nextchat", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "sam_path": "/home/zhangao/model/sam/sam_vit_h_4b8939.pth", "tie_word_embeddings": false,
  "torch_dtype": "float32", "transformers_version": "4.31.0", "use_cache": false, "use_mm_proj": true,
  "vocab_size": 32005
}`

func TestReleasedConfigParsesToTheReleasedArchitecture(t *testing.T) {
	defaults := bindings.DefaultConfig()
	c, err := config.Parse([]byte(releasedConfig), defaults)
	require.NoError(t, err)
	assert.Equal(t, defaults, c)
	assert.Equal(t, 576, c.ImageTokens())
	assert.Equal(t, 128, c.HeadDim())
	require.NoError(t, bindings.ValidateConfig(c))
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(m map[string]any)
		message string
	}{
		{"missing hidden_size", func(m map[string]any) { delete(m, "hidden_size") }, `no "hidden_size"`},
		{"rope scaling", func(m map[string]any) { m["rope_scaling"] = map[string]any{"type": "linear", "factor": 2} }, "rope_scaling"},
		{"tied embeddings", func(m map[string]any) { m["tie_word_embeddings"] = true }, "tie_word_embeddings"},
		{"gelu llm", func(m map[string]any) { m["hidden_act"] = "gelu" }, "hidden_act"},
		{"projector depth", func(m map[string]any) { m["mm_depth"] = 1 }, "mm_depth"},
		{"no im_start", func(m map[string]any) { m["mm_use_im_start_end"] = false }, "mm_use_im_start_end"},
		{"mm width", func(m map[string]any) { m["mm_hidden_size"] = 768 }, "mm_hidden_size"},
		{"tensor parallel", func(m map[string]any) { m["pretraining_tp"] = 2 }, "pretraining_tp"},
		{"wrong type", func(m map[string]any) { m["hidden_size"] = "big" }, "hidden_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(releasedConfig), &m))
			tc.edit(m)
			data, err := json.Marshal(m)
			require.NoError(t, err)
			_, err = config.Parse(data, bindings.DefaultConfig())
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid), "%v", err)
			assert.Contains(t, err.Error(), tc.message)
		})
	}
	_, err := config.Parse([]byte("[1, 2]"), bindings.DefaultConfig())
	assert.ErrorIs(t, err, config.ErrInvalid)
}

func TestKeyValueHeadsDefaultToAttentionHeads(t *testing.T) {
	c, err := config.Parse([]byte(`{"vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
		"num_hidden_layers": 2, "num_attention_heads": 8}`), bindings.DefaultConfig())
	require.NoError(t, err)
	assert.Equal(t, 8, c.NumKeyValueHeads)
}

func TestSAMConfigOverridesTheDefaultGlobalIndexes(t *testing.T) {
	c, err := config.Parse([]byte(`{"vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
		"num_hidden_layers": 2, "num_attention_heads": 8,
		"sam_config": {"encoder_depth": 3, "global_attn_indexes": [2]}}`), bindings.DefaultConfig())
	require.NoError(t, err)
	assert.Equal(t, []int{2}, c.SAM.GlobalAttnIndexes)
	assert.Equal(t, 3, c.SAM.EncoderDepth)
	assert.Equal(t, 1280, c.SAM.EncoderEmbedDim, "unspecified fields keep the released value")
}

func TestMarshalRoundTrips(t *testing.T) {
	c := bindings.DefaultConfig()
	c.HiddenSize = 96
	c.SAM.GlobalAttnIndexes = []int{0, 5}
	data, err := config.Marshal(c)
	require.NoError(t, err)
	back, err := config.Parse(data, bindings.DefaultConfig())
	require.NoError(t, err)
	assert.Equal(t, c, back)
}
