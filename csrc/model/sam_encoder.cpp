#include "model/sam_encoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/dtype.h"
#include "model/llm.h"
#include "model/workspace.h"

namespace nc {

namespace {

constexpr int32_t kChannels = 3;     // RGB (§4)
constexpr float kNeckEps = 1e-6f;   // LayerNorm2d's default in segment-anything (§5.1)

// A conv weight [out, in, kh, kw] (or any tensor) as the matrix [shape[0], the rest].
ops::Weight as_matrix(const WeightView& v) {
    int64_t numel = 1;
    for (int64_t d : v.shape) numel *= d;
    const int64_t rows = v.shape.empty() ? 1 : v.shape[0];
    return ops::Weight{v.dtype, v.data, rows, numel / rows};
}

// Rows [first, first + n) of a matrix, or elements of a vector (rows = 1).
ops::Weight slice(const ops::Weight& w, int64_t first, int64_t n) {
    const int64_t esize = int64_t(dtype_size(w.dtype));
    if (w.rows == 1) return ops::Weight{w.dtype, static_cast<const char*>(w.data) + first * esize, 1, n};
    return ops::Weight{w.dtype, static_cast<const char*>(w.data) + first * w.cols * esize, n, w.cols};
}

// Rows of the windows of a g × g map: whole windows, padding included (§5.1).
int64_t window_rows(int64_t g, int32_t window) {
    const int64_t per_side = (g + window - 1) / window;
    return per_side * per_side * window * window;
}

}  // namespace

SamImageEncoder::SamImageEncoder(const nc_config& c, const WeightStore& w)
    : image_(c.sam_image_size),
      patch_(c.sam_patch_size),
      grid_(c.sam_image_size / c.sam_patch_size),
      width_(c.sam_encoder_embed_dim),
      mlp_(c.sam_encoder_mlp_dim),
      out_(c.sam_prompt_embed_dim),
      heads_(c.sam_encoder_num_heads),
      eps_(c.sam_layer_norm_eps) {
    const std::string p = "sam.model.image_encoder.";
    auto get = [&](const std::string& name) { return as_op_weight(w.get(p + name)); };
    auto matrix = [&](const std::string& name) { return as_matrix(w.get(p + name)); };
    patch_w_ = matrix("patch_embed.proj.weight");  // [E, 3·p·p] over patches flattened (channel, i, j)
    patch_b_ = get("patch_embed.proj.bias");
    pos_embed_ = get("pos_embed");
    pos_embed_.rows = grid_ * grid_;  // [1, g, g, E] as g² rows
    neck_conv1_ = matrix("neck.0.weight");
    neck_norm1_w_ = get("neck.1.weight");
    neck_norm1_b_ = get("neck.1.bias");
    neck_conv3_ = matrix("neck.2.weight");
    neck_norm2_w_ = get("neck.3.weight");
    neck_norm2_b_ = get("neck.3.bias");
    const int* global_end = c.sam_global_attn_indexes + c.sam_num_global_attn;
    for (int i = 0; i < c.sam_encoder_depth; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".";
        // qkv [3E, E] is laid out [3][heads][head_dim] (§5.1): rows [0, E) make q, then k, then v.
        const ops::Weight qkv_w = get(b + "attn.qkv.weight"), qkv_b = get(b + "attn.qkv.bias");
        const bool global = std::find(c.sam_global_attn_indexes, global_end, i) != global_end;
        blocks_.push_back(Block{get(b + "norm1.weight"), get(b + "norm1.bias"), slice(qkv_w, 0, width_),
                                slice(qkv_b, 0, width_), slice(qkv_w, width_, width_), slice(qkv_b, width_, width_),
                                slice(qkv_w, 2 * width_, width_), slice(qkv_b, 2 * width_, width_),
                                get(b + "attn.proj.weight"), get(b + "attn.proj.bias"), get(b + "attn.rel_pos_h"),
                                get(b + "attn.rel_pos_w"), get(b + "norm2.weight"), get(b + "norm2.bias"),
                                get(b + "mlp.lin1.weight"), get(b + "mlp.lin1.bias"), get(b + "mlp.lin2.weight"),
                                get(b + "mlp.lin2.bias"), global ? 0 : c.sam_window_size});
    }
}

SamImageEncoder::Workspace SamImageEncoder::workspace() const {
    const int64_t g = grid_, T = g * g, E = width_, D = out_, wide = std::max(E, D);
    int64_t windowed = 0;
    for (const Block& b : blocks_) windowed = std::max(windowed, b.window > 0 ? window_rows(g, b.window) : 0);
    // h and q hold the neck's [g², D] maps too; big the MLP's hidden rows, the windows of q, k, v and the attention
    // output, or the patch rows.
    return Workspace{T * E, T * wide, T * wide, T * E, T * E, std::max({T * mlp_, 4 * windowed * E, T * patch_w_.cols}),
                     3 * E, T};
}

void SamImageEncoder::reserve() {
    const Workspace w = workspace();
    reserve_exact(x_, w.x);
    reserve_exact(h_, w.h);
    reserve_exact(q_, w.q);
    reserve_exact(k_, w.k);
    reserve_exact(v_, w.v);
    reserve_exact(big_, w.big);
    reserve_exact(fills_, w.fills);
    reserve_exact(positions_, w.positions);
    planned_ = true;
}

uint64_t SamImageEncoder::workspace_held() const {
    return held_bytes(x_) + held_bytes(h_) + held_bytes(q_) + held_bytes(k_) + held_bytes(v_) + held_bytes(big_) +
           held_bytes(fills_) + held_bytes(positions_);
}

void SamImageEncoder::attention(ops::Ops& ops, const Block& b, float* x) {
    const int64_t g = grid_, T = g * g, E = width_;
    const int32_t head_dim = int32_t(E / heads_);
    const float scale = 1.0f / std::sqrt(float(head_dim));
    float *h = h_.data(), *q = q_.data(), *k = k_.data(), *v = v_.data();
    ops.layer_norm(x, T, b.norm1_w, b.norm1_b, eps_, h);
    ops.linear(h, T, b.q_w, &b.q_b, q);
    ops.linear(h, T, b.k_w, &b.k_b, k);
    ops.linear(h, T, b.v_w, &b.v_b, v);
    if (b.window == 0) {
        auto bias = ops.rel_pos_bias(q, heads_, head_dim, g, g, b.rel_h, b.rel_w);
        ops.attention(q, k, v, 1, T, T, heads_, head_dim, scale, bias.get(), h);
    } else {
        // segment-anything pads the post-LN map with zeros to whole windows and attends within each window with
        // no mask, so padded positions are keys and values too: the linear layers map their zeros to the biases.
        // Padding q, k and v with their biases is the same and spares the projections of the padded rows; the
        // padded queries' outputs are dropped by window_merge, and proj runs on the g² kept rows only.
        const int32_t win = b.window;
        const int64_t rows = window_rows(g, win), windows = rows / (win * win);
        float* fill = grown(fills_, workspace().fills, planned_);
        const int32_t first = 0;
        ops.embedding(b.q_b, &first, 1, fill);
        ops.embedding(b.k_b, &first, 1, fill + E);
        ops.embedding(b.v_b, &first, 1, fill + 2 * E);
        float* qw = big_.data();
        float *kw = qw + rows * E, *vw = kw + rows * E, *ow = vw + rows * E;
        ops.window_partition(q, g, g, E, win, fill, qw);
        ops.window_partition(k, g, g, E, win, fill + E, kw);
        ops.window_partition(v, g, g, E, win, fill + 2 * E, vw);
        auto bias = ops.rel_pos_bias(qw, heads_, head_dim, win, win, b.rel_h, b.rel_w);
        ops.attention(qw, kw, vw, windows, win * win, win * win, heads_, head_dim, scale, bias.get(), ow);
        ops.window_merge(ow, g, g, E, win, h);
    }
    ops.linear(h, T, b.proj_w, &b.proj_b, q);
    ops.add(x, q, T * E);
}

void SamImageEncoder::forward(ops::Ops& ops, const float* pixels, float* embedding) {
    // pixels [3, S, S] → patch rows [g², 3·p·p] → x [g², E] (+ pos_embed) → blocks → neck [g², D] → [D, g, g]
    const int64_t g = grid_, T = g * g, E = width_, D = out_;
    const Workspace w = workspace();
    float* x = grown(x_, w.x, planned_);
    float* h = grown(h_, w.h, planned_);
    float* q = grown(q_, w.q, planned_);
    grown(k_, w.k, planned_);
    grown(v_, w.v, planned_);
    float* big = grown(big_, w.big, planned_);

    ops.patches(pixels, 1, kChannels, int32_t(image_), int32_t(image_), int32_t(patch_), big);
    ops.linear(big, T, patch_w_, &patch_b_, x);
    int32_t* pos = grown(positions_, w.positions, planned_);
    for (int64_t i = 0; i < T; ++i) pos[i] = int32_t(i);
    ops.embedding(pos_embed_, pos, T, h);
    ops.add(x, h, T * E);

    for (const Block& b : blocks_) {
        attention(ops, b, x);
        // x += lin2(gelu(lin1(norm2(x))))
        ops.layer_norm(x, T, b.norm2_w, b.norm2_b, eps_, h);
        ops.linear(h, T, b.lin1_w, &b.lin1_b, big);
        ops.gelu(big, T * mlp_);
        ops.linear(big, T, b.lin2_w, &b.lin2_b, h);
        ops.add(x, h, T * E);
    }

    // Neck: 1×1 conv (no bias), LayerNorm2d, 3×3 conv (pad 1, no bias), LayerNorm2d — all on [g², ·] maps.
    ops.conv2d(x, 1, g, g, neck_conv1_, nullptr, 1, h);
    ops.layer_norm(h, T, neck_norm1_w_, neck_norm1_b_, kNeckEps, q);
    ops.conv2d(q, 1, g, g, neck_conv3_, nullptr, 3, h);
    ops.layer_norm(h, T, neck_norm2_w_, neck_norm2_b_, kNeckEps, q);
    ops.transpose(q, 1, T, D, embedding);
}

}  // namespace nc
