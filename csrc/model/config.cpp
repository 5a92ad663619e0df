#include "model/config.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace nc {

nc_config default_7b_config() {
    nc_config c{};
    c.struct_size = sizeof(nc_config);
    // §1.1: config.json of AoZhang/nextchat-7b-336.
    c.vocab_size = 32005;
    c.hidden_size = 4096;
    c.intermediate_size = 11008;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 32;
    c.max_position_embeddings = 4096;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;  // no rope_theta key ⇒ transformers 4.31 default
    // §1.2: openai/clip-vit-large-patch14-336.
    c.vision_hidden_size = 1024;
    c.vision_intermediate_size = 4096;
    c.vision_num_hidden_layers = 24;
    c.vision_num_attention_heads = 16;
    c.vision_image_size = 336;
    c.vision_patch_size = 14;
    c.vision_layer_norm_eps = 1e-5f;
    c.vision_select_layer = -2;
    // §3.
    c.loc_hidden_size = 2048;
    // §5.1: build_sam_vit_h.
    c.sam_image_size = 1024;
    c.sam_patch_size = 16;
    c.sam_encoder_embed_dim = 1280;
    c.sam_encoder_depth = 32;
    c.sam_encoder_num_heads = 16;
    c.sam_encoder_mlp_dim = 5120;
    c.sam_window_size = 14;
    c.sam_num_global_attn = 4;
    c.sam_global_attn_indexes[0] = 7;
    c.sam_global_attn_indexes[1] = 15;
    c.sam_global_attn_indexes[2] = 23;
    c.sam_global_attn_indexes[3] = 31;
    c.sam_layer_norm_eps = 1e-6f;
    // §5.2, §5.3.
    c.sam_prompt_embed_dim = 256;
    c.sam_mask_in_chans = 16;
    c.sam_decoder_depth = 2;
    c.sam_decoder_num_heads = 8;
    c.sam_decoder_mlp_dim = 2048;
    c.sam_attention_downsample = 2;
    c.sam_num_multimask_outputs = 3;
    c.sam_iou_head_hidden_dim = 256;
    c.sam_iou_head_depth = 3;
    c.seg_prompt_tokens = 4;  // §4: seg_prompt_mlp output viewed as [N, 4, 256]
    c.at_token_id = 32003;    // §2.1
    c.boxes_token_id = 32004;
    return c;
}

namespace {

// Large enough for any real model, small enough that every tensor size fits in int64 with room to spare.
constexpr int32_t kMaxDim = 1 << 20;
constexpr int32_t kMaxCount = 4096;

[[noreturn]] void bad(const std::string& message) { fail(NC_ERR_CONFIG, "invalid config: " + message); }

void require_range(const char* field, int64_t value, int64_t lo, int64_t hi) {
    if (value < lo || value > hi) {
        bad(std::string(field) + " = " + std::to_string(value) + ", must be in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
    }
}

void require_divides(const char* what, int64_t divisor, const char* of_what, int64_t value) {
    if (value % divisor != 0) {
        bad(std::string(what) + " (" + std::to_string(divisor) + ") must divide " + of_what + " (" +
            std::to_string(value) + ")");
    }
}

void require_eps(const char* field, float eps) {
    if (!std::isfinite(eps) || eps <= 0.0f || eps >= 1.0f) bad(std::string(field) + " must be in (0, 1)");
}

void validate_llm(const nc_config& c) {
    require_range("vocab_size", c.vocab_size, 1, kMaxDim * 8);
    require_range("hidden_size", c.hidden_size, 1, kMaxDim);
    require_range("intermediate_size", c.intermediate_size, 1, kMaxDim);
    require_range("num_hidden_layers", c.num_hidden_layers, 1, kMaxCount);
    require_range("num_attention_heads", c.num_attention_heads, 1, kMaxCount);
    require_range("num_key_value_heads", c.num_key_value_heads, 1, c.num_attention_heads);
    require_range("max_position_embeddings", c.max_position_embeddings, 1, kMaxDim);
    require_divides("num_attention_heads", c.num_attention_heads, "hidden_size", c.hidden_size);
    require_divides("num_key_value_heads", c.num_key_value_heads, "num_attention_heads", c.num_attention_heads);
    if ((c.hidden_size / c.num_attention_heads) % 2 != 0) bad("head_dim must be even for rotate-half RoPE (§1.1)");
    require_eps("rms_norm_eps", c.rms_norm_eps);
    require_range("at_token_id", c.at_token_id, 0, c.vocab_size - 1);
    require_range("boxes_token_id", c.boxes_token_id, 0, c.vocab_size - 1);
    if (c.at_token_id == c.boxes_token_id) bad("at_token_id and boxes_token_id must differ");
    if (!std::isfinite(c.rope_theta) || c.rope_theta <= 1.0f) bad("rope_theta must be finite and > 1");
}

void validate_vision(const nc_config& c) {
    require_range("vision_config.hidden_size", c.vision_hidden_size, 1, kMaxDim);
    require_range("vision_config.intermediate_size", c.vision_intermediate_size, 1, kMaxDim);
    require_range("vision_config.num_hidden_layers", c.vision_num_hidden_layers, 1, kMaxCount);
    require_range("vision_config.num_attention_heads", c.vision_num_attention_heads, 1, kMaxCount);
    require_range("vision_config.image_size", c.vision_image_size, 1, 1 << 14);
    require_range("vision_config.patch_size", c.vision_patch_size, 1, c.vision_image_size);
    require_divides("vision_config.num_attention_heads", c.vision_num_attention_heads, "vision_config.hidden_size",
                    c.vision_hidden_size);
    require_divides("vision_config.patch_size", c.vision_patch_size, "vision_config.image_size", c.vision_image_size);
    require_eps("vision_config.layer_norm_eps", c.vision_layer_norm_eps);
    const int L = c.vision_num_hidden_layers;
    require_range("mm_vision_select_layer", c.vision_select_layer, -(L + 1), L);
    if (vision_layers_run(c) < 1) bad("mm_vision_select_layer selects the embeddings: no CLIP layer would run");
}

void validate_sam(const nc_config& c) {
    require_range("loc_hidden_size", c.loc_hidden_size, 1, kMaxDim);
    require_range("sam_config.image_size", c.sam_image_size, 1, 1 << 14);
    require_range("sam_config.patch_size", c.sam_patch_size, 1, c.sam_image_size);
    require_divides("sam_config.patch_size", c.sam_patch_size, "sam_config.image_size", c.sam_image_size);
    require_range("sam_config.encoder_embed_dim", c.sam_encoder_embed_dim, 1, kMaxDim);
    require_range("sam_config.encoder_depth", c.sam_encoder_depth, 1, kMaxCount);
    require_range("sam_config.encoder_num_heads", c.sam_encoder_num_heads, 1, kMaxCount);
    require_range("sam_config.encoder_mlp_dim", c.sam_encoder_mlp_dim, 1, kMaxDim);
    require_divides("sam_config.encoder_num_heads", c.sam_encoder_num_heads, "sam_config.encoder_embed_dim",
                    c.sam_encoder_embed_dim);
    const int grid = c.sam_image_size / c.sam_patch_size;
    require_range("sam_config.window_size", c.sam_window_size, 1, grid);
    require_range("sam_config.global_attn_indexes count", c.sam_num_global_attn, 0, NC_MAX_GLOBAL_ATTN);
    for (int i = 0; i < c.sam_num_global_attn; ++i) {
        require_range("sam_config.global_attn_indexes[i]", c.sam_global_attn_indexes[i], 0, c.sam_encoder_depth - 1);
        if (i > 0 && c.sam_global_attn_indexes[i] <= c.sam_global_attn_indexes[i - 1]) {
            bad("sam_config.global_attn_indexes must be strictly increasing");
        }
    }
    require_eps("sam_config.layer_norm_eps", c.sam_layer_norm_eps);
    const int D = c.sam_prompt_embed_dim;
    require_range("sam_config.prompt_embed_dim", D, 8, kMaxDim);
    require_divides("8 (output upscaling to D/4 then D/8 channels, §5.3)", 8, "sam_config.prompt_embed_dim", D);
    require_divides("2 (sin and cos halves of the random Fourier PE, §5.2)", 2, "sam_config.prompt_embed_dim", D);
    require_range("sam_config.mask_in_chans", c.sam_mask_in_chans, 4, kMaxDim);
    require_divides("4 (mask downscaling to mask_in_chans/4)", 4, "sam_config.mask_in_chans", c.sam_mask_in_chans);
    require_range("sam_config.decoder_depth", c.sam_decoder_depth, 1, kMaxCount);
    require_range("sam_config.decoder_num_heads", c.sam_decoder_num_heads, 1, kMaxCount);
    require_range("sam_config.decoder_mlp_dim", c.sam_decoder_mlp_dim, 1, kMaxDim);
    require_range("sam_config.attention_downsample_rate", c.sam_attention_downsample, 1, D);
    require_divides("sam_config.attention_downsample_rate", c.sam_attention_downsample, "sam_config.prompt_embed_dim",
                    D);
    require_divides("sam_config.decoder_num_heads", c.sam_decoder_num_heads,
                    "prompt_embed_dim / attention_downsample_rate", D / c.sam_attention_downsample);
    require_range("sam_config.num_multimask_outputs", c.sam_num_multimask_outputs, 0, 64);
    require_range("sam_config.iou_head_hidden_dim", c.sam_iou_head_hidden_dim, 1, kMaxDim);
    require_range("sam_config.iou_head_depth", c.sam_iou_head_depth, 2, 64);
    require_range("seg_prompt_tokens", c.seg_prompt_tokens, 1, 64);
}

}  // namespace

int vision_layers_run(const nc_config& config) {
    const int L = config.vision_num_hidden_layers;
    // hidden_states has L+1 entries: index 0 is the pre-LN'd embedding, index k follows layer k.
    return config.vision_select_layer < 0 ? L + 1 + config.vision_select_layer : config.vision_select_layer;
}

void validate_config(const nc_config& config) {
    if (config.struct_size < sizeof(nc_config)) {
        fail(NC_ERR_INVALID_ARGUMENT, "nc_config.struct_size is " + std::to_string(config.struct_size) +
                                          ", this library needs " + std::to_string(sizeof(nc_config)));
    }
    validate_llm(config);
    validate_vision(config);
    validate_sam(config);
}

}  // namespace nc
