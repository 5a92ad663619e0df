// Int8 rows (ops/int8_rows.h): every weight rounds to the nearest step of its row's scale, and every kernel's
// products on int8 rows match the reference on the dequantized weights (STYLE.md: test-backend-ops; random odd
// shapes, outputs poisoned, NMSE).
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.h"
#include "ops/convert.h"
#include "ops/int8_rows.h"
#include "tests/op_harness.h"

namespace {

using nc::ops::Int8Rows;
using nc::ops::Weight;
using nc_test::nmse;
using nc_test::poisoned;
using nc_test::random_floats;
using nc_test::StoredWeight;

// Row r's weights spread over [-(r + 1), r + 1] · 0.03, so that each row has its own scale.
std::vector<float> row_scaled_weights(int64_t rows, int64_t cols, uint32_t seed) {
    auto v = random_floats(size_t(rows * cols), seed);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) v[size_t(r * cols + c)] *= 0.03f * float(r + 1);
    }
    return v;
}

class Int8Format : public nc_test::PerIsa {};

TEST_P(Int8Format, RoundsEachWeightToTheNearestStepOfItsRow) {
    for (nc_dtype dtype : {NC_DTYPE_BF16, NC_DTYPE_F16, NC_DTYPE_F32}) {
        for (int64_t cols : {1, 5, 33, 64, 100, 4100}) {
            for (int64_t rows : {1, 3, 17}) {
                SCOPED_TRACE("dtype " + std::to_string(dtype) + " rows " + std::to_string(rows) + " cols " +
                             std::to_string(cols));
                const StoredWeight w(row_scaled_weights(rows, cols, uint32_t(rows * 31 + cols)), dtype, rows, cols);
                const auto q = nc::ops::quantize_int8(*cpu, w.w, "w");
                EXPECT_EQ(q->stride % 64, 0);
                EXPECT_GE(q->stride, cols);
                for (int64_t r = 0; r < rows; ++r) {
                    EXPECT_EQ(reinterpret_cast<uintptr_t>(q->row(r)) % 64, 0u);
                    float max = 0;
                    int most = 0;
                    for (int64_t c = 0; c < cols; ++c) max = std::max(max, std::fabs(nc::ops::weight_at(w.w, r * cols + c)));
                    const float s = q->scale[size_t(r)];
                    EXPECT_FLOAT_EQ(s, max / 127.0f);
                    for (int64_t c = 0; c < cols; ++c) {
                        const float stored = nc::ops::weight_at(w.w, r * cols + c);
                        EXPECT_LE(std::fabs(nc::ops::int8_weight(*q, r, c) - stored), 0.5001f * s) << "col " << c;
                        most = std::max(most, std::abs(int(q->row(r)[c])));
                    }
                    EXPECT_EQ(most, 127);  // the row's largest magnitude takes the last step
                    for (int64_t c = cols; c < q->stride; ++c) EXPECT_EQ(q->row(r)[c], 0);
                }
            }
        }
    }
}

TEST_P(Int8Format, AZeroRowKeepsScaleZero) {
    std::vector<float> values = random_floats(3 * 40, 7);
    std::fill(values.begin() + 40, values.begin() + 80, 0.0f);
    const StoredWeight w(values, NC_DTYPE_F32, 3, 40);
    const auto q = nc::ops::quantize_int8(*cpu, w.w, "w");
    EXPECT_EQ(q->scale[1], 0.0f);
    for (int64_t c = 0; c < 40; ++c) EXPECT_EQ(q->row(1)[c], 0);
    EXPECT_GT(q->scale[0], 0.0f);
    EXPECT_GT(q->scale[2], 0.0f);
}

TEST_P(Int8Format, RefusesWeightsThatAreNotFinite) {
    for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
        std::vector<float> values = random_floats(4 * 50, 8);
        values[2 * 50 + 17] = bad;
        const StoredWeight w(values, NC_DTYPE_F32, 4, 50);
        try {
            nc::ops::quantize_int8(*cpu, w.w, "model.layers.3.mlp.up_proj.weight");
            ADD_FAILURE() << "no error for " << bad;
        } catch (const nc::Error& e) {
            EXPECT_EQ(e.status(), NC_ERR_DTYPE);
            EXPECT_NE(std::string(e.what()).find("model.layers.3.mlp.up_proj.weight row 2"), std::string::npos) << e.what();
        }
    }
}

TEST_P(Int8Format, ExpandsToTheKernelsOperands) {
    const int64_t rows = 5, cols = 77;
    const StoredWeight w(row_scaled_weights(rows, cols, 9), NC_DTYPE_BF16, rows, cols);
    const auto q = nc::ops::quantize_int8(*cpu, w.w, "w");
    std::vector<uint16_t> bits(size_t(rows * (cols + 3)), 0xdead);
    std::vector<float> floats(size_t(rows * (cols + 3)), NAN);
    nc::ops::expand_int8_bf16(*q, 0, rows, 0, cols, bits.data(), cols + 3);
    nc::ops::expand_int8_f32(*q, 0, rows, floats.data(), cols + 3);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            EXPECT_EQ(nc::ops::bf16_to_f32(bits[size_t(r * (cols + 3) + c)]), float(q->row(r)[c]));
            EXPECT_EQ(floats[size_t(r * (cols + 3) + c)], float(q->row(r)[c]));
        }
    }
    std::vector<float> segment(30, NAN);
    nc::ops::expand_int8_scaled(*q, 3, 40, 30, segment.data());
    for (int64_t c = 0; c < 30; ++c) EXPECT_EQ(segment[size_t(c)], nc::ops::int8_weight(*q, 3, 40 + c));
}

INSTANTIATE_TEST_SUITE_P(Isa, Int8Format, nc_test::kAllIsas, nc_test::isa_name);

// A weight quantized to int8 rows, and the same weights dequantized (s · q) and stored as float32: what the reference
// multiplies.
struct Int8Pair {
    StoredWeight source;
    std::unique_ptr<Int8Rows> held;
    Weight int8;
    StoredWeight dequantized;
    Int8Pair(nc::ops::Ops& ops, int64_t rows, int64_t cols, uint32_t seed)
        : source(row_scaled_weights(rows, cols, seed), NC_DTYPE_BF16, rows, cols),
          held(nc::ops::quantize_int8(ops, source.w, "w")),
          int8{NC_DTYPE_F32, nullptr, rows, cols, nullptr, held.get()},
          dequantized(dequantize(*held), NC_DTYPE_F32, rows, cols) {}
    static std::vector<float> dequantize(const Int8Rows& q) {
        std::vector<float> v(size_t(q.rows * q.cols));
        for (int64_t r = 0; r < q.rows; ++r)
            for (int64_t c = 0; c < q.cols; ++c) v[size_t(r * q.cols + c)] = nc::ops::int8_weight(q, r, c);
        return v;
    }
};

// Every path of Ops::linears: the dot products (≤ 16 rows: every tile remainder, tails of the 32-weight steps), the
// packed GEMM (17+ rows) and the AMX tiles (≥ 9 rows and ≥ 768 outputs: streamed up to 32 rows, one or two row
// blocks; in blocks beyond; a partial last tile, a K tail).
class Int8Linear : public nc_test::PerIsa {};

TEST_P(Int8Linear, MatchesTheReferenceOnTheDequantizedWeights) {
    for (auto [rows, in, out, with_bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
             {1, 1, 1, false}, {1, 7, 5, true}, {2, 33, 3, false}, {3, 64, 17, true}, {5, 127, 33, true},
             {1, 4100, 131, true}, {4, 2049, 67, false}, {16, 96, 12, true}, {17, 300, 21, false},
             {40, 1030, 70, true}, {9, 100, 805, true}, {20, 300, 790, true}, {64, 70, 790, false}, {12, 4200, 800, true}}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + " in " + std::to_string(in) + " out " + std::to_string(out));
        const Int8Pair w(*cpu, out, in, uint32_t(in + out));
        const StoredWeight bias(random_floats(size_t(out), 3), NC_DTYPE_BF16, 1, out);
        const auto x = random_floats(size_t(rows * in), 4);
        auto want = poisoned(size_t(rows * out)), got = poisoned(size_t(rows * out));
        ref->linear(x.data(), rows, w.dequantized.w, with_bias ? &bias.w : nullptr, want.data());
        cpu->linear(x.data(), rows, w.int8, with_bias ? &bias.w : nullptr, got.data());
        EXPECT_LT(nmse(got, want), 1e-10);
    }
}

// q, k, v of a layer in one call, k stored as bf16 and q, v int8: x prepared once for both kinds.
TEST_P(Int8Linear, SharedInputMixesInt8AndStoredWeights) {
    const int64_t in = 70, widths[3] = {13, 6, 790};
    std::vector<std::unique_ptr<Int8Pair>> ws;
    for (int i = 0; i < 3; ++i) ws.push_back(std::make_unique<Int8Pair>(*cpu, widths[i], in, uint32_t(30 + i)));
    for (int64_t rows : {1, 3, 16, 17, 64}) {
        SCOPED_TRACE("rows " + std::to_string(rows));
        nc_test::expect_linears_match(*ref, *cpu, random_floats(size_t(rows * in), 41), rows,
                                      {&ws[0]->int8, &ws[1]->source.w, &ws[2]->int8},
                                      {&ws[0]->dequantized.w, &ws[1]->source.w, &ws[2]->dequantized.w},
                                      {nullptr, nullptr, nullptr});
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, Int8Linear, nc_test::kAllIsas, nc_test::isa_name);

}  // namespace
