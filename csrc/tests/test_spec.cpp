#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "nextchat.h"

namespace {

std::map<nc_component, int64_t> params_by_component(const std::vector<nc_test::SpecEntry>& spec) {
    std::map<nc_component, int64_t> out;
    for (const auto& e : spec) out[e.component] += e.numel();
    return out;
}

const nc_test::SpecEntry& find(const std::vector<nc_test::SpecEntry>& spec, const std::string& name) {
    for (const auto& e : spec) {
        if (e.name == name) return e;
    }
    throw std::runtime_error("no tensor " + name);
}

// Parameter counts of the release, MODEL_SPEC §7.1 "Size check".
TEST(Spec, SevenBParameterCountsMatchTheRelease) {
    nc_config c{};
    ASSERT_EQ(nc_config_default_7b(&c), NC_OK);
    const auto spec = nc_test::read_spec(c);
    auto by = params_by_component(spec);
    EXPECT_EQ(by[NC_COMPONENT_LLM], 6738456576);
    EXPECT_EQ(by[NC_COMPONENT_PROJECTOR], 20979712);
    EXPECT_EQ(by[NC_COMPONENT_LOC], 8402944 + 8398852);
    EXPECT_EQ(by[NC_COMPONENT_SEG_PROMPT], 20976640);
    // SAM-H has 641,090,608 parameters; the state dict adds the PE buffer pe_layer.positional_encoding_gaussian_matrix
    // [2, 128], which is not a parameter (§5.2).
    EXPECT_EQ(by[NC_COMPONENT_SAM_ENCODER] + by[NC_COMPONENT_SAM_PROMPT] + by[NC_COMPONENT_SAM_DECODER],
              641090608 + 2 * 128);
    // CLIP ViT-L/14-336 vision model: 303.5 M (§7.1).
    EXPECT_NEAR(double(by[NC_COMPONENT_VISION]), 303.5e6, 0.1e6);
    int64_t total = 0;
    for (const auto& [component, n] : by) total += n;
    EXPECT_NEAR(double(total), 7.742e9, 0.001e9);
}

TEST(Spec, SevenBShapesFromTheSpecTable) {
    nc_config c{};
    ASSERT_EQ(nc_config_default_7b(&c), NC_OK);
    const auto spec = nc_test::read_spec(c);
    using S = std::vector<int64_t>;
    EXPECT_EQ(find(spec, "model.embed_tokens.weight").shape, (S{32005, 4096}));
    EXPECT_EQ(find(spec, "model.layers.31.mlp.down_proj.weight").shape, (S{4096, 11008}));
    EXPECT_EQ(find(spec, "model.mm_projector.0.weight").shape, (S{4096, 1024}));
    EXPECT_EQ(find(spec, "loc_decoder.2.weight").shape, (S{4, 2048}));
    EXPECT_EQ(find(spec, "seg_prompt_mlp.2.weight").shape, (S{1024, 4096}));
    EXPECT_EQ(find(spec, "model.vision_tower.vision_model.embeddings.position_embedding.weight").shape,
              (S{577, 1024}));
    EXPECT_EQ(find(spec, "model.vision_tower.vision_model.embeddings.patch_embedding.weight").shape,
              (S{1024, 3, 14, 14}));
    EXPECT_EQ(find(spec, "sam.model.image_encoder.pos_embed").shape, (S{1, 64, 64, 1280}));
    EXPECT_EQ(find(spec, "sam.model.image_encoder.blocks.6.attn.rel_pos_h").shape, (S{27, 80}));
    for (int global : {7, 15, 23, 31}) {
        EXPECT_EQ(find(spec, "sam.model.image_encoder.blocks." + std::to_string(global) + ".attn.rel_pos_w").shape,
                  (S{127, 80}));
    }
    EXPECT_EQ(find(spec, "sam.model.image_encoder.neck.2.weight").shape, (S{256, 256, 3, 3}));
    EXPECT_EQ(find(spec, "sam.model.mask_decoder.transformer.layers.1.cross_attn_image_to_token.q_proj.weight").shape,
              (S{128, 256}));
    EXPECT_EQ(find(spec, "sam.model.mask_decoder.transformer.final_attn_token_to_image.out_proj.weight").shape,
              (S{256, 128}));
    EXPECT_EQ(find(spec, "sam.model.mask_decoder.output_upscaling.0.weight").shape, (S{256, 64, 2, 2}));
    EXPECT_EQ(find(spec, "sam.model.mask_decoder.output_upscaling.3.weight").shape, (S{64, 32, 2, 2}));
    EXPECT_EQ(find(spec, "sam.model.mask_decoder.output_hypernetworks_mlps.3.layers.2.weight").shape, (S{32, 256}));
    EXPECT_EQ(find(spec, "sam.model.mask_decoder.iou_prediction_head.layers.2.weight").shape, (S{4, 256}));
    EXPECT_EQ(find(spec, "sam.model.prompt_encoder.mask_downscaling.6.weight").shape, (S{256, 16, 1, 1}));
}

// What the engine never reads (§1.2 layer 24 and post_layernorm, §5.2 mask branch and point embeddings,
// §5.3 hypernetworks of the discarded multimask outputs) is marked unused, and nothing else is.
TEST(Spec, UnusedTensorsAreExactlyThoseTheModelNeverReads) {
    nc_config c{};
    ASSERT_EQ(nc_config_default_7b(&c), NC_OK);
    std::set<std::string> unused;
    for (const auto& e : nc_test::read_spec(c)) {
        if (e.role == NC_TENSOR_UNUSED) unused.insert(e.name);
    }
    for (const auto& name : unused) {
        const bool expected = name.find("vision_model.encoder.layers.23.") != std::string::npos ||
                              name.find("post_layernorm") != std::string::npos ||
                              name.find("mask_downscaling") != std::string::npos ||
                              name.find("point_embeddings.0.") != std::string::npos ||
                              name.find("point_embeddings.1.") != std::string::npos ||
                              name.find("not_a_point_embed") != std::string::npos ||
                              (name.find("output_hypernetworks_mlps.") != std::string::npos &&
                               name.find("output_hypernetworks_mlps.0.") == std::string::npos);
        EXPECT_TRUE(expected) << name;
    }
    EXPECT_EQ(unused.count("model.vision_tower.vision_model.encoder.layers.23.mlp.fc2.bias"), 1u);
    EXPECT_EQ(unused.count("model.vision_tower.vision_model.encoder.layers.22.mlp.fc2.bias"), 0u);
}

TEST(Spec, NamesAreUniqueAndShapesPositive) {
    for (const nc_config& c : {nc_test::small_config()}) {
        std::set<std::string> names;
        for (const auto& e : nc_test::read_spec(c)) {
            EXPECT_TRUE(names.insert(e.name).second) << "duplicate " << e.name;
            for (int64_t d : e.shape) EXPECT_GT(d, 0) << e.name;
        }
    }
}

TEST(Spec, KindsAgreeWithShapesAndNames) {
    nc_config c{};
    ASSERT_EQ(nc_config_default_7b(&c), NC_OK);
    for (const auto& e : nc_test::read_spec(c)) {
        switch (e.kind) {
            case NC_KIND_MATRIX: EXPECT_GE(e.shape.size(), 2u) << e.name; break;
            case NC_KIND_BIAS:
                EXPECT_EQ(e.shape.size(), 1u) << e.name;
                EXPECT_NE(e.name.find(".bias"), std::string::npos) << e.name;
                break;
            case NC_KIND_NORM_SCALE:
            case NC_KIND_NORM_SHIFT: EXPECT_EQ(e.shape.size(), 1u) << e.name; break;
            case NC_KIND_REL_POS: EXPECT_NE(e.name.find("rel_pos"), std::string::npos) << e.name; break;
            case NC_KIND_GAUSSIAN: EXPECT_NE(e.name.find("gaussian"), std::string::npos) << e.name; break;
            case NC_KIND_EMBEDDING: break;
        }
    }
    const auto spec = nc_test::read_spec(c);
    EXPECT_EQ(find(spec, "sam.model.image_encoder.neck.3.weight").kind, NC_KIND_NORM_SCALE);  // LayerNorm2d
    EXPECT_EQ(find(spec, "model.norm.weight").kind, NC_KIND_NORM_SCALE);
    EXPECT_EQ(find(spec, "sam.model.mask_decoder.mask_tokens.weight").kind, NC_KIND_EMBEDDING);
    EXPECT_EQ(find(spec, "lm_head.weight").kind, NC_KIND_MATRIX);
}

TEST(Spec, GqaShrinksKeyAndValueProjections) {
    nc_config c = nc_test::small_config();
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    const auto spec = nc_test::read_spec(c);
    EXPECT_EQ(find(spec, "model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{12, 24}));
    EXPECT_EQ(find(spec, "model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{24, 24}));
}

TEST(Spec, GetRejectsBadIndexAndNulls) {
    const nc_config c = nc_test::small_config();
    nc_spec* spec = nullptr;
    ASSERT_EQ(nc_spec_create(&c, &spec), NC_OK);
    nc_tensor_spec t{};
    EXPECT_EQ(nc_spec_get(spec, -1, &t), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_spec_get(spec, nc_spec_count(spec), &t), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("out of range"), std::string::npos);
    EXPECT_EQ(nc_spec_get(spec, 0, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_spec_get(nullptr, 0, &t), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_spec_count(nullptr), 0);
    nc_spec_free(spec);
    EXPECT_EQ(nc_spec_create(&c, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_spec_create(nullptr, &spec), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(spec, nullptr);  // out is cleared on failure
    nc_spec_free(nullptr);
}

}  // namespace
