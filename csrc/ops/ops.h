// The compute ops the model code is written against (docs/ARCHITECTURE.md "Backend interface"). Each backend
// implements all of them: `reference` (simple, double accumulation: the oracle), `cpu` (SIMD + threads).
// Shapes are explicit at every call; activations are float32, row-major; weights any stored dtype.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ops/kv_view.h"
#include "ops/weight.h"

namespace nc::ops {

class Ops {
  public:
    virtual ~Ops() = default;
    virtual const char* name() const = 0;

    // y[r, :] = table row ids[r] (an [n_rows_table, dim] weight), for r < n.
    virtual void embedding(const Weight& table, const int32_t* ids, int64_t n, float* y) = 0;

    // y[r, :] = x[r, :] * rsqrt(mean(x[r, :]²) + eps) * w  (LLaMA RMSNorm, fp32, §1.1).
    virtual void rms_norm(const float* x, int64_t rows, const Weight& w, float eps, float* y) = 0;

    // y[r, o] = Σ_k x[r, k] · W[o, k] (+ bias[o]);  x [rows, W.cols], y [rows, W.rows]. bias may be null.
    virtual void linear(const float* x, int64_t rows, const Weight& w, const Weight* bias, float* y) = 0;

    // Rotate-half RoPE in place on x [rows, heads, head_dim] at the given positions (GPT-NeoX convention, §1.1).
    virtual void rope(float* x, int64_t rows, int32_t heads, int32_t head_dim, const int32_t* positions,
                      float theta) = 0;

    // Writes k, v [rows, kv_heads, head_dim] at positions [start, start + rows) of one sequence's cache.
    virtual void kv_write(const KVSeqView& kv, int64_t start, int64_t rows, const float* k, const float* v) = 0;

    // Causal attention of q [rows, heads, head_dim] at positions [start, start + rows) over the cached
    // positions [0, start + rows): out [rows, heads, head_dim]. heads is a multiple of kv.kv_heads (GQA).
    virtual void attention(const float* q, int64_t rows, int32_t heads, int64_t start, const KVSeqView& kv,
                           float* out) = 0;

    // gate[i] = silu(gate[i]) * up[i] for i < n.
    virtual void silu_mul(float* gate, const float* up, int64_t n) = 0;

    // x[i] += y[i] for i < n.
    virtual void add(float* x, const float* y, int64_t n) = 0;

    // x[i] = max(x[i], 0) for i < n.
    virtual void relu(float* x, int64_t n) = 0;
};

std::unique_ptr<Ops> make_reference_ops();
// threads = 0: one per hardware thread.
std::unique_ptr<Ops> make_cpu_ops(int threads);

}  // namespace nc::ops
