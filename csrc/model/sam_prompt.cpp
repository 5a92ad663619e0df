#include "model/sam_prompt.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/llm.h"
#include "model/workspace.h"

namespace nc {

namespace {

constexpr double kPi = 3.14159265358979323846;

std::vector<float> to_floats(const WeightView& v) {
    const ops::Weight w = as_op_weight(v);
    std::vector<float> out(size_t(w.rows * w.cols));
    for (size_t i = 0; i < out.size(); ++i) out[i] = ops::weight_at(w, int64_t(i));
    return out;
}

}  // namespace

SamPromptEncoder::SamPromptEncoder(const nc_config& c, const WeightStore& w)
    : hidden_(c.hidden_size),
      llm_tokens_(c.seg_prompt_tokens),
      dim_(c.sam_prompt_embed_dim),
      image_(c.sam_image_size),
      grid_(c.sam_image_size / c.sam_patch_size),
      mlp0_w_(as_op_weight(w.get("seg_prompt_mlp.0.weight"))),
      mlp0_b_(as_op_weight(w.get("seg_prompt_mlp.0.bias"))),
      mlp2_w_(as_op_weight(w.get("seg_prompt_mlp.2.weight"))),
      mlp2_b_(as_op_weight(w.get("seg_prompt_mlp.2.bias"))) {
    const std::string p = "sam.model.prompt_encoder.";
    gaussian_ = to_floats(w.get(p + "pe_layer.positional_encoding_gaussian_matrix"));
    corner0_ = to_floats(w.get(p + "point_embeddings.2.weight"));  // box corners are points 2 and 3 (§5.2)
    corner1_ = to_floats(w.get(p + "point_embeddings.3.weight"));
    no_mask_ = to_floats(w.get(p + "no_mask_embed.weight"));
    // get_dense_pe: pixel centres of the g × g grid, x along columns, in float32 as the reference computes them.
    dense_pe_.resize(size_t(grid_ * grid_ * dim_));
    for (int64_t i = 0; i < grid_; ++i) {
        for (int64_t j = 0; j < grid_; ++j) {
            fourier((float(j + 1) - 0.5f) / float(grid_), (float(i + 1) - 0.5f) / float(grid_),
                    dense_pe_.data() + (i * grid_ + j) * dim_);
        }
    }
}

void SamPromptEncoder::reserve(int64_t n) {
    const Workspace w = workspace(n);
    reserve_exact(mid_, w.mid);
    reserve_exact(tokens_, w.tokens);
    planned_ = true;
}

uint64_t SamPromptEncoder::workspace_held() const { return held_bytes(mid_) + held_bytes(tokens_); }

uint64_t SamPromptEncoder::derived_bytes() const {
    return held_bytes(gaussian_) + held_bytes(corner0_) + held_bytes(corner1_) + held_bytes(no_mask_) +
           held_bytes(dense_pe_);
}

void SamPromptEncoder::fourier(float px, float py, float* out) const {
    const int64_t half = dim_ / 2;
    const float x = 2.0f * px - 1.0f, y = 2.0f * py - 1.0f;
    const float two_pi = float(2.0 * kPi);  // torch: 2 * np.pi times a float32 tensor
    for (int64_t j = 0; j < half; ++j) {
        const float a = two_pi * (x * gaussian_[size_t(j)] + y * gaussian_[size_t(half + j)]);
        out[j] = std::sin(a);
        out[half + j] = std::cos(a);
    }
}

void SamPromptEncoder::sparse(ops::Ops& ops, const float* at_hidden, const float* boxes, int64_t n, float* out) {
    // at_hidden [n, H] → ReLU(Linear) [n, H] → Linear [n, T·D]; boxes [n, 4] → 2 corner tokens [n, 2, D]
    const int64_t T = llm_tokens_, D = dim_, K = sparse_tokens();
    const Workspace w = workspace(n);
    float* mid = grown(mid_, w.mid, planned_);
    float* tokens = grown(tokens_, w.tokens, planned_);
    ops.linear(at_hidden, n, mlp0_w_, &mlp0_b_, mid);
    ops.relu(mid, n * hidden_);
    ops.linear(mid, n, mlp2_w_, &mlp2_b_, tokens);
    for (int64_t i = 0; i < n; ++i) {
        float* dst = out + i * K * D;
        std::copy(tokens + i * T * D, tokens + (i + 1) * T * D, dst);
        // prompt_encoder(boxes = box · S): corners (b + 0.5) / S, computed in double then rounded, as the reference
        // does before its float32 encoding.
        const float* b = boxes + 4 * i;
        auto coord = [&](int k) { return float((double(b[k]) * double(image_) + 0.5) / double(image_)); };
        float* c0 = dst + T * D;
        float* c1 = c0 + D;
        fourier(coord(0), coord(1), c0);
        fourier(coord(2), coord(3), c1);
        for (int64_t j = 0; j < D; ++j) {
            c0[j] += corner0_[size_t(j)];
            c1[j] += corner1_[size_t(j)];
        }
    }
}

}  // namespace nc
