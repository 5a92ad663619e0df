#include "model/vision.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/config.h"
#include "model/llm.h"
#include "model/workspace.h"

namespace nc {

namespace {

constexpr int32_t kChannels = 3;  // RGB (§1.4)

}  // namespace

VisionTower::VisionTower(const nc_config& c, const WeightStore& w)
    : image_(c.vision_image_size),
      patch_(c.vision_patch_size),
      patches_((c.vision_image_size / c.vision_patch_size) * (c.vision_image_size / c.vision_patch_size)),
      width_(c.vision_hidden_size),
      intermediate_(c.vision_intermediate_size),
      heads_(c.vision_num_attention_heads),
      eps_(c.vision_layer_norm_eps) {
    const std::string p = "model.vision_tower.vision_model.";
    auto get = [&](const std::string& name) { return as_op_weight(w.get(p + name)); };
    // The conv weight [D, 3, p, p] is the linear [D, 3·p·p] over patches flattened (channel, i, j).
    patch_embed_ = get("embeddings.patch_embedding.weight");
    patch_embed_.cols = int64_t(kChannels) * patch_ * patch_;
    class_embed_ = get("embeddings.class_embedding");
    position_embed_ = get("embeddings.position_embedding.weight");
    pre_norm_w_ = get("pre_layrnorm.weight");
    pre_norm_b_ = get("pre_layrnorm.bias");
    for (int i = 0; i < vision_layers_run(c); ++i) {
        const std::string l = "encoder.layers." + std::to_string(i) + ".";
        layers_.push_back(Layer{get(l + "layer_norm1.weight"), get(l + "layer_norm1.bias"),
                                get(l + "self_attn.q_proj.weight"), get(l + "self_attn.q_proj.bias"),
                                get(l + "self_attn.k_proj.weight"), get(l + "self_attn.k_proj.bias"),
                                get(l + "self_attn.v_proj.weight"), get(l + "self_attn.v_proj.bias"),
                                get(l + "self_attn.out_proj.weight"), get(l + "self_attn.out_proj.bias"),
                                get(l + "layer_norm2.weight"), get(l + "layer_norm2.bias"), get(l + "mlp.fc1.weight"),
                                get(l + "mlp.fc1.bias"), get(l + "mlp.fc2.weight"), get(l + "mlp.fc2.bias")});
    }
}

VisionTower::Workspace VisionTower::workspace(int64_t n) const {
    const int64_t R = n * (patches_ + 1), D = width_;
    return Workspace{R * D, R * D, R * D, R * D, R * D, R * D, R * intermediate_, n * patches_ * patch_embed_.cols, R};
}

void VisionTower::reserve(int64_t n) {
    const Workspace w = workspace(n);
    reserve_exact(x_, w.x);
    reserve_exact(h_, w.h);
    reserve_exact(q_, w.q);
    reserve_exact(k_, w.k);
    reserve_exact(v_, w.v);
    reserve_exact(attn_, w.attn);
    reserve_exact(mlp_, w.mlp);
    reserve_exact(pixel_rows_, w.pixel_rows);
    reserve_exact(positions_, w.positions);
    planned_ = true;
}

uint64_t VisionTower::workspace_held() const {
    return held_bytes(x_) + held_bytes(h_) + held_bytes(q_) + held_bytes(k_) + held_bytes(v_) + held_bytes(attn_) +
           held_bytes(mlp_) + held_bytes(pixel_rows_) + held_bytes(positions_);
}

void VisionTower::forward(ops::Ops& ops, const float* pixels, int64_t n, float* features) {
    // pixels [n, 3, S, S] → patch rows [n·P, 3·p·p] → tokens x [n, T = P + 1, D] (class token first)
    // → pre_layrnorm → layers → features [n, P, D]
    const int64_t P = patches_, T = P + 1, D = width_, R = n * T;
    const int32_t head_dim = int32_t(D / heads_);
    const Workspace w = workspace(n);
    float* x = grown(x_, w.x, planned_);
    float* h = grown(h_, w.h, planned_);
    grown(q_, w.q, planned_);
    grown(k_, w.k, planned_);
    grown(v_, w.v, planned_);
    grown(attn_, w.attn, planned_);
    grown(mlp_, w.mlp, planned_);
    grown(pixel_rows_, w.pixel_rows, planned_);
    grown(positions_, w.positions, planned_);

    // Embeddings: position rows everywhere, plus the patch embedding (conv, no bias) or the class embedding.
    ops.patches(pixels, n, kChannels, int32_t(image_), int32_t(image_), int32_t(patch_), pixel_rows_.data());
    ops.linear(pixel_rows_.data(), n * P, patch_embed_, nullptr, h);
    for (int64_t r = 0; r < R; ++r) positions_[size_t(r)] = int32_t(r % T);
    ops.embedding(position_embed_, positions_.data(), R, x);
    const int32_t class_row = 0;
    ops.embedding(class_embed_, &class_row, 1, q_.data());
    for (int64_t i = 0; i < n; ++i) {
        ops.add(x + i * T * D, q_.data(), D);
        ops.add(x + (i * T + 1) * D, h + i * P * D, P * D);
    }
    ops.layer_norm(x, R, pre_norm_w_, pre_norm_b_, eps_, h);  // hidden_states[0]
    std::swap(x_, h_);
    x = x_.data();
    h = h_.data();

    for (const Layer& L : layers_) {
        // x += out_proj(attention(q, k, v)) of layer_norm1(x); every image attends over its own T tokens.
        ops.layer_norm(x, R, L.norm1_w, L.norm1_b, eps_, h);
        const ops::LinearOut qkv[3] = {{&L.q_w, &L.q_b, q_.data()}, {&L.k_w, &L.k_b, k_.data()},
                                       {&L.v_w, &L.v_b, v_.data()}};
        ops.linears(h, R, qkv, 3);
        ops.attention(q_.data(), k_.data(), v_.data(), n, T, T, heads_, head_dim, 1.0f / std::sqrt(float(head_dim)),
                      nullptr, attn_.data());
        ops.linear(attn_.data(), R, L.out_w, &L.out_b, h);
        ops.add(x, h, R * D);
        // x += fc2(quick_gelu(fc1(layer_norm2(x)))).
        ops.layer_norm(x, R, L.norm2_w, L.norm2_b, eps_, h);
        ops.linear(h, R, L.fc1_w, &L.fc1_b, mlp_.data());
        ops.quick_gelu(mlp_.data(), R * intermediate_);
        ops.linear(mlp_.data(), R, L.fc2_w, &L.fc2_b, h);
        ops.add(x, h, R * D);
    }
    for (int64_t i = 0; i < n; ++i) std::copy(x + (i * T + 1) * D, x + (i + 1) * T * D, features + i * P * D);
}

}  // namespace nc
