// SAM's mask decoder (MODEL_SPEC §5.3, segment-anything's MaskDecoder + TwoWayTransformer) as NExT-Chat runs it:
// tokens = iou_token, the mask tokens, then the prompt's sparse tokens; a two-way transformer between them and the
// image embedding (+ the dense no-mask prompt), then the upscaled image side × the hypernetwork of mask token 0
// gives the low-res mask logits, and the IoU head's output 0 its score (multimask_output=False). Then the mask
// post-processing of §4 back to the original image. Image-side activations are channels-last [g², D].
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"

namespace nc {

class SamMaskDecoder {
  public:
    SamMaskDecoder(const nc_config& config, const WeightStore& weights);

    // Elements of each workspace buffer for n prompts per call: the image side once per call, the rest per pass of
    // at most kPromptsPerPass prompts (sam_decoder.cpp).
    struct Workspace {
        int64_t src, src_pe, k0, v0, tokens, queries, qpe, qproj, kproj, vproj, small_out, keys, kpe, image_out, attn,
            hidden, qt, z, kt, u, scores, up;
        uint64_t bytes() const {
            return 4 * uint64_t(src + src_pe + k0 + v0 + tokens + queries + qpe + qproj + kproj + vproj + small_out +
                                keys + kpe + image_out + attn + hidden + qt + z + kt + u + scores + up);
        }
    };
    Workspace workspace(int64_t n, int64_t sparse_tokens) const;
    void reserve(int64_t n, int64_t sparse_tokens);
    uint64_t workspace_held() const;
    // The float tables made at load: output tokens and the cross attentions' per-head maps.
    uint64_t derived_bytes() const;

    int64_t mask_size() const { return 4 * grid_; }  // low-res mask side: 4g (256)
    // Key rows per band of the output upscaling (forward_prompts): its intermediates for 8 rows of SAM-H's 64-wide
    // map (0.5 and 1 MB) stay in a core's L2.
    static constexpr int64_t kUpscaleRows = 8;

    // In: embedding [D, g, g] (SamImageEncoder), dense_pe [g², D] and no_mask [D] (SamPromptEncoder), sparse
    // [n, sparse_tokens, D]. Out: lowres [n, 4g, 4g] logits of mask token 0, iou [n] its predicted IoU.
    void forward(ops::Ops& ops, const float* embedding, const float* dense_pe, const float* no_mask,
                 const float* sparse, int64_t n, int64_t sparse_tokens, float* lowres, float* iou);

  private:
    // segment-anything's transformer Attention: q/k/v Linear(D → inner), heads over inner, out Linear(inner → D).
    struct Attention {
        ops::Weight q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
        int64_t inner;
        // Cross attentions only: their per-head maps as block-diagonal float32 matrices (sam_decoder.cpp) —
        // heads_k, heads_q, heads_out [heads·D, inner]; heads_v [inner, heads·D]; heads_q_bias [heads, inner].
        std::vector<float> heads_k, heads_v, heads_q, heads_q_bias, heads_out;
    };
    struct Layer {
        Attention self_attn, token_to_image, image_to_token;
        ops::Weight norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm3_b, norm4_w, norm4_b, mlp1_w, mlp1_b, mlp2_w,
            mlp2_b;
    };
    // segment-anything's MLP: Linear layers with ReLU between them.
    using Mlp = std::vector<std::pair<ops::Weight, ops::Weight>>;

    // Projected rows of one attention operand: `rows` rows of `inner` per prompt, `stride` floats between
    // prompts (0: one set shared by every prompt).
    struct Operand {
        const float* data;
        int64_t rows, stride;
    };
    // out [m · q.rows, D] = out_proj(multi-head attention(q, k, v)) for m prompts.
    void attend(ops::Ops& ops, const Attention& a, int64_t m, Operand q, Operand k, Operand v, float* out);
    // y [rows, out] = the MLP of x [rows, in]; hidden rows in work.
    void mlp(ops::Ops& ops, const Mlp& layers, const float* x, int64_t rows, float* y);
    // m prompts [first, first + m) through the transformer, the upscaling and the heads.
    void forward_prompts(ops::Ops& ops, const float* sparse, int64_t m, int64_t sparse_tokens, float* lowres,
                         float* iou);

    int64_t dim_, grid_, mask_tokens_;
    int32_t heads_;
    std::vector<Layer> layers_;
    Attention final_attn_;
    // A ConvTranspose2d(kernel 2, stride 2) as one linear layer over its input pixels (made at load): weight
    // [4·out, in] whose row (a·2 + b)·out + o is w[:, o, a, b], and the bias repeated for each (a, b).
    struct SubpixelLinear {
        std::vector<float> w, b;
        int64_t in, out;  // the conv's channels
        ops::Weight weight() const { return ops::Weight{NC_DTYPE_F32, w.data(), 4 * out, in}; }
        ops::Weight bias() const { return ops::Weight{NC_DTYPE_F32, b.data(), 1, 4 * out}; }
    };
    static SubpixelLinear subpixel_linear(const WeightView& w, const ops::Weight& bias);

    ops::Weight final_norm_w_, final_norm_b_, up_norm_w_, up_norm_b_;
    SubpixelLinear up1_, up2_;
    Mlp hyper0_, iou_head_;
    std::vector<float> output_tokens_;  // iou_token then mask_tokens [1 + mask_tokens, D]

    // Per call: the image side shared by every prompt — src = embedding + dense prompt, its positional encoding,
    // and layer 0's token→image k and v projections of it (the first layer's keys are src for every prompt).
    const float* pe_ = nullptr;
    std::vector<float> src_, src_pe_, k0_, v0_;
    // Per chunk of prompts.
    std::vector<float> tokens_, queries_, qpe_, qproj_, kproj_, vproj_, small_out_, hidden_, keys_, kpe_, image_out_,
        attn_, up_, qt_, z_, kt_, u_, scores_;
    bool planned_ = false;
};

// §4 post-processing, as the demo's de_transform_mask: lowres [n, m, m] → bilinear (align_corners=False) to
// image_size² → bilinear to L² with L = max(width, height) → logit > 0 → the centred (L − min)/2 pad of the short
// axis cropped: masks [n, height, width] of 0/1. Only the kept part of the L² resize is computed.
void sam_masks_to_image(ops::Ops& ops, const float* lowres, int64_t n, int64_t mask_size, int64_t image_size,
                        int32_t width, int32_t height, uint8_t* masks, std::vector<float>& work, bool planned);
// Elements of sam_masks_to_image's work buffer for any image size: the image_size² resize and one band of rows.
int64_t sam_masks_work(int64_t image_size);

}  // namespace nc
