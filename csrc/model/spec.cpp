#include "model/spec.h"

#include <algorithm>

#include "model/config.h"

namespace nc {

namespace {

// Appends tensors of one component under one name prefix.
class SpecBuilder {
  public:
    SpecBuilder(std::vector<TensorSpec>& out, nc_component component, std::string prefix)
        : out_(out), component_(component), prefix_(std::move(prefix)) {}

    void tensor(const std::string& name, Shape shape, nc_tensor_kind kind, nc_tensor_role role = NC_TENSOR_REQUIRED) {
        out_.push_back({prefix_ + name, std::move(shape), component_, role, kind});
    }

    // nn.Linear(in, out): weight [out, in], bias [out].
    void linear(const std::string& name, int64_t in, int64_t out, bool bias, nc_tensor_role role = NC_TENSOR_REQUIRED) {
        tensor(name + ".weight", {out, in}, NC_KIND_MATRIX, role);
        if (bias) tensor(name + ".bias", {out}, NC_KIND_BIAS, role);
    }

    // nn.LayerNorm / LayerNorm2d(dim): weight and bias [dim].
    void layer_norm(const std::string& name, int64_t dim, nc_tensor_role role = NC_TENSOR_REQUIRED) {
        tensor(name + ".weight", {dim}, NC_KIND_NORM_SCALE, role);
        tensor(name + ".bias", {dim}, NC_KIND_NORM_SHIFT, role);
    }

    // segment-anything's MLP(in, hidden, out, depth): layers.0 in→hidden, middle hidden→hidden, last hidden→out.
    void sam_mlp(const std::string& name, int64_t in, int64_t hidden, int64_t out, int depth,
                 nc_tensor_role role = NC_TENSOR_REQUIRED) {
        for (int i = 0; i < depth; ++i) {
            const int64_t fan_in = i == 0 ? in : hidden;
            const int64_t fan_out = i == depth - 1 ? out : hidden;
            linear(name + ".layers." + std::to_string(i), fan_in, fan_out, true, role);
        }
    }

  private:
    std::vector<TensorSpec>& out_;
    nc_component component_;
    std::string prefix_;
};

void add_llm(std::vector<TensorSpec>& out, const nc_config& c) {
    SpecBuilder b(out, NC_COMPONENT_LLM, "");
    const int64_t H = c.hidden_size;
    const int64_t head_dim = H / c.num_attention_heads;
    const int64_t kv_width = head_dim * c.num_key_value_heads;
    b.tensor("model.embed_tokens.weight", {c.vocab_size, H}, NC_KIND_EMBEDDING);
    for (int i = 0; i < c.num_hidden_layers; ++i) {
        const std::string layer = "model.layers." + std::to_string(i) + ".";
        b.linear(layer + "self_attn.q_proj", H, H, false);  // no biases in LLaMA (§7.2)
        b.linear(layer + "self_attn.k_proj", H, kv_width, false);
        b.linear(layer + "self_attn.v_proj", H, kv_width, false);
        b.linear(layer + "self_attn.o_proj", H, H, false);
        b.linear(layer + "mlp.gate_proj", H, c.intermediate_size, false);
        b.linear(layer + "mlp.up_proj", H, c.intermediate_size, false);
        b.linear(layer + "mlp.down_proj", c.intermediate_size, H, false);
        b.tensor(layer + "input_layernorm.weight", {H}, NC_KIND_NORM_SCALE);
        b.tensor(layer + "post_attention_layernorm.weight", {H}, NC_KIND_NORM_SCALE);
    }
    b.tensor("model.norm.weight", {H}, NC_KIND_NORM_SCALE);
    b.tensor("lm_head.weight", {c.vocab_size, H}, NC_KIND_MATRIX);  // untied from embed_tokens (§1.1)
}

void add_vision(std::vector<TensorSpec>& out, const nc_config& c) {
    SpecBuilder b(out, NC_COMPONENT_VISION, "model.vision_tower.vision_model.");
    const int64_t D = c.vision_hidden_size;
    const int64_t P = c.vision_patch_size;
    const int64_t grid = c.vision_image_size / P;
    b.tensor("embeddings.class_embedding", {D}, NC_KIND_EMBEDDING);
    b.tensor("embeddings.patch_embedding.weight", {D, 3, P, P}, NC_KIND_MATRIX);  // conv without bias (§1.2)
    b.tensor("embeddings.position_embedding.weight", {grid * grid + 1, D}, NC_KIND_EMBEDDING);
    b.layer_norm("pre_layrnorm", D);  // sic: HF's spelling
    // Layers past the selected hidden state never run (§1.2: hidden_states[-2] ⇒ the last layer is unused).
    const int run = vision_layers_run(c);
    for (int i = 0; i < c.vision_num_hidden_layers; ++i) {
        const nc_tensor_role role = i < run ? NC_TENSOR_REQUIRED : NC_TENSOR_UNUSED;
        const std::string layer = "encoder.layers." + std::to_string(i) + ".";
        b.linear(layer + "self_attn.q_proj", D, D, true, role);
        b.linear(layer + "self_attn.k_proj", D, D, true, role);
        b.linear(layer + "self_attn.v_proj", D, D, true, role);
        b.linear(layer + "self_attn.out_proj", D, D, true, role);
        b.layer_norm(layer + "layer_norm1", D, role);
        b.linear(layer + "mlp.fc1", D, c.vision_intermediate_size, true, role);
        b.linear(layer + "mlp.fc2", c.vision_intermediate_size, D, true, role);
        b.layer_norm(layer + "layer_norm2", D, role);
    }
    b.layer_norm("post_layernorm", D, NC_TENSOR_UNUSED);
}

void add_projector_loc_seg(std::vector<TensorSpec>& out, const nc_config& c) {
    const int64_t H = c.hidden_size;
    SpecBuilder projector(out, NC_COMPONENT_PROJECTOR, "model.mm_projector.");
    projector.linear("0", c.vision_hidden_size, H, true);  // Linear, GELU (index 1, no weights), Linear (§1.3)
    projector.linear("2", H, H, true);

    SpecBuilder loc(out, NC_COMPONENT_LOC, "");
    loc.linear("loc_encoder.0", 4, c.loc_hidden_size, true);  // box xyxy → embedding (§3)
    loc.linear("loc_encoder.2", c.loc_hidden_size, H, true);
    loc.linear("loc_decoder.0", H, c.loc_hidden_size, true);  // hidden → box xyxy
    loc.linear("loc_decoder.2", c.loc_hidden_size, 4, true);

    SpecBuilder seg(out, NC_COMPONENT_SEG_PROMPT, "seg_prompt_mlp.");
    seg.linear("0", H, H, true);  // §4: Linear, ReLU, Linear to 4 SAM tokens
    seg.linear("2", H, int64_t{c.seg_prompt_tokens} * c.sam_prompt_embed_dim, true);
}

void add_sam_encoder(std::vector<TensorSpec>& out, const nc_config& c) {
    SpecBuilder b(out, NC_COMPONENT_SAM_ENCODER, "sam.model.image_encoder.");
    const int64_t E = c.sam_encoder_embed_dim;
    const int64_t P = c.sam_patch_size;
    const int64_t grid = c.sam_image_size / P;
    const int64_t head_dim = E / c.sam_encoder_num_heads;
    const int64_t D = c.sam_prompt_embed_dim;
    b.tensor("patch_embed.proj.weight", {E, 3, P, P}, NC_KIND_MATRIX);
    b.tensor("patch_embed.proj.bias", {E}, NC_KIND_BIAS);
    b.tensor("pos_embed", {1, grid, grid, E}, NC_KIND_EMBEDDING);
    const int* global_begin = c.sam_global_attn_indexes;
    const int* global_end = global_begin + c.sam_num_global_attn;
    for (int i = 0; i < c.sam_encoder_depth; ++i) {
        const std::string block = "blocks." + std::to_string(i) + ".";
        // Relative-position tables span 2S-1 offsets: S = window for windowed blocks, the grid for global (§5.1).
        const bool global = std::find(global_begin, global_end, i) != global_end;
        const int64_t rel = 2 * (global ? grid : c.sam_window_size) - 1;
        b.layer_norm(block + "norm1", E);
        b.linear(block + "attn.qkv", E, 3 * E, true);
        b.linear(block + "attn.proj", E, E, true);
        b.tensor(block + "attn.rel_pos_h", {rel, head_dim}, NC_KIND_REL_POS);
        b.tensor(block + "attn.rel_pos_w", {rel, head_dim}, NC_KIND_REL_POS);
        b.layer_norm(block + "norm2", E);
        b.linear(block + "mlp.lin1", E, c.sam_encoder_mlp_dim, true);
        b.linear(block + "mlp.lin2", c.sam_encoder_mlp_dim, E, true);
    }
    b.tensor("neck.0.weight", {D, E, 1, 1}, NC_KIND_MATRIX);
    b.layer_norm("neck.1", D);
    b.tensor("neck.2.weight", {D, D, 3, 3}, NC_KIND_MATRIX);
    b.layer_norm("neck.3", D);
}

void add_sam_prompt(std::vector<TensorSpec>& out, const nc_config& c) {
    SpecBuilder b(out, NC_COMPONENT_SAM_PROMPT, "sam.model.prompt_encoder.");
    const int64_t D = c.sam_prompt_embed_dim;
    const int64_t M = c.sam_mask_in_chans;
    b.tensor("pe_layer.positional_encoding_gaussian_matrix", {2, D / 2}, NC_KIND_GAUSSIAN);
    // NExT-Chat prompts with boxes only (§4): the point embeddings 0/1 (neg/pos point) and not_a_point_embed,
    // like the whole mask-input branch, are never read.
    for (int i = 0; i < 4; ++i) {
        const nc_tensor_role role = i >= 2 ? NC_TENSOR_REQUIRED : NC_TENSOR_UNUSED;
        b.tensor("point_embeddings." + std::to_string(i) + ".weight", {1, D}, NC_KIND_EMBEDDING, role);
    }
    b.tensor("not_a_point_embed.weight", {1, D}, NC_KIND_EMBEDDING, NC_TENSOR_UNUSED);
    b.tensor("no_mask_embed.weight", {1, D}, NC_KIND_EMBEDDING);
    b.tensor("mask_downscaling.0.weight", {M / 4, 1, 2, 2}, NC_KIND_MATRIX, NC_TENSOR_UNUSED);
    b.tensor("mask_downscaling.0.bias", {M / 4}, NC_KIND_BIAS, NC_TENSOR_UNUSED);
    b.layer_norm("mask_downscaling.1", M / 4, NC_TENSOR_UNUSED);
    b.tensor("mask_downscaling.3.weight", {M, M / 4, 2, 2}, NC_KIND_MATRIX, NC_TENSOR_UNUSED);
    b.tensor("mask_downscaling.3.bias", {M}, NC_KIND_BIAS, NC_TENSOR_UNUSED);
    b.layer_norm("mask_downscaling.4", M, NC_TENSOR_UNUSED);
    b.tensor("mask_downscaling.6.weight", {D, M, 1, 1}, NC_KIND_MATRIX, NC_TENSOR_UNUSED);
    b.tensor("mask_downscaling.6.bias", {D}, NC_KIND_BIAS, NC_TENSOR_UNUSED);
}

// segment-anything's transformer Attention: q/k/v project D → D/downsample, out projects back.
void add_sam_attention(SpecBuilder& b, const std::string& name, int64_t D, int64_t downsample) {
    const int64_t inner = D / downsample;
    b.linear(name + ".q_proj", D, inner, true);
    b.linear(name + ".k_proj", D, inner, true);
    b.linear(name + ".v_proj", D, inner, true);
    b.linear(name + ".out_proj", inner, D, true);
}

void add_sam_decoder(std::vector<TensorSpec>& out, const nc_config& c) {
    SpecBuilder b(out, NC_COMPONENT_SAM_DECODER, "sam.model.mask_decoder.");
    const int64_t D = c.sam_prompt_embed_dim;
    const int64_t mask_tokens = c.sam_num_multimask_outputs + 1;
    b.tensor("iou_token.weight", {1, D}, NC_KIND_EMBEDDING);
    b.tensor("mask_tokens.weight", {mask_tokens, D}, NC_KIND_EMBEDDING);
    for (int i = 0; i < c.sam_decoder_depth; ++i) {
        const std::string layer = "transformer.layers." + std::to_string(i) + ".";
        add_sam_attention(b, layer + "self_attn", D, 1);
        b.layer_norm(layer + "norm1", D);
        add_sam_attention(b, layer + "cross_attn_token_to_image", D, c.sam_attention_downsample);
        b.layer_norm(layer + "norm2", D);
        b.linear(layer + "mlp.lin1", D, c.sam_decoder_mlp_dim, true);
        b.linear(layer + "mlp.lin2", c.sam_decoder_mlp_dim, D, true);
        b.layer_norm(layer + "norm3", D);
        b.layer_norm(layer + "norm4", D);
        add_sam_attention(b, layer + "cross_attn_image_to_token", D, c.sam_attention_downsample);
    }
    add_sam_attention(b, "transformer.final_attn_token_to_image", D, c.sam_attention_downsample);
    b.layer_norm("transformer.norm_final_attn", D);
    // ConvTranspose2d weights are [in, out, kh, kw].
    b.tensor("output_upscaling.0.weight", {D, D / 4, 2, 2}, NC_KIND_MATRIX);
    b.tensor("output_upscaling.0.bias", {D / 4}, NC_KIND_BIAS);
    b.layer_norm("output_upscaling.1", D / 4);
    b.tensor("output_upscaling.3.weight", {D / 4, D / 8, 2, 2}, NC_KIND_MATRIX);
    b.tensor("output_upscaling.3.bias", {D / 8}, NC_KIND_BIAS);
    // multimask_output=False keeps mask token 0 only (§5.3): the other hypernetworks' outputs are discarded.
    for (int64_t i = 0; i < mask_tokens; ++i) {
        const nc_tensor_role role = i == 0 ? NC_TENSOR_REQUIRED : NC_TENSOR_UNUSED;
        b.sam_mlp("output_hypernetworks_mlps." + std::to_string(i), D, D, D / 8, 3, role);
    }
    b.sam_mlp("iou_prediction_head", D, c.sam_iou_head_hidden_dim, mask_tokens, c.sam_iou_head_depth);
}

}  // namespace

std::vector<TensorSpec> build_spec(const nc_config& config) {
    std::vector<TensorSpec> out;
    add_llm(out, config);
    add_vision(out, config);
    add_projector_loc_seg(out, config);
    add_sam_encoder(out, config);
    add_sam_prompt(out, config);
    add_sam_decoder(out, config);
    return out;
}

}  // namespace nc
