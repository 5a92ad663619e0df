#include "ops/cpu_gemv.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/compact_bf16.h"
#include "ops/cpu_simd.h"
#include "ops/int8_rows.h"

namespace nc::ops {

namespace {

constexpr int64_t esize(nc_dtype d) { return d == NC_DTYPE_F32 ? 4 : 2; }

// How x was reordered for a kernel (prepare_x): as given, each step's even then odd columns (AVX-512 with 16-bit
// weights), or the lanes of the AVX2 compact kernel (tile_avx2_compact).
enum class XOrder { AsIs, EvenOdd, CompactLanes };

// Outputs [o0, o1) of one weight for rows [0, rows) of x; y already holds the bias (or zero) and is accumulated.
struct Block {
    const float* x;   // [rows, K] as given
    const float* xs;  // x as the AVX-512 kernel or the AVX2 compact kernel reads it (see prepare_x), rows ldxs apart
    XOrder order;     // of xs
    int64_t ldxs, rows, K;
    const Weight* w;
    int64_t o0, o1;
    float* y;  // [rows, ldy]: output o of row r at y[r · ldy + o]
    int64_t ldy;
};

// ---- portable --------------------------------------------------------------------------------------------

void block_portable(const Block& b) {
    for (int64_t r = 0; r < b.rows; ++r) {
        for (int64_t o = b.o0; o < b.o1; ++o) {
            float acc = 0;
            for (int64_t k = 0; k < b.K; ++k) acc += b.x[r * b.K + k] * weight_at(*b.w, o * b.K + k);
            b.y[r * b.ldy + o] += acc;
        }
    }
}

// Weight k of a compact row past its last whole group: the tail is plain bf16 after the groups.
float compact_tail_weight(const char* row, int64_t k) {
    const int64_t groups = k / kCompactGroup;
    uint16_t b;
    std::memcpy(&b, row + groups * kCompactGroupBytes + (k - groups * kCompactGroup) * 2, 2);
    return bf16_to_f32(b);
}

// ---- AVX2: 3 rows × 4 outputs, 8 weights per load -----------------------------------------------------------

constexpr int kAvx2Rows = 3;  // 3×4 accumulators + 3 x + 1 w = 16 ymm registers
constexpr int kOutTile = 4;   // outputs per micro-tile, both ISAs

template <nc_dtype D, int R, int O>
__attribute__((target("avx2,fma,f16c"))) void tile_avx2(const float* x, int64_t K, const char* const* w, float* y,
                                                         int64_t ldy) {
    __m256 acc[R][O];
    for (int r = 0; r < R; ++r)
        for (int o = 0; o < O; ++o) acc[r][o] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[R];
        for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * K + k);
        for (int o = 0; o < O; ++o) {
            const __m256 wv = load8<D>(w[o] + k * esize(D));
            for (int r = 0; r < R; ++r) acc[r][o] = _mm256_fmadd_ps(xv[r], wv, acc[r][o]);
        }
    }
    for (int r = 0; r < R; ++r) {
        for (int o = 0; o < O; ++o) {
            float s = hsum(acc[r][o]);
            for (int64_t kk = k; kk < K; ++kk) s += x[r * K + kk] * weight_at(Weight{D, w[o], 1, K}, kk);
            y[r * ldy + o] += s;
        }
    }
}

template <nc_dtype D, int R>
__attribute__((target("avx2,fma,f16c"))) void rows_avx2(const float* x, int64_t K, const char* const* w, int outs,
                                                         float* y, int64_t ldy) {
    switch (outs) {
        case 4: return tile_avx2<D, R, 4>(x, K, w, y, ldy);
        case 3: return tile_avx2<D, R, 3>(x, K, w, y, ldy);
        case 2: return tile_avx2<D, R, 2>(x, K, w, y, ldy);
        default: return tile_avx2<D, R, 1>(x, K, w, y, ldy);
    }
}

// Outputs [o, o + outs) of every row, their weight rows at w.
template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) void outputs_avx2(const Block& b, int64_t o, int outs, const char* const* w) {
    const int64_t K = b.K, ldy = b.ldy;
    int64_t r = 0;
    for (; r + kAvx2Rows <= b.rows; r += kAvx2Rows) rows_avx2<D, kAvx2Rows>(b.x + r * K, K, w, outs, b.y + r * ldy + o, ldy);
    if (b.rows - r == 2) rows_avx2<D, 2>(b.x + r * K, K, w, outs, b.y + r * ldy + o, ldy);
    if (b.rows - r == 1) rows_avx2<D, 1>(b.x + r * K, K, w, outs, b.y + r * ldy + o, ldy);
}

template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) void block_avx2(const Block& b) {
    const char* base = static_cast<const char*>(b.w->data);
    for (int64_t o = b.o0; o < b.o1; o += kOutTile) {
        const int outs = int(std::min<int64_t>(kOutTile, b.o1 - o));
        const char* w[kOutTile];
        for (int i = 0; i < outs; ++i) w[i] = base + (o + i) * b.K * esize(D);
        outputs_avx2<D>(b, o, outs, w);
    }
}

// Compact rows with AVX2 (ops/compact_bf16.h): per group of 32, an in-lane byte lookup of the codes gives the high
// bytes, two byte interleaves with the low bytes the bf16, and four word interleaves with zero the floats — in the
// lane order x was given (prepare_x, XOrder::CompactLanes): [0–3 16–19], [4–7 20–23], [8–11 24–27], [12–15 28–31].
// Two outputs at a time: 3 × 2 accumulators, 4 weight vectors and 2 constants fit the 16 registers.
template <int R, int O>
__attribute__((target("avx2,fma"))) void tile_avx2_compact(const float* xs, int64_t ldxs, const float* x, int64_t K,
                                                           const char* const* w, const char* const* next,
                                                           const uint8_t* table_bytes, float* y, int64_t ldy) {
    static_assert(R <= 3 && O <= 2, "3 x 2 accumulators");
    // Named accumulators, not an array: GCC keeps a 2-D array of them in memory (see tile_avx512).
    const __m256 z = _mm256_setzero_ps();
    __m256 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z;
    const __m256i table = _mm256_load_si256(reinterpret_cast<const __m256i*>(table_bytes));
    const __m256i zero = _mm256_setzero_si256();
    const int64_t body = K / kCompactGroup * kCompactGroup;
    for (int64_t k = 0; k < body; k += kCompactGroup) {
        for (int o = 0; o < O; ++o) {
            if (next[o] != nullptr) _mm_prefetch(next[o] + k / kCompactGroup * kCompactGroupBytes, _MM_HINT_T0);
        }
#define NC_FMA(r, o)                                                                                   \
    if constexpr (R > r) {                                                                             \
        const float* xr = xs + r * ldxs + k;                                                           \
        c##r##o = _mm256_fmadd_ps(_mm256_loadu_ps(xr), w0, c##r##o);                                   \
        c##r##o = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 8), w1, c##r##o);                               \
        c##r##o = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 16), w2, c##r##o);                              \
        c##r##o = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 24), w3, c##r##o);                              \
    }
#define NC_OUT(o)                                                                                      \
    if constexpr (O > o) {                                                                             \
        __m256i a, b;                                                                                  \
        compact_group_avx2_lanes(reinterpret_cast<const uint8_t*>(w[o]) + k / kCompactGroup * kCompactGroupBytes, \
                                 table, a, b);                                                         \
        const __m256 w0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, a));                         \
        const __m256 w1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, a));                         \
        const __m256 w2 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, b));                         \
        const __m256 w3 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, b));                         \
        NC_FMA(0, o) NC_FMA(1, o) NC_FMA(2, o)                                                         \
    }
        NC_OUT(0) NC_OUT(1)
#undef NC_OUT
#undef NC_FMA
    }
    const __m256 acc[3][2] = {{c00, c01}, {c10, c11}, {c20, c21}};
    for (int r = 0; r < R; ++r) {
        for (int o = 0; o < O; ++o) {
            float s = hsum(acc[r][o]);
            for (int64_t kk = body; kk < K; ++kk) s += x[r * K + kk] * compact_tail_weight(w[o], kk);
            y[r * ldy + o] += s;
        }
    }
}

// Rows [r, r + R) of x against the tile's outputs, two at a time; `next` holds the rows two tiles on (null past the
// block), prefetched at the pace these are read by the first row group only: the hardware prefetcher stops at every
// 4 KiB page, and these rows are read once from memory.
template <int R>
void rows_avx2_compact(const Block& b, int64_t r, int64_t o, int outs, const char* const* w, const char* const* next,
                       const uint8_t* table) {
    const float* xs = b.xs + r * b.ldxs;
    const float* x = b.x + r * b.K;
    float* y = b.y + r * b.ldy + o;
    const char* none[2] = {nullptr, nullptr};
    for (int i = 0; i < outs; i += 2) {
        const char* const* ahead = r == 0 ? next + i : none;
        if (outs - i >= 2) {
            tile_avx2_compact<R, 2>(xs, b.ldxs, x, b.K, w + i, ahead, table, y + i, b.ldy);
        } else {
            tile_avx2_compact<R, 1>(xs, b.ldxs, x, b.K, w + i, ahead, table, y + i, b.ldy);
        }
    }
}

void block_avx2_compact(const Block& b) {
    const CompactBf16& c = *b.w->compact;
    for (int64_t o = b.o0; o < b.o1; o += kOutTile) {
        const int outs = int(std::min<int64_t>(kOutTile, b.o1 - o));
        const char* w[kOutTile];
        const char* next[kOutTile];
        for (int i = 0; i < kOutTile; ++i) {
            w[i] = i < outs ? reinterpret_cast<const char*>(c.row(o + i)) : nullptr;
            next[i] = o + 2 * kOutTile + i < b.o1 ? reinterpret_cast<const char*>(c.row(o + 2 * kOutTile + i)) : nullptr;
        }
        const uint8_t* table = c.high_byte.data();
        int64_t r = 0;
        for (; r + kAvx2Rows <= b.rows; r += kAvx2Rows) rows_avx2_compact<kAvx2Rows>(b, r, o, outs, w, next, table);
        if (b.rows - r == 2) rows_avx2_compact<2>(b, r, o, outs, w, next, table);
        if (b.rows - r == 1) rows_avx2_compact<1>(b, r, o, outs, w, next, table);
    }
    add_patches(c, b.o0, b.o1, b.x, b.rows, b.y, b.ldy);
}

// ---- AVX-512: 4 rows × 4 outputs, 32 weights (one 64-byte line of 16-bit weights) per step ------------------
//
// bf16 weights are widened without a shuffle: a 64-byte load holds 32 of them as 16 dword lanes; shifting each
// lane left by 16 gives the even-indexed weights as floats, masking off the low half the odd-indexed ones. x is
// reordered to match once per call (prepare_x), so each step is one load, two integer ops and 2·R FMAs per output.

constexpr int kAvx512Rows = 4;  // 16 accumulators + 8 x + 2 w of the 32 zmm registers
constexpr int64_t kStep = 32;   // weights per output per step

// How the kernel reads one storage of weight rows: kStepBytes per step of 32 weights, loaded as two vectors of 16
// floats (kSplitX: the even- and odd-indexed weights, else in order); at() is a weight past the last whole step.
template <nc_dtype D>
struct Plain {
    static constexpr int64_t kStepBytes = kStep * esize(D);
    static float at(const char* row, int64_t k) { return weight_at(Weight{D, row, 1, k + 1}, k); }
};

template <nc_dtype D>
struct Wide;

template <>
struct Wide<NC_DTYPE_BF16> : Plain<NC_DTYPE_BF16> {
    static constexpr bool kSplitX = true;
    __attribute__((target("avx512f,avx2,fma,f16c"))) void load(const char* p, __m512& even, __m512& odd) const {
        const __m512i v = _mm512_loadu_si512(p);
        even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        odd = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int32_t(0xffff0000u))));
    }
};

template <>
struct Wide<NC_DTYPE_F16> : Plain<NC_DTYPE_F16> {
    static constexpr bool kSplitX = false;
    __attribute__((target("avx512f,avx2,fma,f16c"))) void load(const char* p, __m512& lo, __m512& hi) const {
        lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
    }
};

template <>
struct Wide<NC_DTYPE_F32> : Plain<NC_DTYPE_F32> {
    static constexpr bool kSplitX = false;
    __attribute__((target("avx512f,avx2,fma,f16c"))) void load(const char* p, __m512& lo, __m512& hi) const {
        lo = _mm512_loadu_ps(p);
        hi = _mm512_loadu_ps(p + 64);
    }
};

// Compact bf16 rows (ops/compact_bf16.h): a step is one group of 48 bytes, decoded to the 32 bf16 in a vector and then
// widened like Wide<BF16>'s (the same floats in the same lanes, so the same sums), code 0 as +0 (add_patches adds
// the patched weights). The decode costs a handful of integer operations per 32 weights, which a memory-bound row
// leaves idle.
struct WideCompact {
    static constexpr bool kSplitX = true;
    static constexpr int64_t kStepBytes = kCompactGroupBytes;
    const uint16_t* table;  // CompactBf16::high (loaded per step: an L1 hit the loop can hoist)
    explicit WideCompact(const CompactBf16& w) : table(w.high.data()) {}
    // The tail's weights are plain bf16 after the row's groups.
    static float at(const char* row, int64_t k) { return compact_tail_weight(row, k); }
    __attribute__((target("avx512f,avx512bw,avx2,fma,f16c"))) void load(const char* p, __m512& even, __m512& odd) const {
        const __m512i v = compact_group(reinterpret_cast<const uint8_t*>(p), _mm512_load_si512(table));
        even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        odd = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int32_t(0xffff0000u))));
    }
};

// Int8 rows (ops/int8_rows.h): a step is 32 bytes of q, sign-extended and converted to floats in order. The
// kernel's sums are of x · q; gemv_linears scales them (scale_int8_outputs).
struct WideInt8 {
    static constexpr bool kSplitX = false;
    static constexpr int64_t kStepBytes = kStep;
    static float at(const char* row, int64_t k) { return float(reinterpret_cast<const int8_t*>(row)[k]); }
    __attribute__((target("avx512f,avx2,fma,f16c"))) void load(const char* p, __m512& lo, __m512& hi) const {
        lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
        hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
    }
};

// y[r, o] += Σ_k x[r, k] · w[o][k] for R rows × 4 outputs over k in [0, klen); x rows ldx apart (an output past
// `outs` reads a valid row and is not stored). The lines of the `nnext` rows in `next` at the same k are prefetched
// at the pace this tile is read (see block_avx512). The accumulators are named variables, not an array, so that
// they stay in registers through the k loop (GCC keeps a 2-D array of them in memory).
template <class L, int R>
__attribute__((target("avx512f,avx2,fma,f16c"))) void tile_avx512(const L& layout, const float* xs, int64_t ldxs,
                                                                   const float* x, int64_t ldx, int64_t klen,
                                                                   const char* const* w, int outs,
                                                                   const char* const* next, int nnext, float* y,
                                                                   int64_t ldy) {
    constexpr int kLines = int((L::kStepBytes + 63) / 64);  // lines per row per step
    const __m512 z = _mm512_setzero_ps();
    __m512 c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z, c21 = z, c22 = z,
           c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    const int64_t body = klen / kStep * kStep;
    for (int64_t k = 0; k < body; k += kStep) {
        for (int i = 0; i < nnext; ++i)
            for (int l = 0; l < kLines; ++l) _mm_prefetch(next[i] + k / kStep * L::kStepBytes + l * 64, _MM_HINT_T0);
        __m512 a0 = z, b0 = z, a1 = z, b1 = z, a2 = z, b2 = z, a3 = z, b3 = z;
#define NC_X(r)                                        \
    if constexpr (R > r) {                             \
        a##r = _mm512_load_ps(xs + r * ldxs + k);      \
        b##r = _mm512_load_ps(xs + r * ldxs + k + 16); \
    }
        NC_X(0) NC_X(1) NC_X(2) NC_X(3)
#undef NC_X
#define NC_FMA(r, o)                                  \
    if constexpr (R > r) {                            \
        c##r##o = _mm512_fmadd_ps(a##r, wa, c##r##o); \
        c##r##o = _mm512_fmadd_ps(b##r, wb, c##r##o); \
    }
#define NC_OUT(o)                                           \
    {                                                       \
        __m512 wa, wb;                                      \
        layout.load(w[o] + k / kStep * L::kStepBytes, wa, wb); \
        NC_FMA(0, o) NC_FMA(1, o) NC_FMA(2, o) NC_FMA(3, o) \
    }
        NC_OUT(0) NC_OUT(1) NC_OUT(2) NC_OUT(3)
#undef NC_OUT
#undef NC_FMA
    }
    float sum[4][4];
#define NC_SUM(r)                                  \
    if constexpr (R > r) {                         \
        sum[r][0] = _mm512_reduce_add_ps(c##r##0); \
        sum[r][1] = _mm512_reduce_add_ps(c##r##1); \
        sum[r][2] = _mm512_reduce_add_ps(c##r##2); \
        sum[r][3] = _mm512_reduce_add_ps(c##r##3); \
    }
    NC_SUM(0) NC_SUM(1) NC_SUM(2) NC_SUM(3)
#undef NC_SUM
    for (int r = 0; r < R; ++r) {
        for (int o = 0; o < outs; ++o) {
            for (int64_t k = body; k < klen; ++k) sum[r][o] += x[r * ldx + k] * L::at(w[o], k);
            y[r * ldy + o] += sum[r][o];
        }
    }
}

// Output tiles [o0, o1) for all the rows, a tile at a time: its weights come from memory in the first row group and
// from cache in the later ones; x (16 rows of at most 11008 floats: ≤ 704 KiB) stays in L2. Each group prefetches
// its share of the next tile's rows (group g of G: rows g, g + G, …), so the memory stream runs through all the
// groups and never waits at a row boundary, where the hardware prefetcher (which stops at every 4 KiB page) would
// start over.
template <class L>
__attribute__((target("avx512f,avx2,fma,f16c"))) void block_avx512(const Block& b, const L& layout) {
    const CompactBf16* compact = b.w->compact;
    const Int8Rows* int8 = b.w->int8;
    const int64_t K = b.K, ldy = b.ldy;
    const char* base = static_cast<const char*>(b.w->data);
    int64_t row_bytes = K * esize(b.w->dtype);
    if (compact != nullptr) base = reinterpret_cast<const char*>(compact->row(0)), row_bytes = compact->row_bytes;
    if (int8 != nullptr) base = reinterpret_cast<const char*>(int8->row(0)), row_bytes = int8->stride;
    const int64_t groups = (b.rows + kAvx512Rows - 1) / kAvx512Rows;
    for (int64_t o = b.o0; o < b.o1; o += kOutTile) {
        const int outs = int(std::min<int64_t>(kOutTile, b.o1 - o));
        const int64_t following = std::min<int64_t>(kOutTile, std::max<int64_t>(b.o1 - o - kOutTile, 0));
        const char* w[kOutTile];
        for (int i = 0; i < kOutTile; ++i) w[i] = base + (o + std::min(i, outs - 1)) * row_bytes;
        for (int64_t g = 0; g < groups; ++g) {
            const char* next[kOutTile];
            int nnext = 0;
            for (int64_t i = g; i < following; i += groups) next[nnext++] = base + (o + kOutTile + i) * row_bytes;
            const int64_t r = g * kAvx512Rows;
            const float *xs = b.xs + r * b.ldxs, *x = b.x + r * K;
            float* y = b.y + r * ldy + o;
            switch (std::min<int64_t>(b.rows - r, kAvx512Rows)) {
                case 4: tile_avx512<L, 4>(layout, xs, b.ldxs, x, K, K, w, outs, next, nnext, y, ldy); break;
                case 3: tile_avx512<L, 3>(layout, xs, b.ldxs, x, K, K, w, outs, next, nnext, y, ldy); break;
                case 2: tile_avx512<L, 2>(layout, xs, b.ldxs, x, K, K, w, outs, next, nnext, y, ldy); break;
                default: tile_avx512<L, 1>(layout, xs, b.ldxs, x, K, K, w, outs, next, nnext, y, ldy); break;
            }
        }
    }
    if (compact != nullptr) add_patches(*compact, b.o0, b.o1, b.x, b.rows, b.y, ldy);
}

// x for the AVX-512 kernel: rows 64-byte aligned and padded so that they do not all fall in the same L1 sets (a
// power-of-two row stride would put the 4 rows of a tile and the weight rows in one set), and for bf16 weights
// each whole step of 32 columns as its 16 even-indexed then its 16 odd-indexed values, the order Wide<BF16>
// yields the weights in (the tail past the last whole step is read from x itself). Returns the row stride.
int64_t prepared_ld(int64_t K) { return (K + 15) / 16 * 16 + 16; }

int64_t prepare_x(const float* x, int64_t rows, int64_t K, XOrder order, std::vector<float>& buf, const float** out) {
    const int64_t ld = prepared_ld(K);
    buf.resize(size_t(rows * ld + 16));
    float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
    const int64_t body = K / kStep * kStep;
    for (int64_t r = 0; r < rows; ++r) {
        const float* src = x + r * K;
        float* dst = base + r * ld;
        std::copy(src, src + K, dst);
        for (int64_t k = 0; k < body && order == XOrder::EvenOdd; k += kStep) {
            for (int64_t j = 0; j < kStep / 2; ++j) {
                dst[k + j] = src[k + 2 * j];
                dst[k + kStep / 2 + j] = src[k + 2 * j + 1];
            }
        }
        for (int64_t k = 0; k < body && order == XOrder::CompactLanes; k += kStep) {  // see tile_avx2_compact
            for (int64_t q = 0; q < 4; ++q) {
                for (int64_t i = 0; i < 4; ++i) {
                    dst[k + 8 * q + i] = src[k + 4 * q + i];
                    dst[k + 8 * q + 4 + i] = src[k + 16 + 4 * q + i];
                }
            }
        }
    }
    *out = base;
    return ld;
}

// A compact weight against more rows of x than kCompactRowGroups groups of the in-register kernels (each group of
// rows decodes the weights again), or on AVX-512 without its 16-bit lanes (BW; the first Xeon Phis): each tile's 4
// rows expanded to bf16 once, in this share's buffer (L1/L2), then the ISA's bf16 kernel over every row of x.
// Two groups decoding in registers beat one expansion, three do not (nextchat_bench_linear 11264 2048 12 2 compact:
// AVX2 at 4 / 6 rows 3.17 / 3.37 ms against 3.63 / 4.10 expanded; AVX-512 at 8 rows 3.29 against 3.83, at 16 rows 6.61
// against 5.31).
constexpr int64_t kCompactRowGroups = 2;

// Each tile's rows of a re-coded weight expanded by expand(o, outs, dst) to D's values in this share's buffer, then
// the ISA's kernel for D over every row of x (x as prepared for it: `order`, rows ldxs apart).
template <nc_dtype D>
struct ExpandedRows {
    std::vector<std::conditional_t<D == NC_DTYPE_F32, float, uint16_t>> values;
};

template <nc_dtype D, class Expand>
void block_expanded(Isa isa, const Block& b, Expand expand) {
    auto& buf = share_local<ExpandedRows<D>>().values;
    buf.resize(size_t(kOutTile * b.K));
    for (int64_t o = b.o0; o < b.o1; o += kOutTile) {
        const int64_t outs = std::min<int64_t>(kOutTile, b.o1 - o);
        expand(o, outs, buf.data());
        const Weight rows{D, buf.data(), outs, b.K};
        const Block part{b.x, b.xs, b.order, b.ldxs, b.rows, b.K, &rows, 0, outs, b.y + o, b.ldy};
        switch (isa) {
            case Isa::Portable: block_portable(part); break;
            case Isa::Avx2: block_avx2<D>(part); break;
            case Isa::Amx:
            case Isa::Avx512: block_avx512(part, Wide<D>{}); break;
        }
    }
}

void block_compact_expanded(Isa isa, const Block& b) {
    block_expanded<NC_DTYPE_BF16>(isa, b, [&](int64_t o, int64_t outs, uint16_t* dst) {
        expand_rows(*b.w->compact, o, outs, dst, b.K);
    });
}

// Int8 rows without AVX-512 (or beside a bf16 weight, which has x reordered for it): each tile's 4 rows of q expanded
// to floats once, for the AVX2 or portable kernel, which read x as given. The sums are of x · q, like WideInt8's.
void block_int8_expanded(Isa isa, const Block& b) {
    block_expanded<NC_DTYPE_F32>(std::min(isa, Isa::Avx2), b, [&](int64_t o, int64_t outs, float* dst) {
        expand_int8_f32(*b.w->int8, o, outs, dst, b.K);
    });
}

void run_block(Isa isa, const Block& b) {
    if (b.w->int8 != nullptr) {
        if (isa == Isa::Avx512 && b.order == XOrder::AsIs) return block_avx512(b, WideInt8{});
        return block_int8_expanded(isa, b);
    }
    if (b.w->compact != nullptr && isa != Isa::Portable) {
        if (isa == Isa::Avx2 && b.rows <= kCompactRowGroups * kAvx2Rows && b.order == XOrder::CompactLanes) {
            return block_avx2_compact(b);
        }
        if (isa == Isa::Avx512 && b.rows <= kCompactRowGroups * kAvx512Rows && b.order == XOrder::EvenOdd &&
            compact_decodes_in_registers()) {
            return block_avx512(b, WideCompact(*b.w->compact));
        }
        return block_compact_expanded(isa, b);
    }
    switch (isa) {
        case Isa::Portable: return block_portable(b);
        case Isa::Avx2:
            switch (b.w->dtype) {
                case NC_DTYPE_F32: return block_avx2<NC_DTYPE_F32>(b);
                case NC_DTYPE_F16: return block_avx2<NC_DTYPE_F16>(b);
                case NC_DTYPE_BF16: return block_avx2<NC_DTYPE_BF16>(b);
            }
            return;
        case Isa::Amx:  // cpu_isa() is a vector ISA: never Amx
        case Isa::Avx512:
            switch (b.w->dtype) {
                case NC_DTYPE_F32: return block_avx512(b, Wide<NC_DTYPE_F32>{});
                case NC_DTYPE_F16: return block_avx512(b, Wide<NC_DTYPE_F16>{});
                case NC_DTYPE_BF16: return block_avx512(b, Wide<NC_DTYPE_BF16>{});
            }
            return;
    }
}

// y [rows, w.rows] for outputs [o0, o1): the bias (or zero) that the kernels then accumulate into.
void init_outputs(const LinearOut& out, int64_t rows, int64_t o0, int64_t o1) {
    const int64_t n = out.w->rows;
    for (int64_t r = 0; r < rows; ++r) {
        float* y = out.y + r * n;
        if (out.bias != nullptr) {
            convert_row(*out.bias, o0, o1 - o0, y + o0);
        } else {
            std::fill(y + o0, y + o1, 0.0f);
        }
    }
}

}  // namespace

uint64_t gemv_compact_bytes(int64_t K) { return sizeof(uint16_t) * uint64_t(kOutTile * K); }

uint64_t gemv_int8_bytes(int64_t K) { return sizeof(float) * uint64_t(kOutTile * K); }

uint64_t gemv_scratch_bytes(int64_t rows, int64_t K) { return sizeof(float) * uint64_t(rows * prepared_ld(K) + 16); }

void gemv_linears(ThreadPool& pool, GemvBuffers& buffers, const float* x, int64_t rows, const LinearOut* outs,
                  int32_t n) {
    const Isa isa = cpu_isa();
    const int64_t K = outs[0].w->cols;
    const bool split = isa == Isa::Avx512 && outs[0].w->dtype == NC_DTYPE_BF16;  // int8 rows are F32 (ops/weight.h)
    const bool compact = std::any_of(outs, outs + n, [](const LinearOut& o) { return o.w->compact != nullptr; });
    const float* xs = x;
    int64_t ldxs = K;
    XOrder order = XOrder::AsIs;
    if (isa == Isa::Avx512) order = split ? XOrder::EvenOdd : XOrder::AsIs;
    if (isa == Isa::Avx2 && compact) order = XOrder::CompactLanes;
    if (isa == Isa::Avx512 || order != XOrder::AsIs) ldxs = prepare_x(x, rows, K, order, buffers.x, &xs);
    int64_t total = 0;
    for (int32_t i = 0; i < n; ++i) total += outs[i].w->rows;
    pool.parallel_for(total, kOutTile, [&](int64_t a, int64_t b) {
        int64_t first = 0;  // index of outs[i]'s output 0 in [0, total)
        for (int32_t i = 0; i < n; ++i) {
            const LinearOut& out = outs[i];
            const int64_t o0 = std::max<int64_t>(a - first, 0), o1 = std::min<int64_t>(b - first, out.w->rows);
            first += out.w->rows;
            if (o0 >= o1) continue;
            const Int8Rows* int8 = out.w->int8;
            init_outputs(LinearOut{out.w, int8 != nullptr ? nullptr : out.bias, out.y}, rows, o0, o1);
            // Every weight must share x's reordering: a bf16 weight is read split only when x was split.
            const bool w_split = isa == Isa::Avx512 && out.w->dtype == NC_DTYPE_BF16;
            run_block(w_split == split ? isa : std::min(isa, Isa::Avx2),
                      Block{x, xs, order, ldxs, rows, K, out.w, o0, o1, out.y, out.w->rows});
            if (int8 != nullptr) scale_int8_outputs(*int8, out.bias, o0, o1, rows, out.y, out.w->rows);
        }
    });
}

}  // namespace nc::ops
