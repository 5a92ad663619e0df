// Matrix products with bf16 weights on the AMX tile unit (Sapphire Rapids and later), for every row count: decode
// steps, prefill, CLIP and SAM. The weights are multiplied as stored, with no conversion; x, which is float32, is
// split exactly into three bf16 parts (hi + mid + lo: 3 × 8 significant bits cover float32's 24), so each product
// is exact and the sums are float32 like the AVX kernels' — the same result to rounding, several times faster.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "ops/ops.h"
#include "runtime/thread_pool.h"

namespace nc::ops {

// Below this many rows of x the AVX-512 dot products (cpu_gemv.h) stream the weights from memory as fast as or faster
// than the tiles (nextchat_bench_linear 5632 2048 16 2 bf16, 2 cores: 1.048 against 1.014 ms at 4 rows; the tiles
// 1.27× faster at 8, 2.05× at 16).
constexpr int64_t kAmxMinRows = 5;

// Below this many outputs in all the tiles lose to the AVX-512 kernels: x is split and re-laid once per call (a cost
// per element of x), and only enough outputs amortize it (build/nextchat_bench_linear N 256 4 2 bf16 4096: the tiles
// 2.2× slower at 128 outputs, 1.2× at 512, 1.16× faster at 1280; break-even ≈ 700).
constexpr int64_t kAmxMinOutputs = 768;

// With a compact weight (ops/compact_bf16.h) or int8 rows (ops/int8_rows.h) the tiles wait for the expansion to bf16,
// and the AVX-512 kernels decoding in registers are as fast up to 8 rows (nextchat_bench_linear … 2 ROWS, the tiles
// against the in-register kernel: 11264 2048 12 compact at 8 rows 3.37–3.52 ms against 3.38–3.42, at 12 rows
// 3.43–3.45 against 4.13–4.24; 11264 2048 12 int8 at 8 rows 2.23–2.36 against 1.83–1.85, at 10 rows 2.21–2.47
// against 2.35; 11008 4096 6 int8 at 8 rows 3.37–3.41 against 3.38–3.71).
constexpr int64_t kAmxMinExpandedRows = 9;

// Rows of x packed and multiplied at a time: bounds the packed copy (3 bf16 parts: 1.5× the chunk's floats, 17 MB
// at K = 11008) while every weight is read once per 256 rows — far less time than those rows' products take.
constexpr int64_t kAmxChunkRows = 256;

// Loads the tile configuration the kernels use — all eight tile registers 16 rows × 64 bytes — on the calling thread
// (release with _tile_release). Requires cpu_has_amx().
void amx_configure_tiles();

// Whether amx_linears takes these outputs: AMX usable now (cpu_has_amx), at least kAmxMinRows rows (kAmxMinExpandedRows
// with a compact or int8 weight) and kAmxMinOutputs outputs, every weight bf16 or int8, one input width ≥ 32.
bool amx_takes(int64_t rows, const LinearOut* outs, int32_t n);

// One output tile: 16 weight rows (fewer at a weight's end, then read from a zero-padded copy), K·2 bytes apart.
struct AmxTile {
    const LinearOut* out;
    int64_t o;          // first output
    int64_t count;      // valid outputs, ≤ 16
    const uint16_t* a;  // weight rows o.. (or the padded copy); null for a compact weight, expanded per thread
};

// The most bytes of compact weights' tiles a thread expands at a time (for 16 · K · 2 bytes per tile).
constexpr int64_t kAmxExpandBytes = int64_t(1) << 20;
// What a thread's buffer of expanded tiles holds for width K: the memory plan's bound (model/plan.cpp).
uint64_t amx_expanded_bytes(int64_t K);

// What amx_linears fills on the calling thread (x packed, the weights' zero-padded last tiles, the tile list), owned
// by the calling Ops like GemmBuffers (cpu_gemm.h).
struct AmxBuffers {
    std::vector<uint16_t> x;
    std::vector<std::vector<uint16_t>> padded;
    std::vector<AmxTile> tiles;
};

// Ops::linears on the tiles: y_i [rows, w_i.rows] = x [rows, K] · w_iᵀ (+ bias_i). Requires amx_takes.
void amx_linears(ThreadPool& pool, AmxBuffers& buffers, const float* x, int64_t rows, const LinearOut* outs,
                 int32_t n);

// What AmxBuffers holds for rows of width K and weights of these output widths (each buffer its largest request):
// the memory plan's bound (model/plan.cpp).
struct AmxScratch {
    uint64_t packed, padded, tiles;
};
AmxScratch amx_scratch_bytes(int64_t rows, int64_t K, std::initializer_list<int64_t> widths);

}  // namespace nc::ops
