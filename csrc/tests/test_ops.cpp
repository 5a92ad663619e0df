// Op harness: every optimized op against the reference op on random inputs (never zeros), odd shapes, all
// weight dtypes, outputs poisoned before each run, compared by NMSE (STYLE.md: test-backend-ops).
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "model/llm.h"
#include "ops/ops.h"
#include "tests/op_harness.h"

namespace {

using nc::ops::KVSeqView;
using nc::ops::Ops;
using nc::ops::Weight;
using nc_test::nmse;
using nc_test::poisoned;
using nc_test::random_floats;
using nc_test::StoredWeight;

class OpHarness : public testing::TestWithParam<nc_dtype> {
  protected:
    std::unique_ptr<Ops> ref = nc::ops::make_reference_ops();
    std::unique_ptr<Ops> cpu = nc::ops::make_cpu_ops(3);  // more threads than cores: uneven splits
};

// Few rows (the decode regime): every remainder of the row and output tiles, input widths around the 8- and
// 32-wide steps (tails), long rows, enough outputs for the AMX tiles (a partial last tile), every weight dtype, each
// kernel ISA.
class DecodeLinear : public nc_test::PerIsa {};

TEST_P(DecodeLinear, MatchesReference) {
    for (nc_dtype dtype : {NC_DTYPE_F32, NC_DTYPE_F16, NC_DTYPE_BF16}) {
        for (auto [rows, in, out, with_bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
                 {1, 1, 1, false}, {1, 7, 5, true}, {2, 9, 3, false}, {3, 64, 17, true}, {5, 127, 33, true},
                 {7, 129, 4, false}, {1, 32, 9, true}, {4, 33, 8, false}, {6, 95, 13, true}, {8, 300, 21, false},
                 {16, 96, 12, true}, {15, 31, 7, false}, {9, 4100, 131, true}, {5, 2049, 67, false},
                 {9, 100, 805, true}, {16, 64, 768, false}}) {
            nc_test::expect_linear_matches(*ref, *cpu, dtype, rows, in, out, with_bias, 1);
        }
    }
}

// Several weights over one x (q/k/v, gate/up) in one call: outputs of different widths, tiles that straddle
// two weights, a bias on one of them; the rows on both sides of the decode/GEMM crossover.
TEST_P(DecodeLinear, SharedInputLinears) {
    const int64_t in = 70;
    const int64_t widths[3] = {13, 6, 790};  // 809 outputs in all: enough for the AMX tiles
    for (nc_dtype dtype : {NC_DTYPE_F32, NC_DTYPE_F16, NC_DTYPE_BF16}) {
        for (int64_t rows : {1, 3, 16, 17}) {
            SCOPED_TRACE("dtype " + std::to_string(dtype) + " rows " + std::to_string(rows));
            std::vector<StoredWeight> ws;
            for (int i = 0; i < 3; ++i) ws.emplace_back(random_floats(size_t(widths[i] * in), 30 + i), dtype, widths[i], in);
            StoredWeight bias(random_floats(size_t(widths[1]), 40), dtype, 1, widths[1]);
            const std::vector<const Weight*> w = {&ws[0].w, &ws[1].w, &ws[2].w};
            nc_test::expect_linears_match(*ref, *cpu, random_floats(size_t(rows * in), 41), rows, w, w,
                                          {nullptr, &bias.w, nullptr});
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, DecodeLinear, nc_test::kAllIsas, nc_test::isa_name);

TEST_P(OpHarness, Embedding) {
    StoredWeight table(random_floats(37 * 23, 4), GetParam(), 37, 23);
    const std::vector<int32_t> ids = {0, 36, 5, 5, 17};
    auto want = poisoned(5 * 23), got = poisoned(5 * 23);
    ref->embedding(table.w, ids.data(), 5, want.data());
    cpu->embedding(table.w, ids.data(), 5, got.data());
    EXPECT_EQ(nmse(got, want), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, OpHarness, testing::Values(NC_DTYPE_F32, NC_DTYPE_F16, NC_DTYPE_BF16),
                         [](const testing::TestParamInfo<nc_dtype>& i) {
                             return std::string(i.param == NC_DTYPE_F32 ? "F32" : i.param == NC_DTYPE_F16 ? "F16" : "BF16");
                         });

// add_rows: a broadcast row block (y with fewer rows than x), into another buffer and in place, rows longer than
// one thread's share and many short ones.
TEST(OpHarnessF32, AddRowsBroadcasts) {
    auto ref = nc::ops::make_reference_ops();
    auto cpu = nc::ops::make_cpu_ops(3);
    for (auto [rows, y_rows, width] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 1, 10007}, {12, 4, 1000}, {300, 300, 7}, {5, 1, 3}}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + " y_rows " + std::to_string(y_rows) + " width " +
                     std::to_string(width));
        const auto x = random_floats(size_t(rows * width), 12), y = random_floats(size_t(y_rows * width), 13);
        auto want = poisoned(x.size()), got = poisoned(x.size());
        ref->add_rows(x.data(), y.data(), rows, y_rows, width, want.data());
        cpu->add_rows(x.data(), y.data(), rows, y_rows, width, got.data());
        EXPECT_EQ(got, want);
        auto in_place = x;
        cpu->add_rows(in_place.data(), y.data(), rows, y_rows, width, in_place.data());
        EXPECT_EQ(in_place, want);
    }
}

// The language model's elementwise ops per kernel ISA, on odd widths (vector tails) and row counts that split
// unevenly over the threads.
class Elementwise : public nc_test::PerIsa {};

TEST_P(Elementwise, RmsNorm) {
    for (nc_dtype dtype : {NC_DTYPE_F32, NC_DTYPE_F16, NC_DTYPE_BF16}) {
        for (auto [rows, dim] : std::vector<std::pair<int64_t, int64_t>>{{5, 23}, {1, 2048}, {7, 4099}, {33, 40}}) {
            SCOPED_TRACE("dtype " + std::to_string(dtype) + " rows " + std::to_string(rows) + " dim " + std::to_string(dim));
            StoredWeight scale(random_floats(size_t(dim), 5, 0.5f, 1.5f), dtype, 1, dim);
            const auto x = random_floats(size_t(rows * dim), 6, -3, 3);
            auto want = poisoned(x.size()), got = poisoned(x.size());
            ref->rms_norm(x.data(), rows, scale.w, 1e-5f, want.data());
            cpu->rms_norm(x.data(), rows, scale.w, 1e-5f, got.data());
            EXPECT_LT(nmse(got, want), 1e-12);
        }
    }
}

TEST_P(Elementwise, Rope) {
    for (auto [rows, heads, d] : std::vector<std::tuple<int64_t, int32_t, int32_t>>{{5, 3, 12}, {9, 32, 128}, {3, 5, 34}}) {
        SCOPED_TRACE("rows " + std::to_string(rows) + " heads " + std::to_string(heads) + " head_dim " + std::to_string(d));
        std::vector<int32_t> pos(static_cast<size_t>(rows));
        for (size_t r = 0; r < pos.size(); ++r) pos[r] = int32_t(r * 517 % 4096);
        const auto inv_freq = nc::rope_inv_freq(d, 10000.0f);
        std::vector<float> cos(size_t(rows * d / 2)), sin(cos.size());
        nc::rope_angles(inv_freq, pos.data(), rows, cos.data(), sin.data());
        auto want = random_floats(size_t(rows * heads * d), 6), got = want;
        ref->rope(want.data(), rows, heads, d, cos.data(), sin.data());
        cpu->rope(got.data(), rows, heads, d, cos.data(), sin.data());
        EXPECT_LT(nmse(got, want), 1e-13);
    }
}

TEST_P(Elementwise, SiluMulAddRelu) {
    for (int64_t n : {1, 15, 1001, 40961}) {
        SCOPED_TRACE("n " + std::to_string(n));
        auto gw = random_floats(size_t(n), 7, -12, 12), gc = gw;
        const auto up = random_floats(size_t(n), 8);
        ref->silu_mul(gw.data(), up.data(), n);
        cpu->silu_mul(gc.data(), up.data(), n);
        EXPECT_LT(nmse(gc, gw), 1e-12);
        ref->add(gw.data(), up.data(), n);
        cpu->add(gc.data(), up.data(), n);
        EXPECT_LT(nmse(gc, gw), 1e-12);
        auto rw = random_floats(size_t(n), 9), rc = rw;
        ref->relu(rw.data(), n);
        cpu->relu(rc.data(), n);
        EXPECT_EQ(rc, rw);
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, Elementwise, nc_test::kAllIsas, nc_test::isa_name);

// The RoPE tables are transformers' float32 ones: float32 frequencies, angle = float(position) · inv_freq. At
// position 4095 that alone moves an angle by up to ~2e-4 rad from the exact one, which bounds their agreement.
TEST(RopeAngles, FollowTheExactAnglesWithinFloat32) {
    const int32_t d = 128;
    const std::vector<int32_t> pos = {0, 1, 7, 300, 4095};
    const auto inv_freq = nc::rope_inv_freq(d, 10000.0f);
    std::vector<float> cos(pos.size() * d / 2), sin(cos.size());
    nc::rope_angles(inv_freq, pos.data(), int64_t(pos.size()), cos.data(), sin.data());
    std::vector<float> exact_cos(cos.size()), exact_sin(cos.size());
    for (size_t r = 0; r < pos.size(); ++r) {
        for (int32_t i = 0; i < d / 2; ++i) {
            const double angle = double(pos[r]) * std::pow(10000.0, -2.0 * i / d);
            exact_cos[r * d / 2 + size_t(i)] = float(std::cos(angle));
            exact_sin[r * d / 2 + size_t(i)] = float(std::sin(angle));
        }
    }
    EXPECT_LT(nmse(cos, exact_cos), 1e-8);
    EXPECT_LT(nmse(sin, exact_sin), 1e-8);
    for (size_t i = 0; i < cos.size(); ++i) ASSERT_NEAR(cos[i], exact_cos[i], 3e-4) << i;
    EXPECT_EQ(cos[0], 1.0f);  // position 0: the identity
    EXPECT_EQ(sin[0], 0.0f);
}

// A paged cache with a scrambled block table, written by each backend, then attention over it: per KV dtype and
// kernel ISA, decode rows and short chunks (scores per cached position; past kDecodeKeyChunk positions in several
// chunks of keys, the online softmax's rescaling) and prompt chunks of at least kGemmAttentionRows (gathered, the
// blocked causal kernel: one and several query blocks, from position 0 and after cached ones, more keys than a chunk
// of the kernel). Head widths 10 (one vector of 8 and a tail) and 72 (the decode kernels' 64 lanes, then 8).
class AttentionHarness : public testing::TestWithParam<std::tuple<nc_dtype, nc::ops::Isa>> {
  protected:
    void SetUp() override {
        if (!nc_test::use_isa(std::get<1>(GetParam()))) GTEST_SKIP() << "this CPU lacks the ISA";
    }
    void TearDown() override { nc_test::release_isa(); }
};

TEST_P(AttentionHarness, CausalPagedGqa) {
    const nc_dtype dtype = std::get<0>(GetParam());
    const int32_t heads = 6, kv_heads = 3, block = 4;
    const size_t esize = dtype == NC_DTYPE_F32 ? 4 : 2;
    for (auto [prior, rows, d] : std::vector<std::tuple<int64_t, int64_t, int32_t>>{
             {9, 7, 10}, {100, 1, 10}, {600, 1, 10}, {513, 5, 10}, {9, 40, 10}, {0, 45, 10}, {230, 70, 10},
             {100, 1, 72}, {600, 3, 72}, {9, 40, 72}}) {
        SCOPED_TRACE("prior " + std::to_string(prior) + " rows " + std::to_string(rows) + " head_dim " + std::to_string(d));
        const int64_t total = prior + rows, blocks = (total + block - 1) / block;
        std::vector<int32_t> table(static_cast<size_t>(blocks));
        for (int64_t i = 0; i < blocks; ++i) table[size_t(i)] = int32_t((i * 7 + 3) % blocks);  // 7 ⟂ blocks here
        std::vector<float> results[2];
        std::vector<uint8_t> pools[2];
        for (int backend = 0; backend < 2; ++backend) {
            auto ops = backend == 0 ? nc::ops::make_reference_ops() : nc::ops::make_cpu_ops(2);
            std::vector<uint8_t>& pool = pools[backend];
            pool.assign(size_t(blocks * 2 * kv_heads * block * d) * esize, 0xff);
            KVSeqView kv{pool.data(), table.data(), block, kv_heads, d, dtype};
            const auto k = random_floats(size_t(total * kv_heads * d), 9), v = random_floats(size_t(total * kv_heads * d), 10);
            if (prior > 0) ops->kv_write(kv, 0, prior, k.data(), v.data());
            ops->kv_write(kv, prior, rows, k.data() + prior * kv_heads * d, v.data() + prior * kv_heads * d);
            const auto q = random_floats(size_t(rows * heads * d), 11, -3, 3);
            auto out = poisoned(size_t(rows * heads * d));
            ops->attention(q.data(), rows, heads, prior, kv, out.data());
            results[backend] = out;
        }
        EXPECT_EQ(pools[1], pools[0]) << "the cached keys and values differ";  // conversions round alike
        EXPECT_LT(nmse(results[1], results[0]), 1e-10);
    }
}

INSTANTIATE_TEST_SUITE_P(KvDtypesIsas, AttentionHarness,
                         testing::Combine(testing::Values(NC_DTYPE_F32, NC_DTYPE_F16, NC_DTYPE_BF16), nc_test::kAllIsas));

}  // namespace
