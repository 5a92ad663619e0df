#include <string>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "nextchat.h"

namespace {

TEST(Config, Default7bIsValidAndMatchesTheRelease) {
    nc_config c{};
    ASSERT_EQ(nc_config_default_7b(&c), NC_OK);
    EXPECT_EQ(nc_config_validate(&c), NC_OK) << nc_last_error();
    EXPECT_EQ(c.vocab_size, 32005);
    EXPECT_EQ(c.hidden_size, 4096);
    EXPECT_EQ(c.vision_select_layer, -2);
    EXPECT_EQ(c.sam_num_global_attn, 4);
    EXPECT_EQ(c.sam_global_attn_indexes[3], 31);
}

struct BadConfigCase {
    const char* name;
    void (*mutate)(nc_config&);
    const char* message_fragment;
};

void PrintTo(const BadConfigCase& c, std::ostream* os) { *os << c.name; }

class BadConfig : public testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfig, IsRejectedNamingTheField) {
    nc_config c = nc_test::small_config();
    GetParam().mutate(c);
    EXPECT_EQ(nc_config_validate(&c), NC_ERR_CONFIG);
    EXPECT_NE(std::string(nc_last_error()).find(GetParam().message_fragment), std::string::npos) << nc_last_error();
    nc_spec* spec = nullptr;
    EXPECT_EQ(nc_spec_create(&c, &spec), NC_ERR_CONFIG);
    EXPECT_EQ(spec, nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfig,
    testing::Values(
        BadConfigCase{"zero_hidden", [](nc_config& c) { c.hidden_size = 0; }, "hidden_size"},
        BadConfigCase{"heads_not_dividing", [](nc_config& c) { c.num_attention_heads = 5; }, "num_attention_heads"},
        BadConfigCase{"odd_head_dim", [](nc_config& c) { c.hidden_size = 9; }, "head_dim"},
        BadConfigCase{"kv_heads_not_dividing", [](nc_config& c) { c.num_key_value_heads = 2; }, "num_key_value_heads"},
        BadConfigCase{"nan_eps", [](nc_config& c) { c.rms_norm_eps = 0.0f / 0.0f; }, "rms_norm_eps"},
        BadConfigCase{"patch_not_dividing", [](nc_config& c) { c.vision_patch_size = 13; }, "patch_size"},
        BadConfigCase{"select_embeddings", [](nc_config& c) { c.vision_select_layer = -4; }, "embeddings"},
        BadConfigCase{"select_out_of_range", [](nc_config& c) { c.vision_select_layer = -5; }, "select_layer"},
        BadConfigCase{"global_index_out_of_range", [](nc_config& c) { c.sam_global_attn_indexes[0] = 3; },
                      "global_attn_indexes"},
        BadConfigCase{"global_not_increasing",
                      [](nc_config& c) {
                          c.sam_num_global_attn = 2;
                          c.sam_global_attn_indexes[0] = 1;
                          c.sam_global_attn_indexes[1] = 1;
                      },
                      "increasing"},
        BadConfigCase{"too_many_global", [](nc_config& c) { c.sam_num_global_attn = NC_MAX_GLOBAL_ATTN + 1; },
                      "global_attn_indexes count"},
        BadConfigCase{"window_beyond_grid", [](nc_config& c) { c.sam_window_size = 5; }, "window_size"},
        BadConfigCase{"prompt_dim_not_multiple_of_8", [](nc_config& c) { c.sam_prompt_embed_dim = 36; },
                      "prompt_embed_dim"},
        BadConfigCase{"huge_vocab", [](nc_config& c) { c.vocab_size = 1 << 30; }, "vocab_size"}),
    [](const testing::TestParamInfo<BadConfigCase>& info) { return info.param.name; });

TEST(Config, StructSizeTooSmallIsAnArgumentError) {
    nc_config c = nc_test::small_config();
    c.struct_size = 8;
    EXPECT_EQ(nc_config_validate(&c), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("struct_size"), std::string::npos);
}

TEST(Config, NullPointersAreErrors) {
    EXPECT_EQ(nc_config_validate(nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_config_default_7b(nullptr), NC_ERR_INVALID_ARGUMENT);
}

}  // namespace
