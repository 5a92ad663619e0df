package bindings

// #include "nextchat.h"
import "C"

import (
	"fmt"

	"github.com/nextchat/nextchat/internal/config"
)

// DefaultConfig is the released nextchat-7b-336 architecture as the core defines it (nc_config_default_7b),
// with the release's token ids and flags: the defaults every config.json is read over.
func DefaultConfig() config.Config {
	var c C.nc_config
	if err := call(func() C.nc_status { return C.nc_config_default_7b(&c) }); err != nil {
		panic(fmt.Sprintf("nc_config_default_7b cannot fail with a valid pointer: %v", err))
	}
	return config.Config{
		Architectures:         []string{"NextChatForSegLM"},
		ModelType:             "nextchat",
		VocabSize:             int(c.vocab_size),
		HiddenSize:            int(c.hidden_size),
		IntermediateSize:      int(c.intermediate_size),
		NumHiddenLayers:       int(c.num_hidden_layers),
		NumAttentionHeads:     int(c.num_attention_heads),
		NumKeyValueHeads:      int(c.num_key_value_heads),
		MaxPositionEmbeddings: int(c.max_position_embeddings),
		RMSNormEps:            float32(c.rms_norm_eps),
		RopeTheta:             float32(c.rope_theta),
		HiddenAct:             "silu",
		BOSTokenID:            1, // MODEL_SPEC §1.1
		EOSTokenID:            2,
		PadTokenID:            0,
		MMHiddenSize:          int(c.vision_hidden_size),
		MMDepth:               2,
		MMVisionSelectLayer:   int(c.vision_select_layer),
		MMUseImStartEnd:       true,
		LocHiddenSize:         int(c.loc_hidden_size),
		SegPromptTokens:       int(c.seg_prompt_tokens),
		AtTokenID:             int(c.at_token_id),
		BoxesTokenID:          int(c.boxes_token_id),
		Vision: config.Vision{
			HiddenSize:        int(c.vision_hidden_size),
			IntermediateSize:  int(c.vision_intermediate_size),
			NumHiddenLayers:   int(c.vision_num_hidden_layers),
			NumAttentionHeads: int(c.vision_num_attention_heads),
			ImageSize:         int(c.vision_image_size),
			PatchSize:         int(c.vision_patch_size),
			LayerNormEps:      float32(c.vision_layer_norm_eps),
			HiddenAct:         "quick_gelu",
		},
		SAM: config.SAM{
			ImageSize:               int(c.sam_image_size),
			PatchSize:               int(c.sam_patch_size),
			EncoderEmbedDim:         int(c.sam_encoder_embed_dim),
			EncoderDepth:            int(c.sam_encoder_depth),
			EncoderNumHeads:         int(c.sam_encoder_num_heads),
			EncoderMLPDim:           int(c.sam_encoder_mlp_dim),
			WindowSize:              int(c.sam_window_size),
			GlobalAttnIndexes:       globalIndexes(&c),
			LayerNormEps:            float32(c.sam_layer_norm_eps),
			PromptEmbedDim:          int(c.sam_prompt_embed_dim),
			MaskInChans:             int(c.sam_mask_in_chans),
			DecoderDepth:            int(c.sam_decoder_depth),
			DecoderNumHeads:         int(c.sam_decoder_num_heads),
			DecoderMLPDim:           int(c.sam_decoder_mlp_dim),
			AttentionDownsampleRate: int(c.sam_attention_downsample),
			NumMultimaskOutputs:     int(c.sam_num_multimask_outputs),
			IoUHeadHiddenDim:        int(c.sam_iou_head_hidden_dim),
			IoUHeadDepth:            int(c.sam_iou_head_depth),
		},
	}
}

func globalIndexes(c *C.nc_config) []int {
	out := make([]int, int(c.sam_num_global_attn))
	for i := range out {
		out[i] = int(c.sam_global_attn_indexes[i])
	}
	return out
}

// cint narrows a Go int to int32 for the core, refusing values that do not fit rather than wrapping.
func cint(field string, v int, errs *[]string) C.int32_t {
	if v < -1<<31 || v > 1<<31-1 {
		*errs = append(*errs, fmt.Sprintf("%s = %d does not fit in 32 bits", field, v))
		return 0
	}
	return C.int32_t(v)
}

// toC converts a Go config to the core's struct.
func toC(cfg config.Config) (C.nc_config, error) {
	var c C.nc_config
	var errs []string
	c.struct_size = C.size_t(C.sizeof_nc_config)
	c.vocab_size = cint("vocab_size", cfg.VocabSize, &errs)
	c.hidden_size = cint("hidden_size", cfg.HiddenSize, &errs)
	c.intermediate_size = cint("intermediate_size", cfg.IntermediateSize, &errs)
	c.num_hidden_layers = cint("num_hidden_layers", cfg.NumHiddenLayers, &errs)
	c.num_attention_heads = cint("num_attention_heads", cfg.NumAttentionHeads, &errs)
	c.num_key_value_heads = cint("num_key_value_heads", cfg.NumKeyValueHeads, &errs)
	c.max_position_embeddings = cint("max_position_embeddings", cfg.MaxPositionEmbeddings, &errs)
	c.rms_norm_eps = C.float(cfg.RMSNormEps)
	c.rope_theta = C.float(cfg.RopeTheta)
	c.vision_hidden_size = cint("vision_config.hidden_size", cfg.Vision.HiddenSize, &errs)
	c.vision_intermediate_size = cint("vision_config.intermediate_size", cfg.Vision.IntermediateSize, &errs)
	c.vision_num_hidden_layers = cint("vision_config.num_hidden_layers", cfg.Vision.NumHiddenLayers, &errs)
	c.vision_num_attention_heads = cint("vision_config.num_attention_heads", cfg.Vision.NumAttentionHeads, &errs)
	c.vision_image_size = cint("vision_config.image_size", cfg.Vision.ImageSize, &errs)
	c.vision_patch_size = cint("vision_config.patch_size", cfg.Vision.PatchSize, &errs)
	c.vision_layer_norm_eps = C.float(cfg.Vision.LayerNormEps)
	c.vision_select_layer = cint("mm_vision_select_layer", cfg.MMVisionSelectLayer, &errs)
	c.loc_hidden_size = cint("loc_hidden_size", cfg.LocHiddenSize, &errs)
	s := cfg.SAM
	c.sam_image_size = cint("sam_config.image_size", s.ImageSize, &errs)
	c.sam_patch_size = cint("sam_config.patch_size", s.PatchSize, &errs)
	c.sam_encoder_embed_dim = cint("sam_config.encoder_embed_dim", s.EncoderEmbedDim, &errs)
	c.sam_encoder_depth = cint("sam_config.encoder_depth", s.EncoderDepth, &errs)
	c.sam_encoder_num_heads = cint("sam_config.encoder_num_heads", s.EncoderNumHeads, &errs)
	c.sam_encoder_mlp_dim = cint("sam_config.encoder_mlp_dim", s.EncoderMLPDim, &errs)
	c.sam_window_size = cint("sam_config.window_size", s.WindowSize, &errs)
	if len(s.GlobalAttnIndexes) > C.NC_MAX_GLOBAL_ATTN {
		errs = append(errs, fmt.Sprintf("sam_config.global_attn_indexes has %d entries, at most %d supported",
			len(s.GlobalAttnIndexes), C.NC_MAX_GLOBAL_ATTN))
	} else {
		c.sam_num_global_attn = C.int32_t(len(s.GlobalAttnIndexes))
		for i, v := range s.GlobalAttnIndexes {
			c.sam_global_attn_indexes[i] = cint("sam_config.global_attn_indexes[i]", v, &errs)
		}
	}
	c.sam_layer_norm_eps = C.float(s.LayerNormEps)
	c.sam_prompt_embed_dim = cint("sam_config.prompt_embed_dim", s.PromptEmbedDim, &errs)
	c.sam_mask_in_chans = cint("sam_config.mask_in_chans", s.MaskInChans, &errs)
	c.sam_decoder_depth = cint("sam_config.decoder_depth", s.DecoderDepth, &errs)
	c.sam_decoder_num_heads = cint("sam_config.decoder_num_heads", s.DecoderNumHeads, &errs)
	c.sam_decoder_mlp_dim = cint("sam_config.decoder_mlp_dim", s.DecoderMLPDim, &errs)
	c.sam_attention_downsample = cint("sam_config.attention_downsample_rate", s.AttentionDownsampleRate, &errs)
	c.sam_num_multimask_outputs = cint("sam_config.num_multimask_outputs", s.NumMultimaskOutputs, &errs)
	c.sam_iou_head_hidden_dim = cint("sam_config.iou_head_hidden_dim", s.IoUHeadHiddenDim, &errs)
	c.sam_iou_head_depth = cint("sam_config.iou_head_depth", s.IoUHeadDepth, &errs)
	c.seg_prompt_tokens = cint("seg_prompt_tokens", cfg.SegPromptTokens, &errs)
	c.at_token_id = cint("at_token_id", cfg.AtTokenID, &errs)
	c.boxes_token_id = cint("boxes_token_id", cfg.BoxesTokenID, &errs)
	if len(errs) > 0 {
		return c, fmt.Errorf("%w: %s", ErrConfig, errs[0])
	}
	return c, nil
}

// ValidateConfig asks the core whether a config is consistent (heads dividing widths, indexes in range, ...).
func ValidateConfig(cfg config.Config) error {
	c, err := toC(cfg)
	if err != nil {
		return err
	}
	return call(func() C.nc_status { return C.nc_config_validate(&c) })
}
