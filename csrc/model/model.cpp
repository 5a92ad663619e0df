#include "model/model.h"

#include <algorithm>
#include <cmath>

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
    // Refused rather than silently computed on the CPU: the model's CUDA kernels are not part of this build.
    if (params.backend == NC_BACKEND_CUDA) {
        fail(NC_ERR_UNSUPPORTED, "this build runs models on the CPU backend only (no CUDA model kernels yet)");
    }
    if (params.threads < 0 || params.threads > 1024) {
        fail(NC_ERR_INVALID_ARGUMENT, "threads " + std::to_string(params.threads) + " out of range [0, 1024]");
    }
}

}  // namespace

Model::Model(const nc_model_params& params)
    : config_((check_backend(params), checked_config(params))),
      weights_(config_, checked_files(params), params.tensors, params.n_tensors),
      llm_(config_, weights_),
      loc_(config_, weights_),
      ops_(ops::make_cpu_ops(params.threads)),
      vision_(config_, weights_),
      projector_(config_, weights_),
      vision_ops_(ops::make_cpu_ops(params.threads)),
      sam_encoder_(config_, weights_),
      sam_prompt_(config_, weights_),
      sam_decoder_(config_, weights_),
      sam_ops_(ops::make_cpu_ops(params.threads)) {}

Model::~Model() = default;

void Model::encode_boxes(const float* boxes, int64_t n, float* embeds) {
    std::lock_guard<std::mutex> lock(step_mu_);  // shares the ops' workspace with steps
    for (int64_t i = 0; i < 4 * n; ++i) {
        if (!std::isfinite(boxes[i])) fail(NC_ERR_INVALID_ARGUMENT, "box " + std::to_string(i / 4) + " has a non-finite coordinate");
    }
    loc_.encode(*ops_, boxes, n, embeds);
}

void Model::encode_images(const float* pixels, int64_t n, float* projected, float* clip) {
    const int64_t S = vision_.image_size(), P = vision_.patches(), Dv = vision_.width(), H = config_.hidden_size;
    const int64_t image = 3 * S * S;
    for (int64_t i = 0; i < n * image; ++i) {
        if (!std::isfinite(pixels[i])) {
            fail(NC_ERR_INVALID_ARGUMENT, "pixel " + std::to_string(i % image) + " of image " + std::to_string(i / image) +
                                              " is not finite");
        }
    }
    std::lock_guard<std::mutex> lock(vision_mu_);
    // Two images per pass: 577 rows already keep the GEMM kernels busy, and more rows only push the packed
    // activations out of L2 (measured: 4 per pass ~4% slower than 1 or 2). The workspace is ~25 MB per image.
    constexpr int64_t kImagesPerPass = 2;
    for (int64_t i = 0; i < n; i += kImagesPerPass) {
        const int64_t m = std::min(kImagesPerPass, n - i);
        float* features = clip ? clip + i * P * Dv : nullptr;
        if (!features) {
            features_.resize(std::max(features_.size(), size_t(m * P * Dv)));
            features = features_.data();
        }
        vision_.forward(*vision_ops_, pixels + i * image, m, features);
        projector_.forward(*vision_ops_, features, m * P, projected + i * P * H);
    }
}

namespace {

// Fails naming the first non-finite value of x [count] (values of `per` each make one `item`).
void require_finite(const float* x, int64_t count, int64_t per, const char* what, const char* item) {
    for (int64_t i = 0; i < count; ++i) {
        if (!std::isfinite(x[i])) {
            fail(NC_ERR_INVALID_ARGUMENT, std::string(what) + " value " + std::to_string(i % per) + " of " + item + " " +
                                              std::to_string(i / per) + " is not finite");
        }
    }
}

// The longest image side the mask post-processing accepts (§4: masks are resized to max(width, height)²).
constexpr int32_t kMaxMaskSide = 1 << 15;

}  // namespace

void Model::sam_encode_image(const float* pixels, float* embedding) {
    const int64_t S = sam_encoder_.image_size();
    require_finite(pixels, 3 * S * S, 3 * S * S, "SAM pixel", "image");
    std::lock_guard<std::mutex> lock(sam_mu_);
    sam_encoder_.forward(*sam_ops_, pixels, embedding);
}

void Model::sam_decode_masks(const float* embedding, int64_t n, const float* at_hidden, const float* boxes,
                             int32_t width, int32_t height, float* lowres, float* iou, uint8_t* masks, float* sparse) {
    if (width < 1 || height < 1 || width > kMaxMaskSide || height > kMaxMaskSide) {
        fail(NC_ERR_INVALID_ARGUMENT, "image size " + std::to_string(width) + "x" + std::to_string(height) +
                                          " out of range [1, " + std::to_string(kMaxMaskSide) + "] per side");
    }
    const int64_t g = sam_encoder_.grid(), D = sam_encoder_.out_channels(), K = sam_prompt_.sparse_tokens();
    const int64_t m = sam_decoder_.mask_size();
    require_finite(embedding, D * g * g, D * g * g, "image embedding", "image");
    require_finite(at_hidden, n * config_.hidden_size, config_.hidden_size, "at_hidden", "location");
    require_finite(boxes, 4 * n, 4, "box", "location");
    std::lock_guard<std::mutex> lock(sam_mu_);
    if (sparse == nullptr) {
        sam_sparse_.resize(std::max(sam_sparse_.size(), size_t(n * K * D)));
        sparse = sam_sparse_.data();
    }
    if (lowres == nullptr) {
        sam_lowres_.resize(std::max(sam_lowres_.size(), size_t(n * m * m)));
        lowres = sam_lowres_.data();
    }
    sam_prompt_.sparse(*sam_ops_, at_hidden, boxes, n, sparse);
    sam_decoder_.forward(*sam_ops_, embedding, sam_prompt_.dense_pe().data(), sam_prompt_.no_mask().data(), sparse, n,
                         K, lowres, iou);
    if (masks != nullptr) {
        sam_masks_to_image(*sam_ops_, lowres, n, m, sam_encoder_.image_size(), width, height, masks, sam_work_);
    }
}

std::shared_ptr<KVCache> Model::make_cache(int32_t block_size, int64_t num_blocks, int32_t dtype) const {
    if (!dtype_valid(dtype)) fail(NC_ERR_INVALID_ARGUMENT, "unknown KV dtype code " + std::to_string(dtype));
    return std::make_shared<KVCache>(config_, block_size, num_blocks, nc_dtype(dtype));
}

void Model::validate(const KVCache& cache, const std::vector<StepRequest>& requests) const {
    if (!cache.fits(config_)) fail(NC_ERR_INVALID_ARGUMENT, "the KV cache was made for another model");
    constexpr int32_t known = NC_STEP_SAMPLE | NC_STEP_LOGITS | NC_STEP_HIDDEN | NC_STEP_ALL_HIDDEN;
    for (size_t i = 0; i < requests.size(); ++i) {
        const StepRequest& r = requests[i];
        const std::string at = "step input #" + std::to_string(i) + ": ";
        if (r.seq == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at + "seq is null");
        if (r.seq->cache().get() != &cache) fail(NC_ERR_INVALID_ARGUMENT, at + "the sequence belongs to another KV cache");
        for (size_t j = 0; j < i; ++j) {
            if (requests[j].seq == r.seq) fail(NC_ERR_INVALID_ARGUMENT, at + "the same sequence appears twice");
        }
        if (r.n <= 0 || r.tokens == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at + "needs at least one token");
        for (int64_t t = 0; t < r.n; ++t) {
            if (r.tokens[t] < 0 || r.tokens[t] >= config_.vocab_size) {
                fail(NC_ERR_INVALID_ARGUMENT, at + "token " + std::to_string(r.tokens[t]) + " at row " + std::to_string(t) +
                                                  " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
            }
        }
        if (r.seq->length() + r.n > config_.max_position_embeddings) {
            fail(NC_ERR_INVALID_ARGUMENT, at + "positions up to " + std::to_string(r.seq->length() + r.n) +
                                              " exceed max_position_embeddings " +
                                              std::to_string(config_.max_position_embeddings));
        }
        if (r.embed_rows != nullptr && r.embeds == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at + "embed_rows without embeds");
        if ((r.want & ~known) != 0) fail(NC_ERR_INVALID_ARGUMENT, at + "unknown flags in want");
        if ((r.want & NC_STEP_LOGITS) && r.logits == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at + "logits buffer is null");
        if ((r.want & (NC_STEP_HIDDEN | NC_STEP_ALL_HIDDEN)) && r.hidden == nullptr) {
            fail(NC_ERR_INVALID_ARGUMENT, at + "hidden buffer is null");
        }
        if (r.locate_rows != nullptr) {
            for (int64_t t = 0; t < r.n; ++t) {
                if (r.locate_rows[t] && r.tokens[t] != config_.at_token_id) {
                    fail(NC_ERR_INVALID_ARGUMENT, at + "row " + std::to_string(t) + " is marked for a location but is not <at>");
                }
            }
            if (r.boxes == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at + "locate_rows without a boxes buffer");
        }
    }
}

void Model::step(KVCache& cache, std::vector<StepRequest>& requests) {
    std::unique_lock<std::mutex> lock(step_mu_, std::try_to_lock);
    if (!lock.owns_lock()) fail(NC_ERR_INVALID_ARGUMENT, "nc_step called concurrently on one model");
    validate(cache, requests);
    for (StepRequest& r : requests) r.seq->reserve(r.n);

    const int64_t H = llm_.hidden(), V = llm_.vocab();
    int64_t T = 0;
    for (const StepRequest& r : requests) T += r.n;
    if (x_.size() < size_t(T * H)) x_.resize(size_t(T * H));
    std::vector<LlmSegment> segments;
    int64_t row = 0;
    for (const StepRequest& r : requests) {
        float* x = x_.data() + row * H;
        llm_.embed(*ops_, r.tokens, r.n, x);
        // A <boxes> right after a located <at> carries loc_encoder(box) (§2.3); a pending location is only
        // ever for the very next row.
        std::vector<float>& pending = r.seq->pending_location();
        if (!pending.empty() && r.tokens[0] == config_.boxes_token_id) std::copy(pending.begin(), pending.end(), x);
        pending.clear();
        if (r.embeds != nullptr) {
            for (int64_t t = 0; t < r.n; ++t) {
                if (r.embed_rows == nullptr || r.embed_rows[t]) std::copy(r.embeds + t * H, r.embeds + (t + 1) * H, x + t * H);
            }
        }
        segments.push_back(LlmSegment{row, r.n, r.seq->length(), r.seq->blocks()});
        row += r.n;
    }
    llm_.forward(*ops_, cache, segments, x_.data(), T);

    // lm_head once over the last row of every sequence.
    const int64_t B = int64_t(requests.size());
    if (last_.size() < size_t(B * H)) last_.resize(size_t(B * H));
    if (logits_.size() < size_t(B * V)) logits_.resize(size_t(B * V));
    for (int64_t b = 0; b < B; ++b) {
        const LlmSegment& s = segments[size_t(b)];
        std::copy(x_.data() + (s.row + s.rows - 1) * H, x_.data() + (s.row + s.rows) * H, last_.data() + b * H);
    }
    llm_.logits(*ops_, last_.data(), B, logits_.data());
    for (int64_t b = 0; b < B; ++b) {
        StepRequest& r = requests[size_t(b)];
        const LlmSegment& s = segments[size_t(b)];
        const float* lg = logits_.data() + b * V;
        r.seq->advance(r.tokens, r.n);
        if (r.want & NC_STEP_LOGITS) std::copy(lg, lg + V, r.logits);
        if (r.want & NC_STEP_HIDDEN) std::copy(last_.data() + b * H, last_.data() + (b + 1) * H, r.hidden);
        if (r.want & NC_STEP_ALL_HIDDEN) std::copy(x_.data() + s.row * H, x_.data() + (s.row + s.rows) * H, r.hidden);
        const bool located_last = locate(r, s);
        if (located_last) {
            r.token = config_.boxes_token_id;  // forced, never sampled
        } else if (r.want & NC_STEP_SAMPLE) {
            r.token = r.seq->sampler().next(lg, int32_t(V), r.seq->history());
        }
    }
}

bool Model::locate(StepRequest& r, const LlmSegment& s) {
    if (r.locate_rows == nullptr) return false;
    const int64_t H = llm_.hidden();
    std::vector<float> hidden, boxes(4);
    bool last = false;
    for (int64_t t = 0; t < r.n; ++t) {
        if (!r.locate_rows[t]) continue;
        const float* h = x_.data() + (s.row + t) * H;
        float* box = r.boxes + 4 * r.n_located;
        loc_.decode(*ops_, h, 1, box);
        if (r.at_hidden != nullptr) std::copy(h, h + H, r.at_hidden + r.n_located * H);
        ++r.n_located;
        if (t == r.n - 1) {
            last = true;
            r.seq->pending_location().resize(size_t(H));
            loc_.encode(*ops_, box, 1, r.seq->pending_location().data());
        }
    }
    return last;
}

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
