// The C ABI (nextchat.h): argument checks, and the one place where C++ exceptions become status codes.
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "backend/backend.h"
#include "core/error.h"
#include "model/config.h"
#include "model/model.h"
#include "model/spec.h"
#include "runtime/probe.h"
#include "runtime/sampler.h"
#include "runtime/sequence.h"
#include "nextchat.h"

struct nc_spec {
    std::vector<nc::TensorSpec> tensors;
};

struct nc_model {
    explicit nc_model(const nc_model_params& params) : model(params) {}
    nc::Model model;
};

struct nc_cache {
    nc_model* owner;
    std::shared_ptr<nc::KVCache> cache;
};

struct nc_seq {
    template <class... Args>
    explicit nc_seq(Args&&... args) : seq(std::forward<Args>(args)...) {}
    nc::Sequence seq;
};

namespace {

thread_local std::string last_error;

nc_status record(nc_status status, const char* message) noexcept {
    try {
        last_error = message;
    } catch (...) {
        last_error.clear();  // out of memory while copying the message: the status still tells what happened
    }
    return status;
}

// Runs `body`, mapping every exception to a status and this thread's last error. Nothing escapes.
template <class Body>
nc_status guarded(Body&& body) noexcept {
    try {
        body();
        return NC_OK;
    } catch (const nc::Error& e) {
        return record(e.status(), e.what());
    } catch (const std::bad_alloc&) {
        return record(NC_ERR_OUT_OF_MEMORY, "out of host memory");
    } catch (const std::exception& e) {
        return record(NC_ERR_INTERNAL, e.what());
    } catch (...) {
        return record(NC_ERR_INTERNAL, "unknown internal error");
    }
}

template <class T>
void require_out(T* out, const char* what) {
    if (out == nullptr) nc::fail(NC_ERR_INVALID_ARGUMENT, std::string(what) + " is null");
}

void require_struct(size_t struct_size, size_t needed, const char* what) {
    if (struct_size < needed) {
        nc::fail(NC_ERR_INVALID_ARGUMENT, std::string(what) + ".struct_size is " + std::to_string(struct_size) +
                                              ", this library needs " + std::to_string(needed));
    }
}

// Arguments of the machine probes.
void check_probe(int32_t threads, double seconds) {
    if (threads < 0 || threads > 1024) {
        nc::fail(NC_ERR_INVALID_ARGUMENT, "threads " + std::to_string(threads) + " out of range [0, 1024]");
    }
    if (!(seconds > 0.0 && seconds <= 60.0)) {
        nc::fail(NC_ERR_INVALID_ARGUMENT, "seconds " + std::to_string(seconds) + " out of range (0, 60]");
    }
}

// A sequence's sampling settings, checked.
nc::SamplingParams sampling_params(const nc_sampling* sampling) {
    require_out(sampling, "sampling");
    require_struct(sampling->struct_size, sizeof(nc_sampling), "nc_sampling");
    const nc::SamplingParams p{sampling->temperature, sampling->top_k, sampling->top_p, sampling->repetition_penalty,
                               sampling->seed};
    nc::validate_sampling(p);
    return p;
}

}  // namespace

extern "C" {

int32_t nc_abi_version(void) { return NC_ABI_VERSION; }

const char* nc_version(void) { return NEXTCHAT_VERSION; }

const char* nc_last_error(void) { return last_error.c_str(); }

const char* nc_status_name(int32_t status) {
    switch (status) {
        case NC_OK: return "NC_OK";
        case NC_ERR_INVALID_ARGUMENT: return "NC_ERR_INVALID_ARGUMENT";
        case NC_ERR_IO: return "NC_ERR_IO";
        case NC_ERR_FORMAT: return "NC_ERR_FORMAT";
        case NC_ERR_SHAPE: return "NC_ERR_SHAPE";
        case NC_ERR_DTYPE: return "NC_ERR_DTYPE";
        case NC_ERR_MISSING: return "NC_ERR_MISSING";
        case NC_ERR_CONFIG: return "NC_ERR_CONFIG";
        case NC_ERR_UNSUPPORTED: return "NC_ERR_UNSUPPORTED";
        case NC_ERR_OUT_OF_MEMORY: return "NC_ERR_OUT_OF_MEMORY";
        case NC_ERR_INTERNAL: return "NC_ERR_INTERNAL";
        case NC_ERR_OVER_PLAN: return "NC_ERR_OVER_PLAN";
    }
    return "NC_ERR_UNKNOWN";
}

const char* nc_component_name(int32_t component) {
    switch (component) {
        case NC_COMPONENT_LLM: return "llm";
        case NC_COMPONENT_VISION: return "vision";
        case NC_COMPONENT_PROJECTOR: return "projector";
        case NC_COMPONENT_LOC: return "loc";
        case NC_COMPONENT_SEG_PROMPT: return "seg_prompt";
        case NC_COMPONENT_SAM_ENCODER: return "sam_encoder";
        case NC_COMPONENT_SAM_PROMPT: return "sam_prompt";
        case NC_COMPONENT_SAM_DECODER: return "sam_decoder";
        case NC_COMPONENT_COUNT: break;
    }
    return "";
}

const char* nc_stage_name(int32_t stage) {
    switch (stage) {
        case NC_STAGE_STEP: return "step";
        case NC_STAGE_VISION: return "vision";
        case NC_STAGE_SAM_ENCODER: return "sam_encoder";
        case NC_STAGE_SAM_DECODER: return "sam_decoder";
        case NC_STAGE_COUNT: break;
    }
    return "";
}

int32_t nc_backend_compiled(int32_t backend) { return nc::backend_compiled(backend) ? 1 : 0; }

nc_status nc_backend_device_count(int32_t backend, int32_t* out_count) {
    return guarded([&] {
        require_out(out_count, "out_count");
        *out_count = nc::backend_device_count(backend);
    });
}

nc_status nc_config_default_7b(nc_config* out) {
    return guarded([&] {
        require_out(out, "out");
        *out = nc::default_7b_config();
    });
}

nc_status nc_config_validate(const nc_config* config) {
    return guarded([&] {
        require_out(config, "config");
        nc::validate_config(*config);
    });
}

nc_status nc_spec_create(const nc_config* config, nc_spec** out) {
    return guarded([&] {
        require_out(out, "out");
        *out = nullptr;
        require_out(config, "config");
        nc::validate_config(*config);
        auto spec = std::make_unique<nc_spec>();
        spec->tensors = nc::build_spec(*config);
        *out = spec.release();
    });
}

void nc_spec_free(nc_spec* spec) { std::unique_ptr<nc_spec> owned(spec); }

int64_t nc_spec_count(const nc_spec* spec) { return spec == nullptr ? 0 : int64_t(spec->tensors.size()); }

nc_status nc_spec_get(const nc_spec* spec, int64_t index, nc_tensor_spec* out) {
    return guarded([&] {
        require_out(spec, "spec");
        require_out(out, "out");
        if (index < 0 || index >= int64_t(spec->tensors.size())) {
            nc::fail(NC_ERR_INVALID_ARGUMENT, "spec index " + std::to_string(index) + " out of range [0, " +
                                                  std::to_string(spec->tensors.size()) + ")");
        }
        const nc::TensorSpec& t = spec->tensors[size_t(index)];
        *out = nc_tensor_spec{};
        out->name = t.name.c_str();
        out->ndim = int32_t(t.shape.size());
        for (size_t d = 0; d < t.shape.size(); ++d) out->shape[d] = t.shape[d];
        out->component = t.component;
        out->role = t.role;
        out->kind = t.kind;
    });
}

nc_status nc_model_open(const nc_model_params* params, nc_model** out) {
    return guarded([&] {
        require_out(out, "out");
        *out = nullptr;
        require_out(params, "params");
        require_struct(params->struct_size, sizeof(nc_model_params), "nc_model_params");
        *out = std::make_unique<nc_model>(*params).release();
    });
}

void nc_model_free(nc_model* model) { std::unique_ptr<nc_model> owned(model); }

nc_status nc_model_memory(const nc_model* model, int32_t kv_dtype, nc_memory_report* out) {
    return guarded([&] {
        require_out(model, "model");
        require_out(out, "out");
        *out = model->model.memory(kv_dtype);
    });
}

nc_status nc_model_plan(const nc_model* model, const nc_plan_request* request, nc_plan* out) {
    return guarded([&] {
        require_out(model, "model");
        require_out(request, "request");
        require_out(out, "out");
        require_struct(request->struct_size, sizeof(nc_plan_request), "nc_plan_request");
        require_struct(out->struct_size, sizeof(nc_plan), "nc_plan");
        *out = model->model.plan(*request);
    });
}

nc_status nc_model_reserve(nc_model* model, const nc_plan_request* request, nc_plan* out) {
    return guarded([&] {
        require_out(model, "model");
        require_out(request, "request");
        require_struct(request->struct_size, sizeof(nc_plan_request), "nc_plan_request");
        if (out != nullptr) require_struct(out->struct_size, sizeof(nc_plan), "nc_plan");
        const nc_plan p = model->model.reserve(*request);
        if (out != nullptr) *out = p;
    });
}

nc_status nc_model_workspace(const nc_model* model, uint64_t out_bytes[NC_STAGE_COUNT]) {
    return guarded([&] {
        require_out(model, "model");
        require_out(out_bytes, "out_bytes");
        const auto held = model->model.workspace_held();
        for (int st = 0; st < NC_STAGE_COUNT; ++st) out_bytes[st] = held[size_t(st)];
    });
}

nc_status nc_encode_boxes(nc_model* model, const float* boxes, int32_t n, float* embeds) {
    return guarded([&] {
        require_out(model, "model");
        if (n <= 0 || boxes == nullptr || embeds == nullptr) {
            nc::fail(NC_ERR_INVALID_ARGUMENT, "nc_encode_boxes needs n > 0 boxes and an output buffer");
        }
        model->model.encode_boxes(boxes, n, embeds);
    });
}

nc_status nc_model_get_dims(const nc_model* model, nc_model_dims* out) {
    return guarded([&] {
        require_out(model, "model");
        require_out(out, "out");
        require_struct(out->struct_size, sizeof(nc_model_dims), "nc_model_dims");
        const nc_config& c = model->model.config();
        const nc::VisionTower& v = model->model.vision();
        *out = nc_model_dims{};
        out->struct_size = sizeof(nc_model_dims);
        out->image_size = int32_t(v.image_size());
        out->patch_size = c.vision_patch_size;
        out->image_tokens = int32_t(v.patches());
        out->vision_hidden_size = int32_t(v.width());
        out->vision_layers = nc::vision_layers_run(c);
        out->hidden_size = c.hidden_size;
        const nc::Model& m = model->model;
        out->sam_image_size = int32_t(m.sam_encoder().image_size());
        out->sam_grid = int32_t(m.sam_encoder().grid());
        out->sam_embed_dim = int32_t(m.sam_encoder().out_channels());
        out->sam_mask_size = int32_t(m.sam_decoder().mask_size());
        out->sam_sparse_tokens = int32_t(m.sam_prompt().sparse_tokens());
    });
}

nc_status nc_encode_images(nc_model* model, const float* pixels, int32_t n, float* out_projected, float* out_clip) {
    return guarded([&] {
        require_out(model, "model");
        require_out(pixels, "pixels");
        require_out(out_projected, "out_projected");
        if (n <= 0) nc::fail(NC_ERR_INVALID_ARGUMENT, "nc_encode_images needs n >= 1 images, got " + std::to_string(n));
        model->model.encode_images(pixels, n, out_projected, out_clip);
    });
}

nc_status nc_sam_encode_image(nc_model* model, const float* pixels, float* embedding) {
    return guarded([&] {
        require_out(model, "model");
        require_out(pixels, "pixels");
        require_out(embedding, "embedding");
        model->model.sam_encode_image(pixels, embedding);
    });
}

nc_status nc_sam_decode_masks(nc_model* model, const float* embedding, int32_t n, const float* at_hidden,
                              const float* boxes, int32_t width, int32_t height, float* lowres, float* iou,
                              uint8_t* masks, float* sparse) {
    return guarded([&] {
        require_out(model, "model");
        require_out(embedding, "embedding");
        require_out(at_hidden, "at_hidden");
        require_out(boxes, "boxes");
        require_out(iou, "iou");
        if (n <= 0) nc::fail(NC_ERR_INVALID_ARGUMENT, "nc_sam_decode_masks needs n >= 1 locations, got " + std::to_string(n));
        model->model.sam_decode_masks(embedding, n, at_hidden, boxes, width, height, lowres, iou, masks, sparse);
    });
}

nc_status nc_cache_create(nc_model* model, const nc_cache_params* params, nc_cache** out) {
    return guarded([&] {
        require_out(out, "out");
        *out = nullptr;
        require_out(model, "model");
        require_out(params, "params");
        require_struct(params->struct_size, sizeof(nc_cache_params), "nc_cache_params");
        auto cache = model->model.make_cache(params->block_size, params->num_blocks, params->dtype);
        *out = std::make_unique<nc_cache>(nc_cache{model, std::move(cache)}).release();
    });
}

void nc_cache_free(nc_cache* cache) { std::unique_ptr<nc_cache> owned(cache); }

nc_status nc_cache_blocks(const nc_cache* cache, int64_t* free_blocks, int64_t* total_blocks) {
    return guarded([&] {
        require_out(cache, "cache");
        require_out(free_blocks, "free_blocks");
        require_out(total_blocks, "total_blocks");
        *free_blocks = cache->cache->free_blocks();
        *total_blocks = cache->cache->num_blocks();
    });
}

nc_status nc_sampling_check(const nc_sampling* sampling) {
    return guarded([&] { sampling_params(sampling); });
}

nc_status nc_seq_create(nc_cache* cache, const nc_sampling* sampling, nc_seq** out) {
    return guarded([&] {
        require_out(out, "out");
        *out = nullptr;
        require_out(cache, "cache");
        const nc::SamplingParams p = sampling_params(sampling);
        *out = std::make_unique<nc_seq>(cache->cache, p).release();
    });
}

nc_status nc_seq_fork(const nc_seq* parent, nc_seq** out) {
    return guarded([&] {
        require_out(out, "out");
        *out = nullptr;
        require_out(parent, "parent");
        *out = std::make_unique<nc_seq>(parent->seq).release();
    });
}

nc_status nc_seq_fork_prefix(const nc_seq* parent, int64_t positions, const nc_sampling* sampling, nc_seq** out) {
    return guarded([&] {
        require_out(out, "out");
        *out = nullptr;
        require_out(parent, "parent");
        if (positions < 0 || positions > parent->seq.length()) {
            nc::fail(NC_ERR_INVALID_ARGUMENT, "prefix of " + std::to_string(positions) + " positions from a sequence of " +
                                                  std::to_string(parent->seq.length()));
        }
        const nc::SamplingParams p = sampling_params(sampling);
        *out = std::make_unique<nc_seq>(parent->seq, positions, p).release();
    });
}

void nc_seq_free(nc_seq* seq) { std::unique_ptr<nc_seq> owned(seq); }

int64_t nc_seq_length(const nc_seq* seq) { return seq == nullptr ? -1 : seq->seq.length(); }

nc_status nc_step(nc_model* model, nc_cache* cache, nc_step_input* inputs, int32_t n) {
    return guarded([&] {
        require_out(model, "model");
        require_out(cache, "cache");
        if (n <= 0 || inputs == nullptr) nc::fail(NC_ERR_INVALID_ARGUMENT, "nc_step needs at least one input");
        if (cache->owner != model) nc::fail(NC_ERR_INVALID_ARGUMENT, "the cache belongs to another model");
        model->model.step(*cache->cache, inputs, n, [](nc_seq* s) { return s ? &s->seq : nullptr; });
    });
}

nc_status nc_probe_fma_peak(int32_t threads, double seconds, double* gflops) {
    return guarded([&] {
        require_out(gflops, "gflops");
        *gflops = 0;
        check_probe(threads, seconds);
        *gflops = nc::probe_fma_peak(threads, seconds);
    });
}

nc_status nc_probe_amx_peak(int32_t threads, double seconds, double* gflops) {
    return guarded([&] {
        require_out(gflops, "gflops");
        *gflops = 0;
        check_probe(threads, seconds);
        *gflops = nc::probe_amx_peak(threads, seconds);
    });
}

nc_status nc_probe_read_bandwidth(int32_t threads, double seconds, double* gbytes_per_s) {
    return guarded([&] {
        require_out(gbytes_per_s, "gbytes_per_s");
        *gbytes_per_s = 0;
        check_probe(threads, seconds);
        *gbytes_per_s = nc::probe_read_bandwidth(threads, seconds);
    });
}

}  // extern "C"
