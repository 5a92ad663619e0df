#include "ops/cpu_gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/compact_bf16.h"
#include "ops/int8_rows.h"
#include "ops/cpu_simd.h"

namespace nc::ops {

namespace {

// ---- layout ---------------------------------------------------------------------------------------------
//
// Every product here is C[r, j] (+)= Σ_k A[r, k] · B[k, j] over packed operands:
//   A in panels of MR rows, k-major: ap[p][k][r]   (activations, keys, values)
//   B in panels of NR columns, k-major: bp[p][k][j] (weights converted to f32, queries, softmax numerators)
// zero past the valid rows / columns, so the micro-kernel always computes a whole MR × NR tile from MR broadcasts
// and NR/8 (or NR/16) vector loads per k.

// Blocking (per ISA in Tile): an A panel (MR × KC) is read from L1 across a packed weight block (NC × KC, in L2).
// Long k-blocks matter most: every k-block past the first reads and writes the outputs again (measured on a
// Sapphire-Rapids-class core: KC 192 → 1024 took the AVX-512 kernel from ~62% to ~76% of peak).

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
int64_t ceil_div(int64_t v, int64_t m) { return (v + m - 1) / m; }

// Panels are read with aligned loads: buffers are 64-byte aligned.
float* aligned64(float* p) {
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// A growable per-thread buffer, reused across calls (small: a packed weight block, one head's keys and values).
class AlignedBuffer {
  public:
    float* get(size_t n) {
        if (buf_.size() < n + 16) buf_.resize(n + 16);
        return aligned64(buf_.data());
    }

  private:
    std::vector<float> buf_;
};


// The GEMM's per-thread scratch, kept by the pool for each loop share and shared by every ISA and dtype: a packed
// weight block (NC × KC) and an A panel (MR × KC).
struct WeightBlock {
    AlignedBuffer buffer;
};
struct RowPanel {
    AlignedBuffer buffer;
};
AlignedBuffer& weight_block() { return share_local<WeightBlock>().buffer; }
AlignedBuffer& row_panel() { return share_local<RowPanel>().buffer; }

// ---- micro-kernels --------------------------------------------------------------------------------------
//
// Tile<I>::run: c[r, j] = (accumulate ? c[r, j] : init ? init[j] : 0) + Σ_k ap[k·MR + r] · bp[k·NR + j] for r < rows,
// j < cols. Accumulators are named variables, not arrays, so that they stay in registers through the k loop.

template <Isa I>
struct Tile;

template <>
struct Tile<Isa::Portable> {
    static constexpr int MR = 6, NR = 16;
    static constexpr int64_t KC = 1024, NC = 64;
    static void run(const float* ap, const float* bp, int64_t kc, float* c, int64_t ldc, int rows,
                    int cols, const float* init, bool accumulate) {
        float acc[MR][NR] = {};
        for (int64_t k = 0; k < kc; ++k) {
            for (int r = 0; r < MR; ++r) {
                for (int j = 0; j < NR; ++j) acc[r][j] += ap[k * MR + r] * bp[k * NR + j];
            }
        }
        for (int r = 0; r < rows; ++r) {
            float* cr = c + r * ldc;
            for (int j = 0; j < cols; ++j) cr[j] = (accumulate ? cr[j] : init ? init[j] : 0.0f) + acc[r][j];
        }
    }
};

// 6 rows × 16 columns: 12 ymm accumulators, 2 loads of b and 6 broadcasts of a per k.
template <>
struct Tile<Isa::Avx2> {
    static constexpr int MR = 6, NR = 16;
    static constexpr int64_t KC = 1024, NC = 64;  // A panel 24 KiB, weight block 256 KiB

    __attribute__((target("avx2,fma,f16c"))) static void store(float* cr, __m256 lo, __m256 hi, int cols,
                                                               const float* init, bool accumulate) {
        if (cols == NR) {
            __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
            if (accumulate) {
                b0 = _mm256_loadu_ps(cr);
                b1 = _mm256_loadu_ps(cr + 8);
            } else if (init) {
                b0 = _mm256_loadu_ps(init);
                b1 = _mm256_loadu_ps(init + 8);
            }
            _mm256_storeu_ps(cr, _mm256_add_ps(b0, lo));
            _mm256_storeu_ps(cr + 8, _mm256_add_ps(b1, hi));
            return;
        }
        alignas(32) float t[NR];
        _mm256_store_ps(t, lo);
        _mm256_store_ps(t + 8, hi);
        for (int j = 0; j < cols; ++j) cr[j] = (accumulate ? cr[j] : init ? init[j] : 0.0f) + t[j];
    }

    __attribute__((target("avx2,fma,f16c"))) static void run(const float* ap, const float* bp,
                                                             int64_t kc, float* c, int64_t ldc, int rows, int cols,
                                                             const float* init, bool accumulate) {
        const __m256 z = _mm256_setzero_ps();
        __m256 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z,
               c51 = z;
#define NC_ROW(i)                                            \
    {                                                        \
        const __m256 a = _mm256_broadcast_ss(ap + i);        \
        c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);           \
        c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);           \
    }
#pragma GCC unroll 4
        for (int64_t k = 0; k < kc; ++k, ap += MR, bp += NR) {
            const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
            NC_ROW(0) NC_ROW(1) NC_ROW(2) NC_ROW(3) NC_ROW(4) NC_ROW(5)
        }
#undef NC_ROW
#define NC_STORE(i) \
    if (rows > i) store(c + i * ldc, c##i##0, c##i##1, cols, init, accumulate);
        NC_STORE(0) NC_STORE(1) NC_STORE(2) NC_STORE(3) NC_STORE(4) NC_STORE(5)
#undef NC_STORE
    }
};

// 12 rows × 32 columns: 24 zmm accumulators, 2 loads of b and 12 broadcasts of a per k.
template <>
struct Tile<Isa::Avx512> {
    static constexpr int MR = 12, NR = 32;
    static constexpr int64_t KC = 1024, NC = 128;  // A panel 48 KiB, weight block 512 KiB

    __attribute__((target("avx512f,avx2,fma,f16c"))) static void store(float* cr, __m512 lo, __m512 hi, int cols,
                                                                       const float* init, bool accumulate) {
        const __mmask16 m0 = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
        const __mmask16 m1 = cols >= 32   ? __mmask16(0xffff)
                             : cols <= 16 ? __mmask16(0)
                                          : __mmask16((1u << (cols - 16)) - 1);
        __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
        if (accumulate) {
            b0 = _mm512_maskz_loadu_ps(m0, cr);
            b1 = _mm512_maskz_loadu_ps(m1, cr + 16);
        } else if (init) {
            b0 = _mm512_maskz_loadu_ps(m0, init);
            b1 = _mm512_maskz_loadu_ps(m1, init + 16);
        }
        _mm512_mask_storeu_ps(cr, m0, _mm512_add_ps(b0, lo));
        _mm512_mask_storeu_ps(cr + 16, m1, _mm512_add_ps(b1, hi));
    }

    __attribute__((target("avx512f,avx2,fma,f16c"))) static void run(const float* ap, const float* bp,
                                                                     int64_t kc, float* c, int64_t ldc, int rows,
                                                                     int cols, const float* init, bool accumulate) {
        const __m512 z = _mm512_setzero_ps();
        __m512 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z,
               c51 = z, c60 = z, c61 = z, c70 = z, c71 = z, c80 = z, c81 = z, c90 = z, c91 = z, c100 = z, c101 = z,
               c110 = z, c111 = z;
#define NC_ROW(i)                                            \
    {                                                        \
        const __m512 a = _mm512_set1_ps(ap[i]);              \
        c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);           \
        c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);           \
    }
#pragma GCC unroll 2
        for (int64_t k = 0; k < kc; ++k, ap += MR, bp += NR) {
            const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
            NC_ROW(0) NC_ROW(1) NC_ROW(2) NC_ROW(3) NC_ROW(4) NC_ROW(5)
            NC_ROW(6) NC_ROW(7) NC_ROW(8) NC_ROW(9) NC_ROW(10) NC_ROW(11)
        }
#undef NC_ROW
#define NC_STORE(i) \
    if (rows > i) store(c + i * ldc, c##i##0, c##i##1, cols, init, accumulate);
        NC_STORE(0) NC_STORE(1) NC_STORE(2) NC_STORE(3) NC_STORE(4) NC_STORE(5)
        NC_STORE(6) NC_STORE(7) NC_STORE(8) NC_STORE(9) NC_STORE(10) NC_STORE(11)
#undef NC_STORE
    }
};

// ---- packing --------------------------------------------------------------------------------------------

__attribute__((target("avx2,fma,f16c"))) inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// The first n (≤ 8) lanes of v to p: the widths of panel groups are 8, 6 (AVX2's MR) and 4 (the last of AVX-512's 12).
__attribute__((target("avx2,fma,f16c"))) inline void store_lanes(float* p, __m256 v, int n) {
    if (n == 8) return _mm256_storeu_ps(p, v);
    const __m128 lo = _mm256_castps256_ps128(v);
    if (n == 4) return _mm_storeu_ps(p, lo);
    if (n == 6) {
        _mm_storeu_ps(p, lo);
        return _mm_storel_pi(reinterpret_cast<__m64*>(p + 4), _mm256_extractf128_ps(v, 1));
    }
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    std::memcpy(p, t, size_t(n) * sizeof(float));
}

// Packs rows [first, first + n) of a row-major source, k in [k0, k0 + kc), into panels of W rows:
// dst[p][k][i] = src(first + W·p + i, k0 + k), 0 past the n rows; src(o, k) is element o·ld + k of dtype D. The
// transposition goes 8 rows × 8 k at a time through registers.
template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) void pack_rows_avx2(const void* base, int64_t ld, int64_t first, int64_t n,
                                                              int64_t k0, int64_t kc, int W, float* dst) {
    constexpr int64_t esize = D == NC_DTYPE_F32 ? 4 : 2;
    for (int64_t p = 0; p * W < n; ++p) {
        float* panel = dst + p * kc * W;
        for (int g = 0; g < W; g += 8) {
            const int width = std::min(8, W - g);  // rows of this group that belong to the panel
            const int valid = int(std::clamp<int64_t>(n - (p * W + g), 0, width));
            const char* src[8] = {};
            for (int i = 0; i < valid; ++i) {
                src[i] = static_cast<const char*>(base) + ((first + p * W + g + i) * ld + k0) * esize;
            }
            int64_t k = 0;
            for (; k + 8 <= kc; k += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; ++i) r[i] = i < valid ? load8<D>(src[i] + k * esize) : _mm256_setzero_ps();
                transpose8(r);
                for (int t = 0; t < 8; ++t) store_lanes(panel + (k + t) * W + g, r[t], width);
            }
            for (; k < kc; ++k) {
                for (int i = 0; i < width; ++i) {
                    panel[k * W + g + i] = i < valid ? weight_at(Weight{D, src[i], 1, kc}, k) : 0.0f;
                }
            }
        }
    }
}

void pack_rows_portable(nc_dtype dtype, const void* base, int64_t ld, int64_t first, int64_t n, int64_t k0,
                        int64_t kc, int W, float* dst) {
    const Weight src{dtype, base, 1, 1};
    for (int64_t p = 0; p * W < n; ++p) {
        for (int64_t k = 0; k < kc; ++k) {
            for (int64_t i = 0; i < W; ++i) {
                const int64_t o = p * W + i;
                dst[(p * kc + k) * W + i] = o < n ? weight_at(src, (first + o) * ld + k0 + k) : 0.0f;
            }
        }
    }
}

template <Isa I, nc_dtype D>
void pack_rows(const void* base, int64_t ld, int64_t first, int64_t n, int64_t k0, int64_t kc, int W, float* dst) {
    if constexpr (I == Isa::Portable) {
        pack_rows_portable(D, base, ld, first, n, k0, kc, W, dst);
    } else {
        pack_rows_avx2<D>(base, ld, first, n, k0, kc, W, dst);
    }
}

// Packs columns [0, n) of a k-major source into panels of W columns: dst[p][k][i] = src[k·ld + W·p + i] for
// k < kdim, 0 at or past column n. Row by row, so the source is read in order; W is a constant, so a panel's row is
// a few vector moves.
template <int W>
void pack_cols(const float* src, int64_t ld, int64_t kdim, int64_t n, float* dst) {
    const int64_t full = n / W, rest = n - full * W;
    for (int64_t k = 0; k < kdim; ++k) {
        const float* row = src + k * ld;
        for (int64_t p = 0; p < full; ++p) {
            float* out = dst + (p * kdim + k) * W;
            for (int i = 0; i < W; ++i) out[i] = row[p * W + i];
        }
        if (rest > 0) {
            float* out = dst + (full * kdim + k) * W;
            for (int i = 0; i < W; ++i) out[i] = i < rest ? row[full * W + i] : 0.0f;
        }
    }
}

// pack_rows for a re-coded weight: each panel's rows of the k-block expanded in this share's buffer by
// expand(row, k0, kc, dst) to D's values, then packed as stored D would be. Compact weights (ops/compact_bf16.h) expand
// to their exact bf16, int8 rows (ops/int8_rows.h) to the floats s · q.
template <nc_dtype D>
struct ExpandedPanel {
    std::vector<std::conditional_t<D == NC_DTYPE_F32, float, uint16_t>> values;
};

template <Isa I, nc_dtype D, class Expand>
void pack_expanded_rows(int64_t first, int64_t n, int64_t k0, int64_t kc, int W, float* dst, Expand expand) {
    auto& rows = share_local<ExpandedPanel<D>>().values;
    rows.resize(size_t(W * kc));
    for (int64_t p = 0; p * W < n; ++p) {
        const int64_t valid = std::min<int64_t>(W, n - p * W);
        for (int64_t i = 0; i < valid; ++i) expand(first + p * W + i, k0, kc, rows.data() + i * kc);
        pack_rows<I, D>(rows.data(), kc, 0, valid, 0, kc, W, dst + p * kc * W);
    }
}

// ---- linear ---------------------------------------------------------------------------------------------

// One output of a fused linear: its weight [N, K], its bias padded to whole tiles (init), its y [M, N], and where its
// outputs start in the concatenation that threads split (offsets are whole tiles apart).
struct LinearPart {
    const void* w;
    const CompactBf16* compact;  // instead of w, for a compact weight
    const Int8Rows* int8;        // instead of w, for int8 rows
    int64_t N;
    const float* init;
    float* y;
    int64_t offset;
};

// pack_rows of a part's weight, whichever way it is held.
template <Isa I, nc_dtype D>
void pack_part(const LinearPart& part, int64_t K, int64_t first, int64_t n, int64_t k0, int64_t kc, int W, float* dst) {
    if (part.compact != nullptr) {
        return pack_expanded_rows<I, NC_DTYPE_BF16>(first, n, k0, kc, W, dst, [&](int64_t r, int64_t k, int64_t m, uint16_t* out) {
            expand_segment(*part.compact, r, k, m, out);
        });
    }
    if (part.int8 != nullptr) {
        return pack_expanded_rows<I, NC_DTYPE_F32>(first, n, k0, kc, W, dst, [&](int64_t r, int64_t k, int64_t m, float* out) {
            expand_int8_scaled(*part.int8, r, k, m, out);
        });
    }
    pack_rows<I, D>(part.w, K, first, n, k0, kc, W, dst);
}

// y = x·Wᵀ + init for every part, in one of two ways.
// By rows, when each thread can hold every output's weights for a k-block in its weight block and there are at least
// as many rows as outputs, or too few output tiles to share: each thread packs all the weights itself and its rows a
// panel at a time into L1, so x is read once, in place (the SAM decoder's 4096-row maps against ≤ 256 outputs).
// By output blocks otherwise: x is packed once into A panels for every k-block (split over threads), then each weight
// block is packed once and used by every row. Per thread: output block (NC) → k-block (KC) → packed weights (L2) →
// A panel (L1) → B panels. The first k-block writes y, the others add to it.
template <Isa I, nc_dtype D>
void linear_impl(ThreadPool& pool, GemmBuffers& buffers, const float* x, int64_t M, int64_t K,
                 const std::vector<LinearPart>& parts, int64_t N_total) {
    constexpr int MR = Tile<I>::MR, NR = Tile<I>::NR;
    constexpr int64_t KC = Tile<I>::KC, NC = Tile<I>::NC;
    const int64_t panels = ceil_div(M, MR), threads = int64_t(pool.size());
    const bool narrow = ceil_div(N_total, NR) < 2 * threads;
    if (N_total * std::min(K, KC) <= NC * KC && (narrow || M >= N_total)) {
        pool.parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
            float* ap = row_panel().get(size_t(MR * KC));
            float* bp = weight_block().get(size_t(NC * KC));
            for (int64_t pc = 0; pc < K; pc += KC) {
                const int64_t kc = std::min(KC, K - pc);
                for (const LinearPart& part : parts) pack_part<I, D>(part, K, 0, part.N, pc, kc, NR, bp + part.offset * kc);
                for (int64_t p = p0; p < p1; ++p) {
                    const int rows = int(std::min<int64_t>(MR, M - p * MR));
                    pack_rows<I, NC_DTYPE_F32>(x, K, p * MR, rows, pc, kc, MR, ap);
                    for (const LinearPart& part : parts) {
                        for (int64_t jr = 0; jr < part.N; jr += NR) {
                            Tile<I>::run(ap, bp + (part.offset + jr) * kc, kc, part.y + p * MR * part.N + jr, part.N, rows,
                                         int(std::min<int64_t>(NR, part.N - jr)), part.init + jr, pc > 0);
                        }
                    }
                }
            }
        });
        return;
    }
    buffers.panels.resize(size_t(panels * MR * K + 16));
    float* ap = aligned64(buffers.panels.data());  // k-block at pc starts at ap + panels·MR·pc
    pool.parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min(KC, K - pc);
            pack_rows<I, NC_DTYPE_F32>(x, K, p0 * MR, std::min(M, p1 * MR) - p0 * MR, pc, kc, MR,
                                       ap + panels * MR * pc + p0 * MR * kc);
        }
    });
    pool.parallel_for(N_total, NR, [&](int64_t n0, int64_t n1) {
        float* bp = weight_block().get(size_t(NC * KC));
        for (const LinearPart& part : parts) {
            const int64_t N = part.N, o0 = std::max(n0, part.offset) - part.offset;
            const int64_t o1 = std::min(n1 - part.offset, N);
            for (int64_t jc = o0; jc < o1; jc += NC) {
                const int64_t nb = std::min(NC, o1 - jc);
                for (int64_t pc = 0; pc < K; pc += KC) {
                    const int64_t kc = std::min(KC, K - pc);
                    const float* ak = ap + panels * MR * pc;
                    pack_part<I, D>(part, K, jc, nb, pc, kc, NR, bp);
                    for (int64_t p = 0; p < panels; ++p) {
                        const int rows = int(std::min<int64_t>(MR, M - p * MR));
                        for (int64_t jr = 0; jr < nb; jr += NR) {
                            Tile<I>::run(ak + p * MR * kc, bp + jr * kc, kc, part.y + p * MR * N + jc + jr, N, rows,
                                         int(std::min<int64_t>(NR, nb - jr)), part.init + jc + jr, pc > 0);
                        }
                    }
                }
            }
        }
    });
}

template <Isa I>
void linear_dtype(ThreadPool& pool, GemmBuffers& buffers, nc_dtype dtype, const float* x, int64_t M, int64_t K,
                  const std::vector<LinearPart>& parts, int64_t N_total) {
    switch (dtype) {
        case NC_DTYPE_F32: return linear_impl<I, NC_DTYPE_F32>(pool, buffers, x, M, K, parts, N_total);
        case NC_DTYPE_F16: return linear_impl<I, NC_DTYPE_F16>(pool, buffers, x, M, K, parts, N_total);
        case NC_DTYPE_BF16: return linear_impl<I, NC_DTYPE_BF16>(pool, buffers, x, M, K, parts, N_total);
    }
}

// ---- attention ------------------------------------------------------------------------------------------
//
// One job is (batch, head, group of query blocks of NR). Scores are computed transposed, sᵀ[key][query] =
// Σ_c k[key, c] q[query, c] (keys as A panels, each query block as one B panel), so that the softmax runs down the
// columns with whole vectors, and the numerators sᵀ are directly the B operand of outᵀ[c][query] =
// Σ_key v[key, c] sᵀ[key][query] (values as A panels over channels).
// When a head's keys and values fit in L2 (kResidentBytes) they are packed once per head and thread and a job is one
// query block. When they do not, a job is a group of the query blocks whose scores fit kScoreBytes (about a core's
// L2), so the keys and values are read from memory once per group, not once per block — the SAM decoder's ~100
// queries over 4096 keys of 256 channels read them once in all. Both products run kKeyChunk keys at a time, each
// chunk's panels used by every block of the group in turn, whose operand (queries or the numerators' chunk) stays in
// L1.

constexpr int64_t kResidentBytes = int64_t(1) << 20;
constexpr int64_t kScoreBytes = int64_t(1) << 21;
constexpr int64_t kKeyChunk = 192;  // a multiple of every ISA's MR

bool heads_resident(int64_t kv_rows, int64_t head_dim) {
    return 2 * kv_rows * head_dim * int64_t(sizeof(float)) <= kResidentBytes;
}

struct AttentionArgs {
    const float *q, *k, *v;
    int64_t batch, q_rows, kv_rows;
    int32_t heads, head_dim;
    float scale;
    const ScoreBias* bias;
    float* out;
    int64_t blocks;        // query blocks per (batch, head)
    int64_t group_blocks;  // query blocks per job
    int64_t groups;        // jobs per (batch, head)
    // Keys and values packed whole, once per (batch, head) and thread, when a thread takes several groups of a head;
    // otherwise a chunk at a time as a job reaches it.
    bool prepack;
    int64_t causal_start;  // < 0: every query sees every key
};

std::atomic<uint64_t> attention_calls{0};

// Column softmax numerators of s [T][NR] in place: s[j][i] = e^(s[j][i] − max_j s[·][i]); inv[i] = 1 / Σ_j.
template <Isa I>
void softmax_columns(float* s, int64_t T, float* inv);

template <>
void softmax_columns<Isa::Portable>(float* s, int64_t T, float* inv) {
    constexpr int NR = Tile<Isa::Portable>::NR;
    for (int i = 0; i < NR; ++i) {
        float m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < T; ++j) m = std::max(m, s[j * NR + i]);
        for (int64_t j = 0; j < T; ++j) sum += (s[j * NR + i] = softmax_exp(s[j * NR + i] - m));
        inv[i] = 1.0f / sum;
    }
}

template <>
__attribute__((target("avx2,fma,f16c"))) void softmax_columns<Isa::Avx2>(float* s, int64_t T, float* inv) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    for (int64_t j = 0; j < T; ++j) {
        m0 = _mm256_max_ps(m0, _mm256_load_ps(s + j * 16));
        m1 = _mm256_max_ps(m1, _mm256_load_ps(s + j * 16 + 8));
    }
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    for (int64_t j = 0; j < T; ++j) {
        const __m256 e0 = softmax_exp8(_mm256_sub_ps(_mm256_load_ps(s + j * 16), m0));
        const __m256 e1 = softmax_exp8(_mm256_sub_ps(_mm256_load_ps(s + j * 16 + 8), m1));
        _mm256_store_ps(s + j * 16, e0);
        _mm256_store_ps(s + j * 16 + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    _mm256_storeu_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), s0));
    _mm256_storeu_ps(inv + 8, _mm256_div_ps(_mm256_set1_ps(1.0f), s1));
}

template <>
__attribute__((target("avx512f,avx2,fma,f16c"))) void softmax_columns<Isa::Avx512>(float* s, int64_t T, float* inv) {
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    for (int64_t j = 0; j < T; ++j) {
        m0 = _mm512_max_ps(m0, _mm512_load_ps(s + j * 32));
        m1 = _mm512_max_ps(m1, _mm512_load_ps(s + j * 32 + 16));
    }
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    for (int64_t j = 0; j < T; ++j) {
        const __m512 e0 = softmax_exp16(_mm512_sub_ps(_mm512_load_ps(s + j * 32), m0));
        const __m512 e1 = softmax_exp16(_mm512_sub_ps(_mm512_load_ps(s + j * 32 + 16), m1));
        _mm512_store_ps(s + j * 32, e0);
        _mm512_store_ps(s + j * 32 + 16, e1);
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
    }
    _mm512_storeu_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), s0));
    _mm512_storeu_ps(inv + 16, _mm512_div_ps(_mm512_set1_ps(1.0f), s1));
}

// A thread's buffers: keys and values (the head's packed whole, valid for (call, head), or a chunk's), and a group's
// queries, scores, outputs and softmax reciprocals.
struct HeadPanels {
    uint64_t call = 0;
    int64_t head = -1;
    AlignedBuffer k, v, q, s, o, inv;
};

// Jobs [job0, job1) in (batch, head, group) order, so a thread that packs a head's keys and values whole does it once
// for all the groups it takes of that head.
template <Isa I>
void attention_range(const AttentionArgs& a, uint64_t call, int64_t job0, int64_t job1) {
    constexpr int MR = Tile<I>::MR, NR = Tile<I>::NR;
    HeadPanels& hp = share_local<HeadPanels>();
    const int64_t d = a.head_dim, stride = int64_t(a.heads) * d, T = a.kv_rows;
    const int64_t Tp = round_up(T, MR), dp = round_up(d, MR);
    for (int64_t job = job0; job < job1; ++job) {
        const int64_t head = job / a.groups, first = (job % a.groups) * a.group_blocks;
        const int64_t n = std::min(a.group_blocks, a.blocks - first);
        const int64_t b = head / a.heads;
        const int32_t h = int32_t(head % a.heads);
        const bool causal = a.causal_start >= 0;
        // The keys this job's queries see: all, or (causal) up to its last query's position.
        const int64_t Tj = causal ? std::min(T, a.causal_start + std::min(a.q_rows, (first + n) * NR)) : T;
        const float* k = a.k + b * T * stride + h * d;
        const float* v = a.v + b * T * stride + h * d;
        // Packed keys [T/MR][d][MR] and values [d/MR][T][MR], whole (one chunk of all T keys) or by chunk: the panels of
        // keys [c0, c0 + kc).
        const int64_t chunk = a.prepack ? T : kKeyChunk;
        float* kp = hp.k.get(size_t((a.prepack ? Tp : std::min(Tp, kKeyChunk)) * d));
        float* vp = hp.v.get(size_t(dp * (a.prepack ? T : std::min(T, kKeyChunk))));
        if (a.prepack && (hp.call != call || hp.head != head)) {
            pack_rows<I, NC_DTYPE_F32>(k, stride, 0, T, 0, d, MR, kp);
            pack_cols<MR>(v, stride, T, d, vp);
            hp.call = call;
            hp.head = head;
        }
        auto key_panels = [&](int64_t c0, int64_t kc) -> const float* {
            if (a.prepack) return kp + c0 * d;
            pack_rows<I, NC_DTYPE_F32>(k, stride, c0, kc, 0, d, MR, kp);
            return kp;
        };
        // Value panel p of the chunk and the floats between panels.
        auto value_panels = [&](int64_t c0, int64_t kc) -> std::pair<const float*, int64_t> {
            if (a.prepack) return {vp + c0 * MR, T * MR};
            pack_cols<MR>(v + c0 * stride, stride, kc, d, vp);
            return {vp, kc * MR};
        };
        float* qp = hp.q.get(size_t(n * d * NR));
        float* s = hp.s.get(size_t(n * Tp * NR));
        float* o = hp.o.get(size_t(n * dp * NR));
        float* inv = hp.inv.get(size_t(n * NR));
        auto block = [&](int64_t g) {  // the first query of the group's block g and its count
            const int64_t q0 = (first + g) * NR;
            return std::pair<int64_t, int64_t>(q0, std::min<int64_t>(NR, a.q_rows - q0));
        };
        for (int64_t g = 0; g < n; ++g) {
            const auto [q0, nq] = block(g);
            pack_rows<I, NC_DTYPE_F32>(a.q + (b * a.q_rows + q0) * stride + h * d, stride, 0, nq, 0, d, NR,
                                       qp + g * d * NR);
        }
        for (int64_t j = 0; j < n * d * NR; ++j) qp[j] *= a.scale;  // scaled queries give scaled scores (as HF CLIP)
        for (int64_t c0 = 0; c0 < Tj; c0 += chunk) {
            const int64_t kc = std::min(chunk, Tj - c0);
            const float* panels = key_panels(c0, kc);
            for (int64_t g = 0; g < n; ++g) {
                for (int64_t p = 0; p * MR < kc; ++p) {
                    Tile<I>::run(panels + p * MR * d, qp + g * d * NR, d, s + (g * Tp + c0 + p * MR) * NR, NR,
                                 int(std::min<int64_t>(MR, kc - p * MR)), NR, nullptr, false);
                }
            }
        }
        for (int64_t g = 0; g < n; ++g) {
            const auto [q0, nq] = block(g);
            float* sg = s + g * Tp * NR;
            if (a.bias) a.bias->add_block(b, h, q0, nq, sg, NR, Tj);
            if (causal) {  // query i sees keys up to causal_start + q0 + i: key j only from query j − causal_start − q0
                for (int64_t j = a.causal_start + q0 + 1; j < Tj; ++j) {
                    const int64_t hidden = std::min(nq, j - a.causal_start - q0);
                    std::fill(sg + j * NR, sg + j * NR + hidden, -INFINITY);
                }
            }
            softmax_columns<I>(sg, Tj, inv + g * NR);
        }
        for (int64_t c0 = 0; c0 < Tj; c0 += chunk) {
            const int64_t kc = std::min(chunk, Tj - c0);
            const auto [panels, panel_floats] = value_panels(c0, kc);
            for (int64_t g = 0; g < n; ++g) {
                for (int64_t p = 0; p * MR < d; ++p) {
                    Tile<I>::run(panels + p * panel_floats, s + (g * Tp + c0) * NR, kc, o + (g * dp + p * MR) * NR, NR,
                                 int(std::min<int64_t>(MR, d - p * MR)), NR, nullptr, c0 > 0);
                }
            }
        }
        for (int64_t g = 0; g < n; ++g) {
            const auto [q0, nq] = block(g);
            for (int64_t i = 0; i < nq; ++i) {
                float* dst = a.out + (b * a.q_rows + q0 + i) * stride + h * d;
                for (int64_t c = 0; c < d; ++c) dst[c] = o[(g * dp + c) * NR + i] * inv[g * NR + i];
            }
        }
    }
}

}  // namespace

int64_t attention_group_queries(int64_t q_rows, int64_t kv_rows, int64_t head_dim) {
    constexpr int64_t kCols = Tile<Isa::Avx512>::NR;  // a multiple of every ISA's NR
    if (heads_resident(kv_rows, head_dim)) return kCols;
    const int64_t fit = kScoreBytes / (int64_t(sizeof(float)) * round_up(kv_rows, Tile<Isa::Avx512>::MR)) / kCols * kCols;
    return std::clamp(fit, kCols, round_up(q_rows, kCols));
}

void gemm_linear(ThreadPool& pool, GemmBuffers& buffers, const float* x, int64_t rows, const Weight& w,
                 const Weight* bias, float* y) {
    const LinearOut out{&w, bias, y};
    gemm_linears(pool, buffers, x, rows, &out, 1);
}

void gemm_linears(ThreadPool& pool, GemmBuffers& buffers, const float* x, int64_t rows, const LinearOut* outs,
                  int32_t n) {
    if (n <= 0) return;
    const Weight& first = *outs[0].w;
    for (int32_t i = 1; i < n; ++i) {
        if (outs[i].w->dtype != first.dtype || outs[i].w->cols != first.cols) {  // not one packing: one at a time
            for (int32_t j = 0; j < n; ++j) gemm_linears(pool, buffers, x, rows, outs + j, 1);
            return;
        }
    }
    // The biases padded to whole tiles (the widest, AVX-512's 32 outputs), concatenated like the outputs.
    int64_t N_total = 0;
    for (int32_t i = 0; i < n; ++i) N_total += round_up(outs[i].w->rows, 32);
    std::vector<float> init(size_t(N_total), 0.0f);
    std::vector<LinearPart> parts;
    int64_t offset = 0;
    for (int32_t i = 0; i < n; ++i) {
        const LinearOut& o = outs[i];
        float* b = init.data() + offset;
        if (o.bias) {
            for (int64_t j = 0; j < o.w->rows; ++j) b[j] = weight_at(*o.bias, j);
        }
        parts.push_back(LinearPart{o.w->data, o.w->compact, o.w->int8, o.w->rows, b, o.y, offset});
        offset += round_up(o.w->rows, 32);
    }
    switch (cpu_isa()) {
        case Isa::Amx:  // cpu_isa() is a vector ISA: never Amx
        case Isa::Avx512: return linear_dtype<Isa::Avx512>(pool, buffers, first.dtype, x, rows, first.cols, parts, N_total);
        case Isa::Avx2: return linear_dtype<Isa::Avx2>(pool, buffers, first.dtype, x, rows, first.cols, parts, N_total);
        case Isa::Portable: return linear_dtype<Isa::Portable>(pool, buffers, first.dtype, x, rows, first.cols, parts, N_total);
    }
}

void gemm_attention(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t batch, int64_t q_rows,
                    int64_t kv_rows, int32_t heads, int32_t head_dim, float scale, const ScoreBias* bias, float* out,
                    int64_t causal_start) {
    if (batch <= 0 || q_rows <= 0 || heads <= 0 || head_dim <= 0) return;
    const uint64_t call = attention_calls.fetch_add(1) + 1;
    const Isa isa = cpu_isa();
    auto run = [&](auto tag) {
        constexpr Isa I = decltype(tag)::value;
        constexpr int NR = Tile<I>::NR;
        // Groups as large as attention_group_queries allows, but enough of them for every thread; keys and values
        // packed whole where they stay in L2 or a thread takes several groups of a head.
        const int64_t heads_total = batch * heads, threads = int64_t(pool.size());
        const int64_t blocks = ceil_div(q_rows, NR);
        const int64_t most = attention_group_queries(q_rows, kv_rows, head_dim) / NR;
        const int64_t groups = std::min(blocks, std::max(ceil_div(blocks, most), ceil_div(threads, heads_total)));
        const int64_t group_blocks = ceil_div(blocks, groups);
        const int64_t jobs_per_head = ceil_div(blocks, group_blocks);
        const bool prepack = heads_resident(kv_rows, head_dim) || jobs_per_head >= 2 * threads;
        const AttentionArgs a{q,     k,    v,   batch,  q_rows,       kv_rows,       heads,   head_dim,
                              scale, bias, out, blocks, group_blocks, jobs_per_head, prepack, causal_start};
        pool.parallel_for(heads_total * jobs_per_head, 1,
                          [&](int64_t j0, int64_t j1) { attention_range<I>(a, call, j0, j1); });
    };
    switch (isa) {
        case Isa::Amx:  // cpu_isa() is a vector ISA: never Amx
        case Isa::Avx512: return run(std::integral_constant<Isa, Isa::Avx512>{});
        case Isa::Avx2: return run(std::integral_constant<Isa, Isa::Avx2>{});
        case Isa::Portable: return run(std::integral_constant<Isa, Isa::Portable>{});
    }
}

}  // namespace nc::ops
