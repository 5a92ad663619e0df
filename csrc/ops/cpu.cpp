// The optimized CPU ops: threads over independent rows/outputs/heads, AVX2+FMA+F16C kernels selected at
// run time (portable loops otherwise), 16-bit weights converted in registers, no allocation per call in
// the hot ops except reused thread-local scratch.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu_amx.h"
#include "ops/cpu_gemm.h"
#include "ops/cpu_gemv.h"
#include "ops/cpu_sam.h"
#include "ops/cpu_simd.h"
#include "ops/ops.h"
#include "runtime/thread_pool.h"

namespace nc::ops {

namespace {

// ---- vision elementwise kernels -----------------------------------------------------------------------------

__attribute__((target("avx2,fma,f16c"))) void layer_norm_row_avx2(const float* x, int64_t n, const float* w,
                                                                   const float* b, float eps, float* y) {
    __m256 acc = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + j));
    float sum = hsum(acc);
    for (; j < n; ++j) sum += x[j];
    const float mean = sum / float(n);
    const __m256 mv = _mm256_set1_ps(mean);
    acc = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), mv);
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    float var = hsum(acc);
    for (; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
    const float inv = 1.0f / std::sqrt(var / float(n) + eps);
    const __m256 iv = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv), iv);
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j)));
    }
    for (; j < n; ++j) y[j] = (x[j] - mean) * inv * w[j] + b[j];
}

void layer_norm_row_portable(const float* x, int64_t n, const float* w, const float* b, float eps, float* y) {
    float sum = 0, var = 0;
    for (int64_t j = 0; j < n; ++j) sum += x[j];
    const float mean = sum / float(n);
    for (int64_t j = 0; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
    const float inv = 1.0f / std::sqrt(var / float(n) + eps);
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mean) * inv * w[j] + b[j];
}

// x · sigmoid(1.702 x), 8 lanes.
struct QuickGelu8 {
    __attribute__((target("avx2,fma,f16c"))) __m256 operator()(__m256 v) const {
        const __m256 e = exp8(_mm256_mul_ps(v, _mm256_set1_ps(-1.702f)));
        return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
};

// x · Φ(x). Φ(x) = erfc(−x/√2)/2 with erfc from Numerical Recipes' erfcc (fractional error < 1.2e-7 everywhere,
// so the negative tail keeps its relative accuracy): erfc(z) = t·e^(−z² + P(t)), t = 1/(1 + z/2), P's coefficients
// highest degree first.
constexpr float kErfcPoly[] = {0.17087277f,  -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                               -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f,  -1.26551223f};

// Gelu on 8 lanes.
struct Gelu8 {
    __attribute__((target("avx2,fma,f16c"))) __m256 operator()(__m256 v) const {
        const __m256 one = _mm256_set1_ps(1.0f);
        const __m256 abs_v = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
        const __m256 z = _mm256_mul_ps(abs_v, _mm256_set1_ps(0.70710678118654752f));
        const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), one));
        __m256 p = _mm256_set1_ps(kErfcPoly[0]);
        for (size_t i = 1; i < std::size(kErfcPoly); ++i) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(kErfcPoly[i]));
        const __m256 half_erfc = _mm256_mul_ps(_mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(z, z, p))), _mm256_set1_ps(0.5f));
        // Φ(x) = 1 − erfc(|x|/√2)/2 for x ≥ 0, erfc(|x|/√2)/2 below.
        const __m256 nonneg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
        const __m256 phi = _mm256_blendv_ps(half_erfc, _mm256_sub_ps(one, half_erfc), nonneg);
        return _mm256_mul_ps(v, phi);
    }
};

// The same on 16 lanes (the SAM decoder's upscaling runs GELU on 25M values per 8 prompts).
struct Gelu16 {
    __attribute__((target("avx512f,avx2,fma,f16c"))) __m512 operator()(__m512 v) const {
        const __m512 one = _mm512_set1_ps(1.0f);
        const __m512 z = _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(0.70710678118654752f));
        const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), one));
        __m512 p = _mm512_set1_ps(kErfcPoly[0]);
        for (size_t i = 1; i < std::size(kErfcPoly); ++i) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(kErfcPoly[i]));
        const __m512 half_erfc = _mm512_mul_ps(_mm512_mul_ps(t, exp16(_mm512_fnmadd_ps(z, z, p))), _mm512_set1_ps(0.5f));
        const __mmask16 nonneg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
        return _mm512_mul_ps(v, _mm512_mask_sub_ps(half_erfc, nonneg, one, half_erfc));
    }
};

// x[i] = F(x[i], y[i]), 8 lanes at a time; the tail goes through the same vector code, so every element is computed
// alike.
template <class F>
__attribute__((target("avx2,fma,f16c"))) void zip_avx2(float* x, const float* y, int64_t n) {
    const F f;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, f(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        alignas(32) float tx[8] = {}, ty[8] = {};
        std::copy(x + i, x + n, tx);
        std::copy(y + i, y + n, ty);
        _mm256_store_ps(tx, f(_mm256_load_ps(tx), _mm256_load_ps(ty)));
        std::copy(tx, tx + (n - i), x + i);
    }
}

// The same 16 lanes at a time, four vectors per iteration (exact GELU's long dependency chains overlap then: 1.3–1.6×
// on SAM's 4096 × 5120 map, docs/BENCHMARKS.md "Every op against the roofline"), the tail by a masked load and store.
template <class F>
__attribute__((target("avx512f,avx2,fma,f16c"))) void zip_avx512(float* x, const float* y, int64_t n) {
    const F f;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512 r0 = f(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
        const __m512 r1 = f(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16));
        const __m512 r2 = f(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32));
        const __m512 r3 = f(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48));
        _mm512_storeu_ps(x + i, r0);
        _mm512_storeu_ps(x + i + 16, r1);
        _mm512_storeu_ps(x + i + 32, r2);
        _mm512_storeu_ps(x + i + 48, r3);
    }
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, f(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 k = __mmask16((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, k, f(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i)));
    }
}

// A unary F as zip's functor, the second operand ignored: x[i] = F(x[i]) through the same loops.
template <class F>
struct IgnoreSecond {
    F f{};
    __attribute__((target("avx2,fma,f16c"))) __m256 operator()(__m256 v, __m256) const { return f(v); }
    __attribute__((target("avx512f,avx2,fma,f16c"))) __m512 operator()(__m512 v, __m512) const { return f(v); }
};

template <class F>
void map_avx2(float* x, int64_t n) {
    zip_avx2<IgnoreSecond<F>>(x, x, n);
}

template <class F>
void map_avx512(float* x, int64_t n) {
    zip_avx512<IgnoreSecond<F>>(x, x, n);
}

// ---- language model elementwise kernels ---------------------------------------------------------------------

// One head's rotate-half RoPE: (lo, hi) ← (lo·c − hi·s, hi·c + lo·s), each product rounded before the sum as in
// transformers' q·cos + rotate_half(q)·sin.
// Pairs [from, half).
void rotate_half_from(float* v, int32_t from, int32_t half, const float* cos, const float* sin) {
    for (int32_t i = from; i < half; ++i) {
        const float lo = v[i], hi = v[i + half];
        v[i] = lo * cos[i] - hi * sin[i];
        v[i + half] = hi * cos[i] + lo * sin[i];
    }
}

void rotate_half_portable(float* v, int32_t half, const float* cos, const float* sin) {
    rotate_half_from(v, 0, half, cos, sin);
}

__attribute__((target("avx2,fma,f16c"))) void rotate_half_avx2(float* v, int32_t half, const float* cos,
                                                              const float* sin) {
    int32_t i = 0;
    for (; i + 8 <= half; i += 8) {
        const __m256 lo = _mm256_loadu_ps(v + i), hi = _mm256_loadu_ps(v + i + half);
        const __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
        _mm256_storeu_ps(v + i, _mm256_sub_ps(_mm256_mul_ps(lo, c), _mm256_mul_ps(hi, s)));
        _mm256_storeu_ps(v + i + half, _mm256_add_ps(_mm256_mul_ps(hi, c), _mm256_mul_ps(lo, s)));
    }
    rotate_half_from(v, i, half, cos, sin);
}

// Σ x[i]², 8 lanes in four accumulators (the FMA's latency) and a scalar tail.
__attribute__((target("avx2,fma,f16c"))) float sum_squares_avx2(const float* x, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int u = 0; u < 4; ++u) {
            const __m256 v = _mm256_loadu_ps(x + i + 8 * u);
            acc[u] = _mm256_fmadd_ps(v, v, acc[u]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        acc[0] = _mm256_fmadd_ps(v, v, acc[0]);
    }
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) sum += x[i] * x[i];
    return sum;
}

// The same on 16 lanes, the tail by a masked load.
__attribute__((target("avx512f,avx2,fma,f16c"))) float sum_squares_avx512(const float* x, int64_t n) {
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int u = 0; u < 2; ++u) {
            const __m512 v = _mm512_loadu_ps(x + i + 16 * u);
            acc[u] = _mm512_fmadd_ps(v, v, acc[u]);
        }
    }
    for (; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(__mmask16(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1u), x + i);
        acc[0] = _mm512_fmadd_ps(v, v, acc[0]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

float sum_squares_portable(const float* x, int64_t n) {
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
    return sum;
}

// y[i] = (x[i] · inv) · scale[i], the two products rounded as transformers' LlamaRMSNorm rounds them.
__attribute__((target("avx2,fma,f16c"))) void scale_row_avx2(const float* x, float inv, const float* scale, int64_t n,
                                                             float* y) {
    const __m256 iv = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), iv), _mm256_loadu_ps(scale + i)));
    }
    for (; i < n; ++i) y[i] = (x[i] * inv) * scale[i];
}

void scale_row_portable(const float* x, float inv, const float* scale, int64_t n, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * inv) * scale[i];
}

// silu(g) · u = g / (1 + e^−g) · u on 8 and 16 lanes. Past e^±88 exp8 clamps and exp16 overflows to inf: either
// way silu's value there is g or a zero of g's sign, as expf gives.
struct SiluMul8 {
    __attribute__((target("avx2,fma,f16c"))) __m256 operator()(__m256 g, __m256 u) const {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
    }
};

struct SiluMul16 {
    __attribute__((target("avx512f,avx2,fma,f16c"))) __m512 operator()(__m512 g, __m512 u) const {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
    }
};

// ---- attention of decode rows over the paged cache ----------------------------------------------------------
// Per chunk of cached positions: the scores against the keys, their softmax numerators, the values weighted by them.
// The keys and values are converted in registers as they stream from the cache (a decode row reads each once).

// scores[p] = scale · q·K[p0 + p] for p < m over kv head kh: four positions at a time, so that four chains of FMAs
// are in flight. Each sums as dot_avx2 does (8 lanes, then the tail in order): the same scores as a dot product per
// position.
template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) void key_scores_avx2(const KVSeqView& kv, int32_t kh, const float* q,
                                                             int64_t p0, int64_t m, float scale, float* scores) {
    constexpr int64_t esize = D == NC_DTYPE_F32 ? 4 : 2;
    const int64_t d = kv.head_dim, body = d / 8 * 8;
    auto finish = [&](const char* k, float s) {
        for (int64_t i = body; i < d; ++i) s += q[i] * weight_at(Weight{D, k, 1, d}, i);
        return s * scale;
    };
    int64_t p = 0;
    for (; p + 4 <= m; p += 4) {
        const char* k[4];
        __m256 a[4];
        for (int j = 0; j < 4; ++j) {
            k[j] = static_cast<const char*>(kv.row(0, p0 + p + j, kh));
            a[j] = _mm256_setzero_ps();
        }
        for (int64_t i = 0; i < body; i += 8) {
            const __m256 x = _mm256_loadu_ps(q + i);
            for (int j = 0; j < 4; ++j) a[j] = _mm256_fmadd_ps(x, load8<D>(k[j] + i * esize), a[j]);
        }
        for (int j = 0; j < 4; ++j) scores[p + j] = finish(k[j], hsum(a[j]));
    }
    for (; p < m; ++p) {
        const char* k = static_cast<const char*>(kv.row(0, p0 + p, kh));
        __m256 a = _mm256_setzero_ps();
        for (int64_t i = 0; i < body; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8<D>(k + i * esize), a);
        scores[p] = finish(k, hsum(a));
    }
}

// acc[i] += Σ_p w[p] · V[p0 + p][i] over kv head kh for the lanes [i0, i0 + 8L), held in registers across the positions.
template <nc_dtype D, int L>
__attribute__((target("avx2,fma,f16c"))) void value_lanes_avx2(const KVSeqView& kv, int32_t kh, const float* w,
                                                              int64_t p0, int64_t m, int64_t i0, float* acc) {
    constexpr int64_t esize = D == NC_DTYPE_F32 ? 4 : 2;
    __m256 a[L];
    for (int v = 0; v < L; ++v) a[v] = _mm256_loadu_ps(acc + i0 + 8 * v);
    for (int64_t p = 0; p < m; ++p) {
        const char* row = static_cast<const char*>(kv.row(1, p0 + p, kh)) + i0 * esize;
        const __m256 wp = _mm256_set1_ps(w[p]);
        for (int v = 0; v < L; ++v) a[v] = _mm256_fmadd_ps(wp, load8<D>(row + 8 * v * esize), a[v]);
    }
    for (int v = 0; v < L; ++v) _mm256_storeu_ps(acc + i0 + 8 * v, a[v]);
}

// acc[i] += Σ_p w[p] · V[p0 + p][i] for every i < head_dim: 64 lanes at a time, then 8, then the tail.
template <nc_dtype D>
void values_avx2(const KVSeqView& kv, int32_t kh, const float* w, int64_t p0, int64_t m, float* acc) {
    const int64_t d = kv.head_dim, body = d / 8 * 8;
    int64_t i0 = 0;
    for (; i0 + 64 <= body; i0 += 64) value_lanes_avx2<D, 8>(kv, kh, w, p0, m, i0, acc);
    for (; i0 < body; i0 += 8) value_lanes_avx2<D, 1>(kv, kh, w, p0, m, i0, acc);
    for (int64_t p = 0; body < d && p < m; ++p) {
        const Weight row{D, kv.row(1, p0 + p, kh), 1, d};
        for (int64_t i = body; i < d; ++i) acc[i] += w[p] * weight_at(row, i);
    }
}

// s[p] = softmax_exp(s[p] − max) for p < m, 8 at a time; returns their sum.
__attribute__((target("avx2,fma,f16c"))) float exp_sum_avx2(float* s, int64_t m, float max) {
    const __m256 mv = _mm256_set1_ps(max);
    __m256 sum = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 8 <= m; p += 8) {
        const __m256 e = softmax_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + p), mv));
        _mm256_storeu_ps(s + p, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = hsum(sum);
    for (; p < m; ++p) total += (s[p] = softmax_exp(s[p] - max));
    return total;
}

void key_scores(const KVSeqView& kv, int32_t kh, const float* q, int64_t p0, int64_t m, float scale, float* scores) {
    switch (kv.dtype) {
        case NC_DTYPE_F32: return key_scores_avx2<NC_DTYPE_F32>(kv, kh, q, p0, m, scale, scores);
        case NC_DTYPE_F16: return key_scores_avx2<NC_DTYPE_F16>(kv, kh, q, p0, m, scale, scores);
        case NC_DTYPE_BF16: return key_scores_avx2<NC_DTYPE_BF16>(kv, kh, q, p0, m, scale, scores);
    }
}

void weighted_values(const KVSeqView& kv, int32_t kh, const float* w, int64_t p0, int64_t m, float* acc) {
    switch (kv.dtype) {
        case NC_DTYPE_F32: return values_avx2<NC_DTYPE_F32>(kv, kh, w, p0, m, acc);
        case NC_DTYPE_F16: return values_avx2<NC_DTYPE_F16>(kv, kh, w, p0, m, acc);
        case NC_DTYPE_BF16: return values_avx2<NC_DTYPE_BF16>(kv, kh, w, p0, m, acc);
    }
}

// ---- ops ------------------------------------------------------------------------------------------------

class CpuOps final : public Ops {
  public:
    explicit CpuOps(int threads) : pool_(threads) {}
    const char* name() const override { return "cpu"; }

    void parallel(int64_t n, LoopBody body) override { pool_.parallel_for(n, 1, body); }

    void embedding(const Weight& table, const int32_t* ids, int64_t n, float* y) override {
        const int64_t dim = table.cols;
        pool_.parallel_for(n, 1, [&](int64_t a, int64_t b) {
            for (int64_t r = a; r < b; ++r) convert_row(table, ids[r] * dim, dim, y + r * dim);
        });
    }

    void rms_norm(const float* x, int64_t rows, const Weight& w, float eps, float* y) override {
        const int64_t dim = w.cols;
        const Isa isa = cpu_isa();
        const auto sum_squares = isa == Isa::Avx512 ? sum_squares_avx512
                                 : isa == Isa::Avx2 ? sum_squares_avx2
                                                    : sum_squares_portable;
        const auto scale_row = isa >= Isa::Avx2 ? scale_row_avx2 : scale_row_portable;
        pool_.parallel_for(rows, 1, [&](int64_t a, int64_t b) {
            std::vector<float>& scale = scratch(dim);
            convert_row(w, 0, dim, scale.data());
            for (int64_t r = a; r < b; ++r) {
                const float inv = 1.0f / std::sqrt(sum_squares(x + r * dim, dim) / float(dim) + eps);
                scale_row(x + r * dim, inv, scale.data(), dim, y + r * dim);
            }
        });
    }

    void linear(const float* x, int64_t rows, const Weight& w, const Weight* bias, float* y) override {
        const LinearOut out{&w, bias, y};
        linears(x, rows, &out, 1);
    }

    void linears(const float* x, int64_t rows, const LinearOut* outs, int32_t n) override {
        if (amx_takes(rows, outs, n)) return amx_linears(pool_, amx_, x, rows, outs, n);
        if (rows > kGemvMaxRows) return gemm_linears(pool_, gemm_, x, rows, outs, n);
        gemv_linears(pool_, gemv_, x, rows, outs, n);
    }

    void rope(float* x, int64_t rows, int32_t heads, int32_t head_dim, const float* cos, const float* sin) override {
        const int32_t half = head_dim / 2;
        const auto rotate = cpu_has_avx2() ? rotate_half_avx2 : rotate_half_portable;
        pool_.parallel_for(rows * heads, 8, [&](int64_t a, int64_t b) {
            for (int64_t job = a; job < b; ++job) {
                const int64_t r = job / heads;
                rotate(x + job * head_dim, half, cos + r * half, sin + r * half);
            }
        });
    }

    void kv_write(const KVSeqView& kv, int64_t start, int64_t rows, const float* k, const float* v) override {
        // Over the pool and with vector conversions (a prompt chunk writes rows × kv_heads × head_dim × 2 values per
        // layer).
        pool_.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
            kv.write_rows(start, r0, r1, k, v,
                          [&](void* dst, const float* src) { store_floats(kv.dtype, src, kv.head_dim, dst); });
        });
    }

    void attention(const float* q, int64_t rows, int32_t heads, int64_t start, const KVSeqView& kv,
                   float* out) override {
        const int32_t d = kv.head_dim;
        const int32_t group = heads / kv.kv_heads;
        const float scale = 1.0f / std::sqrt(float(d));
        if (rows >= kGemmAttentionRows) {
            // A prompt chunk: the sequence's keys and values gathered once, as float32 per query head, for the
            // blocked kernel (causal) — per-position dot products would read and convert every cached row once
            // per query.
            const int64_t T = start + rows, width = int64_t(heads) * d;
            kv_dense_.resize(size_t(2 * T * width));
            float* k = kv_dense_.data();
            float* v = k + T * width;
            pool_.parallel_for(T, 16, [&](int64_t p0, int64_t p1) {
                for (int64_t p = p0; p < p1; ++p) {
                    for (int32_t h = 0; h < heads; ++h) {
                        load_floats(kv.dtype, kv.row(0, p, h / group), d, k + p * width + int64_t(h) * d);
                        load_floats(kv.dtype, kv.row(1, p, h / group), d, v + p * width + int64_t(h) * d);
                    }
                }
            });
            gemm_attention(pool_, q, k, v, 1, rows, T, heads, d, scale, nullptr, out, start);
            return;
        }
        const bool avx2 = cpu_has_avx2();
        pool_.parallel_for(rows * heads, 1, [&](int64_t a, int64_t b) {
            std::vector<float>& buf = scratch(size_t(kDecodeKeyChunk + 2 * d));
            for (int64_t job = a; job < b; ++job) {
                const int64_t r = job / heads;
                const int32_t h = int32_t(job % heads), kh = h / group;
                const int64_t n = start + r + 1;
                float* scores = buf.data();
                float* row = scores + kDecodeKeyChunk;  // a key or value as floats (CPUs without AVX2)
                float* acc = row + d;
                const float* qv = q + (r * heads + h) * d;
                float mx = -INFINITY, sum = 0;
                std::fill(acc, acc + d, 0.0f);
                // An online softmax over chunks of keys: what earlier chunks summed is rescaled when a later one
                // raises the maximum (one chunk, i.e. up to kDecodeKeyChunk positions, is the plain two-pass form).
                for (int64_t p0 = 0; p0 < n; p0 += kDecodeKeyChunk) {
                    const int64_t m = std::min(kDecodeKeyChunk, n - p0);
                    if (avx2) {
                        key_scores(kv, kh, qv, p0, m, scale, scores);
                    } else {
                        for (int64_t p = 0; p < m; ++p) {
                            load_floats(kv.dtype, kv.row(0, p0 + p, kh), d, row);
                            scores[p] = dot_portable(qv, row, d) * scale;
                        }
                    }
                    const float chunk_max = std::max(mx, *std::max_element(scores, scores + m));
                    if (chunk_max > mx) {
                        const float f = softmax_exp(mx - chunk_max);  // 0 for the first chunk (mx = −∞)
                        sum *= f;
                        for (int32_t i = 0; i < d; ++i) acc[i] *= f;
                        mx = chunk_max;
                    }
                    if (avx2) {
                        sum += exp_sum_avx2(scores, m, mx);
                        weighted_values(kv, kh, scores, p0, m, acc);
                        continue;
                    }
                    for (int64_t p = 0; p < m; ++p) sum += (scores[p] = softmax_exp(scores[p] - mx));
                    for (int64_t p = 0; p < m; ++p) {
                        load_floats(kv.dtype, kv.row(1, p0 + p, kh), d, row);
                        for (int32_t i = 0; i < d; ++i) acc[i] += scores[p] * row[i];
                    }
                }
                float* o = out + (r * heads + h) * d;
                const float inv = 1.0f / sum;
                for (int32_t i = 0; i < d; ++i) o[i] = acc[i] * inv;
            }
        });
    }

    void silu_mul(float* gate, const float* up, int64_t n) override {
        const Isa isa = cpu_isa();
        pool_.parallel_for(n, 4096, [&](int64_t a, int64_t b) {
            if (isa == Isa::Avx512) return zip_avx512<SiluMul16>(gate + a, up + a, b - a);
            if (isa == Isa::Avx2) return zip_avx2<SiluMul8>(gate + a, up + a, b - a);
            for (int64_t i = a; i < b; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
        });
    }

    void add_rows(const float* x, const float* y, int64_t rows, int64_t y_rows, int64_t width, float* out) override {
        // Split over all the elements, so one long row is shared by the threads as well as many short ones.
        pool_.parallel_for(rows * width, 4096, [&](int64_t a, int64_t b) {
            for (int64_t i = a; i < b;) {
                const int64_t r = i / width, c0 = i % width, c1 = std::min(width, c0 + (b - i));
                const float* xr = x + r * width;
                const float* yr = y + (r % y_rows) * width;
                float* o = out + r * width;
                for (int64_t c = c0; c < c1; ++c) o[c] = xr[c] + yr[c];
                i += c1 - c0;
            }
        });
    }

    void relu(float* x, int64_t n) override {
        pool_.parallel_for(n, 4096, [&](int64_t a, int64_t b) {
            for (int64_t i = a; i < b; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        });
    }

    void layer_norm(const float* x, int64_t rows, const Weight& w, const Weight& b, float eps, float* y) override {
        const int64_t dim = w.cols;
        const bool avx2 = cpu_has_avx2();
        pool_.parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
            std::vector<float>& wb = scratch(size_t(2 * dim));
            convert_row(w, 0, dim, wb.data());
            convert_row(b, 0, dim, wb.data() + dim);
            for (int64_t r = r0; r < r1; ++r) {
                if (avx2) {
                    layer_norm_row_avx2(x + r * dim, dim, wb.data(), wb.data() + dim, eps, y + r * dim);
                } else {
                    layer_norm_row_portable(x + r * dim, dim, wb.data(), wb.data() + dim, eps, y + r * dim);
                }
            }
        });
    }

    void gelu(float* x, int64_t n) override {
        const Isa isa = cpu_isa();
        pool_.parallel_for(n, 4096, [&](int64_t a, int64_t b) {
            if (isa == Isa::Avx512) return map_avx512<Gelu16>(x + a, b - a);
            if (isa == Isa::Avx2) return map_avx2<Gelu8>(x + a, b - a);
            for (int64_t i = a; i < b; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
        });
    }

    void quick_gelu(float* x, int64_t n) override {
        const bool avx2 = cpu_has_avx2();
        pool_.parallel_for(n, 4096, [&](int64_t a, int64_t b) {
            if (avx2) return map_avx2<QuickGelu8>(x + a, b - a);
            for (int64_t i = a; i < b; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
        });
    }

    void patches(const float* x, int64_t n, int32_t channels, int32_t height, int32_t width, int32_t patch,
                 float* y) override {
        const int64_t gh = height / patch, gw = width / patch, len = int64_t(channels) * patch * patch;
        pool_.parallel_for(n * gh, 1, [&](int64_t a, int64_t b) {
            for (int64_t t = a; t < b; ++t) {  // t = image · gh + patch row
                const int64_t img = t / gh, py = t % gh;
                for (int64_t px = 0; px < gw; ++px) {
                    float* dst = y + (t * gw + px) * len;
                    for (int64_t c = 0; c < channels; ++c) {
                        for (int64_t i = 0; i < patch; ++i) {
                            const float* src = x + ((img * channels + c) * height + py * patch + i) * width;
                            std::copy(src + px * patch, src + (px + 1) * patch, dst + (c * patch + i) * patch);
                        }
                    }
                }
            }
        });
    }

    void attention(const float* q, const float* k, const float* v, int64_t batch, int64_t q_rows, int64_t kv_rows,
                   int32_t heads, int32_t head_dim, float scale, const ScoreBias* bias, float* out) override {
        gemm_attention(pool_, q, k, v, batch, q_rows, kv_rows, heads, head_dim, scale, bias, out);
    }

    // SAM (ops/cpu_sam.cpp).
    std::unique_ptr<ScoreBias> rel_pos_bias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h,
                                            int64_t grid_w, const Weight& rel_h, const Weight& rel_w) override {
        return cpu_sam::rel_pos_bias(q, heads, head_dim, grid_h, grid_w, rel_h, rel_w);
    }
    void window_partition(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                          const float* fill, float* y) override {
        cpu_sam::window_partition(pool_, x, height, width, channels, window, fill, y);
    }
    void window_merge(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                      float* y) override {
        cpu_sam::window_merge(pool_, x, height, width, channels, window, y);
    }
    void conv2d(const float* x, int64_t n, int64_t height, int64_t width, const Weight& w, const Weight* bias,
                int32_t kernel, float* y) override {
        cpu_sam::conv2d(pool_, sam_buffers_, gemm_, x, n, height, width, w, bias, kernel, y);
    }
    void resize_bilinear(const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                         int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* y) override {
        cpu_sam::resize_bilinear(pool_, x, planes, in_h, in_w, out_h, out_w, row0, rows, col0, cols, y);
    }
    void transpose(const float* x, int64_t batch, int64_t rows, int64_t cols, float* y) override {
        cpu_sam::transpose(pool_, x, batch, rows, cols, y);
    }
    void softmax(float* x, int64_t rows, int64_t cols) override { cpu_sam::softmax(pool_, x, rows, cols); }

  private:
    // This loop share's scratch of at least n floats, reused across calls.
    static std::vector<float>& scratch(size_t n) { return share_floats<CpuOps>(n); }

    ThreadPool pool_;
    // What the kernels fill on the calling thread before their parallel loops: this instance's caller's alone.
    cpu_sam::Buffers sam_buffers_;
    GemmBuffers gemm_;
    std::vector<float> kv_dense_;  // a prompt chunk's keys and values, gathered (attention)
    GemvBuffers gemv_;
    AmxBuffers amx_;
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops(int threads) { return std::make_unique<CpuOps>(threads); }

}  // namespace nc::ops
