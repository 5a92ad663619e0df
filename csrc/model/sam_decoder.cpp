#include "model/sam_decoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/llm.h"
#include "model/workspace.h"

namespace nc {

namespace {

constexpr float kNormEps = 1e-5f;    // the transformer's nn.LayerNorm (§5.3)
constexpr float kUpNormEps = 1e-6f;  // LayerNorm2d in output_upscaling
// Prompts per pass: more amortize the per-pass work, and the workspace stays near 15 MB per prompt at SAM-H's size.
constexpr int64_t kPromptsPerPass = 8;
// Mask post-processing: pixels of the L² resize computed per band (sam_masks_to_image).
constexpr int64_t kMaskBandPixels = int64_t(1) << 20;

// A per-head map as one block-diagonal matrix [heads·rows_per_head, heads·cols_per_head] (zero off the diagonal
// blocks), so that the map of every head is one linear layer: entry (h·rows + r, h·cols + c) = f(h, r, c).
template <class F>
std::vector<float> per_head(int64_t heads, int64_t rows, int64_t cols, F f) {
    std::vector<float> m(size_t(heads * rows * heads * cols), 0.0f);
    for (int64_t h = 0; h < heads; ++h) {
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) m[size_t((h * rows + r) * heads * cols + h * cols + c)] = f(h, r, c);
        }
    }
    return m;
}

// values [rows·g, 2, 2, 2, 2] for key rows [r0, r0 + rows) of a g × g map, in the order of two stride-2 transposed
// convs — key pixel (i, j), the first conv's (a, b), the second's (a′, b′) — into mask [4g, 4g] at
// (4i + 2a + a′, 4j + 2b + b′).
void place_subpixels(const float* values, int64_t r0, int64_t rows, int64_t g, float* mask) {
    for (int64_t i = r0; i < r0 + rows; ++i) {
        for (int64_t j = 0; j < g; ++j) {
            for (int64_t t = 0; t < 16; ++t, ++values) {
                const int64_t a = t >> 3, b = (t >> 2) & 1, a2 = (t >> 1) & 1, b2 = t & 1;
                mask[(4 * i + 2 * a + a2) * 4 * g + 4 * j + 2 * b + b2] = *values;
            }
        }
    }
}

}  // namespace

SamMaskDecoder::SamMaskDecoder(const nc_config& c, const WeightStore& w)
    : dim_(c.sam_prompt_embed_dim),
      grid_(c.sam_image_size / c.sam_patch_size),
      mask_tokens_(c.sam_num_multimask_outputs + 1),
      heads_(c.sam_decoder_num_heads) {
    const std::string p = "sam.model.mask_decoder.";
    auto get = [&](const std::string& name) { return as_op_weight(w.get(p + name)); };
    auto attention = [&](const std::string& name, int64_t downsample) {
        const std::string a = "transformer." + name + ".";
        Attention at{get(a + "q_proj.weight"), get(a + "q_proj.bias"), get(a + "k_proj.weight"),
                     get(a + "k_proj.bias"), get(a + "v_proj.weight"), get(a + "v_proj.bias"),
                     get(a + "out_proj.weight"), get(a + "out_proj.bias"), dim_ / downsample, {}, {}, {}, {}, {}};
        if (downsample == 1) return at;  // self-attention: no per-head maps
        // The cross attentions run with the image side unprojected (forward_prompts): per head h, the maps between
        // its head_dim slice and the D-wide image space, scaled by 1/√head_dim where they make scores.
        const int64_t H = heads_, I = at.inner, dh = I / H, D = dim_;
        const float scale = 1.0f / std::sqrt(float(dh));
        auto w = [](const ops::Weight& m, int64_t r, int64_t c) { return ops::weight_at(m, r * m.cols + c); };
        at.heads_k = per_head(H, D, dh, [&](int64_t h, int64_t d, int64_t c) { return scale * w(at.k_w, h * dh + c, d); });
        at.heads_v = per_head(H, dh, D, [&](int64_t h, int64_t c, int64_t d) { return w(at.v_w, h * dh + c, d); });
        at.heads_q = per_head(H, D, dh, [&](int64_t h, int64_t d, int64_t c) { return scale * w(at.q_w, h * dh + c, d); });
        at.heads_q_bias = per_head(H, 1, dh, [&](int64_t h, int64_t, int64_t c) {
            return scale * ops::weight_at(at.q_b, h * dh + c);
        });
        at.heads_out = per_head(H, D, dh, [&](int64_t h, int64_t d, int64_t c) { return w(at.out_w, d, h * dh + c); });
        return at;
    };
    const int64_t down = c.sam_attention_downsample;
    for (int i = 0; i < c.sam_decoder_depth; ++i) {
        const std::string l = "layers." + std::to_string(i) + ".";
        const std::string t = "transformer." + l;
        layers_.push_back(Layer{attention(l + "self_attn", 1), attention(l + "cross_attn_token_to_image", down),
                                attention(l + "cross_attn_image_to_token", down), get(t + "norm1.weight"),
                                get(t + "norm1.bias"), get(t + "norm2.weight"), get(t + "norm2.bias"),
                                get(t + "norm3.weight"), get(t + "norm3.bias"), get(t + "norm4.weight"),
                                get(t + "norm4.bias"), get(t + "mlp.lin1.weight"), get(t + "mlp.lin1.bias"),
                                get(t + "mlp.lin2.weight"), get(t + "mlp.lin2.bias")});
    }
    final_attn_ = attention("final_attn_token_to_image", down);
    final_norm_w_ = get("transformer.norm_final_attn.weight");
    final_norm_b_ = get("transformer.norm_final_attn.bias");
    up1_ = subpixel_linear(w.get(p + "output_upscaling.0.weight"), get("output_upscaling.0.bias"));
    up_norm_w_ = get("output_upscaling.1.weight");
    up_norm_b_ = get("output_upscaling.1.bias");
    up2_ = subpixel_linear(w.get(p + "output_upscaling.3.weight"), get("output_upscaling.3.bias"));
    // multimask_output=False keeps mask token 0 (§5.3): only its hypernetwork runs.
    for (int i = 0; i < 3; ++i) {
        const std::string l = "output_hypernetworks_mlps.0.layers." + std::to_string(i) + ".";
        hyper0_.emplace_back(get(l + "weight"), get(l + "bias"));
    }
    for (int i = 0; i < c.sam_iou_head_depth; ++i) {
        const std::string l = "iou_prediction_head.layers." + std::to_string(i) + ".";
        iou_head_.emplace_back(get(l + "weight"), get(l + "bias"));
    }
    const ops::Weight iou_token = get("iou_token.weight"), mask_tokens = get("mask_tokens.weight");
    output_tokens_.resize(size_t((1 + mask_tokens_) * dim_));
    for (int64_t i = 0; i < dim_; ++i) output_tokens_[size_t(i)] = ops::weight_at(iou_token, i);
    for (int64_t i = 0; i < mask_tokens_ * dim_; ++i) output_tokens_[size_t(dim_ + i)] = ops::weight_at(mask_tokens, i);
}

SamMaskDecoder::SubpixelLinear SamMaskDecoder::subpixel_linear(const WeightView& v, const ops::Weight& bias) {
    const ops::Weight w = as_op_weight(v);  // [in, out, 2, 2]
    SubpixelLinear s{{}, {}, v.shape[0], v.shape[1]};
    s.w.resize(size_t(4 * s.out * s.in));
    s.b.resize(size_t(4 * s.out));
    for (int64_t ab = 0; ab < 4; ++ab) {
        for (int64_t o = 0; o < s.out; ++o) {
            const int64_t row = ab * s.out + o;
            for (int64_t c = 0; c < s.in; ++c) s.w[size_t(row * s.in + c)] = ops::weight_at(w, (c * s.out + o) * 4 + ab);
            s.b[size_t(row)] = ops::weight_at(bias, o);
        }
    }
    return s;
}

SamMaskDecoder::Workspace SamMaskDecoder::workspace(int64_t n, int64_t sparse_tokens) const {
    const int64_t G = grid_ * grid_, D = dim_, Q = 1 + mask_tokens_ + sparse_tokens, H = heads_, R = Q * H;
    const int64_t m = std::min(n, kPromptsPerPass);
    const int64_t inner0 = layers_.front().token_to_image.inner;
    const int64_t inner_max = std::max(inner0, D);  // self-attention's inner is D
    int64_t mlp_width = 0;
    for (const Layer& l : layers_) mlp_width = std::max(mlp_width, l.mlp1_w.rows);
    int64_t widest = 0;  // of the hypernetwork and IoU head MLPs, run over m rows
    for (const Mlp* net : {&hyper0_, &iou_head_}) {
        for (const auto& l : *net) widest = std::max(widest, l.first.rows);
    }
    const int64_t band_pixels = kUpscaleRows * grid_, c1 = up1_.out, c2 = up2_.out;
    // image_out and kpe also hold the first upscaling's band (up1, up1n).
    const int64_t image = std::max(m * G * D, 4 * band_pixels * c1);
    return Workspace{G * D, G * D, G * inner0, G * inner0, m * Q * D, m * Q * D, m * Q * D, m * Q * inner_max,
                     m * Q * inner_max, m * Q * inner_max, m * Q * std::max(D, mlp_width), m * G * D, image, image,
                     m * Q * inner_max, 2 * m * widest, m * R * D, m * R * D, 2 * m * R * D + m * R,
                     2 * m * R * D + m * R, m * G * R, 16 * band_pixels * (c2 + 1)};
}

void SamMaskDecoder::reserve(int64_t n, int64_t sparse_tokens) {
    const Workspace w = workspace(n, sparse_tokens);
    const std::pair<std::vector<float>*, int64_t> buffers[] = {
        {&src_, w.src},     {&src_pe_, w.src_pe}, {&k0_, w.k0},       {&v0_, w.v0},
        {&tokens_, w.tokens}, {&queries_, w.queries}, {&qpe_, w.qpe},   {&qproj_, w.qproj},
        {&kproj_, w.kproj}, {&vproj_, w.vproj},   {&small_out_, w.small_out}, {&keys_, w.keys},
        {&kpe_, w.kpe},     {&image_out_, w.image_out}, {&attn_, w.attn}, {&hidden_, w.hidden},
        {&qt_, w.qt},       {&z_, w.z},           {&kt_, w.kt},       {&u_, w.u},
        {&scores_, w.scores}, {&up_, w.up}};
    for (const auto& [buf, n_elems] : buffers) reserve_exact(*buf, n_elems);
    planned_ = true;
}

uint64_t SamMaskDecoder::workspace_held() const {
    uint64_t total = 0;
    for (const std::vector<float>* b : {&src_, &src_pe_, &k0_, &v0_, &tokens_, &queries_, &qpe_, &qproj_, &kproj_, &vproj_,
                                        &small_out_, &keys_, &kpe_, &image_out_, &attn_, &hidden_, &qt_, &z_, &kt_, &u_,
                                        &scores_, &up_}) {
        total += held_bytes(*b);
    }
    return total;
}

uint64_t SamMaskDecoder::derived_bytes() const {
    uint64_t total = held_bytes(output_tokens_);
    for (const SubpixelLinear* s : {&up1_, &up2_}) total += held_bytes(s->w) + held_bytes(s->b);
    for (const Attention* a : {&final_attn_}) {
        for (const std::vector<float>* t : {&a->heads_k, &a->heads_v, &a->heads_q, &a->heads_q_bias, &a->heads_out}) {
            total += held_bytes(*t);
        }
    }
    for (const Layer& l : layers_) {
        for (const Attention* a : {&l.self_attn, &l.token_to_image, &l.image_to_token}) {
            for (const std::vector<float>* t : {&a->heads_k, &a->heads_v, &a->heads_q, &a->heads_q_bias, &a->heads_out}) {
                total += held_bytes(*t);
            }
        }
    }
    return total;
}

void SamMaskDecoder::attend(ops::Ops& ops, const Attention& a, int64_t m, Operand q, Operand k, Operand v,
                            float* out) {
    const int64_t inner = a.inner;
    const int32_t head_dim = int32_t(inner / heads_);
    const float scale = 1.0f / std::sqrt(float(head_dim));
    float* o = grown(attn_, m * q.rows * inner, planned_);
    if (q.stride == q.rows * inner && k.stride == k.rows * inner && v.stride == v.rows * inner) {
        ops.attention(q.data, k.data, v.data, m, q.rows, k.rows, heads_, head_dim, scale, nullptr, o);
    } else if (q.stride == q.rows * inner && k.stride == 0 && v.stride == 0) {
        // Keys and values shared by every prompt (layer 0's image side): every prompt's queries attend to the same
        // rows, so they are one batch of m·Q queries — the keys and values are prepared once, not once per prompt.
        ops.attention(q.data, k.data, v.data, 1, m * q.rows, k.rows, heads_, head_dim, scale, nullptr, o);
    } else {  // another operand shared by all prompts: one call per prompt
        for (int64_t p = 0; p < m; ++p) {
            ops.attention(q.data + p * q.stride, k.data + p * k.stride, v.data + p * v.stride, 1, q.rows, k.rows, heads_,
                          head_dim, scale, nullptr, o + p * q.rows * inner);
        }
    }
    ops.linear(o, m * q.rows, a.out_w, &a.out_b, out);
}

void SamMaskDecoder::mlp(ops::Ops& ops, const Mlp& layers, const float* x, int64_t rows, float* y) {
    int64_t widest = 0;
    for (const auto& l : layers) widest = std::max(widest, l.first.rows);
    float* buf = grown(hidden_, 2 * rows * widest, planned_);
    const float* in = x;
    for (size_t i = 0; i < layers.size(); ++i) {
        const bool last = i + 1 == layers.size();
        float* dst = last ? y : buf + (i % 2) * rows * widest;
        ops.linear(in, rows, layers[i].first, &layers[i].second, dst);
        if (!last) ops.relu(dst, rows * layers[i].first.rows);
        in = dst;
    }
}

void SamMaskDecoder::forward(ops::Ops& ops, const float* embedding, const float* dense_pe, const float* no_mask,
                             const float* sparse, int64_t n, int64_t sparse_tokens, float* lowres, float* iou) {
    // embedding [D, g, g] → src [g², D] = embedding + no_mask (the dense prompt), src_pe = src + dense_pe.
    const int64_t G = grid_ * grid_, D = dim_;
    pe_ = dense_pe;
    const Workspace w = workspace(n, sparse_tokens);
    float* src = grown(src_, w.src, planned_);
    ops.transpose(embedding, 1, D, G, src);
    ops.add_rows(src, no_mask, G, 1, D, src);
    float* src_pe = grown(src_pe_, w.src_pe, planned_);
    ops.add_rows(src, dense_pe, G, G, D, src_pe);
    // Layer 0's keys are src for every prompt: its token→image k and v projections are computed once per call.
    const Attention& first = layers_.front().token_to_image;
    ops.linear(src_pe, G, first.k_w, &first.k_b, grown(k0_, w.k0, planned_));
    ops.linear(src, G, first.v_w, &first.v_b, grown(v0_, w.v0, planned_));
    for (int64_t i = 0; i < n; i += kPromptsPerPass) {
        const int64_t m = std::min(kPromptsPerPass, n - i);
        forward_prompts(ops, sparse + i * sparse_tokens * D, m, sparse_tokens, lowres + i * 16 * G, iou + i);
    }
}

void SamMaskDecoder::forward_prompts(ops::Ops& ops, const float* sparse, int64_t m, int64_t sparse_tokens,
                                     float* lowres, float* iou) {
    const int64_t G = grid_ * grid_, D = dim_, Q = 1 + mask_tokens_ + sparse_tokens;
    // tokens [m, Q, D]: iou token, mask tokens, sparse prompt — the query_pe of every layer (§5.3).
    const Workspace w = workspace(m, sparse_tokens);
    float* tokens = grown(tokens_, w.tokens, planned_);
    for (int64_t p = 0; p < m; ++p) {
        std::copy(output_tokens_.begin(), output_tokens_.end(), tokens + p * Q * D);
        std::copy(sparse + p * sparse_tokens * D, sparse + (p + 1) * sparse_tokens * D,
                  tokens + (p * Q + 1 + mask_tokens_) * D);
    }
    float* queries = grown(queries_, w.queries, planned_);
    std::copy(tokens, tokens + m * Q * D, queries);
    float* qpe = grown(qpe_, w.qpe, planned_);
    float* qproj = grown(qproj_, w.qproj, planned_);
    float* kproj = grown(kproj_, w.kproj, planned_);
    float* vproj = grown(vproj_, w.vproj, planned_);
    float* small_out = grown(small_out_, w.small_out, planned_);
    // keys [m, G, D]: src for every prompt until layer 0's image→token update writes them (no copy of src).
    float* keys = grown(keys_, w.keys, planned_);
    float* kpe = grown(kpe_, w.kpe, planned_);
    auto keys_plus_pe = [&] { ops.add_rows(keys, pe_, m * G, G, D, kpe); };
    // Layer norms write elsewhere, then the result takes the input's place.
    auto norm_queries = [&](const ops::Weight& w, const ops::Weight& b) {
        ops.layer_norm(queries, m * Q, w, b, kNormEps, qpe);
        std::copy(qpe, qpe + m * Q * D, queries);
    };

    // token→image: q = queries + query_pe, k = keys + key_pe (kpe), v = keys; queries += out_proj(attention).
    // Layer 0: the keys are src for every prompt, their projections k0 and v0 shared (forward).
    auto token_to_image_shared = [&](const Attention& a) {
        ops.add_rows(queries, tokens, m * Q, m * Q, D, qpe);
        ops.linear(qpe, m * Q, a.q_w, &a.q_b, qproj);
        attend(ops, a, m, Operand{qproj, Q, Q * a.inner}, Operand{k0_.data(), G, 0}, Operand{v0_.data(), G, 0},
               small_out);
        ops.add(queries, small_out, m * Q * D);
    };
    // Later layers, in the image's own space rather than projecting its G rows: per head h and token i,
    // q_i·k_j = (W_k,hᵀ q_i)·kpe_j + q_i·b_k,h, the last term the same for every key (no effect on the softmax), and
    // Σ_j p_j v_j = W_v,h (Σ_j p_j keys_j) + b_v,h. So it is one attention head of width D: queries q̃ [Q·H, D]
    // (row i·H + h) over keys kpe and values keys, then W_v,h and b_v,h on the [Q·H, D] result.
    auto token_to_image = [&](const Attention& a) {
        const int64_t I = a.inner, H = heads_, R = Q * H;
        ops.add_rows(queries, tokens, m * Q, m * Q, D, qpe);
        ops.linear(qpe, m * Q, a.q_w, &a.q_b, qproj);
        float* qt = grown(qt_, w.qt, planned_);
        ops.linear(qproj, m * Q, ops::Weight{NC_DTYPE_F32, a.heads_k.data(), H * D, I}, nullptr, qt);
        float* z = grown(z_, w.z, planned_);
        ops.attention(qt, kpe, keys, m, R, G, 1, int32_t(D), 1.0f, nullptr, z);
        ops.linear(z, m * Q, ops::Weight{NC_DTYPE_F32, a.heads_v.data(), I, H * D}, &a.v_b, kproj);
        ops.linear(kproj, m * Q, a.out_w, &a.out_b, small_out);
        ops.add(queries, small_out, m * Q * D);
    };
    // image→token: q = keys + key_pe (image: kpe, or src_pe shared by every prompt with stride 0), k = queries +
    // query_pe, v = queries; out [m·G, D] = out_proj(attention). In the tokens' space: per head h, pixel x and token
    // j, q_x·k_j = x·(W_q,hᵀ k_j) + b_q,h·k_j, and out_proj(heads of Σ_j p_j v_j) = Σ_h Σ_j p_hj (W_out,h v_hj) + b_out.
    // So the scores of all heads are one linear layer of the pixels to H·Q outputs (column h·Q + j), the softmax
    // runs per head over the Q tokens, and the output is one linear layer of the probabilities.
    auto image_to_token = [&](const Attention& a, const float* image, int64_t image_stride, float* out) {
        const int64_t I = a.inner, H = heads_, R = H * Q;
        ops.add_rows(queries, tokens, m * Q, m * Q, D, qpe);
        ops.linear(qpe, m * Q, a.k_w, &a.k_b, kproj);
        ops.linear(queries, m * Q, a.v_w, &a.v_b, vproj);
        // Per token row j of each prompt, all heads: [m·Q, H·D] (key maps, output maps) and [m·Q, H] (key biases).
        float* kt = grown(kt_, w.kt, planned_);
        float* ut = kt + m * R * D;
        float* ct = ut + m * R * D;
        ops.linear(kproj, m * Q, ops::Weight{NC_DTYPE_F32, a.heads_q.data(), H * D, I}, nullptr, kt);
        ops.linear(vproj, m * Q, ops::Weight{NC_DTYPE_F32, a.heads_out.data(), H * D, I}, nullptr, ut);
        ops.linear(kproj, m * Q, ops::Weight{NC_DTYPE_F32, a.heads_q_bias.data(), H, I}, nullptr, ct);
        // Reordered per prompt to the score columns h·Q + j: K̃ [H·Q, D], c̃ [H·Q], U [D, H·Q].
        float* kq = grown(u_, w.u, planned_);
        float* uq = kq + m * R * D;
        float* cq = uq + m * R * D;
        for (int64_t p = 0; p < m; ++p) {
            for (int64_t j = 0; j < Q; ++j) {
                const int64_t t = p * Q + j;
                for (int64_t h = 0; h < H; ++h) {
                    const int64_t col = h * Q + j;
                    std::copy(kt + (t * H + h) * D, kt + (t * H + h + 1) * D, kq + (p * R + col) * D);
                    cq[p * R + col] = ct[t * H + h];
                    for (int64_t d = 0; d < D; ++d) uq[(p * D + d) * R + col] = ut[(t * H + h) * D + d];
                }
            }
        }
        float* scores = grown(scores_, w.scores, planned_);
        for (int64_t p = 0; p < m; ++p) {
            const ops::Weight w{NC_DTYPE_F32, kq + p * R * D, R, D}, b{NC_DTYPE_F32, cq + p * R, 1, R};
            ops.linear(image + p * image_stride, G, w, &b, scores + p * G * R);
        }
        ops.softmax(scores, m * G * H, Q);
        for (int64_t p = 0; p < m; ++p) {
            const ops::Weight w{NC_DTYPE_F32, uq + p * D * R, D, R};
            ops.linear(scores + p * G * R, G, w, &a.out_b, out + p * G * D);
        }
    };

    for (size_t l = 0; l < layers_.size(); ++l) {
        const Layer& L = layers_[l];
        const bool first = l == 0;
        // Self-attention; the first layer (skip_first_layer_pe) replaces the queries, without positions.
        const Attention& s = L.self_attn;
        if (first) {
            ops.linear(queries, m * Q, s.q_w, &s.q_b, qproj);
            ops.linear(queries, m * Q, s.k_w, &s.k_b, kproj);
        } else {
            ops.add_rows(queries, tokens, m * Q, m * Q, D, qpe);
            ops.linear(qpe, m * Q, s.q_w, &s.q_b, qproj);
            ops.linear(qpe, m * Q, s.k_w, &s.k_b, kproj);
        }
        ops.linear(queries, m * Q, s.v_w, &s.v_b, vproj);
        attend(ops, s, m, Operand{qproj, Q, Q * s.inner}, Operand{kproj, Q, Q * s.inner}, Operand{vproj, Q, Q * s.inner},
               small_out);
        if (first) {
            std::copy(small_out, small_out + m * Q * D, queries);
        } else {
            ops.add(queries, small_out, m * Q * D);
        }
        norm_queries(L.norm1_w, L.norm1_b);

        if (first) {
            token_to_image_shared(L.token_to_image);
        } else {
            keys_plus_pe();
            token_to_image(L.token_to_image);
        }
        norm_queries(L.norm2_w, L.norm2_b);

        // MLP (ReLU).
        ops.linear(queries, m * Q, L.mlp1_w, &L.mlp1_b, small_out);
        ops.relu(small_out, m * Q * L.mlp1_w.rows);
        ops.linear(small_out, m * Q, L.mlp2_w, &L.mlp2_b, qpe);
        ops.add(queries, qpe, m * Q * D);
        norm_queries(L.norm3_w, L.norm3_b);

        // image→token; keys = norm4(keys + out), layer 0's keys being src.
        float* image_out = grown(image_out_, w.image_out, planned_);
        if (first) {
            image_to_token(L.image_to_token, src_pe_.data(), 0, image_out);
            for (int64_t p = 0; p < m; ++p) ops.add(image_out + p * G * D, src_.data(), G * D);
        } else {
            image_to_token(L.image_to_token, kpe, G * D, image_out);
            ops.add(image_out, keys, m * G * D);
        }
        ops.layer_norm(image_out, m * G, L.norm4_w, L.norm4_b, kNormEps, keys);
    }
    keys_plus_pe();
    token_to_image(final_attn_);
    norm_queries(final_norm_w_, final_norm_b_);

    // Mask token 0 through its hypernetwork → hyper [m, D/8]; the iou token is gathered for the IoU head below.
    const int64_t c1 = up1_.out, c2 = up2_.out;
    for (int64_t p = 0; p < m; ++p) {
        std::copy(queries + (p * Q + 1) * D, queries + (p * Q + 2) * D, qpe + p * D);
        std::copy(queries + p * Q * D, queries + (p * Q + 1) * D, qpe + (m + p) * D);
    }
    float* hyper = kproj;
    mlp(ops, hyper0_, qpe, m, hyper);

    // Upscaling, then lowres[p] = up[p] · hyper[p]: keys [g, g, D] → ConvT → [2g, 2g, D/4] → LayerNorm2d → GELU →
    // ConvT → [4g, 4g, D/8] → GELU → · hyper → [4g, 4g]. Every step after a stride-2 transposed conv is per pixel, so
    // the pixels keep the convs' own order — key pixel, its first conv's 2×2, their second conv's 2×2 — and only the
    // final values are put in place (place_subpixels). A band of kUpscaleRows key rows at a time stays in cache.
    const ops::Weight w1 = up1_.weight(), b1 = up1_.bias(), w2 = up2_.weight(), b2 = up2_.bias();
    float* up1 = grown(image_out_, w.image_out, planned_);
    float* up1n = grown(kpe_, w.kpe, planned_);
    float* up2 = grown(up_, w.up, planned_);
    for (int64_t p = 0; p < m; ++p) {
        for (int64_t r0 = 0; r0 < grid_; r0 += kUpscaleRows) {
            const int64_t rows = std::min(kUpscaleRows, grid_ - r0), pixels = rows * grid_;
            ops.linear(keys + (p * G + r0 * grid_) * D, pixels, w1, &b1, up1);  // [pixels, 2, 2, c1]
            ops.layer_norm(up1, 4 * pixels, up_norm_w_, up_norm_b_, kUpNormEps, up1n);
            ops.gelu(up1n, 4 * pixels * c1);
            ops.linear(up1n, 4 * pixels, w2, &b2, up2);  // [pixels, 2, 2, 2, 2, c2]
            ops.gelu(up2, 16 * pixels * c2);
            // One output per pixel: hyper as the single input row, the pixels as the "weights" (streamed once).
            float* values = up2 + 16 * pixels * c2;
            ops.linear(hyper + p * c2, 1, ops::Weight{NC_DTYPE_F32, up2, 16 * pixels, c2}, nullptr, values);
            place_subpixels(values, r0, rows, grid_, lowres + p * 16 * G);
        }
    }
    float* scores = vproj;
    mlp(ops, iou_head_, qpe + m * D, m, scores);
    for (int64_t p = 0; p < m; ++p) iou[p] = scores[p * mask_tokens_];
}

int64_t sam_masks_work(int64_t image_size) {
    // A band is ⌊kMaskBandPixels / width⌋ rows of width pixels, or one row when wider: width ≤ 32768 < kMaskBandPixels.
    return image_size * image_size + kMaskBandPixels;
}

void sam_masks_to_image(ops::Ops& ops, const float* lowres, int64_t n, int64_t mask_size, int64_t image_size,
                        int32_t width, int32_t height, uint8_t* masks, std::vector<float>& work, bool planned) {
    const int64_t L = std::max(width, height), pad = (L - std::min(width, height)) / 2;
    const int64_t row0 = width >= height ? pad : 0, col0 = width < height ? pad : 0;
    // The L² resize a band of rows at a time: bounded memory whatever the image size.
    const int64_t band = std::max<int64_t>(1, kMaskBandPixels / width);
    const int64_t S2 = image_size * image_size;
    float* full = grown(work, sam_masks_work(image_size), planned);
    float* rows = full + S2;
    for (int64_t i = 0; i < n; ++i) {
        ops.resize_bilinear(lowres + i * mask_size * mask_size, 1, mask_size, mask_size, image_size, image_size, 0,
                            image_size, 0, image_size, full);
        for (int64_t r = 0; r < height; r += band) {
            const int64_t count = std::min<int64_t>(band, height - r);
            ops.resize_bilinear(full, 1, image_size, image_size, L, L, row0 + r, count, col0, width, rows);
            uint8_t* dst = masks + (i * height + r) * width;
            for (int64_t j = 0; j < count * width; ++j) dst[j] = rows[j] > 0.0f ? 1 : 0;
        }
    }
}

}  // namespace nc
