// The mask path through the C ABI on a small fixture model (nc_sam_encode_image, nc_sam_decode_masks, the SAM
// fields of nc_model_get_dims): argument checks, agreement with the same components run on the reference ops,
// prompts across passes, concurrent calls. The fixture's window (3) does not divide its grid (4), so windowed
// attention pads.
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "model/sam_decoder.h"
#include "model/sam_encoder.h"
#include "model/sam_prompt.h"
#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"
#include "tests/op_harness.h"

namespace {

nc_config sam_config() {
    nc_config c = nc_test::small_config();
    c.sam_window_size = 3;
    return c;
}

class Sam : public testing::Test {
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

    size_t pixels() const { return size_t(3 * dims.sam_image_size * dims.sam_image_size); }
    size_t embedding() const { return size_t(dims.sam_embed_dim * dims.sam_grid * dims.sam_grid); }
    size_t lowres(int n) const { return size_t(n * dims.sam_mask_size * dims.sam_mask_size); }
    size_t sparse(int n) const { return size_t(n * dims.sam_sparse_tokens * dims.sam_embed_dim); }
    std::vector<float> boxes(int n) const {
        std::vector<float> b(size_t(4 * n));
        for (size_t i = 0; i < size_t(n); ++i) {
            const float x = 0.05f * float(i % 7), y = 0.04f * float(i % 5);
            b[4 * i] = x;
            b[4 * i + 1] = y;
            b[4 * i + 2] = x + 0.5f;
            b[4 * i + 3] = y + 0.6f;
        }
        return b;
    }

    nc_config config = sam_config();
    nc_test::WeightFile file{config, "sam"};
    const char* files[1] = {};
    nc_model* model = nullptr;
    nc_model_dims dims{};
};

TEST_F(Sam, DimsFollowTheConfig) {
    EXPECT_EQ(dims.sam_image_size, 64);
    EXPECT_EQ(dims.sam_grid, 4);
    EXPECT_EQ(dims.sam_embed_dim, 32);
    EXPECT_EQ(dims.sam_mask_size, 16);
    EXPECT_EQ(dims.sam_sparse_tokens, 6);
}

TEST_F(Sam, BadArgumentsAreRefused) {
    auto px = nc_test::random_floats(pixels(), 1);
    std::vector<float> emb(embedding());
    EXPECT_EQ(nc_sam_encode_image(nullptr, px.data(), emb.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_sam_encode_image(model, nullptr, emb.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_sam_encode_image(model, px.data(), nullptr), NC_ERR_INVALID_ARGUMENT);
    px[100] = INFINITY;
    EXPECT_EQ(nc_sam_encode_image(model, px.data(), emb.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("SAM pixel value 100"), std::string::npos) << nc_last_error();

    emb = nc_test::random_floats(embedding(), 2);
    const auto hidden = nc_test::random_floats(size_t(2 * config.hidden_size), 3);
    auto b = boxes(2);
    std::vector<float> iou(2);
    std::vector<uint8_t> masks(2 * 5 * 7);
    auto decode = [&](nc_model* m, const float* e, int32_t n, const float* h, const float* bx, int32_t w, int32_t hgt,
                      float* io) { return nc_sam_decode_masks(m, e, n, h, bx, w, hgt, nullptr, io, masks.data(), nullptr); };
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), b.data(), 7, 5, iou.data()), NC_OK) << nc_last_error();
    EXPECT_EQ(decode(nullptr, emb.data(), 2, hidden.data(), b.data(), 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, nullptr, 2, hidden.data(), b.data(), 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), 0, hidden.data(), b.data(), 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), -1, hidden.data(), b.data(), 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), 2, nullptr, b.data(), 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), nullptr, 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), b.data(), 7, 5, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), b.data(), 0, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), b.data(), 7, -5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), b.data(), 7, 1 << 16, iou.data()), NC_ERR_INVALID_ARGUMENT);
    b[6] = NAN;
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), b.data(), 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("box value 2 of location 1"), std::string::npos) << nc_last_error();
    b = boxes(2);
    emb[5] = NAN;
    EXPECT_EQ(decode(model, emb.data(), 2, hidden.data(), b.data(), 7, 5, iou.data()), NC_ERR_INVALID_ARGUMENT);
}

// The model's SAM (optimized ops) against the same components built on the reference ops: embedding, sparse
// prompt, low-res logits, IoU and the masks of a tall image (the crop is along the columns).
TEST_F(Sam, MatchesTheReferenceOps) {
    const int32_t n = 3, width = 19, height = 30;
    const auto px = nc_test::random_floats(pixels(), 4, -2.0f, 2.5f);
    auto emb = nc_test::poisoned(embedding());
    ASSERT_EQ(nc_sam_encode_image(model, px.data(), emb.data()), NC_OK) << nc_last_error();
    const auto hidden = nc_test::random_floats(size_t(n * config.hidden_size), 5, -2.0f, 2.0f);
    const auto b = boxes(n);
    auto low = nc_test::poisoned(lowres(n)), sp = nc_test::poisoned(sparse(n)), iou = nc_test::poisoned(size_t(n));
    std::vector<uint8_t> masks(size_t(n * width * height), 7);
    ASSERT_EQ(nc_sam_decode_masks(model, emb.data(), n, hidden.data(), b.data(), width, height, low.data(), iou.data(),
                                  masks.data(), sp.data()),
              NC_OK)
        << nc_last_error();

    nc::WeightStore weights(config, {file.path()}, file.refs().data(), int64_t(file.refs().size()));
    nc::SamImageEncoder encoder(config, weights);
    nc::SamPromptEncoder prompt(config, weights);
    nc::SamMaskDecoder decoder(config, weights);
    auto ref = nc::ops::make_reference_ops();
    auto want_emb = nc_test::poisoned(emb.size()), want_sp = nc_test::poisoned(sp.size());
    auto want_low = nc_test::poisoned(low.size()), want_iou = nc_test::poisoned(iou.size());
    encoder.forward(*ref, px.data(), want_emb.data());
    prompt.sparse(*ref, hidden.data(), b.data(), n, want_sp.data());
    decoder.forward(*ref, emb.data(), prompt.dense_pe().data(), prompt.no_mask().data(), want_sp.data(), n,
                    prompt.sparse_tokens(), want_low.data(), want_iou.data());
    std::vector<uint8_t> want_masks(masks.size());
    std::vector<float> work;
    nc::sam_masks_to_image(*ref, low.data(), n, dims.sam_mask_size, dims.sam_image_size, width, height,
                           want_masks.data(), work, false);
    EXPECT_LT(nc_test::nmse(emb, want_emb), 1e-10);
    EXPECT_LT(nc_test::nmse(sp, want_sp), 1e-10);
    EXPECT_LT(nc_test::nmse(low, want_low), 1e-10);
    EXPECT_LT(nc_test::nmse(iou, want_iou), 1e-10);
    size_t differ = 0, set = 0;
    for (size_t i = 0; i < masks.size(); ++i) {
        ASSERT_LE(masks[i], 1);
        differ += masks[i] != want_masks[i];
        set += masks[i];
    }
    EXPECT_LE(differ, masks.size() / 200) << "post-processing in float vs double";
    EXPECT_GT(set, 0u);
    EXPECT_LT(set, masks.size());
}

// Prompts are independent: 9 at once (three passes, the last partial) equal each alone; outputs left NULL are
// not needed for the others.
TEST_F(Sam, PromptsAcrossPassesEqualSinglePrompts) {
    const int32_t n = 9, width = 11, height = 6;
    const auto emb = nc_test::random_floats(embedding(), 6);
    const auto hidden = nc_test::random_floats(size_t(n * config.hidden_size), 7);
    const auto b = boxes(n);
    auto low = nc_test::poisoned(lowres(n)), iou = nc_test::poisoned(size_t(n));
    std::vector<uint8_t> masks(size_t(n * width * height));
    ASSERT_EQ(nc_sam_decode_masks(model, emb.data(), n, hidden.data(), b.data(), width, height, low.data(), iou.data(),
                                  masks.data(), nullptr),
              NC_OK)
        << nc_last_error();
    for (int32_t i = 0; i < n; ++i) {
        auto one = nc_test::poisoned(lowres(1)), one_iou = nc_test::poisoned(1);
        std::vector<uint8_t> one_mask(size_t(width * height));
        ASSERT_EQ(nc_sam_decode_masks(model, emb.data(), 1, hidden.data() + i * config.hidden_size, b.data() + 4 * i,
                                      width, height, one.data(), one_iou.data(), one_mask.data(), nullptr),
                  NC_OK);
        const std::vector<float> part(low.begin() + int64_t(i) * int64_t(lowres(1)), low.begin() + int64_t(i + 1) * int64_t(lowres(1)));
        EXPECT_LT(nc_test::nmse(part, one), 1e-12) << "prompt " << i;
        EXPECT_NEAR(iou[size_t(i)], one_iou[0], 1e-5f) << "prompt " << i;
    }
    auto iou_only = nc_test::poisoned(size_t(n));
    ASSERT_EQ(nc_sam_decode_masks(model, emb.data(), n, hidden.data(), b.data(), width, height, nullptr,
                                  iou_only.data(), nullptr, nullptr),
              NC_OK);
    EXPECT_EQ(iou_only, iou);
}

TEST_F(Sam, ConcurrentCallsAgree) {
    const auto px = nc_test::random_floats(pixels(), 8);
    std::vector<float> want(embedding());
    ASSERT_EQ(nc_sam_encode_image(model, px.data(), want.data()), NC_OK);
    const auto hidden = nc_test::random_floats(size_t(2 * config.hidden_size), 9);
    const auto b = boxes(2);
    std::vector<float> want_iou(2);
    ASSERT_EQ(nc_sam_decode_masks(model, want.data(), 2, hidden.data(), b.data(), 5, 5, nullptr, want_iou.data(),
                                  nullptr, nullptr),
              NC_OK);
    std::vector<std::vector<float>> got(4, std::vector<float>(want.size())), got_iou(4, std::vector<float>(2));
    std::vector<nc_status> status(8);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t) {
        threads.emplace_back([&, t] { status[t] = nc_sam_encode_image(model, px.data(), got[t].data()); });
        threads.emplace_back([&, t] {
            status[4 + t] = nc_sam_decode_masks(model, want.data(), 2, hidden.data(), b.data(), 5, 5, nullptr,
                                                got_iou[t].data(), nullptr, nullptr);
        });
    }
    for (auto& t : threads) t.join();
    for (size_t t = 0; t < got.size(); ++t) {
        EXPECT_EQ(status[t], NC_OK);
        EXPECT_EQ(status[4 + t], NC_OK);
        EXPECT_EQ(got[t], want);
        EXPECT_EQ(got_iou[t], want_iou);
    }
}

}  // namespace
