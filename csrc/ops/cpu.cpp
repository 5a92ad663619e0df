// The optimized CPU ops: threads over independent rows/outputs/heads, AVX2+FMA+F16C kernels selected at
// run time (portable loops otherwise), 16-bit weights converted in registers, no allocation per call in
// the hot ops except reused thread-local scratch.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/ops.h"
#include "runtime/thread_pool.h"

namespace nc::ops {

namespace {

bool cpu_has_avx2() {
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                            __builtin_cpu_supports("f16c");
    return has;
}

// ---- linear ---------------------------------------------------------------------------------------------

// Loads 8 consecutive weights as floats.
template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const void* p) {
    if constexpr (D == NC_DTYPE_F32) {
        return _mm256_loadu_ps(static_cast<const float*>(p));
    } else if constexpr (D == NC_DTYPE_F16) {
        return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    } else {
        const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
}

__attribute__((target("avx2,fma,f16c"))) inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

constexpr int kRowTile = 3;  // x rows per micro-tile
constexpr int kOutTile = 4;  // outputs per micro-tile: 3×4 accumulators + 3 x + 1 w = 16 ymm registers

// y[r, o] += dot(x[r, :K], W[o, :K]) for R rows (≤ 3) and O outputs (≤ 4) starting at x, W rows w[0..O).
template <nc_dtype D, int R, int O>
__attribute__((target("avx2,fma,f16c"))) void micro_tile(const float* x, int64_t ldx, const char* const* w, int64_t K,
                                                          float* y, int64_t ldy) {
    constexpr int64_t esize = D == NC_DTYPE_F32 ? 4 : 2;
    __m256 acc[R][O];
    for (int r = 0; r < R; ++r)
        for (int o = 0; o < O; ++o) acc[r][o] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[R];
        for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + k);
        for (int o = 0; o < O; ++o) {
            const __m256 wv = load8<D>(w[o] + k * esize);
            for (int r = 0; r < R; ++r) acc[r][o] = _mm256_fmadd_ps(xv[r], wv, acc[r][o]);
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int o = 0; o < O; ++o) {
            float s = hsum(acc[r][o]);
            for (int64_t kk = k; kk < K; ++kk) {
                s += x[r * ldx + kk] * weight_at(Weight{D, w[o], 1, K}, kk);
            }
            y[r * ldy + o] += s;
        }
    }
}

template <nc_dtype D, int R>
__attribute__((target("avx2,fma,f16c"))) void row_tile(const float* x, int64_t ldx, const char* const* w, int outs,
                                                        int64_t K, float* y, int64_t ldy) {
    switch (outs) {
        case 4: micro_tile<D, R, 4>(x, ldx, w, K, y, ldy); break;
        case 3: micro_tile<D, R, 3>(x, ldx, w, K, y, ldy); break;
        case 2: micro_tile<D, R, 2>(x, ldx, w, K, y, ldy); break;
        default: micro_tile<D, R, 1>(x, ldx, w, K, y, ldy); break;
    }
}

// Outputs [o0, o1) for rows [r0, r1): y must hold the bias (or zero) already.
template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) void linear_avx2(const float* x, int64_t r0, int64_t r1, const Weight& w,
                                                           int64_t o0, int64_t o1, float* y) {
    const int64_t K = w.cols, esize = D == NC_DTYPE_F32 ? 4 : 2;
    const char* base = static_cast<const char*>(w.data);
    for (int64_t o = o0; o < o1; o += kOutTile) {
        const int outs = int(std::min<int64_t>(kOutTile, o1 - o));
        const char* rows[kOutTile];
        for (int i = 0; i < outs; ++i) rows[i] = base + (o + i) * K * esize;
        int64_t r = r0;
        for (; r + kRowTile <= r1; r += kRowTile) row_tile<D, kRowTile>(x + r * K, K, rows, outs, K, y + r * w.rows + o, w.rows);
        if (r1 - r == 2) row_tile<D, 2>(x + r * K, K, rows, outs, K, y + r * w.rows + o, w.rows);
        if (r1 - r == 1) row_tile<D, 1>(x + r * K, K, rows, outs, K, y + r * w.rows + o, w.rows);
    }
}

void linear_portable(const float* x, int64_t r0, int64_t r1, const Weight& w, int64_t o0, int64_t o1, float* y) {
    for (int64_t r = r0; r < r1; ++r) {
        for (int64_t o = o0; o < o1; ++o) {
            float acc = 0;
            for (int64_t k = 0; k < w.cols; ++k) acc += x[r * w.cols + k] * weight_at(w, o * w.cols + k);
            y[r * w.rows + o] += acc;
        }
    }
}

void linear_block(const float* x, int64_t r0, int64_t r1, const Weight& w, int64_t o0, int64_t o1, float* y) {
    if (!cpu_has_avx2()) return linear_portable(x, r0, r1, w, o0, o1, y);
    switch (w.dtype) {
        case NC_DTYPE_F32: return linear_avx2<NC_DTYPE_F32>(x, r0, r1, w, o0, o1, y);
        case NC_DTYPE_F16: return linear_avx2<NC_DTYPE_F16>(x, r0, r1, w, o0, o1, y);
        case NC_DTYPE_BF16: return linear_avx2<NC_DTYPE_BF16>(x, r0, r1, w, o0, o1, y);
    }
}

// Rows per pass over the weights: the x block (rows × K floats) stays in L2 while W streams once per block.
constexpr int64_t kRowBlock = 24;

// ---- ops ------------------------------------------------------------------------------------------------

class CpuOps final : public Ops {
  public:
    explicit CpuOps(int threads) : pool_(threads) {}
    const char* name() const override { return "cpu"; }

    void embedding(const Weight& table, const int32_t* ids, int64_t n, float* y) override {
        const int64_t dim = table.cols;
        pool_.parallel_for(n, 1, [&](int64_t a, int64_t b) {
            for (int64_t r = a; r < b; ++r) convert_row(table, ids[r] * dim, dim, y + r * dim);
        });
    }

    void rms_norm(const float* x, int64_t rows, const Weight& w, float eps, float* y) override {
        const int64_t dim = w.cols;
        pool_.parallel_for(rows, 1, [&](int64_t a, int64_t b) {
            std::vector<float>& scale = scratch(dim);
            convert_row(w, 0, dim, scale.data());
            for (int64_t r = a; r < b; ++r) {
                const float* xr = x + r * dim;
                float ss = 0;
                for (int64_t c = 0; c < dim; ++c) ss += xr[c] * xr[c];
                const float inv = 1.0f / std::sqrt(ss / float(dim) + eps);
                for (int64_t c = 0; c < dim; ++c) y[r * dim + c] = (xr[c] * inv) * scale[size_t(c)];
            }
        });
    }

    void linear(const float* x, int64_t rows, const Weight& w, const Weight* bias, float* y) override {
        for (int64_t r = 0; r < rows; ++r) {
            if (bias) {
                convert_row(*bias, 0, w.rows, y + r * w.rows);
            } else {
                std::fill(y + r * w.rows, y + (r + 1) * w.rows, 0.0f);
            }
        }
        for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
            const int64_t r1 = std::min(rows, r0 + kRowBlock);
            pool_.parallel_for(w.rows, kOutTile, [&](int64_t o0, int64_t o1) { linear_block(x, r0, r1, w, o0, o1, y); });
        }
    }

    void rope(float* x, int64_t rows, int32_t heads, int32_t head_dim, const int32_t* positions,
              float theta) override {
        const int32_t half = head_dim / 2;
        // Frequencies as transformers computes them: inv_freq in float32, angle = float(pos) * inv_freq.
        std::vector<float> inv_freq(static_cast<size_t>(half));
        for (int32_t i = 0; i < half; ++i) inv_freq[size_t(i)] = 1.0f / std::pow(theta, float(2 * i) / float(head_dim));
        pool_.parallel_for(rows, 1, [&](int64_t a, int64_t b) {
            for (int64_t r = a; r < b; ++r) {
                for (int32_t i = 0; i < half; ++i) {
                    const float angle = float(positions[r]) * inv_freq[size_t(i)];
                    const float c = std::cos(angle), s = std::sin(angle);
                    for (int32_t h = 0; h < heads; ++h) {
                        float* v = x + (r * heads + h) * head_dim;
                        const float lo = v[i], hi = v[i + half];
                        v[i] = lo * c - hi * s;
                        v[i + half] = hi * c + lo * s;
                    }
                }
            }
        });
    }

    void kv_write(const KVSeqView& kv, int64_t start, int64_t rows, const float* k, const float* v) override {
        for (int64_t r = 0; r < rows; ++r) {
            for (int32_t h = 0; h < kv.kv_heads; ++h) {
                kv.store(kv.row(0, start + r, h), k + (r * kv.kv_heads + h) * kv.head_dim);
                kv.store(kv.row(1, start + r, h), v + (r * kv.kv_heads + h) * kv.head_dim);
            }
        }
    }

    void attention(const float* q, int64_t rows, int32_t heads, int64_t start, const KVSeqView& kv,
                   float* out) override {
        const int32_t d = kv.head_dim;
        const int32_t group = heads / kv.kv_heads;
        const float scale = 1.0f / std::sqrt(float(d));
        pool_.parallel_for(rows * heads, 1, [&](int64_t a, int64_t b) {
            std::vector<float>& buf = scratch(size_t(start + rows) + size_t(2 * d));
            for (int64_t job = a; job < b; ++job) {
                const int64_t r = job / heads;
                const int32_t h = int32_t(job % heads);
                const int64_t n = start + r + 1;
                float* scores = buf.data();
                float* row = scores + n;
                float* acc = row + d;
                const float* qv = q + (r * heads + h) * d;
                float mx = -INFINITY;
                for (int64_t p = 0; p < n; ++p) {
                    kv.load(kv.row(0, p, h / group), row);
                    float dot = 0;
                    for (int32_t i = 0; i < d; ++i) dot += qv[i] * row[i];
                    scores[p] = dot * scale;
                    mx = std::max(mx, scores[p]);
                }
                float sum = 0;
                for (int64_t p = 0; p < n; ++p) sum += (scores[p] = std::exp(scores[p] - mx));
                std::fill(acc, acc + d, 0.0f);
                for (int64_t p = 0; p < n; ++p) {
                    kv.load(kv.row(1, p, h / group), row);
                    const float s = scores[p];
                    for (int32_t i = 0; i < d; ++i) acc[i] += s * row[i];
                }
                float* o = out + (r * heads + h) * d;
                const float inv = 1.0f / sum;
                for (int32_t i = 0; i < d; ++i) o[i] = acc[i] * inv;
            }
        });
    }

    void silu_mul(float* gate, const float* up, int64_t n) override {
        pool_.parallel_for(n, 4096, [&](int64_t a, int64_t b) {
            for (int64_t i = a; i < b; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
        });
    }

    void add(float* x, const float* y, int64_t n) override {
        pool_.parallel_for(n, 4096, [&](int64_t a, int64_t b) {
            for (int64_t i = a; i < b; ++i) x[i] += y[i];
        });
    }

    void relu(float* x, int64_t n) override {
        pool_.parallel_for(n, 4096, [&](int64_t a, int64_t b) {
            for (int64_t i = a; i < b; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        });
    }

  private:
    static void convert_row(const Weight& w, int64_t first, int64_t n, float* out) {
        for (int64_t i = 0; i < n; ++i) out[i] = weight_at(w, first + i);
    }

    // Per-thread scratch of at least n floats, reused across calls.
    static std::vector<float>& scratch(size_t n) {
        thread_local std::vector<float> buf;
        if (buf.size() < n) buf.resize(n);
        return buf;
    }

    ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops(int threads) { return std::make_unique<CpuOps>(threads); }

}  // namespace nc::ops
