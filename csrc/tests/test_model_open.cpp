#include <string>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "nextchat.h"

namespace {

using nc_test::WeightFile;

class ModelOpen : public testing::Test {
  protected:
    nc_config config = nc_test::small_config();
    WeightFile file{config, testing::UnitTest::GetInstance()->current_test_info()->name()};
    const char* files[1] = {nullptr};

    nc_status open(nc_model** model) {
        files[0] = file.path().c_str();
        const nc_model_params p = nc_test::cpu_params(config, files, 1, file.refs());
        return nc_model_open(&p, model);
    }

    // Opens, expects `status`, and returns the error text.
    std::string open_fails(nc_status status) {
        nc_model* model = reinterpret_cast<nc_model*>(0x1);  // poisoned: must be cleared on failure
        EXPECT_EQ(open(&model), status) << nc_last_error();
        EXPECT_EQ(model, nullptr);
        return nc_last_error();
    }
};

TEST_F(ModelOpen, GoodWeightsOpenAndReportMemory) {
    nc_model* model = nullptr;
    ASSERT_EQ(open(&model), NC_OK) << nc_last_error();
    nc_memory_report r{};
    ASSERT_EQ(nc_model_memory(model, NC_DTYPE_BF16, &r), NC_OK);
    uint64_t required = 0, unused = 0;
    uint64_t by_component[NC_COMPONENT_COUNT] = {};
    for (const auto& e : file.entries()) {
        const uint64_t bytes = uint64_t(e.numel()) * 4;
        if (e.role == NC_TENSOR_REQUIRED) {
            required += bytes;
            by_component[e.component] += bytes;
        } else {
            unused += bytes;
        }
    }
    EXPECT_EQ(r.weight_bytes_total, required);
    EXPECT_EQ(r.unused_bytes, unused);
    for (int c = 0; c < NC_COMPONENT_COUNT; ++c) EXPECT_EQ(r.weight_bytes[c], by_component[c]) << c;
    EXPECT_EQ(r.mapped_bytes, file.size());
    // 2 (K, V) × layers × kv_heads × head_dim × 2 bytes.
    EXPECT_EQ(r.kv_bytes_per_token, uint64_t(2 * config.num_hidden_layers * config.hidden_size * 2));
    ASSERT_EQ(nc_model_memory(model, NC_DTYPE_F32, &r), NC_OK);
    EXPECT_EQ(r.kv_bytes_per_token, uint64_t(2 * config.num_hidden_layers * config.hidden_size * 4));
    EXPECT_EQ(nc_model_memory(model, 7, &r), NC_ERR_INVALID_ARGUMENT);
    nc_model_free(model);
}

TEST_F(ModelOpen, UnusedTensorsMayBeAbsent) {
    file.erase("sam.model.prompt_encoder.mask_downscaling.6.weight");
    file.erase("model.vision_tower.vision_model.post_layernorm.bias");
    nc_model* model = nullptr;
    ASSERT_EQ(open(&model), NC_OK) << nc_last_error();
    nc_model_free(model);
}

TEST_F(ModelOpen, ExtraTensorsAreIgnored) {
    nc_tensor_ref extra = file.refs()[0];
    extra.name = "model.layers.0.self_attn.rotary_emb.inv_freq";
    file.refs().push_back(extra);
    nc_model* model = nullptr;
    ASSERT_EQ(open(&model), NC_OK) << nc_last_error();
    nc_model_free(model);
}

TEST_F(ModelOpen, MissingTensorIsNamedWithItsExpectedShape) {
    file.erase("loc_decoder.2.weight");
    const std::string err = open_fails(NC_ERR_MISSING);
    EXPECT_NE(err.find("loc_decoder.2.weight: missing (expected shape [4, 10])"), std::string::npos) << err;
}

TEST_F(ModelOpen, WrongShapeNamesBothShapes) {
    auto& ref = file.refs()[file.index_of("model.layers.1.mlp.up_proj.weight")];
    ref.shape[0] = 24;
    ref.shape[1] = 40;
    const std::string err = open_fails(NC_ERR_SHAPE);
    EXPECT_NE(err.find("model.layers.1.mlp.up_proj.weight: shape [24, 40], config implies [40, 24]"), std::string::npos)
        << err;
}

TEST_F(ModelOpen, TruncatedFileIsAFormatError) {
    ASSERT_EQ(::truncate(file.path().c_str(), off_t(file.size() - 1)), 0);
    const std::string err = open_fails(NC_ERR_FORMAT);
    EXPECT_NE(err.find("lie outside"), std::string::npos) << err;
    EXPECT_NE(err.find("truncated"), std::string::npos) << err;
}

TEST_F(ModelOpen, ByteSizeNotMatchingShapeIsAFormatError) {
    file.refs()[3].nbytes -= 4;
    const std::string err = open_fails(NC_ERR_FORMAT);
    EXPECT_NE(err.find("does not match its byte size"), std::string::npos) << err;
}

TEST_F(ModelOpen, OffsetOverflowIsCaught) {
    file.refs()[5].offset = UINT64_MAX - 2;
    const std::string err = open_fails(NC_ERR_FORMAT);
    EXPECT_NE(err.find("lie outside"), std::string::npos) << err;
}

TEST_F(ModelOpen, HugeShapeIsCaughtWithoutOverflow) {
    auto& ref = file.refs()[0];
    ref.shape[0] = INT64_MAX / 2;
    ref.shape[1] = 4;
    EXPECT_NE(open_fails(NC_ERR_FORMAT).find("does not match its byte size"), std::string::npos);
}

TEST_F(ModelOpen, NegativeDimensionIsCaught) {
    file.refs()[0].shape[0] = -37;
    open_fails(NC_ERR_FORMAT);
}

TEST_F(ModelOpen, UnsupportedDtypeAndDimsAreCaught) {
    file.refs()[0].dtype = 42;
    file.refs()[1].ndim = 9;
    const std::string err = open_fails(NC_ERR_DTYPE);
    EXPECT_NE(err.find("unsupported dtype code 42"), std::string::npos) << err;
    EXPECT_NE(err.find("9 dimensions"), std::string::npos) << err;
}

TEST_F(ModelOpen, DuplicateAndBadFileIndexAreCaught) {
    file.refs().push_back(file.refs()[0]);
    file.refs()[2].file_index = 1;
    const std::string err = open_fails(NC_ERR_FORMAT);
    EXPECT_NE(err.find("given more than once"), std::string::npos) << err;
    EXPECT_NE(err.find("file index 1 out of range"), std::string::npos) << err;
}

TEST_F(ModelOpen, ManyProblemsAreAllCountedButTheListIsBounded) {
    for (auto& ref : file.refs()) ref.nbytes += 1;
    const std::string err = open_fails(NC_ERR_FORMAT);
    EXPECT_NE(err.find(std::to_string(file.refs().size()) + " problems"), std::string::npos) << err;
    EXPECT_NE(err.find("more"), std::string::npos) << err;
}

TEST_F(ModelOpen, MissingFileIsAnIoErrorNamingThePath) {
    files[0] = "/nonexistent/nextchat/weights.safetensors";
    const nc_model_params p = nc_test::cpu_params(config, files, 1, file.refs());
    nc_model* model = nullptr;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_IO);
    EXPECT_NE(std::string(nc_last_error()).find("/nonexistent/nextchat/weights.safetensors"), std::string::npos);
}

TEST_F(ModelOpen, DirectoryIsNotAWeightFile) {
    files[0] = "/tmp";
    const nc_model_params p = nc_test::cpu_params(config, files, 1, file.refs());
    nc_model* model = nullptr;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_IO);
}

TEST_F(ModelOpen, InvalidConfigIsRejectedBeforeMapping) {
    config.hidden_size = 7;
    open_fails(NC_ERR_CONFIG);
}

TEST_F(ModelOpen, BadParamsAreArgumentErrors) {
    nc_model* model = nullptr;
    EXPECT_EQ(nc_model_open(nullptr, &model), NC_ERR_INVALID_ARGUMENT);
    nc_model_params p = nc_test::cpu_params(config, files, 1, file.refs());
    EXPECT_EQ(nc_model_open(&p, nullptr), NC_ERR_INVALID_ARGUMENT);
    p.struct_size = 4;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_INVALID_ARGUMENT);
    p = nc_test::cpu_params(config, nullptr, 1, file.refs());
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_INVALID_ARGUMENT);
    p = nc_test::cpu_params(config, files, 1, file.refs());
    p.config = nullptr;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_INVALID_ARGUMENT);
    p = nc_test::cpu_params(config, files, 1, file.refs());
    p.tensors = nullptr;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_INVALID_ARGUMENT);
    files[0] = file.path().c_str();
    p = nc_test::cpu_params(config, files, 1, file.refs());
    p.llm_weights = 7;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("llm_weights"), std::string::npos);
    p.llm_weights = NC_LLM_WEIGHTS_COMPACT;  // the fixture's weights are float32: nothing to re-code is an error
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_DTYPE);
    EXPECT_NE(std::string(nc_last_error()).find("model.layers.0.self_attn.q_proj.weight is F32"), std::string::npos)
        << nc_last_error();
    p = nc_test::cpu_params(config, files, 1, file.refs());
    file.refs()[7].name = nullptr;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("tensor #7 has no name"), std::string::npos);
    p.backend = 99;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(model, nullptr);
    nc_model_free(nullptr);
}

TEST_F(ModelOpen, CudaWithoutDeviceIsUnsupported) {
    files[0] = file.path().c_str();
    nc_model_params p = nc_test::cpu_params(config, files, 1, file.refs());
    p.backend = NC_BACKEND_CUDA;
    p.device = 0;
    int32_t devices = 0;
    if (nc_backend_compiled(NC_BACKEND_CUDA) && nc_backend_device_count(NC_BACKEND_CUDA, &devices) == NC_OK &&
        devices > 0) {
        p.device = devices;  // one past the last device
    }
    nc_model* model = nullptr;
    EXPECT_EQ(nc_model_open(&p, &model), NC_ERR_UNSUPPORTED);
    EXPECT_EQ(model, nullptr);
}

}  // namespace
