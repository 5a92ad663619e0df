#include "model/llm.h"

#include <cmath>
#include <iterator>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/workspace.h"

namespace nc {

ops::Weight as_op_weight(const WeightView& w) {
    const int64_t rows = w.shape.size() >= 2 ? w.shape[0] : 1;
    const int64_t cols = w.shape.empty() ? 1 : w.shape.back();
    return ops::Weight{w.dtype, w.data, rows, cols};
}

namespace {

// A decoder layer's tensors are named "model.layers.{i}." + their own name (§7.2); its matrices' names, in
// Layer::matrices' order.
std::string layer_prefix(size_t i) { return "model.layers." + std::to_string(i) + "."; }
constexpr const char* kLayerMatrices[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                          "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                          "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                                          "mlp.down_proj.weight"};
static_assert(std::size(kLayerMatrices) == 7, "one name per Layer::matrices()");

}  // namespace

Llm::Llm(const nc_config& c, const WeightStore& w)
    : hidden_(c.hidden_size),
      vocab_(c.vocab_size),
      intermediate_(c.intermediate_size),
      heads_(c.num_attention_heads),
      kv_heads_(c.num_key_value_heads),
      head_dim_(c.hidden_size / c.num_attention_heads),
      eps_(c.rms_norm_eps),
      inv_freq_(rope_inv_freq(head_dim_, c.rope_theta)),
      embed_(as_op_weight(w.get("model.embed_tokens.weight"))),
      norm_(as_op_weight(w.get("model.norm.weight"))),
      lm_head_(as_op_weight(w.get("lm_head.weight"))) {
    for (int i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = layer_prefix(size_t(i));
        auto get = [&](const char* name) { return as_op_weight(w.get(p + name)); };
        Layer l{};
        l.attn_norm = get("input_layernorm.weight");
        l.mlp_norm = get("post_attention_layernorm.weight");
        const auto m = l.matrices();
        for (size_t j = 0; j < m.size(); ++j) *m[j] = get(kLayerMatrices[j]);
        layers_.push_back(l);
    }
}

void Llm::recode(ops::Ops& ops, nc_llm_weights how) {
    if (how == NC_LLM_WEIGHTS_AS_STORED) return;
    std::vector<std::pair<std::string, ops::Weight*>> matrices;
    for (size_t i = 0; i < layers_.size(); ++i) {
        const auto m = layers_[i].matrices();
        for (size_t j = 0; j < m.size(); ++j) matrices.emplace_back(layer_prefix(i) + kLayerMatrices[j], m[j]);
    }
    matrices.emplace_back("lm_head.weight", &lm_head_);
    // Asked for and impossible is an error, not a silent no-op: the caller expects the memory it asked to save.
    for (const auto& [name, w] : matrices) {
        if (how == NC_LLM_WEIGHTS_COMPACT && w->dtype != NC_DTYPE_BF16) {
            fail(NC_ERR_DTYPE, "compact LLM weights re-code bf16 matrices; " + name + " is " + dtype_name(w->dtype) +
                                   " (nextchat convert --dtype bf16 converts a checkpoint)");
        }
    }
    for (const auto& [name, w] : matrices) {
        const uint64_t stored = uint64_t(w->rows * w->cols) * uint64_t(dtype_size(w->dtype));
        ops::Weight held{w->dtype, nullptr, w->rows, w->cols};
        if (how == NC_LLM_WEIGHTS_COMPACT) {
            compact_.push_back(ops::compact_bf16(ops, w->data, w->rows, w->cols));
            held.compact = compact_.back().get();
        } else {
            int8_.push_back(ops::quantize_int8(ops, *w, name));
            held.dtype = NC_DTYPE_F32;
            held.int8 = int8_.back().get();
        }
        release_file_pages(w->data, stored);
        recoded_stored_bytes_ += stored;
        *w = held;
    }
    held_as_ = how;
}

uint64_t Llm::recoded_bytes() const {
    uint64_t total = 0;
    for (const auto& c : compact_) total += c->bytes();
    for (const auto& q : int8_) total += q->bytes();
    return total;
}

Llm::Workspace Llm::workspace(int64_t T) const {
    const int64_t H = hidden_, kv_width = int64_t(kv_heads_) * head_dim_;
    return Workspace{T * H, T * H, T * kv_width, T * kv_width, T * H, T * intermediate_, T * intermediate_, T,
                     T * head_dim_};
}

void Llm::reserve(int64_t rows) {
    const Workspace w = workspace(rows);
    reserve_exact(h_, w.h);
    reserve_exact(q_, w.q);
    reserve_exact(k_, w.k);
    reserve_exact(v_, w.v);
    reserve_exact(attn_, w.attn);
    reserve_exact(gate_, w.gate);
    reserve_exact(up_, w.up);
    reserve_exact(positions_, w.positions);
    reserve_exact(rope_, w.rope);
    planned_ = true;
}

uint64_t Llm::workspace_held() const {
    return held_bytes(h_) + held_bytes(q_) + held_bytes(k_) + held_bytes(v_) + held_bytes(attn_) + held_bytes(gate_) +
           held_bytes(up_) + held_bytes(positions_) + held_bytes(rope_);
}

void Llm::embed(ops::Ops& ops, const int32_t* ids, int64_t n, float* x) const { ops.embedding(embed_, ids, n, x); }

void Llm::forward(ops::Ops& ops, KVCache& cache, const std::vector<LlmSegment>& segments, float* x, int64_t T) {
    const int64_t H = hidden_, kv_width = int64_t(kv_heads_) * head_dim_;
    const Workspace w = workspace(T);
    float* h = grown(h_, w.h, planned_);
    float* q = grown(q_, w.q, planned_);
    float* k = grown(k_, w.k, planned_);
    float* v = grown(v_, w.v, planned_);
    float* attn = grown(attn_, w.attn, planned_);
    float* gate = grown(gate_, w.gate, planned_);
    float* up = grown(up_, w.up, planned_);
    int32_t* pos = grown(positions_, w.positions, planned_);
    float* cos = grown(rope_, w.rope, planned_);
    float* sin = cos + T * (head_dim_ / 2);
    for (const LlmSegment& s : segments) {
        for (int64_t i = 0; i < s.rows; ++i) pos[s.row + i] = int32_t(s.start + i);
    }
    rope_angles(inv_freq_, pos, T, cos, sin);
    for (size_t l = 0; l < layers_.size(); ++l) {
        const Layer& L = layers_[l];
        // Attention block: x += o_proj(attention(rope(q), rope(k), v)) on the normed input.
        ops.rms_norm(x, T, L.attn_norm, eps_, h);
        const ops::LinearOut qkv[3] = {{&L.q, nullptr, q}, {&L.k, nullptr, k}, {&L.v, nullptr, v}};
        ops.linears(h, T, qkv, 3);
        ops.rope(q, T, heads_, head_dim_, cos, sin);
        ops.rope(k, T, kv_heads_, head_dim_, cos, sin);
        for (const LlmSegment& s : segments) {
            const ops::KVSeqView view = cache.view(int32_t(l), s.blocks);
            ops.kv_write(view, s.start, s.rows, k + s.row * kv_width, v + s.row * kv_width);
            ops.attention(q + s.row * H, s.rows, heads_, s.start, view, attn + s.row * H);
        }
        ops.linear(attn, T, L.o, nullptr, h);
        ops.add(x, h, T * H);
        // MLP block: x += down(silu(gate(h)) * up(h)).
        ops.rms_norm(x, T, L.mlp_norm, eps_, h);
        const ops::LinearOut gate_up[2] = {{&L.gate, nullptr, gate}, {&L.up, nullptr, up}};
        ops.linears(h, T, gate_up, 2);
        ops.silu_mul(gate, up, T * intermediate_);
        ops.linear(gate, T, L.down, nullptr, h);
        ops.add(x, h, T * H);
    }
    ops.rms_norm(x, T, norm_, eps_, h);
    std::copy(h, h + T * H, x);
}

std::vector<float> rope_inv_freq(int32_t head_dim, float theta) {
    std::vector<float> inv_freq(size_t(head_dim / 2));
    for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = 1.0f / std::pow(theta, float(2 * i) / float(head_dim));
    return inv_freq;
}

void rope_angles(const std::vector<float>& inv_freq, const int32_t* positions, int64_t rows, float* cos, float* sin) {
    const size_t half = inv_freq.size();
    for (int64_t r = 0; r < rows; ++r) {
        for (size_t i = 0; i < half; ++i) {
            const float angle = float(positions[r]) * inv_freq[i];
            cos[size_t(r) * half + i] = std::cos(angle);
            sin[size_t(r) * half + i] = std::sin(angle);
        }
    }
}

void Llm::logits(ops::Ops& ops, const float* h, int64_t rows, float* out) const {
    ops.linear(h, rows, lm_head_, nullptr, out);
}

}  // namespace nc
