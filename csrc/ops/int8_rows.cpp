#include "ops/int8_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <immintrin.h>

#include "core/error.h"
#include "ops/convert.h"
#include "ops/cpu_simd.h"

namespace nc::ops {

namespace {

constexpr int64_t kLine = 64;
constexpr float kLevels = 127.0f;  // symmetric: -127 … 127, so that q and -q are both held

// v rounded to the nearest integer, ties to even, for |v| ≤ 127 (adding 1.5 · 2^23 leaves no fraction bits): the
// same as nearbyint, which compilers call out of line (a libm call per weight at load).
inline float round_to_int(float v) {
    constexpr float kMagic = 12582912.0f;
    return (v + kMagic) - kMagic;
}

}  // namespace

float int8_weight(const Int8Rows& w, int64_t r, int64_t c) { return w.scale[size_t(r)] * float(w.row(r)[c]); }

std::unique_ptr<Int8Rows> quantize_int8(Ops& ops, const Weight& w, const std::string& name) {
    auto out = std::make_unique<Int8Rows>();
    out->rows = w.rows;
    out->cols = w.cols;
    out->stride = (w.cols + kLine - 1) / kLine * kLine;
    out->q = huge_array<int8_t>(size_t(w.rows * out->stride), name.c_str());
    out->scale.assign(size_t(w.rows), 0.0f);
    std::vector<int64_t> bad_rows(size_t(w.rows), 0);  // a row's count of weights that are not finite
    ops.parallel(w.rows, [&](int64_t r0, int64_t r1) {
        std::vector<float> row(size_t(w.cols));
        for (int64_t r = r0; r < r1; ++r) {
            convert_row(w, r * w.cols, w.cols, row.data());
            float max = 0.0f;
            for (float v : row) {
                if (!std::isfinite(v)) ++bad_rows[size_t(r)];
                max = std::max(max, std::fabs(v));
            }
            if (bad_rows[size_t(r)] > 0 || max == 0.0f) continue;  // an all-zero row stays q = 0, scale 0
            const float inverse = kLevels / max;
            int8_t* q = out->q.get() + r * out->stride;
            for (int64_t c = 0; c < w.cols; ++c) q[c] = int8_t(std::clamp(round_to_int(row[size_t(c)] * inverse), -kLevels, kLevels));
            out->scale[size_t(r)] = max / kLevels;
        }
    });
    for (int64_t r = 0; r < w.rows; ++r) {
        if (bad_rows[size_t(r)] > 0) {
            fail(NC_ERR_DTYPE, "int8 weights quantize finite weights; " + name + " row " + std::to_string(r) + " holds " +
                                   std::to_string(bad_rows[size_t(r)]) + " infinite or NaN");
        }
    }
    return out;
}

namespace {

// q[0, n) as bf16 at dst, 32 at a time: sign-extended, converted to floats, and the pairs of float vectors rounded
// to bf16 in one instruction (exact: a float of at most 8 significant bits is a bf16). Returns how many it converted.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) int64_t int8_to_bf16_avx512(const int8_t* q, int64_t n,
                                                                                    uint16_t* dst) {
    int64_t c = 0;
    for (; c + 32 <= n; c += 32) {
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c))));
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c + 16))));
        _mm512_storeu_si512(dst + c, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
    }
    return c;
}

}  // namespace

void expand_int8_bf16(const Int8Rows& w, int64_t first, int64_t n, int64_t k0, int64_t cols, uint16_t* out, int64_t ld) {
    static const bool bf16_lanes = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
    const bool avx512 = bf16_lanes && cpu_isa() >= Isa::Avx512;
    for (int64_t i = 0; i < n; ++i) {
        const int8_t* q = w.row(first + i) + k0;
        uint16_t* dst = out + i * ld;
        for (int64_t c = avx512 ? int8_to_bf16_avx512(q, cols, dst) : 0; c < cols; ++c) dst[c] = f32_to_bf16(float(q[c]));
    }
}

void expand_int8_f32(const Int8Rows& w, int64_t first, int64_t n, float* out, int64_t ld) {
    for (int64_t i = 0; i < n; ++i) {
        const int8_t* q = w.row(first + i);
        float* dst = out + i * ld;
        for (int64_t c = 0; c < w.cols; ++c) dst[c] = float(q[c]);
    }
}

void expand_int8_scaled(const Int8Rows& w, int64_t r, int64_t k0, int64_t n, float* out) {
    const int8_t* q = w.row(r) + k0;
    const float s = w.scale[size_t(r)];
    for (int64_t c = 0; c < n; ++c) out[c] = s * float(q[c]);
}

void scale_int8_outputs(const Int8Rows& w, const Weight* bias, int64_t o0, int64_t o1, int64_t rows, float* y,
                        int64_t ldy) {
    for (int64_t r = 0; r < rows; ++r) {
        float* yr = y + r * ldy;
        for (int64_t o = o0; o < o1; ++o) {
            yr[o] = w.scale[size_t(o)] * yr[o] + (bias != nullptr ? weight_at(*bias, o) : 0.0f);
        }
    }
}

}  // namespace nc::ops
