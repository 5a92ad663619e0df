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

// With a compact weight (ops/compact_bf16.h) the tiles wait for its expansion, and the AVX-512 kernels decoding in
// registers are as fast up to 8 rows (nextchat_bench_linear 11264 2048 12 2 compact: 5 rows 2.59 ms against the
// tiles' 3.18, 8 rows 3.31 against 3.30, 16 rows 5.31 against 3.26).
constexpr int64_t kAmxMinCompactRows = 9;

// The same for int8 rows (ops/int8_rows.h), whose in-register kernel reads half of bf16's bytes: it is faster up to
// 11 rows (nextchat_bench_linear 11264 2048 12 2 int8: 8 rows 1.60–1.76 ms against the tiles' 2.42–2.55, 11 rows
// 2.35–2.55 against 2.46–2.49, 16 rows 3.29–3.34 against 2.56–2.57; 4096 11008 at 12 rows 4.83–5.03 against
// 5.11–5.49).
constexpr int64_t kAmxMinInt8Rows = 12;

// Rows of x packed and multiplied at a time: bounds the packed copy (3 bf16 parts: 1.5× the chunk's floats, 17 MB
// at K = 11008) while every weight is read once per 256 rows — far less time than those rows' products take.
constexpr int64_t kAmxChunkRows = 256;

// Loads the tile configuration the kernels use — all eight tile registers 16 rows × 64 bytes — on the calling thread
// (release with _tile_release). Requires cpu_has_amx().
void amx_configure_tiles();

// Whether amx_linears takes these outputs: AMX usable now (cpu_has_amx), at least kAmxMinRows rows (kAmxMinCompactRows or
// kAmxMinInt8Rows with such a weight) and kAmxMinOutputs outputs, every weight bf16 or int8, one input width ≥ 32.
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
