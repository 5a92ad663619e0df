#include "ops/cpu_sam.h"

// GCC 12 flags the _mm512_undefined_*() inside AVX-512 reduction intrinsics as uninitialized (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/cpu_gemm.h"
#include "ops/cpu_simd.h"

namespace nc::ops::cpu_sam {

namespace {

float* grown(std::vector<float>& buf, size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

std::vector<float> to_floats(const Weight& w) {
    std::vector<float> out(size_t(w.rows * w.cols));
    for (size_t i = 0; i < out.size(); ++i) out[i] = weight_at(w, int64_t(i));
    return out;
}

// ---- relative positions -------------------------------------------------------------------------------------

// s[i] += h[i] + w[i] for i < n.
__attribute__((target("avx2,fma,f16c"))) void add_pair_avx2(float* s, const float* h, const float* w, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 b = _mm256_add_ps(_mm256_loadu_ps(h + i), _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(s + i, _mm256_add_ps(_mm256_loadu_ps(s + i), b));
    }
    for (; i < n; ++i) s[i] += h[i] + w[i];
}

void add_pair_portable(float* s, const float* h, const float* w, int64_t n) {
    for (int64_t i = 0; i < n; ++i) s[i] += h[i] + w[i];
}

// Per query: the grid_h + grid_w dot products of q with the table rows its keys use, then one add per key.
class RelPosBias final : public ScoreBias {
  public:
    RelPosBias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h, int64_t grid_w, const Weight& rel_h,
               const Weight& rel_w)
        : q_(q), heads_(heads), d_(head_dim), gh_(grid_h), gw_(grid_w), rel_h_(to_floats(rel_h)),
          rel_w_(to_floats(rel_w)), avx2_(cpu_has_avx2()) {}

    void add(int64_t batch, int32_t head, int64_t query, float* scores, int64_t kv_rows) const override {
        (void)kv_rows;  // = grid_h · grid_w
        const float* q = q_ + ((batch * gh_ * gw_ + query) * heads_ + head) * d_;
        const int64_t qh = query / gw_, qw = query % gw_;
        std::vector<float>& buf = share_floats<struct RelPosRow>(size_t(gh_ + gw_));
        float *rh = buf.data(), *rw = rh + gh_;
        auto dot = avx2_ ? dot_avx2 : dot_portable;
        for (int64_t k = 0; k < gh_; ++k) rh[k] = dot(q, rel_h_.data() + (qh - k + gh_ - 1) * d_, d_);
        for (int64_t k = 0; k < gw_; ++k) rw[k] = dot(q, rel_w_.data() + (qw - k + gw_ - 1) * d_, d_);
        for (int64_t kh = 0; kh < gh_; ++kh) {
            float* s = scores + kh * gw_;
            const float h = rh[kh];
            for (int64_t kw = 0; kw < gw_; ++kw) s[kw] += h + rw[kw];
        }
    }

    // Key-major scores of n queries: the per-query terms as [key row or column][query] tables, then one vector add
    // of two table rows per key.
    void add_block(int64_t batch, int32_t head, int64_t query, int64_t n, float* scores, int64_t ld,
                   int64_t kv_rows) const override {
        (void)kv_rows;
        std::vector<float>& buf = share_floats<struct RelPosBlock>(size_t((gh_ + gw_) * ld));
        float *rh = buf.data(), *rw = rh + gh_ * ld;  // rh[kh][i], rw[kw][i]
        auto dot = avx2_ ? dot_avx2 : dot_portable;
        for (int64_t i = 0; i < ld; ++i) {
            if (i >= n) {  // lanes past the block: scores nobody reads, kept finite
                for (int64_t k = 0; k < gh_; ++k) rh[k * ld + i] = 0.0f;
                for (int64_t k = 0; k < gw_; ++k) rw[k * ld + i] = 0.0f;
                continue;
            }
            const float* q = q_ + ((batch * gh_ * gw_ + query + i) * heads_ + head) * d_;
            const int64_t qh = (query + i) / gw_, qw = (query + i) % gw_;
            for (int64_t k = 0; k < gh_; ++k) rh[k * ld + i] = dot(q, rel_h_.data() + (qh - k + gh_ - 1) * d_, d_);
            for (int64_t k = 0; k < gw_; ++k) rw[k * ld + i] = dot(q, rel_w_.data() + (qw - k + gw_ - 1) * d_, d_);
        }
        auto add_pair = avx2_ ? add_pair_avx2 : add_pair_portable;
        for (int64_t kh = 0; kh < gh_; ++kh) {
            for (int64_t kw = 0; kw < gw_; ++kw) add_pair(scores + (kh * gw_ + kw) * ld, rh + kh * ld, rw + kw * ld, ld);
        }
    }

  private:
    const float* q_;
    int32_t heads_, d_;
    int64_t gh_, gw_;
    std::vector<float> rel_h_, rel_w_;
    bool avx2_;
};

int64_t windows_along(int64_t size, int32_t window) { return (size + window - 1) / window; }

// Fills n pixels of channels values with fill (null: zeros).
void fill_pixels(float* dst, int64_t n, int64_t channels, const float* fill) {
    for (int64_t p = 0; p < n; ++p) {
        if (fill) {
            std::memcpy(dst + p * channels, fill, size_t(channels) * sizeof(float));
        } else {
            std::fill(dst + p * channels, dst + (p + 1) * channels, 0.0f);
        }
    }
}

// ---- bilinear -----------------------------------------------------------------------------------------------

// One output coordinate's two source taps along an axis and their weights, in float as torch computes them.
struct Tap {
    int64_t lo, hi;
    float w_lo, w_hi;
};

Tap bilinear_tap(int64_t dst, int64_t in, int64_t out) {
    if (in == out) return Tap{dst, dst, 1.0f, 0.0f};  // torch copies when the size does not change
    const float scale = float(in) / float(out);
    const float src = std::max(scale * (float(dst) + 0.5f) - 0.5f, 0.0f);
    const int64_t lo = std::min(int64_t(std::floor(src)), in - 1);
    const float t = std::min(std::max(src - float(lo), 0.0f), 1.0f);
    return Tap{lo, lo + (lo < in - 1 ? 1 : 0), 1.0f - t, t};
}

// ---- softmax ------------------------------------------------------------------------------------------------

// One row in place. The row's tail goes through the vector code too; its padding lanes are kept at x − max = 0
// and zeroed after the exponential, so no lane ever holds a denormal (whose arithmetic is slow).
__attribute__((target("avx2,fma,f16c"))) void softmax_row_avx2(float* row, int64_t n) {
    const int64_t whole = n / 8 * 8, rest = n - whole;
    alignas(32) float tail[8];
    alignas(32) int32_t valid[8];
    for (int64_t t = 0; t < 8; ++t) {
        tail[t] = t < rest ? row[whole + t] : -INFINITY;
        valid[t] = t < rest ? -1 : 0;
    }
    const __m256 keep = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(valid)));
    __m256 mx = _mm256_load_ps(tail);
    for (int64_t i = 0; i < whole; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(row + i));
    const __m256 m = _mm256_set1_ps(hmax(mx));
    const __m256 t = _mm256_blendv_ps(m, _mm256_load_ps(tail), keep);
    const __m256 e_tail = _mm256_and_ps(softmax_exp8(_mm256_sub_ps(t, m)), keep);
    __m256 sum = e_tail;
    for (int64_t i = 0; i < whole; i += 8) {
        const __m256 e = softmax_exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), m));
        sum = _mm256_add_ps(sum, e);
        _mm256_storeu_ps(row + i, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
    for (int64_t i = 0; i < whole; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inv));
    _mm256_store_ps(tail, _mm256_mul_ps(e_tail, inv));
    std::copy(tail, tail + rest, row + whole);
}

// Rows of at most 16 values, one masked vector each (the decoder's per-head rows of 11 prompt tokens); lanes past
// a row stay zero throughout. Results go to a small buffer first and are copied back: a masked load of the next
// row right after a masked store to the same cache line would wait for the store.
__attribute__((target("avx512f,avx2,fma,f16c"))) void softmax_short_rows_avx512(float* x, int64_t rows, int64_t n) {
    constexpr int64_t kBatch = 64;
    alignas(64) float out[kBatch * 16];
    const __mmask16 k = __mmask16((1u << n) - 1u);
    for (int64_t r0 = 0; r0 < rows; r0 += kBatch) {
        const int64_t count = std::min(kBatch, rows - r0);
        for (int64_t r = 0; r < count; ++r) {
            const __m512 v = _mm512_maskz_loadu_ps(k, x + (r0 + r) * n);
            const __m512 m = _mm512_set1_ps(_mm512_mask_reduce_max_ps(k, v));
            const __m512 e = _mm512_maskz_mov_ps(k, softmax_exp16(_mm512_maskz_sub_ps(k, v, m)));
            _mm512_mask_storeu_ps(out + r * n, k, _mm512_mul_ps(e, _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(e))));
        }
        std::copy(out, out + count * n, x + r0 * n);
    }
}

void softmax_row_portable(float* row, int64_t n) {
    const float m = *std::max_element(row, row + n);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += (row[i] = softmax_exp(row[i] - m));
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; ++i) row[i] *= inv;
}

}  // namespace

std::unique_ptr<ScoreBias> rel_pos_bias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h,
                                        int64_t grid_w, const Weight& rel_h, const Weight& rel_w) {
    return std::make_unique<RelPosBias>(q, heads, head_dim, grid_h, grid_w, rel_h, rel_w);
}

void window_partition(ThreadPool& pool, const float* x, int64_t height, int64_t width, int64_t channels,
                      int32_t window, const float* fill, float* y) {
    const int64_t nh = windows_along(height, window), nw = windows_along(width, window);
    pool.parallel_for(nh * nw * window, 1, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {  // t = window index · window + row inside it
            const int64_t win = t / window, i = t % window;
            const int64_t py = (win / nw) * window + i, px = (win % nw) * window;
            float* dst = y + t * window * channels;
            const int64_t valid = py < height ? std::min<int64_t>(window, width - px) : 0;
            if (valid > 0) std::memcpy(dst, x + (py * width + px) * channels, size_t(valid * channels) * sizeof(float));
            fill_pixels(dst + valid * channels, window - valid, channels, fill);
        }
    });
}

void window_merge(ThreadPool& pool, const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                  float* y) {
    const int64_t nw = windows_along(width, window);
    pool.parallel_for(height * nw, 1, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {  // t = map row · nw + window column
            const int64_t py = t / nw, wx = t % nw, px = wx * window;
            const int64_t win = (py / window) * nw + wx, i = py % window;
            const int64_t valid = std::min<int64_t>(window, width - px);
            std::memcpy(y + (py * width + px) * channels, x + (win * window + i) * window * channels,
                        size_t(valid * channels) * sizeof(float));
        }
    });
}

void conv2d(ThreadPool& pool, Buffers& buffers, GemmBuffers& gemm, const float* x, int64_t n, int64_t height,
            int64_t width, const Weight& w, const Weight* bias, int32_t kernel, float* y) {
    if (kernel == 1) return gemm_linear(pool, gemm, x, n * height * width, w, bias, y);
    const int64_t out = w.rows, k2 = int64_t(kernel) * kernel, in = w.cols / k2, pad = (kernel - 1) / 2;
    // The weight re-laid [out, i, j, in] in f32, so that an im2col row is k² contiguous runs of `in` channels.
    float* wt = grown(buffers.weights, size_t(out * k2 * in));
    pool.parallel_for(out, 1, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
            for (int64_t c = 0; c < in; ++c) {
                for (int64_t ij = 0; ij < k2; ++ij) wt[(o * k2 + ij) * in + c] = weight_at(w, (o * in + c) * k2 + ij);
            }
        }
    });
    const Weight wf{NC_DTYPE_F32, wt, out, k2 * in};
    // im2col in chunks of pixels: bounded memory, and each chunk still a large GEMM.
    constexpr int64_t kChunk = 1024;
    const int64_t pixels = n * height * width;
    float* cols = grown(buffers.work, size_t(std::min(kChunk, pixels) * k2 * in));
    for (int64_t p0 = 0; p0 < pixels; p0 += kChunk) {
        const int64_t m = std::min(kChunk, pixels - p0);
        pool.parallel_for(m, 1, [&](int64_t a, int64_t b) {
            for (int64_t r = a; r < b; ++r) {
                const int64_t p = p0 + r, img = p / (height * width), py = (p / width) % height, px = p % width;
                for (int64_t i = 0; i < kernel; ++i) {
                    for (int64_t j = 0; j < kernel; ++j) {
                        float* dst = cols + (r * k2 + i * kernel + j) * in;
                        const int64_t sy = py + i - pad, sx = px + j - pad;
                        if (sy < 0 || sy >= height || sx < 0 || sx >= width) {
                            std::fill(dst, dst + in, 0.0f);
                        } else {
                            std::memcpy(dst, x + ((img * height + sy) * width + sx) * in, size_t(in) * sizeof(float));
                        }
                    }
                }
            }
        });
        gemm_linear(pool, gemm, cols, m, wf, bias, y + p0 * out);
    }
}

void resize_bilinear(ThreadPool& pool, const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                     int64_t out_w, int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* y) {
    std::vector<Tap> tx(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) tx[size_t(c)] = bilinear_tap(col0 + c, in_w, out_w);
    pool.parallel_for(planes * rows, 8, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {
            const int64_t p = t / rows, r = t % rows;
            const Tap ty = bilinear_tap(row0 + r, in_h, out_h);
            const float* top = x + (p * in_h + ty.lo) * in_w;
            const float* bottom = x + (p * in_h + ty.hi) * in_w;
            float* dst = y + t * cols;
            for (int64_t c = 0; c < cols; ++c) {
                const Tap& h = tx[size_t(c)];
                const float t0 = top[h.lo] * h.w_lo + top[h.hi] * h.w_hi;
                const float t1 = bottom[h.lo] * h.w_lo + bottom[h.hi] * h.w_hi;
                dst[c] = t0 * ty.w_lo + t1 * ty.w_hi;
            }
        }
    });
}

void transpose(ThreadPool& pool, const float* x, int64_t batch, int64_t rows, int64_t cols, float* y) {
    constexpr int64_t kTile = 32;
    const int64_t row_tiles = (rows + kTile - 1) / kTile;
    pool.parallel_for(batch * row_tiles, 1, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {
            const int64_t bi = t / row_tiles, r0 = (t % row_tiles) * kTile, r1 = std::min(rows, r0 + kTile);
            const float* src = x + bi * rows * cols;
            float* dst = y + bi * rows * cols;
            for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
                const int64_t c1 = std::min(cols, c0 + kTile);
                for (int64_t r = r0; r < r1; ++r) {
                    for (int64_t c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    });
}

void softmax(ThreadPool& pool, float* x, int64_t rows, int64_t cols) {
    const bool avx2 = cpu_has_avx2(), short_rows = cpu_isa() == Isa::Avx512 && cols <= 16;
    pool.parallel_for(rows, std::max<int64_t>(1, 4096 / cols), [&](int64_t a, int64_t b) {
        if (short_rows) return softmax_short_rows_avx512(x + a * cols, b - a, cols);
        for (int64_t r = a; r < b; ++r) {
            if (avx2) {
                softmax_row_avx2(x + r * cols, cols);
            } else {
                softmax_row_portable(x + r * cols, cols);
            }
        }
    });
}

}  // namespace nc::ops::cpu_sam
