#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "nextchat.h"

namespace {

TEST(CApi, VersionsAreConsistent) {
    EXPECT_EQ(nc_abi_version(), NC_ABI_VERSION);
    EXPECT_STRNE(nc_version(), "");
}

TEST(CApi, StatusAndComponentNames) {
    EXPECT_STREQ(nc_status_name(NC_OK), "NC_OK");
    EXPECT_STREQ(nc_status_name(NC_ERR_SHAPE), "NC_ERR_SHAPE");
    EXPECT_STREQ(nc_status_name(1234), "NC_ERR_UNKNOWN");
    EXPECT_STREQ(nc_component_name(NC_COMPONENT_SAM_DECODER), "sam_decoder");
    EXPECT_STREQ(nc_component_name(NC_COMPONENT_COUNT), "");
}

TEST(CApi, CpuBackendIsAlwaysThere) {
    EXPECT_EQ(nc_backend_compiled(NC_BACKEND_CPU), 1);
    int32_t n = 0;
    ASSERT_EQ(nc_backend_device_count(NC_BACKEND_CPU, &n), NC_OK);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(nc_backend_device_count(NC_BACKEND_CPU, nullptr), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_backend_compiled(77), 0);
    EXPECT_EQ(nc_backend_device_count(77, &n), NC_ERR_UNSUPPORTED);
}

TEST(CApi, CudaDeviceCountNeverFailsWhenCompiled) {
    int32_t n = -1;
    const nc_status s = nc_backend_device_count(NC_BACKEND_CUDA, &n);
    if (nc_backend_compiled(NC_BACKEND_CUDA)) {
        EXPECT_EQ(s, NC_OK) << nc_last_error();
        EXPECT_GE(n, 0);
    } else {
        EXPECT_EQ(s, NC_ERR_UNSUPPORTED);
        EXPECT_NE(std::string(nc_last_error()).find("without CUDA"), std::string::npos);
    }
}

// nc_sampling_check refuses what nc_seq_create would, naming the field, and never crashes on a null or old struct.
TEST(CApi, SamplingCheck) {
    nc_sampling ok{sizeof(nc_sampling), 0.7f, 5, 0.9f, 1.1f, 42};
    EXPECT_EQ(nc_sampling_check(&ok), NC_OK);
    nc_sampling bad = ok;
    bad.top_p = 0.0f;
    EXPECT_EQ(nc_sampling_check(&bad), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("top_p"), std::string::npos) << nc_last_error();
    bad = ok;
    bad.temperature = -1.0f;
    EXPECT_EQ(nc_sampling_check(&bad), NC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(nc_last_error()).find("temperature"), std::string::npos) << nc_last_error();
    bad = ok;
    bad.struct_size = 4;
    EXPECT_EQ(nc_sampling_check(&bad), NC_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(nc_sampling_check(nullptr), NC_ERR_INVALID_ARGUMENT);
}

TEST(CApi, LastErrorIsPerThread) {
    EXPECT_EQ(nc_config_validate(nullptr), NC_ERR_INVALID_ARGUMENT);
    const std::string mine = nc_last_error();
    std::string theirs = "unset";
    std::thread([&] { theirs = nc_last_error(); }).join();
    EXPECT_EQ(theirs, "");
    EXPECT_EQ(mine, nc_last_error());
    EXPECT_NE(mine.find("config is null"), std::string::npos) << mine;
}

}  // namespace
