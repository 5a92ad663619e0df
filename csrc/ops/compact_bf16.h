// Compact bf16: a bf16 weight matrix in 12 bits per weight, losslessly (docs/ARCHITECTURE.md "Compact weights").
//
// A bf16 is a high byte (sign, the exponent's 7 high bits) and a low byte (the exponent's low bit, 7 mantissa bits).
// A weight matrix's magnitudes span a few binades, so its weights use few high bytes: each weight keeps its low byte
// and replaces its high byte by a 4-bit code into the matrix's table of 14 (7 exponent pairs × 2 signs, the 7 that
// cover the most weights). A decode step at batch 1 streams every weight from memory once, so it reads 25 % fewer
// bytes. The rare weight whose high byte is outside the table (a magnitude far below the rest; or a NaN) takes code
// 0, which decodes to +0, and is listed with its row as a patch holding its exact bits: exact zeros need none.
//
// Row layout: groups of 32 weights, 48 bytes each — the 32 low bytes in order, then 16 bytes of codes, byte j
// holding weight j's code in its low nibble and weight j + 16's in its high one — then the row's last cols % 32
// weights as plain bf16.
#pragma once

#include <immintrin.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/huge_array.h"
#include "ops/ops.h"

namespace nc::ops {

constexpr int64_t kCompactGroup = 32;       // weights per group
constexpr int64_t kCompactGroupBytes = 48;  // 32 low bytes + 32 codes of 4 bits

struct CompactBf16 {
    int64_t rows = 0, cols = 0;
    int64_t row_bytes = 0;  // groups · 48 + (cols % 32) · 2
    // Code → the high byte it stands for, shifted into place (high[c] | low byte = the bf16). Code 0 → 0. 32
    // entries, the second 16 repeating the first: the AVX-512 decode (compact_group) looks codes up by their low
    // 5 bits.
    alignas(64) std::array<uint16_t, 32> high{};
    // The same as bytes (high[c] >> 8), twice: the AVX2 decode's in-lane byte lookup (compact_group_avx2).
    alignas(32) std::array<uint8_t, 32> high_byte{};
    HugeArray<uint8_t> data;  // rows · row_bytes (core/huge_array.h)
    // Patches of row r: patch_col/patch_bits [patch_start[r], patch_start[r + 1]), columns increasing.
    std::vector<int64_t> patch_start;
    std::vector<uint32_t> patch_col;
    std::vector<uint16_t> patch_bits;

    const uint8_t* row(int64_t r) const { return data.get() + r * row_bytes; }
    // Bytes held: the rows, the table and the patches.
    uint64_t bytes() const;
};

// The compact form of bf16 weights [rows, cols] (row-major bits at any address: a tensor in a file need not be
// 2-byte aligned), built on the ops' threads.
std::unique_ptr<CompactBf16> compact_bf16(Ops& ops, const void* bits, int64_t rows, int64_t cols);

// The exact bf16 bits of weight (r, c).
uint16_t compact_bits(const CompactBf16& w, int64_t r, int64_t c);

// Rows [first, first + n) as plain bf16, exactly: row i at out + i · ld.
void expand_rows(const CompactBf16& w, int64_t first, int64_t n, uint16_t* out, int64_t ld);

// Weights [k0, k0 + n) of row r as bf16, exactly.
void expand_segment(const CompactBf16& w, int64_t r, int64_t k0, int64_t n, uint16_t* out);

// y[r · ldy + o] += patch value · x[r · K + column] for rows r < rows of x [rows, K] and every patch of outputs
// [o0, o1): what a kernel that decodes code 0 as +0 leaves out.
void add_patches(const CompactBf16& w, int64_t o0, int64_t o1, const float* x, int64_t rows, float* y, int64_t ldy);

// Whether compact_group runs here: AVX-512 with its 16-bit lanes (BW), and not capped below it (cpu_isa).
bool compact_decodes_in_registers();

// The 32 bf16 of the group at p, in order, as the 16-bit lanes of a vector; table = CompactBf16::high.
__attribute__((target("avx512f,avx512bw"))) inline __m512i compact_group(const uint8_t* p, __m512i table) {
    // Lanes 0–15 hold byte j whole (code j in the low nibble; the high one only reaches bit 4, which the table
    // repeats over), lanes 16–31 the same byte shifted right by 4 (code j + 16).
    const __m512i shift = _mm512_set_epi16(4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0, 0);
    const __m128i code_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kCompactGroup));
    const __m512i codes = _mm512_srlv_epi16(_mm512_cvtepu8_epi16(_mm256_broadcastsi128_si256(code_bytes)), shift);
    const __m512i low = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_or_si512(_mm512_permutexvar_epi16(codes, table), low);
}

// compact_group for AVX2, in the lanes its in-lane byte interleaves give: the 32 bf16 as the 16-bit lanes of a
// (weights 0–7 | 16–23) and b (8–15 | 24–31); table = CompactBf16::high_byte.
__attribute__((target("avx2"))) inline void compact_group_avx2_lanes(const uint8_t* p, __m256i table, __m256i& a,
                                                                     __m256i& b) {
    const __m128i code_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kCompactGroup));
    const __m128i nibble = _mm_set1_epi8(0x0f);
    const __m256i codes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(code_bytes, 4), nibble),
                                           _mm_and_si128(code_bytes, nibble));
    const __m256i high = _mm256_shuffle_epi8(table, codes);  // lane 0: weights 0–15, lane 1: 16–31
    const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    a = _mm256_unpacklo_epi8(low, high);
    b = _mm256_unpackhi_epi8(low, high);
}

// The same in order: weights 0–15 in `first`, 16–31 in `second`.
__attribute__((target("avx2"))) inline void compact_group_avx2(const uint8_t* p, __m256i table, __m256i& first,
                                                               __m256i& second) {
    __m256i a, b;
    compact_group_avx2_lanes(p, table, a, b);
    first = _mm256_permute2x128_si256(a, b, 0x20);
    second = _mm256_permute2x128_si256(a, b, 0x31);
}

}  // namespace nc::ops
