#include "model/model.h"

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "model/config.h"

namespace nc {

namespace {

const nc_config& checked_config(const nc_model_params& params) {
    if (params.config == nullptr) fail(NC_ERR_INVALID_ARGUMENT, "nc_model_params.config is null");
    validate_config(*params.config);
    return *params.config;
}

std::vector<std::string> checked_files(const nc_model_params& params) {
    if (params.n_files < 0 || (params.n_files > 0 && params.files == nullptr)) {
        fail(NC_ERR_INVALID_ARGUMENT, "nc_model_params.files is null or n_files negative");
    }
    if (params.n_tensors < 0 || (params.n_tensors > 0 && params.tensors == nullptr)) {
        fail(NC_ERR_INVALID_ARGUMENT, "nc_model_params.tensors is null or n_tensors negative");
    }
    std::vector<std::string> files;
    for (int32_t i = 0; i < params.n_files; ++i) {
        if (params.files[i] == nullptr) fail(NC_ERR_INVALID_ARGUMENT, "weight file #" + std::to_string(i) + " is null");
        files.emplace_back(params.files[i]);
    }
    return files;
}

// A backend not compiled in, or a GPU ordinal that does not exist, is refused before any file is mapped.
void check_backend(const nc_model_params& params) {
    if (params.backend != NC_BACKEND_CPU && params.backend != NC_BACKEND_CUDA) {
        fail(NC_ERR_INVALID_ARGUMENT, "unknown backend code " + std::to_string(params.backend));
    }
    const int devices = backend_device_count(params.backend);
    if (params.backend == NC_BACKEND_CUDA && (params.device < 0 || params.device >= devices)) {
        fail(NC_ERR_UNSUPPORTED, "CUDA device " + std::to_string(params.device) + " requested, " +
                                     std::to_string(devices) + " visible");
    }
}

}  // namespace

Model::Model(const nc_model_params& params)
    : config_((check_backend(params), checked_config(params))),
      weights_(config_, checked_files(params), params.tensors, params.n_tensors) {}

nc_memory_report Model::memory(int32_t kv_dtype) const {
    if (!dtype_valid(kv_dtype)) fail(NC_ERR_INVALID_ARGUMENT, "unknown KV dtype code " + std::to_string(kv_dtype));
    nc_memory_report r{};
    r.struct_size = sizeof(r);
    std::array<uint64_t, NC_COMPONENT_COUNT> by_component{};
    weights_.byte_counts(by_component, r.unused_bytes);
    for (int c = 0; c < NC_COMPONENT_COUNT; ++c) {
        r.weight_bytes[c] = by_component[c];
        r.weight_bytes_total += by_component[c];
    }
    r.mapped_bytes = weights_.mapped_bytes();
    const uint64_t head_dim = uint64_t(config_.hidden_size / config_.num_attention_heads);
    // K and V, every layer, every KV head (§9: 0.5 MiB per token for 7B in bf16).
    r.kv_bytes_per_token = 2 * uint64_t(config_.num_hidden_layers) * uint64_t(config_.num_key_value_heads) * head_dim *
                           dtype_size(nc_dtype(kv_dtype));
    return r;
}

}  // namespace nc
