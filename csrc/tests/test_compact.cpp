// Compact bf16 weights (ops/compact_bf16.h): every bf16 kind round-trips exactly, trained-like weights take 12 bits,
// and every kernel's products on compact weights match the reference on the weights as stored (STYLE.md:
// test-backend-ops; random odd shapes, outputs poisoned, NMSE).
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "ops/compact_bf16.h"
#include "ops/convert.h"
#include "tests/op_harness.h"

namespace {

using nc::ops::CompactBf16;
using nc::ops::Weight;
using nc_test::nmse;
using nc_test::poisoned;
using nc_test::random_floats;

// bf16 bits of weights distributed like a trained matrix's (normal, σ = 0.02), with what its table cannot hold mixed
// in: magnitudes 2^-60 below the rest, exact zeros of both signs, large outliers and, with `specials`, infinities
// and NaNs (for the round trip; products of them are not compared).
std::vector<uint16_t> weight_bits(int64_t n, uint32_t seed, bool specials) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<uint16_t> bits(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        float v = dist(rng);
        if (v == 0.0f) v = 1e-3f;
        if (i % 53 == 7) v *= 1e-18f;
        if (i % 211 == 5) v *= 300.0f;
        bits[size_t(i)] = nc::ops::f32_to_bf16(v);
        if (i % 101 == 3) bits[size_t(i)] = i % 2 == 0 ? 0x0000 : 0x8000;
        if (specials && i % 307 == 11) bits[size_t(i)] = i % 3 == 0 ? 0x7f80 : i % 3 == 1 ? 0xff80 : 0x7fc1;
    }
    return bits;
}

class CompactBf16Format : public nc_test::PerIsa {};

TEST_P(CompactBf16Format, RoundTripsEveryWeightExactly) {
    for (int64_t cols : {1, 5, 31, 32, 33, 64, 95, 100, 4100}) {
        for (int64_t rows : {1, 3, 17}) {
            SCOPED_TRACE("rows " + std::to_string(rows) + " cols " + std::to_string(cols));
            const auto bits = weight_bits(rows * cols, uint32_t(rows * 7919 + cols), true);
            const auto w = nc::ops::compact_bf16(*cpu, bits.data(), rows, cols);
            int64_t wrong = 0;
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t c = 0; c < cols; ++c) wrong += nc::ops::compact_bits(*w, r, c) != bits[size_t(r * cols + c)];
            }
            EXPECT_EQ(wrong, 0);
            std::vector<uint16_t> expanded(size_t(rows * (cols + 3)), 0xdead);  // rows ld = cols + 3 apart
            nc::ops::expand_rows(*w, 0, rows, expanded.data(), cols + 3);
            for (int64_t r = 0; r < rows; ++r) {
                EXPECT_EQ(0, std::memcmp(expanded.data() + r * (cols + 3), bits.data() + r * cols, size_t(cols) * 2));
            }
            // Ranges starting inside and at a group, ending inside, at and past the last whole group.
            for (auto [k0, n] : std::vector<std::pair<int64_t, int64_t>>{{0, cols}, {cols / 3, cols - cols / 3}, {cols / 2, 1}}) {
                std::vector<uint16_t> segment(size_t(n), 0xdead);
                nc::ops::expand_segment(*w, rows - 1, k0, n, segment.data());
                EXPECT_EQ(0, std::memcmp(segment.data(), bits.data() + (rows - 1) * cols + k0, size_t(n) * 2));
            }
        }
    }
}

// A tensor in a file may start at an odd offset: the same weights there give the same compact form.
TEST_P(CompactBf16Format, ReadsWeightsAtAnyAlignment) {
    const int64_t rows = 5, cols = 70;
    const auto bits = weight_bits(rows * cols, 9, true);
    std::vector<uint8_t> file(bits.size() * 2 + 1);
    std::memcpy(file.data() + 1, bits.data(), bits.size() * 2);
    const auto aligned = nc::ops::compact_bf16(*cpu, bits.data(), rows, cols);
    const auto odd = nc::ops::compact_bf16(*cpu, file.data() + 1, rows, cols);
    EXPECT_EQ(0, std::memcmp(aligned->data.get(), odd->data.get(), size_t(rows * aligned->row_bytes)));
    EXPECT_EQ(aligned->patch_bits, odd->patch_bits);
    EXPECT_EQ(aligned->patch_col, odd->patch_col);
}

TEST_P(CompactBf16Format, TakesTwelveBitsPerTrainedWeight) {
    const int64_t rows = 64, cols = 4096;
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<uint16_t> bits(size_t(rows * cols));
    for (uint16_t& b : bits) b = nc::ops::f32_to_bf16(dist(rng));
    const auto w = nc::ops::compact_bf16(*cpu, bits.data(), rows, cols);
    EXPECT_LT(double(w->patch_col.size()), 0.005 * double(rows * cols));
    EXPECT_LT(double(w->bytes()), 0.76 * double(rows * cols * 2));
}

INSTANTIATE_TEST_SUITE_P(Isa, CompactBf16Format, nc_test::kAllIsas, nc_test::isa_name);

// A weight as stored (bf16) and its compact form.
struct CompactPair {
    std::vector<uint16_t> bits;
    Weight stored;
    std::unique_ptr<CompactBf16> held;
    Weight compact;
    CompactPair(nc::ops::Ops& ops, int64_t rows, int64_t cols, uint32_t seed)
        : bits(weight_bits(rows * cols, seed, false)),
          stored{NC_DTYPE_BF16, bits.data(), rows, cols},
          held(nc::ops::compact_bf16(ops, bits.data(), rows, cols)),
          compact{NC_DTYPE_BF16, nullptr, rows, cols, held.get()} {}
};

// Every path of Ops::linears: the dot products (≤ 16 rows: every tile remainder, tails of the 32-weight groups), the
// packed GEMM (17+ rows) and the AMX tiles (≥ 9 rows and ≥ 768 outputs: streamed up to 32 rows, in blocks beyond; a
// partial last tile).
class CompactLinear : public nc_test::PerIsa {};

TEST_P(CompactLinear, MatchesTheReferenceOnTheStoredWeights) {
    for (auto [rows, in, out, with_bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
             {1, 1, 1, false}, {1, 7, 5, true}, {2, 33, 3, false}, {3, 64, 17, true}, {5, 127, 33, true},
             {1, 4100, 131, true}, {4, 2049, 67, false}, {16, 96, 12, true}, {17, 300, 21, false},
             {40, 1030, 70, true}, {9, 100, 805, true}, {20, 300, 790, true}, {64, 70, 790, false}}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + " in " + std::to_string(in) + " out " + std::to_string(out));
        const CompactPair w(*cpu, out, in, uint32_t(in + out));
        const nc_test::StoredWeight bias(random_floats(size_t(out), 3), NC_DTYPE_BF16, 1, out);
        const auto x = random_floats(size_t(rows * in), 4);
        auto want = poisoned(size_t(rows * out)), got = poisoned(size_t(rows * out));
        ref->linear(x.data(), rows, w.stored, with_bias ? &bias.w : nullptr, want.data());
        cpu->linear(x.data(), rows, w.compact, with_bias ? &bias.w : nullptr, got.data());
        EXPECT_LT(nmse(got, want), 1e-10);
    }
}

// q, k, v of a layer in one call, k as stored and q, v compact: one packing of x for both kinds.
TEST_P(CompactLinear, SharedInputMixesCompactAndStoredWeights) {
    const int64_t in = 70, widths[3] = {13, 6, 790};
    std::vector<std::unique_ptr<CompactPair>> ws;
    for (int i = 0; i < 3; ++i) ws.push_back(std::make_unique<CompactPair>(*cpu, widths[i], in, uint32_t(30 + i)));
    for (int64_t rows : {1, 3, 16, 17, 64}) {
        SCOPED_TRACE("rows " + std::to_string(rows));
        nc_test::expect_linears_match(*ref, *cpu, random_floats(size_t(rows * in), 41), rows,
                                      {&ws[0]->compact, &ws[1]->stored, &ws[2]->compact},
                                      {&ws[0]->stored, &ws[1]->stored, &ws[2]->stored}, {nullptr, nullptr, nullptr});
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, CompactLinear, nc_test::kAllIsas, nc_test::isa_name);

}  // namespace
