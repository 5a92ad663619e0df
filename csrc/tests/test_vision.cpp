// The image path through the C ABI on the small fixture model (nc_model_get_dims, nc_encode_images): argument
// checks, agreement with the same tower run on the reference ops, batching across passes, concurrent calls; and
// the machine probes.
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "model/projector.h"
#include "model/vision.h"
#include "model/weights.h"
#include "nextchat.h"
#include "ops/cpu_simd.h"
#include "ops/ops.h"
#include "runtime/probe.h"
#include "tests/op_harness.h"

namespace {

class Vision : public testing::Test {
  protected:
    void SetUp() override {
        files[0] = file.path().c_str();
        nc_model_params p = nc_test::cpu_params(config, files, 1, file.refs());
        p.threads = 3;  // more than the cores: uneven splits
        ASSERT_EQ(nc_model_open(&p, &model), NC_OK) << nc_last_error();
        dims.struct_size = sizeof(dims);
        ASSERT_EQ(nc_model_get_dims(model, &dims), NC_OK) << nc_last_error();
    }
    void TearDown() override { nc_model_free(model); }

    int64_t pixels_per_image() const { return 3 * int64_t(dims.image_size) * dims.image_size; }
    int64_t projected_per_image() const { return int64_t(dims.image_tokens) * dims.hidden_size; }
    int64_t clip_per_image() const { return int64_t(dims.image_tokens) * dims.vision_hidden_size; }

    nc_config config = nc_test::small_config();
    nc_test::WeightFile file{config, "vision"};
    const char* files[1] = {};
    nc_model* model = nullptr;
    nc_model_dims dims{};
};

TEST_F(Vision, DimsFollowTheConfig) {
    EXPECT_EQ(dims.struct_size, sizeof(nc_model_dims));
    EXPECT_EQ(dims.image_size, 28);
    EXPECT_EQ(dims.patch_size, 14);
    EXPECT_EQ(dims.image_tokens, 4);
    EXPECT_EQ(dims.vision_hidden_size, 12);
    EXPECT_EQ(dims.vision_layers, 2);  // hidden_states[-2] of 3 layers (§1.2)
    EXPECT_EQ(dims.hidden_size, 24);
    nc_model_dims small{};
    small.struct_size = sizeof(small) - 1;
    EXPECT_EQ(nc_model_get_dims(model, &small), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_model_get_dims(nullptr, &small), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_model_get_dims(model, nullptr), NC_ERR_INVALID_ARGUMENT);
}

TEST_F(Vision, BadArgumentsAreRefused) {
    std::vector<float> pixels = nc_test::random_floats(size_t(pixels_per_image()), 1);
    std::vector<float> out(static_cast<size_t>(projected_per_image()));
    EXPECT_EQ(nc_encode_images(nullptr, pixels.data(), 1, out.data(), nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_encode_images(model, nullptr, 1, out.data(), nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_encode_images(model, pixels.data(), 1, nullptr, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_encode_images(model, pixels.data(), 0, out.data(), nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_encode_images(model, pixels.data(), -3, out.data(), nullptr), NC_ERR_INVALID_ARGUMENT);
    pixels[77] = NAN;
    EXPECT_EQ(nc_encode_images(model, pixels.data(), 1, out.data(), nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("pixel 77 of image 0"), std::string::npos) << nc_last_error();
}

// The model's tower (optimized ops) against the same tower built on the reference ops, and the optional CLIP
// output against the projected one's input.
TEST_F(Vision, MatchesTheReferenceOps) {
    const int64_t n = 2;
    const auto pixels = nc_test::random_floats(size_t(n * pixels_per_image()), 2, -1.8f, 2.1f);
    auto projected = nc_test::poisoned(size_t(n * projected_per_image()));
    auto clip = nc_test::poisoned(size_t(n * clip_per_image()));
    ASSERT_EQ(nc_encode_images(model, pixels.data(), int32_t(n), projected.data(), clip.data()), NC_OK)
        << nc_last_error();

    nc::WeightStore weights(config, {file.path()}, file.refs().data(), int64_t(file.refs().size()));
    nc::VisionTower tower(config, weights);
    nc::Projector projector(config, weights);
    auto ref = nc::ops::make_reference_ops();
    auto want_clip = nc_test::poisoned(clip.size()), want_projected = nc_test::poisoned(projected.size());
    tower.forward(*ref, pixels.data(), n, want_clip.data());
    projector.forward(*ref, want_clip.data(), n * dims.image_tokens, want_projected.data());
    EXPECT_LT(nc_test::nmse(clip, want_clip), 1e-10);
    EXPECT_LT(nc_test::nmse(projected, want_projected), 1e-10);
}

// Images are independent: 9 at once (five passes, the last one partial) match each alone, without the CLIP
// output too — to rounding, since the rows per pass choose linear's kernel.
TEST_F(Vision, BatchesAcrossPassesLikeSingleImages) {
    const int64_t n = 9;
    const auto pixels = nc_test::random_floats(size_t(n * pixels_per_image()), 3, -1.8f, 2.1f);
    auto all = nc_test::poisoned(size_t(n * projected_per_image()));
    ASSERT_EQ(nc_encode_images(model, pixels.data(), int32_t(n), all.data(), nullptr), NC_OK) << nc_last_error();
    for (int64_t i = 0; i < n; ++i) {
        auto one = nc_test::poisoned(size_t(projected_per_image()));
        auto clip = nc_test::poisoned(size_t(clip_per_image()));
        ASSERT_EQ(nc_encode_images(model, pixels.data() + i * pixels_per_image(), 1, one.data(), clip.data()), NC_OK);
        const auto first = all.begin() + i * projected_per_image();
        const std::vector<float> part(first, first + projected_per_image());
        EXPECT_LT(nc_test::nmse(part, one), 1e-10) << "image " << i;
    }
}

TEST_F(Vision, ConcurrentCallsAgree) {
    const auto pixels = nc_test::random_floats(size_t(3 * pixels_per_image()), 4, -1.8f, 2.1f);
    std::vector<float> want(static_cast<size_t>(3 * projected_per_image()));
    ASSERT_EQ(nc_encode_images(model, pixels.data(), 3, want.data(), nullptr), NC_OK);
    std::vector<std::vector<float>> got(4, std::vector<float>(want.size()));
    std::vector<nc_status> status(4);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t) {
        threads.emplace_back([&, t] { status[t] = nc_encode_images(model, pixels.data(), 3, got[t].data(), nullptr); });
    }
    for (auto& t : threads) t.join();
    for (size_t t = 0; t < got.size(); ++t) {
        EXPECT_EQ(status[t], NC_OK);
        EXPECT_EQ(got[t], want);
    }
}

TEST(Probes, MeasureSomethingAndCheckArguments) {
    double v = -1;
    ASSERT_EQ(nc_probe_fma_peak(1, 0.05, &v), NC_OK) << nc_last_error();
    EXPECT_GT(v, 0.1);
    EXPECT_GT(nc::probe_read_bandwidth(2, 0.02, size_t(8) << 20), 0.01);  // a small buffer: the code path only
    EXPECT_EQ(nc_probe_fma_peak(-1, 0.05, &v), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(v, 0.0);
    EXPECT_EQ(nc_probe_fma_peak(1025, 0.05, &v), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_fma_peak(1, 0.0, &v), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_fma_peak(1, NAN, &v), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_fma_peak(1, 61.0, &v), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_fma_peak(1, 0.05, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_read_bandwidth(1, -1.0, &v), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_read_bandwidth(1, 0.05, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_amx_peak(0, 0.05, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_probe_amx_peak(-1, 0.05, &v), NC_ERR_INVALID_ARGUMENT);
}

// The tile probe measures where the kernels use the tiles (and beats the vector units there), and says 0 elsewhere.
TEST(Probes, AmxPeakFollowsTheKernels) {
    double fma = 0, amx = -1;
    ASSERT_EQ(nc_probe_fma_peak(1, 0.05, &fma), NC_OK) << nc_last_error();
    ASSERT_EQ(nc_probe_amx_peak(1, 0.05, &amx), NC_OK) << nc_last_error();
    if (nc::ops::cpu_has_amx()) {
        EXPECT_GT(amx, fma);
    } else {
        EXPECT_EQ(amx, 0.0);
    }
    nc::ops::limit_isa(nc::ops::Isa::Avx512);
    EXPECT_EQ(nc::probe_amx_peak(1, 0.01), 0.0) << "capped below the tiles";
    nc::ops::limit_isa(nc::ops::Isa::Amx);
}

}  // namespace
