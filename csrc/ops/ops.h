// The compute ops the model code is written against (docs/ARCHITECTURE.md "Backend interface"). Each backend
// implements all of them: `reference` (simple, double accumulation: the oracle), `cpu` (SIMD + threads).
// Shapes are explicit at every call; activations are float32, row-major; weights any stored dtype.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/kv_view.h"
#include "ops/weight.h"
#include "runtime/thread_pool.h"

namespace nc::ops {

// An additive term on attention scores, per (batch, head, query, key). Called concurrently from several
// threads, after the scores are scaled and before the softmax: per query row (add) or per block of queries
// (add_block), once for each (batch, head, query).
class ScoreBias {
  public:
    virtual ~ScoreBias() = default;
    // scores[j] += bias(batch, head, query, j) for j < kv_rows.
    virtual void add(int64_t batch, int32_t head, int64_t query, float* scores, int64_t kv_rows) const = 0;
    // The same for queries [query, query + n) whose scores are stored key-major: scores[j·ld + i] belongs to
    // query + i (ld ≥ n). By default row by row through add(); a bias with structure overrides it to add whole
    // vectors of queries at once (SAM's relative positions).
    virtual void add_block(int64_t batch, int32_t head, int64_t query, int64_t n, float* scores, int64_t ld,
                           int64_t kv_rows) const {
        std::vector<float>& row = share_floats<ScoreBias>(size_t(kv_rows));
        for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < kv_rows; ++j) row[size_t(j)] = scores[j * ld + i];
            add(batch, head, query + i, row.data(), kv_rows);
            for (int64_t j = 0; j < kv_rows; ++j) scores[j * ld + i] = row[size_t(j)];
        }
    }
};

// One output of Ops::linears: y [rows, w->rows] = x · wᵀ (+ bias, which may be null).
struct LinearOut {
    const Weight* w;
    const Weight* bias;
    float* y;
};

class Ops {
  public:
    virtual ~Ops() = default;
    virtual const char* name() const = 0;

    // body(begin, end) over disjoint ranges covering [0, n) on the backend's host threads: independent host work
    // between ops, such as sampling each sequence of a step (the reference runs it in one call).
    virtual void parallel(int64_t n, LoopBody body) = 0;

    // y[r, :] = table row ids[r] (an [n_rows_table, dim] weight), for r < n.
    virtual void embedding(const Weight& table, const int32_t* ids, int64_t n, float* y) = 0;

    // y[r, :] = x[r, :] * rsqrt(mean(x[r, :]²) + eps) * w  (LLaMA RMSNorm, fp32, §1.1).
    virtual void rms_norm(const float* x, int64_t rows, const Weight& w, float eps, float* y) = 0;

    // y[r, o] = Σ_k x[r, k] · W[o, k] (+ bias[o]);  x [rows, W.cols], y [rows, W.rows]. bias may be null.
    virtual void linear(const float* x, int64_t rows, const Weight& w, const Weight* bias, float* y) = 0;

    // linear() for n weights of the same input width that read the same x (q, k and v of a layer): one call, so
    // that a backend prepares x once and shares the work of all the outputs.
    virtual void linears(const float* x, int64_t rows, const LinearOut* outs, int32_t n) = 0;

    // Rotate-half RoPE in place on x [rows, heads, head_dim] (GPT-NeoX convention, §1.1): cos and sin [rows,
    // head_dim / 2] of each row's angles (rope_table), shared by every head of the row.
    virtual void rope(float* x, int64_t rows, int32_t heads, int32_t head_dim, const float* cos, const float* sin) = 0;

    // Writes k, v [rows, kv_heads, head_dim] at positions [start, start + rows) of one sequence's cache.
    virtual void kv_write(const KVSeqView& kv, int64_t start, int64_t rows, const float* k, const float* v) = 0;

    // Causal attention of q [rows, heads, head_dim] at positions [start, start + rows) over the cached
    // positions [0, start + rows): out [rows, heads, head_dim]. heads is a multiple of kv.kv_heads (GQA).
    virtual void attention(const float* q, int64_t rows, int32_t heads, int64_t start, const KVSeqView& kv,
                           float* out) = 0;

    // gate[i] = silu(gate[i]) * up[i] for i < n.
    virtual void silu_mul(float* gate, const float* up, int64_t n) = 0;

    // x[i] += y[i] for i < n.
    void add(float* x, const float* y, int64_t n) { add_rows(x, y, 1, 1, n, x); }

    // out[r, :] = x[r, :] + y[r mod y_rows, :] for rows of `width` values: y broadcast over x's rows when it has fewer
    // (a positional encoding over every prompt's map). out may be x.
    virtual void add_rows(const float* x, const float* y, int64_t rows, int64_t y_rows, int64_t width, float* out) = 0;

    // x[i] = max(x[i], 0) for i < n.
    virtual void relu(float* x, int64_t n) = 0;

    // ---- Vision transformers (CLIP §1.2, projector §1.3; SAM §5 reuses them) ----

    // y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b over the last dim (w.cols), biased variance, fp32.
    virtual void layer_norm(const float* x, int64_t rows, const Weight& w, const Weight& b, float eps, float* y) = 0;

    // x[i] = x[i] · Φ(x[i]) = x/2 · (1 + erf(x/√2)): exact GELU (torch.nn.GELU(), §1.3), in place.
    virtual void gelu(float* x, int64_t n) = 0;

    // x[i] = x[i] · sigmoid(1.702 · x[i]): CLIP's quick_gelu (§1.2), in place.
    virtual void quick_gelu(float* x, int64_t n) = 0;

    // The non-overlapping patch × patch tiles of images x [n, channels, height, width] (height and width
    // multiples of patch) as rows y [n, (height/patch)·(width/patch), channels·patch·patch]: patches in row-major
    // grid order, each flattened (channel, i, j) like a conv weight [out, channels, patch, patch]. A conv with
    // stride = kernel is this followed by linear (§1.2 patch embedding).
    virtual void patches(const float* x, int64_t n, int32_t channels, int32_t height, int32_t width, int32_t patch,
                         float* y) = 0;

    // Non-causal multi-head attention, batched: for each batch b, head h and query i
    //   out[b, i, h, :] = Σ_j softmax_j(scale · q[b, i, h, :]·k[b, j, h, :] + bias(b, h, i, j)) · v[b, j, h, :]
    // q, out [batch, q_rows, heads, head_dim]; k, v [batch, kv_rows ≥ 1, heads, head_dim]; contiguous float32.
    // bias may be null (CLIP); SAM's decomposed relative positions (§5.1) are rel_pos_bias below.
    virtual void attention(const float* q, const float* k, const float* v, int64_t batch, int64_t q_rows,
                           int64_t kv_rows, int32_t heads, int32_t head_dim, float scale, const ScoreBias* bias,
                           float* out) = 0;

    // ---- SAM (§5): channels-last maps [n, height, width, channels], row-major pixels ----

    // SAM's decomposed relative positions (§5.1) as the score bias of attention over q [batch, grid_h·grid_w, heads,
    // head_dim] with keys on the same grid (row-major): bias(b, h, (qh, qw), (kh, kw)) = q·rel_h[qh − kh + grid_h − 1]
    // + q·rel_w[qw − kw + grid_w − 1], q unscaled; rel_h [2·grid_h − 1, head_dim], rel_w [2·grid_w − 1, head_dim].
    // Computed per query row while attention runs (no [queries, keys] table): q and the tables must outlive it.
    virtual std::unique_ptr<ScoreBias> rel_pos_bias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h,
                                                    int64_t grid_w, const Weight& rel_h, const Weight& rel_w) = 0;

    // The window × window tiles of a map x [height, width, channels] as y [⌈height/window⌉·⌈width/window⌉,
    // window², channels]: windows row-major, tokens row-major inside each; positions past the map's right and
    // bottom edges hold fill [channels] (null: zeros). SAM's window_partition (§5.1).
    virtual void window_partition(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                                  const float* fill, float* y) = 0;
    // The inverse, padding dropped: y [height, width, channels] from windows x (SAM's window_unpartition).
    virtual void window_merge(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                              float* y) = 0;

    // Stride-1 convolution with zero padding (kernel − 1)/2 (odd kernel; same size out): x [n, height, width, in],
    // w the conv weight [out, in, kernel, kernel] seen as [out, in·kernel²], bias [out] or null; y [n, height,
    // width, out]. kernel 1 is a linear layer over pixels. LayerNorm2d is layer_norm on these maps.
    virtual void conv2d(const float* x, int64_t n, int64_t height, int64_t width, const Weight& w, const Weight* bias,
                        int32_t kernel, float* y) = 0;

    // Bilinear resize of planes x [planes, in_h, in_w] to out_h × out_w as torch's upsample_bilinear2d with
    // align_corners=False in float: src = max(scale·(dst + 0.5) − 0.5, 0) with scale = in/out, x0 = ⌊src⌋,
    // x1 = min(x0 + 1, in − 1). Writes only rows [row0, row0 + rows) and columns [col0, col0 + cols) of the
    // result: y [planes, rows, cols] (a crop without computing the whole image, §4 post-processing).
    virtual void resize_bilinear(const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                                 int64_t out_w, int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* y) = 0;

    // y [batch, cols, rows] = x [batch, rows, cols] transposed (channels-first ↔ channels-last maps).
    virtual void transpose(const float* x, int64_t batch, int64_t rows, int64_t cols, float* y) = 0;

    // x[r, :] = softmax(x[r, :]) in place for r < rows, over cols ≥ 1 values each (the row's maximum subtracted
    // first): the mask decoder's image→token attention over a few prompt tokens (§5.3).
    virtual void softmax(float* x, int64_t rows, int64_t cols) = 0;
};

std::unique_ptr<Ops> make_reference_ops();
// threads = 0: one per hardware thread.
std::unique_ptr<Ops> make_cpu_ops(int threads);

}  // namespace nc::ops
