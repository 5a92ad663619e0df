#include "ops/cpu_amx.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/compact_bf16.h"
#include "ops/int8_rows.h"
#include "ops/cpu_simd.h"

namespace nc::ops {

namespace {

// Tile shapes. TDPBF16PS C[16 × 16 f32] += A[16 × 32 bf16] · B[16 pairs × 16 × 2 bf16]:
//   A: 16 outputs × 32 k, each a 64-byte slice of a weight row, loaded from the weights as stored (stride K·2);
//   B: the 16 k-pairs × 16 rows of x of one k-block, packed (pack_x) in AMX's pair-interleaved layout;
//   C: 16 outputs × 16 rows of x.
constexpr int64_t kTile = 16;     // outputs per A / C tile; rows of x per B / C tile
constexpr int64_t kKBlock = 32;   // k per tile step (one 64-byte row of A)
constexpr int kParts = 3;         // x = hi + mid + lo, each bf16
constexpr int64_t kBTileElems = kTile * kKBlock;  // bf16 per packed B tile (1 KiB)

// Tile registers (multiply): 0–3 accumulate two output tiles × two row blocks; 4, 5 the weights; 6, 7 a part of x
// for each row block.
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

TileConfig tile_config() {
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
        c.colsb[t] = 64;
        c.rows[t] = uint8_t(kTile);
    }
    return c;
}

// x [rows, K] as B tiles: for row block rb, k-block kb and part p, the tile at ((rb·KB + kb)·3 + p)·512 holds in
// its row j (a k-pair) the 16 rows' (x[r, k0 + 2j], x[r, k0 + 2j + 1]) parts — one dword per row and pair.
//
// Each part is the rounding (to nearest even, as f32_to_bf16) of what the earlier parts left: the differences are
// exact in float32 and each part takes 8 more significant bits. One row's 32 values of a k-block become 16 dwords
// (bf16 pairs); the 16 rows' dwords, transposed, are the tile.
// The float32 value of each lane's bf16 rounding (to nearest even, as f32_to_bf16; x is finite).
__attribute__((target("avx512f,avx512bw"))) inline __m512 bf16_round(__m512 v) {
    const __m512i b = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    const __m512i up = _mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
    return _mm512_castsi512_ps(_mm512_and_si512(up, _mm512_set1_epi32(int32_t(0xffff0000u))));
}

// r[j] ← lane j of every r[i], in lane i: a 16 × 16 transpose of dwords (4 × 4 within each 128-bit lane by
// unpacks, then the lanes by shuffles).
__attribute__((target("avx512f"))) inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // r[4g + m], lane L: column 4L + m of rows 4g .. 4g + 3
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int m = 0; m < 4; ++m) {
        const __m512i s0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x44), s1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xee);
        const __m512i s2 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x44);
        const __m512i s3 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xee);
        t[m] = _mm512_shuffle_i32x4(s0, s2, 0x88);
        t[4 + m] = _mm512_shuffle_i32x4(s0, s2, 0xdd);
        t[8 + m] = _mm512_shuffle_i32x4(s1, s3, 0x88);
        t[12 + m] = _mm512_shuffle_i32x4(s1, s3, 0xdd);
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// Rows [0, n) of x (n ≤ 16, row stride K; the rest of the block zero) as one row block's B tiles.
__attribute__((target("avx512f,avx512bw"))) void pack_block(const float* x, int64_t K, int64_t n, int64_t kblocks,
                                                            uint32_t* block) {
    // The high word of each of the 32 floats of two vectors, in order: word 2m + 1 of (a, b).
    const __m512i high_words = _mm512_add_epi16(_mm512_slli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23,
        22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 1), _mm512_set1_epi16(1));
    alignas(64) uint32_t pairs[kParts][kTile][kTile];  // [part][row][pair]
    for (int64_t kb = 0; kb < kblocks; ++kb) {
        for (int64_t i = 0; i < kTile; ++i) {
            __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
            if (i < n) {
                v0 = _mm512_loadu_ps(x + i * K + kb * kKBlock);
                v1 = _mm512_loadu_ps(x + i * K + kb * kKBlock + 16);
            }
            for (int p = 0; p < kParts; ++p) {
                const __m512 r0 = bf16_round(v0), r1 = bf16_round(v1);
                _mm512_store_si512(pairs[p][i],
                                   _mm512_permutex2var_epi16(_mm512_castps_si512(r0), high_words, _mm512_castps_si512(r1)));
                v0 = _mm512_sub_ps(v0, r0);
                v1 = _mm512_sub_ps(v1, r1);
            }
        }
        for (int p = 0; p < kParts; ++p) {
            __m512i r[kTile];
            for (int64_t i = 0; i < kTile; ++i) r[i] = _mm512_load_si512(pairs[p][i]);
            transpose16(r);
            uint32_t* tile = block + (kb * kParts + p) * kBTileElems / 2;
            for (int64_t j = 0; j < kTile; ++j) _mm512_store_si512(tile + j * kTile, r[j]);
        }
    }
}

// bf16 elements of the packed x of `rows` rows (32 of alignment slack).
int64_t packed_elems(int64_t rows, int64_t kblocks) {
    return (rows + kTile - 1) / kTile * kblocks * kParts * kBTileElems + 32;
}

void pack_x(ThreadPool& pool, const float* x, int64_t rows, int64_t K, int64_t kblocks, std::vector<uint16_t>& buf,
            uint16_t** out) {
    const int64_t row_blocks = (rows + kTile - 1) / kTile, block_elems = kblocks * kParts * kBTileElems;
    buf.resize(size_t(packed_elems(rows, kblocks)));
    uint16_t* base = reinterpret_cast<uint16_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
    pool.parallel_for(row_blocks, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t rb = b0; rb < b1; ++rb) {
            pack_block(x + rb * kTile * K, K, std::min(kTile, rows - rb * kTile), kblocks,
                       reinterpret_cast<uint32_t*>(base + rb * block_elems));
        }
    });
    *out = base;
}


// y[first + r, o] = bias + C + the products past the last whole k-block, for the tile's valid outputs and the rows
// r0 + r of x (rows of them in all). C is [output][row]: each row of y gathers a column of it.
__attribute__((target("avx512f"))) void store_tile(const AmxTile& t, const float* c, const float* x, int64_t rows,
                                                   int64_t K, int64_t body, int64_t r0, int64_t first) {
    const Weight& w = *t.out->w;
    const int64_t valid_rows = std::min(kTile, rows - r0);
    alignas(64) float bias[kTile] = {};
    if (t.out->bias != nullptr) convert_row(*t.out->bias, t.o, t.count, bias);
    const __m512 b = _mm512_load_ps(bias);
    // Int8 rows' sums are of x · q: each output takes its row's scale (ops/int8_rows.h).
    alignas(64) float scale[kTile] = {};
    std::fill(scale, scale + kTile, 1.0f);
    if (w.int8 != nullptr) std::copy_n(w.int8->scale.data() + t.o, t.count, scale);
    const __m512 s = _mm512_load_ps(scale);
    // C's columns are y's rows: transposed in registers (16 loads, unpacks and shuffles; gathers cost more).
    __m512i rows_of_y[kTile];
    for (int64_t i = 0; i < kTile; ++i) rows_of_y[i] = _mm512_load_si512(c + i * kTile);
    transpose16(rows_of_y);
    const __mmask16 valid = __mmask16((1u << t.count) - 1);
    for (int64_t r = 0; r < valid_rows; ++r) {
        float* y = t.out->y + (first + r0 + r) * w.rows + t.o;
        _mm512_mask_storeu_ps(y, valid, _mm512_fmadd_ps(s, _mm512_castsi512_ps(rows_of_y[r]), b));
    }
    if (body == K) return;
    for (int64_t r = 0; r < valid_rows; ++r) {
        float* y = t.out->y + (first + r0 + r) * w.rows + t.o;
        for (int64_t i = 0; i < t.count; ++i) {
            for (int64_t k = body; k < K; ++k) y[i] += x[(r0 + r) * K + k] * weight_at(w, (t.o + i) * K + k);
        }
    }
}

// Output tiles a thread takes at a time while every row block of a chunk passes them. Each block reads the chunk's
// packed x again (1.9 MiB for 256 rows at K = 1280), so fewer, larger blocks read less of it: 32 tiles (1.3 MiB of
// weights at K = 1280, 5 MiB at K = 5120, past L2) measured faster than 16 for SAM's and CLIP's products of 1024–4096
// rows and the same for the LLM's prefill (docs/BENCHMARKS.md "Kernels").
constexpr int64_t kBlockTiles = 32;

// A compact weight's tiles (ops/compact_bf16.h), and int8 rows' q (ops/int8_rows.h), are expanded to bf16 a block at a time into the thread's buffer, once
// per chunk of rows, and multiplied from there like stored weights; the block is as many tiles as that buffer holds.
struct ExpandedTiles {
    std::vector<uint16_t> bits;
};

int64_t expanded_block_tiles(int64_t K) {
    return std::clamp<int64_t>(kAmxExpandBytes / (kTile * K * 2) / 2 * 2, 2, kBlockTiles);
}

// Columns [k0, k0 + cols) of the 16 rows of a compact weight's tile (or int8 rows' q, or a stored tile's rows of width
// K) as bf16 at dst, rows ld apart (rows past the weight's end zero); returns dst.
const uint16_t* expand_tile(const AmxTile& t, int64_t K, int64_t k0, int64_t cols, uint16_t* dst, int64_t ld) {
    const Weight& w = *t.out->w;
    if (t.a != nullptr) {  // stored bf16 beside re-coded weights in one call: copied like the others
        for (int64_t i = 0; i < kTile; ++i) std::memcpy(dst + i * ld, t.a + i * K + k0, size_t(cols) * 2);
        return dst;
    }
    if (w.int8 != nullptr) {
        expand_int8_bf16(*w.int8, t.o, t.count, k0, cols, dst, ld);
    } else {
        for (int64_t i = 0; i < t.count; ++i) expand_segment(*w.compact, t.o + i, k0, cols, dst + i * ld);
    }
    for (int64_t i = t.count; i < kTile; ++i) std::fill(dst + i * ld, dst + i * ld + cols, uint16_t(0));
    return dst;
}

// The accumulators of up to two output tiles (weights a0, a1; a1 null for a lone tile) against one or two row blocks of
// x (b0, b1), over kblocks k-blocks, added to what tiles 0–3 hold (begin_sums): C tile 0 = a0·b0, 1 = a1·b0, 2 = a0·b1,
// 3 = a1·b1. Per k-block the weights' A tiles (4, 5) are loaded once, then for each part of x its B tiles (6, 7) feed
// the products, which alternate between accumulators: a TDPBF16PS into the tile the previous one wrote waits for it to
// finish (its latency is several times its issue interval), so four independent accumulators keep the unit busy where
// the three parts into one accumulator left it waiting. Each load comes right before the first product that needs it,
// after the products that do not: a tile register is reloaded only once the products reading it are done, and loading 5
// and 7 late gives those products time (SAM encoder ~5 %, CLIP 4–14 % faster than loading all four first). Every
// accumulator still sums its parts in the same order.
template <bool kRowPair>
__attribute__((target("amx-tile,amx-bf16"))) void multiply(const uint16_t* a0, const uint16_t* a1, int64_t stride,
                                                           const uint16_t* b0, const uint16_t* b1, int64_t kblocks) {
    for (int64_t kb = 0; kb < kblocks; ++kb, b0 += kParts * kBTileElems, b1 += kParts * kBTileElems) {
        _tile_loadd(4, a0 + kb * kKBlock, stride);
        for (int p = 0; p < kParts; ++p) {
            _tile_loadd(6, b0 + p * kBTileElems, 64);
            _tile_dpbf16ps(0, 4, 6);
            if (p == 0 && a1 != nullptr) _tile_loadd(5, a1 + kb * kKBlock, stride);
            if (a1 != nullptr) _tile_dpbf16ps(1, 5, 6);
            if (kRowPair) {
                _tile_loadd(7, b1 + p * kBTileElems, 64);
                _tile_dpbf16ps(2, 4, 7);
                if (a1 != nullptr) _tile_dpbf16ps(3, 5, 7);
            }
        }
    }
}

// Tiles 0–3 from zero, or from the partial sums a K panel left at saved (four 16 × 16 float tiles).
__attribute__((target("amx-tile"))) void begin_sums(const float* saved) {
    if (saved == nullptr) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        return;
    }
    _tile_loadd(0, saved, kTile * 4);
    _tile_loadd(1, saved + kTile * kTile, kTile * 4);
    _tile_loadd(2, saved + 2 * kTile * kTile, kTile * 4);
    _tile_loadd(3, saved + 3 * kTile * kTile, kTile * 4);
}

__attribute__((target("amx-tile"))) void save_sums(float* saved) {
    _tile_stored(0, saved, kTile * 4);
    _tile_stored(1, saved + kTile * kTile, kTile * 4);
    _tile_stored(2, saved + 2 * kTile * kTile, kTile * 4);
    _tile_stored(3, saved + 3 * kTile * kTile, kTile * 4);
}

// K panels: a pair of row blocks' packed x takes 6 KiB per k-block, so over a long K (the down projections' 5632
// and 11008: 1–2 MiB) it outgrows L2 beside the weight tiles and every tile pair reads it from L3 again. The tile
// pairs then pass it 128 k-blocks (768 KiB) at a time, their accumulators saved and reloaded between panels (sums of
// the same exact products, float32, in another order). Measured (docs/BENCHMARKS.md "K panels of 128 k-blocks"):
// 1.2× at K = 5632 and 1.3× at 11008; panels of 16 k-blocks cost more than they saved below K = 11008.
constexpr int64_t kPanelKBlocks = 128;

// The C tiles of a tile pair (out[1] may be null) against row blocks rb and rb + 1 (row_pair) stored into y.
__attribute__((target("amx-tile,avx512f"))) void store_pair(const AmxTile* const out[2], int64_t rb, bool row_pair,
                                                            int64_t row_blocks, const float* x, int64_t rows, int64_t K,
                                                            int64_t body, int64_t first) {
    alignas(64) float c[4][kTile * kTile];
    _tile_stored(0, c[0], kTile * 4);
    if (out[1] != nullptr) _tile_stored(1, c[1], kTile * 4);
    if (row_pair) _tile_stored(2, c[2], kTile * 4);
    if (row_pair && out[1] != nullptr) _tile_stored(3, c[3], kTile * 4);
    for (int i = 0; i < 4; ++i) {
        const AmxTile* o = out[i % 2];
        const int64_t r = rb + i / 2;
        if (o != nullptr && r < row_blocks) store_tile(*o, c[i], x, rows, K, body, r * kTile, first);
    }
}

// Re-coded weights against at most two row blocks (a decode step): every expanded tile is used once, so expanding a
// block of them ahead only sends them through L2 and back while the tiles wait. Each tile pair is expanded instead
// kStreamKBlocks k-blocks at a time into an L1 buffer right before the tiles multiply them, which overlaps the
// expansion (the vector units, the weights' stream from memory) with the previous chunk's tile products.
constexpr int64_t kStreamKBlocks = 8;

__attribute__((target("amx-tile,amx-bf16,avx512f"))) void run_tiles_streamed(const std::vector<AmxTile>& tiles, int64_t t0,
                                                                              int64_t t1, const uint16_t* b, const float* x,
                                                                              int64_t rows, int64_t first, int64_t K,
                                                                              int64_t kblocks) {
    alignas(64) uint16_t chunk[2][kTile * kStreamKBlocks * kKBlock];
    const int64_t row_blocks = (rows + kTile - 1) / kTile, body = kblocks * kKBlock, ld = kStreamKBlocks * kKBlock;
    const int64_t block_elems = kblocks * kParts * kBTileElems;
    const bool row_pair = row_blocks == 2;
    amx_configure_tiles();
    for (int64_t t = t0; t < t1; t += 2) {
        const AmxTile* out[2] = {&tiles[size_t(t)], t + 1 < t1 ? &tiles[size_t(t + 1)] : nullptr};
        begin_sums(nullptr);
        for (int64_t k0 = 0; k0 < kblocks; k0 += kStreamKBlocks) {
            const int64_t kn = std::min(kStreamKBlocks, kblocks - k0);
            const uint16_t* a0 = expand_tile(*out[0], K, k0 * kKBlock, kn * kKBlock, chunk[0], ld);
            const uint16_t* a1 = out[1] != nullptr ? expand_tile(*out[1], K, k0 * kKBlock, kn * kKBlock, chunk[1], ld) : nullptr;
            const uint16_t* b0 = b + k0 * kParts * kBTileElems;
            if (row_pair) {
                multiply<true>(a0, a1, ld * 2, b0, b0 + block_elems, kn);
            } else {
                multiply<false>(a0, a1, ld * 2, b0, b0, kn);
            }
        }
        store_pair(out, 0, row_pair, row_blocks, x, rows, K, body, first);
    }
    _tile_release();
}

// Output tiles [t0, t1) for the rows of x (y's rows first…), in blocks of kBlockTiles: two output tiles against two
// row blocks at a time (multiply), a last odd row block with the tiles alone.
__attribute__((target("amx-tile,amx-bf16,avx512f"))) void run_tiles(const std::vector<AmxTile>& tiles, int64_t t0,
                                                                     int64_t t1, const uint16_t* b, const float* x,
                                                                     int64_t rows, int64_t first, int64_t K,
                                                                     int64_t kblocks) {
    const bool compact = std::any_of(tiles.begin() + t0, tiles.begin() + t1, [](const AmxTile& t) { return t.a == nullptr; });
    if (compact && rows <= 2 * kTile) return run_tiles_streamed(tiles, t0, t1, b, x, rows, first, K, kblocks);
    const int64_t block_tiles = compact ? expanded_block_tiles(K) : kBlockTiles;
    std::vector<uint16_t>& expanded = share_local<ExpandedTiles>().bits;
    if (compact) expanded.resize(size_t(block_tiles * kTile * K));
    amx_configure_tiles();
    alignas(64) float partial[kBlockTiles / 2][4 * kTile * kTile];  // each tile pair's sums between K panels
    const uint16_t* a[kBlockTiles];  // the block's weight rows, as stored or expanded
    const int64_t row_blocks = (rows + kTile - 1) / kTile, stride = K * 2, body = kblocks * kKBlock;
    const int64_t block_elems = kblocks * kParts * kBTileElems;
    const int64_t panel = std::min(kblocks, kPanelKBlocks);
    for (int64_t block = t0; block < t1; block += block_tiles) {
        const int64_t block_end = std::min(block + block_tiles, t1);
        for (int64_t t = block; t < block_end; ++t) {
            const AmxTile& tile = tiles[size_t(t)];
            a[t - block] = tile.a != nullptr ? tile.a : expand_tile(tile, K, 0, K, expanded.data() + (t - block) * kTile * K, K);
        }
        for (int64_t rb = 0; rb < row_blocks; rb += 2) {
            const bool row_pair = rb + 1 < row_blocks;
            for (int64_t k0 = 0; k0 < kblocks; k0 += panel) {
                const int64_t kn = std::min(panel, kblocks - k0);
                const uint16_t* b0 = b + rb * block_elems + k0 * kParts * kBTileElems;
                for (int64_t t = block; t < block_end; t += 2) {
                    const AmxTile* out[2] = {&tiles[size_t(t)], t + 1 < block_end ? &tiles[size_t(t + 1)] : nullptr};
                    const uint16_t* a0 = a[t - block] + k0 * kKBlock;
                    const uint16_t* a1 = out[1] != nullptr ? a[t + 1 - block] + k0 * kKBlock : nullptr;
                    float* saved = partial[(t - block) / 2];
                    begin_sums(k0 == 0 ? nullptr : saved);
                    if (row_pair) {
                        multiply<true>(a0, a1, stride, b0, b0 + block_elems, kn);
                    } else {
                        multiply<false>(a0, a1, stride, b0, b0, kn);
                    }
                    if (k0 + kn < kblocks) {
                        save_sums(saved);
                        continue;
                    }
                    store_pair(out, rb, row_pair, row_blocks, x, rows, K, body, first);
                }
            }
        }
    }
    _tile_release();
}

}  // namespace

__attribute__((target("amx-tile"))) void amx_configure_tiles() {
    static const TileConfig config = tile_config();
    _tile_loadconfig(&config);
}

uint64_t amx_expanded_bytes(int64_t K) {
    return sizeof(uint16_t) * uint64_t(expanded_block_tiles(K) * kTile * K);
}

AmxScratch amx_scratch_bytes(int64_t rows, int64_t K, std::initializer_list<int64_t> widths) {
    AmxScratch s{sizeof(uint16_t) * uint64_t(packed_elems(std::min(rows, kAmxChunkRows), K / kKBlock)), 0, 0};
    for (int64_t w : widths) {
        s.padded += sizeof(std::vector<uint16_t>) + (w % kTile != 0 ? sizeof(uint16_t) * uint64_t(kTile * K) : 0);
        s.tiles += sizeof(AmxTile) * uint64_t((w + kTile - 1) / kTile);
    }
    return s;
}

bool amx_takes(int64_t rows, const LinearOut* outs, int32_t n) {
    if (!cpu_has_amx() || rows < kAmxMinRows || n < 1) return false;
    const int64_t K = outs[0].w->cols;
    if (K < kKBlock) return false;
    int64_t outputs = 0;
    for (int32_t i = 0; i < n; ++i) {
        const Weight& w = *outs[i].w;
        if ((w.dtype != NC_DTYPE_BF16 && w.int8 == nullptr) || w.cols != K) return false;
        if ((w.compact != nullptr || w.int8 != nullptr) && rows < kAmxMinExpandedRows) return false;
        outputs += outs[i].w->rows;
    }
    return outputs >= kAmxMinOutputs;
}

void amx_linears(ThreadPool& pool, AmxBuffers& buffers, const float* x, int64_t rows, const LinearOut* outs,
                 int32_t n) {
    const int64_t K = outs[0].w->cols, kblocks = K / kKBlock;
    std::vector<std::vector<uint16_t>>& padded = buffers.padded;
    std::vector<AmxTile>& tiles = buffers.tiles;
    if (padded.size() < size_t(n)) padded.resize(size_t(n));
    tiles.clear();
    for (int32_t i = 0; i < n; ++i) {
        const Weight& w = *outs[i].w;
        const auto* data = static_cast<const uint16_t*>(w.data);
        for (int64_t o = 0; o < w.rows; o += kTile) {
            const int64_t count = std::min(kTile, w.rows - o);
            if (w.compact != nullptr || w.int8 != nullptr) {  // expanded by run_tiles
                tiles.push_back({&outs[i], o, count, nullptr});
                continue;
            }
            const uint16_t* a = data + o * K;
            if (count < kTile) {
                // A tile reads 16 rows: past the weight's end they come from a copy padded with zero rows.
                std::vector<uint16_t>& pad = padded[size_t(i)];
                pad.assign(size_t(kTile * K), 0);
                std::memcpy(pad.data(), a, size_t(count * K) * sizeof(uint16_t));
                a = pad.data();
            }
            tiles.push_back({&outs[i], o, count, a});
        }
    }
    const std::vector<AmxTile>& all = tiles;
    for (int64_t first = 0; first < rows; first += kAmxChunkRows) {
        const int64_t chunk = std::min(kAmxChunkRows, rows - first);
        uint16_t* b = nullptr;
        pack_x(pool, x + first * K, chunk, K, kblocks, buffers.x, &b);
        pool.parallel_for(int64_t(all.size()), 2, [&](int64_t t0, int64_t t1) {
            run_tiles(all, t0, t1, b, x + first * K, chunk, first, K, kblocks);
        });
    }
}

}  // namespace nc::ops
