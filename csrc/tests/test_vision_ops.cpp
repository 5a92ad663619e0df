// Op harness for the vision transformer ops (layer_norm, gelu, quick_gelu, patches, non-causal attention) and
// for linear in the many-row (packed GEMM) regime: the CPU ops, with each kernel ISA (AVX-512, AVX2, portable),
// against the reference on random non-zero inputs, odd shapes, poisoned outputs, by NMSE.
#include <atomic>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "ops/cpu_simd.h"
#include "ops/ops.h"
#include "tests/op_harness.h"

namespace {

using nc::ops::Ops;
using nc_test::nmse;
using nc_test::poisoned;
using nc_test::random_floats;
using nc_test::StoredWeight;

// Runs every test with each kernel ISA the machine has: AVX-512, AVX2 and the portable loops.
class VisionOps : public nc_test::PerIsa {};

// Many rows: packed weight blocks (several k-blocks, several output blocks, tails of rows and outputs), split by
// outputs or, for narrow outputs, by rows; every weight dtype; 16 and 17 rows straddle the decode path; K = 4200
// takes the AMX tiles' K panels (128 k-blocks, then 3 and a tail).
TEST_P(VisionOps, LinearManyRows) {
    for (nc_dtype dtype : {NC_DTYPE_F32, NC_DTYPE_F16, NC_DTYPE_BF16}) {
        for (auto [rows, in, out, with_bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
                 {16, 33, 17, true}, {17, 33, 17, true}, {19, 300, 70, true}, {100, 515, 129, false},
                 {61, 257, 300, true}, {577, 64, 33, true}, {37, 7, 1, false}, {200, 1, 40, true},
                 {300, 70, 790, true}, {37, 4200, 790, true}}) {
            nc_test::expect_linear_matches(*ref, *cpu, dtype, rows, in, out, with_bias, 21);
        }
    }
}

// Several weights over one x: every output as linear() gives it, across output blocks that straddle the weights;
// a weight of another dtype (not packed together) too.
TEST_P(VisionOps, LinearsShareTheInput) {
    for (auto [rows, mixed] : std::vector<std::pair<int64_t, bool>>{{5, false}, {40, false}, {40, true}}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + (mixed ? ", mixed dtypes" : ""));
        const int64_t in = 70;
        const std::vector<int64_t> widths = {33, 64, 7};
        std::vector<StoredWeight> ws, bs;
        for (size_t i = 0; i < widths.size(); ++i) {
            const nc_dtype dtype = mixed && i == 2 ? NC_DTYPE_F16 : NC_DTYPE_BF16;
            ws.emplace_back(random_floats(size_t(widths[i] * in), 40 + uint32_t(i)), dtype, widths[i], in);
            bs.emplace_back(random_floats(size_t(widths[i]), 50 + uint32_t(i)), dtype, 1, widths[i]);
        }
        const auto x = random_floats(size_t(rows * in), 60);
        std::vector<std::vector<float>> want, got;
        std::vector<nc::ops::LinearOut> outs;
        for (size_t i = 0; i < widths.size(); ++i) {
            want.push_back(poisoned(size_t(rows * widths[i])));
            got.push_back(poisoned(size_t(rows * widths[i])));
            ref->linear(x.data(), rows, ws[i].w, i == 1 ? nullptr : &bs[i].w, want[i].data());
            outs.push_back({&ws[i].w, i == 1 ? nullptr : &bs[i].w, got[i].data()});
        }
        cpu->linears(x.data(), rows, outs.data(), int32_t(outs.size()));
        for (size_t i = 0; i < widths.size(); ++i) EXPECT_LT(nmse(got[i], want[i]), 1e-10) << "output " << i;
    }
}

TEST_P(VisionOps, LayerNorm) {
    for (nc_dtype dtype : {NC_DTYPE_F32, NC_DTYPE_BF16}) {
        for (auto [rows, dim] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 7}, {9, 1023}, {3, 1024}}) {
            SCOPED_TRACE("rows " + std::to_string(rows) + " dim " + std::to_string(dim));
            StoredWeight w(random_floats(size_t(dim), 24, 0.5f, 1.5f), dtype, 1, dim);
            StoredWeight b(random_floats(size_t(dim), 25), dtype, 1, dim);
            const auto x = random_floats(size_t(rows * dim), 26, -2.0f, 5.0f);  // mean far from 0
            auto want = poisoned(x.size()), got = poisoned(x.size());
            ref->layer_norm(x.data(), rows, w.w, b.w, 1e-5f, want.data());
            cpu->layer_norm(x.data(), rows, w.w, b.w, 1e-5f, got.data());
            EXPECT_LT(nmse(got, want), 1e-10);
        }
    }
}

TEST_P(VisionOps, GeluAndQuickGelu) {
    auto x = random_floats(1001, 27, -8.0f, 8.0f);
    for (float edge : {-100.0f, -60.0f, -1e-6f, 1e-6f, 60.0f, 100.0f}) x.push_back(edge);
    for (bool quick : {false, true}) {
        SCOPED_TRACE(quick ? "quick_gelu" : "gelu");
        auto want = x, got = x;
        if (quick) {
            ref->quick_gelu(want.data(), int64_t(want.size()));
            cpu->quick_gelu(got.data(), int64_t(got.size()));
        } else {
            ref->gelu(want.data(), int64_t(want.size()));
            cpu->gelu(got.data(), int64_t(got.size()));
        }
        EXPECT_LT(nmse(got, want), 1e-12);
        for (size_t i = 0; i < x.size(); ++i) {
            EXPECT_NEAR(got[i], want[i], 1e-6f * std::max(1.0f, std::fabs(want[i]))) << "x = " << x[i];
        }
    }
}

TEST_P(VisionOps, Patches) {
    using Shape = std::tuple<int64_t, int32_t, int32_t, int32_t, int32_t>;  // n, channels, height, width, patch
    for (auto [n, channels, height, width, patch] :
         std::vector<Shape>{{2, 3, 28, 42, 14}, {1, 1, 5, 5, 1}, {3, 2, 12, 8, 4}}) {
        const int64_t numel = n * channels * height * width;
        const auto x = random_floats(size_t(numel), 28);
        auto want = poisoned(size_t(numel)), got = poisoned(size_t(numel));
        ref->patches(x.data(), n, channels, height, width, patch, want.data());
        cpu->patches(x.data(), n, channels, height, width, patch, got.data());
        EXPECT_EQ(nmse(got, want), 0.0);
    }
    // One 2×2 patch of a 1×2×4 image, by hand: (channel, i, j) order.
    const std::vector<float> img = {1, 2, 3, 4, 5, 6, 7, 8};  // [1, 1, 2, 4]
    std::vector<float> rows(8);
    cpu->patches(img.data(), 1, 1, 2, 4, 2, rows.data());
    EXPECT_EQ(rows, (std::vector<float>{1, 2, 5, 6, 3, 4, 7, 8}));
}

// A bias of the form SAM's decomposed relative positions take (a function of head, query and key), counting
// its calls: one per (batch, head, query).
class TestBias final : public nc::ops::ScoreBias {
  public:
    void add(int64_t batch, int32_t head, int64_t query, float* scores, int64_t kv_rows) const override {
        calls.fetch_add(1);
        for (int64_t j = 0; j < kv_rows; ++j) {
            const float phase = float(batch) + 0.3f * float(head) + 0.1f * float(query % 7) - 0.2f * float(j % 5);
            scores[j] += 0.5f * std::sin(phase);
        }
    }
    mutable std::atomic<int64_t> calls{0};
};

// Shapes for each path of the CPU kernel: one query block, groups of several blocks with the values in chunks and
// their last channels packed (2 × 90 over 1000 keys of 260 channels), and keys packed once per head for many groups
// (400 queries over 4096 keys: the scores of 64 queries fill a group).
TEST_P(VisionOps, Attention) {
    for (auto [batch, q_rows, kv_rows, heads, d, with_bias] :
         std::vector<std::tuple<int64_t, int64_t, int64_t, int32_t, int32_t, bool>>{
             {1, 1, 1, 1, 1, false}, {2, 7, 7, 3, 10, false}, {1, 49, 130, 2, 64, true}, {2, 100, 100, 4, 17, true},
             {1, 5, 300, 2, 80, false}, {1, 577, 577, 2, 64, false}, {2, 90, 1000, 1, 260, true},
             {1, 400, 4096, 1, 16, false}}) {
        SCOPED_TRACE("batch " + std::to_string(batch) + " q " + std::to_string(q_rows) + " kv " +
                     std::to_string(kv_rows) + " heads " + std::to_string(heads) + " d " + std::to_string(d));
        const int64_t width = int64_t(heads) * d;
        const auto q = random_floats(size_t(batch * q_rows * width), 29, -3.0f, 3.0f);
        const auto k = random_floats(size_t(batch * kv_rows * width), 30, -3.0f, 3.0f);
        const auto v = random_floats(size_t(batch * kv_rows * width), 31);
        const float scale = 1.0f / std::sqrt(float(d));
        TestBias bias_ref, bias_cpu;
        auto want = poisoned(q.size()), got = poisoned(q.size());
        ref->attention(q.data(), k.data(), v.data(), batch, q_rows, kv_rows, heads, d, scale,
                       with_bias ? &bias_ref : nullptr, want.data());
        cpu->attention(q.data(), k.data(), v.data(), batch, q_rows, kv_rows, heads, d, scale,
                       with_bias ? &bias_cpu : nullptr, got.data());
        EXPECT_LT(nmse(got, want), 1e-10);
        if (with_bias) {
            EXPECT_EQ(bias_cpu.calls.load(), batch * heads * q_rows);
        }
    }
}

// Reuse across calls: the same buffers with new contents must not see the previous call's packed keys.
TEST_P(VisionOps, AttentionRepeatedCalls) {
    const int64_t rows = 50, heads = 2, d = 16, width = heads * d;
    auto q = random_floats(size_t(rows * width), 32), k = random_floats(size_t(rows * width), 33);
    auto v = random_floats(size_t(rows * width), 34);
    for (int call = 0; call < 3; ++call) {
        for (float& x : k) x = -x * 1.5f;
        for (float& x : v) x += 0.25f;
        auto want = poisoned(q.size()), got = poisoned(q.size());
        ref->attention(q.data(), k.data(), v.data(), 1, rows, rows, heads, d, 0.25f, nullptr, want.data());
        cpu->attention(q.data(), k.data(), v.data(), 1, rows, rows, heads, d, 0.25f, nullptr, got.data());
        EXPECT_LT(nmse(got, want), 1e-10) << "call " << call;
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, VisionOps, nc_test::kAllIsas, nc_test::isa_name);

}  // namespace
