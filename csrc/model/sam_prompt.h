// SAM's prompt side as NExT-Chat drives it (MODEL_SPEC §4, §5.2): per located <at>, seg_prompt_mlp turns the
// hidden state into seg_prompt_tokens sparse tokens, and the decoded box is a SAM box prompt (two corner tokens
// from the random Fourier positional encoding plus point_embeddings[2] and [3]). The dense prompt is
// no_mask_embed everywhere; the decoder's image positional encoding is the same Fourier encoding of the
// embedding grid's pixel centres. No points, no mask input.
#pragma once

#include <cstdint>
#include <vector>

#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"

namespace nc {

class SamPromptEncoder {
  public:
    SamPromptEncoder(const nc_config& config, const WeightStore& weights);

    // Elements of the workspace for n locations per call.
    struct Workspace {
        int64_t mid, tokens;
        uint64_t bytes() const { return 4 * uint64_t(mid + tokens); }
    };
    Workspace workspace(int64_t n) const { return Workspace{n * hidden_, n * llm_tokens_ * dim_}; }
    void reserve(int64_t n);
    uint64_t workspace_held() const;
    // The float tables made at load (Fourier matrix, corner embeddings, no-mask embedding, dense positions).
    uint64_t derived_bytes() const;

    int64_t sparse_tokens() const { return llm_tokens_ + 2; }  // 4 from the LLM + 2 box corners (§4)
    int64_t width() const { return dim_; }                     // D (256)

    // In: at_hidden [n, hidden] (final-normed <at> states), boxes [n, 4] (normalized xyxy in the expand2square
    // frame, as loc_decoder gives them). Out: sparse [n, sparse_tokens, D].
    void sparse(ops::Ops& ops, const float* at_hidden, const float* boxes, int64_t n, float* out);

    // get_dense_pe as channels-last [g², D]: the encoding of ((j + 0.5)/g, (i + 0.5)/g) at pixel (i, j).
    const std::vector<float>& dense_pe() const { return dense_pe_; }
    // The dense prompt embedding at every pixel: no_mask_embed [D].
    const std::vector<float>& no_mask() const { return no_mask_; }

  private:
    // [sin(2π·((2p − 1)·G)), cos(…)] of a point p ∈ [0, 1]², in float32 like the reference (§5.2).
    void fourier(float px, float py, float* out) const;

    int64_t hidden_, llm_tokens_, dim_, image_, grid_;
    ops::Weight mlp0_w_, mlp0_b_, mlp2_w_, mlp2_b_;
    std::vector<float> gaussian_, corner0_, corner1_, no_mask_, dense_pe_;  // G [2, D/2], point_embeddings[2], [3]
    std::vector<float> mid_, tokens_;
    bool planned_ = false;
};

}  // namespace nc
