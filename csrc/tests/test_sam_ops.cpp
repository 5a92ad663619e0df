// Op harness for the SAM ops (ops.h "SAM": decomposed relative-position bias, windows, convolutions, transposed
// convolution, bilinear resize, transpose) and LayerNorm2d as layer_norm on channels-last maps: the CPU ops, with
// each kernel ISA, against the reference on random non-zero inputs, odd shapes, poisoned outputs, by NMSE; plus
// small cases worked by hand so that the reference itself follows segment-anything and torch.
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

class SamOps : public nc_test::PerIsa {};

// Attention with the decomposed relative-position bias (§5.1): windows (batch > 1, square grid) and a global
// map (one batch, grid_h ≠ grid_w so the two tables cannot be swapped), 16-bit tables, head_dim not a multiple
// of 8, and SAM-H's head_dim 80.
TEST_P(SamOps, AttentionWithRelPosBias) {
    for (nc_dtype dtype : {NC_DTYPE_F32, NC_DTYPE_BF16}) {
        for (auto [batch, gh, gw, heads, d] : std::vector<std::tuple<int64_t, int64_t, int64_t, int32_t, int32_t>>{
                 {4, 5, 5, 2, 7}, {1, 9, 7, 3, 80}, {2, 1, 1, 1, 3}, {1, 14, 14, 2, 16}}) {
            SCOPED_TRACE("dtype " + std::to_string(dtype) + " batch " + std::to_string(batch) + " grid " +
                         std::to_string(gh) + "x" + std::to_string(gw) + " heads " + std::to_string(heads) + " d " +
                         std::to_string(d));
            const int64_t rows = gh * gw, width = int64_t(heads) * d;
            const auto q = random_floats(size_t(batch * rows * width), 41, -2.0f, 2.0f);
            const auto k = random_floats(q.size(), 42, -2.0f, 2.0f);
            const auto v = random_floats(q.size(), 43);
            StoredWeight rel_h(random_floats(size_t((2 * gh - 1) * d), 44), dtype, 2 * gh - 1, d);
            StoredWeight rel_w(random_floats(size_t((2 * gw - 1) * d), 45), dtype, 2 * gw - 1, d);
            auto bias_ref = ref->rel_pos_bias(q.data(), heads, d, gh, gw, rel_h.w, rel_w.w);
            auto bias_cpu = cpu->rel_pos_bias(q.data(), heads, d, gh, gw, rel_h.w, rel_w.w);
            // The bias alone, on a row that is not zero.
            for (int64_t b : {int64_t{0}, batch - 1}) {
                for (int64_t query : {int64_t{0}, rows / 2, rows - 1}) {
                    auto want = random_floats(size_t(rows), 46), got = want;
                    bias_ref->add(b, heads - 1, query, want.data(), rows);
                    bias_cpu->add(b, heads - 1, query, got.data(), rows);
                    EXPECT_LT(nmse(got, want), 1e-10) << "batch " << b << " query " << query;
                }
            }
            // A block of queries stored key-major (as the CPU attention keeps scores), against the rows one by one.
            for (int64_t ld : {int64_t{16}, int64_t{32}}) {
                const int64_t first = rows / 3, n = std::min<int64_t>(ld - 3, rows - first);
                auto block = random_floats(size_t(rows * ld), 47);
                auto want = block;
                for (int64_t i = 0; i < n; ++i) {
                    std::vector<float> row(static_cast<size_t>(rows));
                    for (int64_t j = 0; j < rows; ++j) row[size_t(j)] = want[size_t(j * ld + i)];
                    bias_ref->add(batch - 1, 0, first + i, row.data(), rows);
                    for (int64_t j = 0; j < rows; ++j) want[size_t(j * ld + i)] = row[size_t(j)];
                }
                bias_cpu->add_block(batch - 1, 0, first, n, block.data(), ld, rows);
                std::vector<float> got_part, want_part;
                for (int64_t j = 0; j < rows; ++j) {
                    for (int64_t i = 0; i < n; ++i) {
                        got_part.push_back(block[size_t(j * ld + i)]);
                        want_part.push_back(want[size_t(j * ld + i)]);
                    }
                }
                EXPECT_LT(nmse(got_part, want_part), 1e-10) << "ld " << ld;
            }
            const float scale = 1.0f / std::sqrt(float(d));
            auto want = poisoned(q.size()), got = poisoned(q.size());
            ref->attention(q.data(), k.data(), v.data(), batch, rows, rows, heads, d, scale, bias_ref.get(), want.data());
            cpu->attention(q.data(), k.data(), v.data(), batch, rows, rows, heads, d, scale, bias_cpu.get(), got.data());
            EXPECT_LT(nmse(got, want), 1e-10);
        }
    }
}

// segment-anything's indexing by hand: grid 2 × 3, one head, head_dim 1, q = 1 everywhere, so the bias of query
// (qh, qw) at key (kh, kw) is rel_h[qh − kh + 1] + rel_w[qw − kw + 2].
TEST_P(SamOps, RelPosBiasIndexing) {
    const std::vector<float> q(6, 1.0f);
    StoredWeight rel_h({10, 20, 30}, NC_DTYPE_F32, 3, 1);
    StoredWeight rel_w({1, 2, 3, 4, 5}, NC_DTYPE_F32, 5, 1);
    for (Ops* ops : {ref.get(), cpu.get()}) {
        auto bias = ops->rel_pos_bias(q.data(), 1, 1, 2, 3, rel_h.w, rel_w.w);
        std::vector<float> scores(6, 0.0f);
        bias->add(0, 0, 4, scores.data(), 6);  // query (1, 1)
        // keys (0,0) (0,1) (0,2) (1,0) (1,1) (1,2): rel_h[2] or [1], rel_w[3], [2], [1]
        EXPECT_EQ(scores, (std::vector<float>{34, 33, 32, 24, 23, 22})) << ops->name();
    }
}

TEST_P(SamOps, WindowPartitionAndMerge) {
    for (auto [height, width, channels, window, with_fill] :
         std::vector<std::tuple<int64_t, int64_t, int64_t, int32_t, bool>>{
             {12, 12, 3, 5, true}, {12, 12, 3, 5, false}, {14, 14, 8, 14, true}, {7, 11, 5, 3, true}, {1, 1, 1, 4, true},
             {64, 64, 16, 14, true}}) {
        SCOPED_TRACE(std::to_string(height) + "x" + std::to_string(width) + "x" + std::to_string(channels) + " window " +
                     std::to_string(window));
        const int64_t windows = ((height + window - 1) / window) * ((width + window - 1) / window);
        const auto x = random_floats(size_t(height * width * channels), 47);
        const auto fill = random_floats(size_t(channels), 48);
        const size_t n = size_t(windows * window * window * channels);
        auto want = poisoned(n), got = poisoned(n);
        ref->window_partition(x.data(), height, width, channels, window, with_fill ? fill.data() : nullptr, want.data());
        cpu->window_partition(x.data(), height, width, channels, window, with_fill ? fill.data() : nullptr, got.data());
        EXPECT_EQ(nmse(got, want), 0.0);
        auto back_ref = poisoned(x.size()), back = poisoned(x.size());
        ref->window_merge(want.data(), height, width, channels, window, back_ref.data());
        cpu->window_merge(got.data(), height, width, channels, window, back.data());
        EXPECT_EQ(back_ref, x);
        EXPECT_EQ(back, x);
    }
    // By hand: a 3 × 3 map of one channel in windows of 2: padded positions hold the fill.
    const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const float fill = -1;
    std::vector<float> y(16);
    cpu->window_partition(x.data(), 3, 3, 1, 2, &fill, y.data());
    EXPECT_EQ(y, (std::vector<float>{1, 2, 4, 5, 3, -1, 6, -1, 7, 8, -1, -1, 9, -1, -1, -1}));
}

TEST_P(SamOps, Conv2d) {
    for (nc_dtype dtype : {NC_DTYPE_F32, NC_DTYPE_BF16}) {
        for (auto [n, height, width, in, out, kernel, with_bias] :
             std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int32_t, bool>>{
                 {2, 7, 5, 13, 9, 3, false}, {1, 4, 4, 33, 17, 1, false}, {1, 6, 3, 4, 5, 5, true}, {1, 1, 1, 3, 2, 3, true},
                 {2, 24, 24, 20, 19, 3, false}, {3, 5, 7, 9, 40, 1, true}}) {
            SCOPED_TRACE("dtype " + std::to_string(dtype) + " n " + std::to_string(n) + " " + std::to_string(height) + "x" +
                         std::to_string(width) + " in " + std::to_string(in) + " out " + std::to_string(out) + " kernel " +
                         std::to_string(kernel));
            const int64_t k2 = int64_t(kernel) * kernel;
            StoredWeight w(random_floats(size_t(out * in * k2), 49), dtype, out, in * k2);
            StoredWeight b(random_floats(size_t(out), 50), dtype, 1, out);
            const auto x = random_floats(size_t(n * height * width * in), 51);
            auto want = poisoned(size_t(n * height * width * out)), got = want;
            ref->conv2d(x.data(), n, height, width, w.w, with_bias ? &b.w : nullptr, kernel, want.data());
            cpu->conv2d(x.data(), n, height, width, w.w, with_bias ? &b.w : nullptr, kernel, got.data());
            EXPECT_LT(nmse(got, want), 1e-10);
        }
    }
    // By hand: a 3 × 3 kernel of ones over a 2 × 2 map of one channel sums each pixel's neighbourhood (zero pad).
    const std::vector<float> x = {1, 2, 3, 4};
    StoredWeight ones(std::vector<float>(9, 1.0f), NC_DTYPE_F32, 1, 9);
    std::vector<float> y(4);
    ref->conv2d(x.data(), 1, 2, 2, ones.w, nullptr, 3, y.data());
    EXPECT_EQ(y, (std::vector<float>{10, 10, 10, 10}));
}

TEST_P(SamOps, ResizeBilinear) {
    for (auto [planes, in_h, in_w, out_h, out_w] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
             {3, 4, 4, 13, 13}, {2, 13, 9, 4, 5}, {1, 5, 7, 11, 3}, {2, 6, 6, 6, 6}, {1, 1, 1, 3, 2}, {2, 64, 64, 256, 256},
             {1, 256, 256, 97, 97}}) {
        SCOPED_TRACE(std::to_string(planes) + "x" + std::to_string(in_h) + "x" + std::to_string(in_w) + " -> " +
                     std::to_string(out_h) + "x" + std::to_string(out_w));
        const auto x = random_floats(size_t(planes * in_h * in_w), 55, -5.0f, 5.0f);
        auto want = poisoned(size_t(planes * out_h * out_w)), got = want;
        ref->resize_bilinear(x.data(), planes, in_h, in_w, out_h, out_w, 0, out_h, 0, out_w, want.data());
        cpu->resize_bilinear(x.data(), planes, in_h, in_w, out_h, out_w, 0, out_h, 0, out_w, got.data());
        // The CPU op computes source coordinates in float, as torch does for float tensors; the reference in double
        // (torch's float64 path): positions differ by up to ~1e-5 pixel on large downscales.
        EXPECT_LT(nmse(got, want), 1e-9);
        // A crop is exactly that part of the whole result.
        const int64_t r0 = out_h / 3, rows = out_h - r0 - out_h / 4, c0 = out_w / 4, cols = out_w - c0 - out_w / 3;
        auto crop = poisoned(size_t(planes * rows * cols));
        cpu->resize_bilinear(x.data(), planes, in_h, in_w, out_h, out_w, r0, rows, c0, cols, crop.data());
        for (int64_t p = 0; p < planes; ++p) {
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t c = 0; c < cols; ++c) {
                    ASSERT_EQ(crop[size_t((p * rows + r) * cols + c)], got[size_t((p * out_h + r0 + r) * out_w + c0 + c)]);
                }
            }
        }
    }
    // By hand, torch.nn.functional.interpolate([[0, 1]], size=(1, 4), mode="bilinear", align_corners=False):
    // sources clamp at 0 on the left and repeat the last pixel on the right.
    const std::vector<float> x = {0, 1};
    for (Ops* ops : {ref.get(), cpu.get()}) {
        std::vector<float> y(4);
        ops->resize_bilinear(x.data(), 1, 1, 2, 1, 4, 0, 1, 0, 4, y.data());
        EXPECT_EQ(y, (std::vector<float>{0, 0.25f, 0.75f, 1})) << ops->name();
    }
}

TEST_P(SamOps, Transpose) {
    for (auto [batch, rows, cols] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {2, 33, 70}, {1, 1, 5}, {1, 4096, 32}, {3, 7, 1}}) {
        const auto x = random_floats(size_t(batch * rows * cols), 56);
        auto want = poisoned(x.size()), got = poisoned(x.size());
        ref->transpose(x.data(), batch, rows, cols, want.data());
        cpu->transpose(x.data(), batch, rows, cols, got.data());
        EXPECT_EQ(nmse(got, want), 0.0);
        EXPECT_EQ(want[size_t(cols > 1 ? rows : 0)], x[size_t(cols > 1 ? 1 : 0)]);  // y[0][1][0] = x[0][0][1]
    }
}

TEST_P(SamOps, Softmax) {
    for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 11}, {300, 11}, {5, 8}, {3, 4096},
                                                                      {9, 17}, {2, 100}}) {
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
        const auto x = random_floats(size_t(rows * cols), 60, -30.0f, 30.0f);
        auto want = x, got = x;
        ref->softmax(want.data(), rows, cols);
        cpu->softmax(got.data(), rows, cols);
        EXPECT_LT(nmse(got, want), 1e-12);
        for (int64_t r = 0; r < rows; ++r) {
            double sum = 0;
            for (int64_t c = 0; c < cols; ++c) sum += got[size_t(r * cols + c)];
            EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << r;
        }
    }
    std::vector<float> x = {1, 2, 3};
    ref->softmax(x.data(), 1, 3);
    const double e = std::exp(1.0), z = 1 + e + e * e;
    EXPECT_NEAR(x[0], 1 / z, 1e-7);
    EXPECT_NEAR(x[2], e * e / z, 1e-7);
}

// LayerNorm2d (§5.1 neck, §5.3 upscaling) is layer_norm over the channels of a channels-last map: SAM's widths.
TEST_P(SamOps, LayerNorm2dOnChannelsLastMaps) {
    for (auto [pixels, channels] : std::vector<std::pair<int64_t, int64_t>>{{4096, 256}, {1024, 64}, {37, 20}}) {
        StoredWeight w(random_floats(size_t(channels), 57, 0.5f, 1.5f), NC_DTYPE_BF16, 1, channels);
        StoredWeight b(random_floats(size_t(channels), 58), NC_DTYPE_BF16, 1, channels);
        const auto x = random_floats(size_t(pixels * channels), 59, -3.0f, 6.0f);
        auto want = poisoned(x.size()), got = poisoned(x.size());
        ref->layer_norm(x.data(), pixels, w.w, b.w, 1e-6f, want.data());
        cpu->layer_norm(x.data(), pixels, w.w, b.w, 1e-6f, got.data());
        EXPECT_LT(nmse(got, want), 1e-10);
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, SamOps, nc_test::kAllIsas, nc_test::isa_name);

}  // namespace
