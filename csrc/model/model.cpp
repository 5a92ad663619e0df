#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "model/config.h"
#include "model/plan.h"
#include "model/workspace.h"

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

// Images per pass of the CLIP tower: 577 rows already keep the GEMM kernels busy, and more rows only push the packed
// activations out of L2 (measured: 4 per pass ~4% slower than 1 or 2). The workspace is ~25 MB per image.
constexpr int64_t kImagesPerPass = 2;

// A backend not compiled in, or a GPU ordinal that does not exist, is refused before any file is mapped.
void check_llm_weights(const nc_model_params& params) {
    if (params.llm_weights != NC_LLM_WEIGHTS_AS_STORED && params.llm_weights != NC_LLM_WEIGHTS_COMPACT &&
        params.llm_weights != NC_LLM_WEIGHTS_INT8) {
        fail(NC_ERR_INVALID_ARGUMENT, "unknown llm_weights code " + std::to_string(params.llm_weights));
    }
}

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
    : config_((check_backend(params), check_llm_weights(params), checked_config(params))),
      threads_(params.threads),
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
      sam_ops_(ops::make_cpu_ops(params.threads)) {
    llm_.recode(*ops_, nc_llm_weights(params.llm_weights));  // a known code (check_llm_weights)
}

Model::~Model() = default;

void Model::within_plan(int64_t count, int64_t limit, const char* what) const {
    if (count > limit) {
        fail(NC_ERR_OVER_PLAN, std::string(what) + " " + std::to_string(count) + " exceeds the reserved plan's " +
                                   std::to_string(limit) + " (nc_model_reserve with larger limits)");
    }
}

void Model::encode_boxes(const float* boxes, int64_t n, float* embeds) {
    std::lock_guard<std::mutex> lock(step_mu_);  // shares the ops' workspace with steps
    if (limits_) within_plan(n, limits_->max_locations, "boxes per call");
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
    if (limits_) within_plan(n, limits_->max_images, "images per call");
    for (int64_t i = 0; i < n; i += kImagesPerPass) {
        const int64_t m = std::min(kImagesPerPass, n - i);
        float* features = clip ? clip + i * P * Dv : grown(features_, vision_features(m), limits_.has_value());
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
    const bool planned = limits_.has_value();
    if (planned) within_plan(n, limits_->max_locations, "locations per call");
    const SamBuffers sizes = sam_buffers(n);
    if (sparse == nullptr) sparse = grown(sam_sparse_, sizes.sparse, planned);
    if (lowres == nullptr) lowres = grown(sam_lowres_, sizes.lowres, planned);
    sam_prompt_.sparse(*sam_ops_, at_hidden, boxes, n, sparse);
    sam_decoder_.forward(*sam_ops_, embedding, sam_prompt_.dense_pe().data(), sam_prompt_.no_mask().data(), sparse, n,
                         K, lowres, iou);
    if (masks != nullptr) {
        sam_masks_to_image(*sam_ops_, lowres, n, m, sam_encoder_.image_size(), width, height, masks, sam_work_, planned);
    }
}

std::shared_ptr<KVCache> Model::make_cache(int32_t block_size, int64_t num_blocks, int32_t dtype) const {
    if (!dtype_valid(dtype)) fail(NC_ERR_INVALID_ARGUMENT, "unknown KV dtype code " + std::to_string(dtype));
    return std::make_shared<KVCache>(config_, block_size, num_blocks, nc_dtype(dtype));
}

void Model::validate(const KVCache& cache, const std::vector<StepRequest>& requests) const {
    if (!cache.fits(config_)) fail(NC_ERR_INVALID_ARGUMENT, "the KV cache was made for another model");
    if (limits_) {
        int64_t rows = 0;
        for (const StepRequest& r : requests) rows += std::max<int64_t>(r.n, 0);
        within_plan(rows, limits_->max_step_rows, "rows in one step");
        for (const StepRequest& r : requests) {
            if (r.seq != nullptr) within_plan(r.seq->length() + r.n, limits_->max_context, "positions of a sequence");
        }
    }
    constexpr int32_t known = NC_STEP_SAMPLE | NC_STEP_LOGITS | NC_STEP_HIDDEN | NC_STEP_ALL_HIDDEN;
    for (size_t i = 0; i < requests.size(); ++i) {
        const StepRequest& r = requests[i];
        // The message's prefix, built only for a failure: a valid step allocates nothing (issue #4).
        const auto at = [i] { return "step input #" + std::to_string(i) + ": "; };
        if (r.seq == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at() + "seq is null");
        if (r.seq->cache().get() != &cache) fail(NC_ERR_INVALID_ARGUMENT, at() + "the sequence belongs to another KV cache");
        for (size_t j = 0; j < i; ++j) {
            if (requests[j].seq == r.seq) fail(NC_ERR_INVALID_ARGUMENT, at() + "the same sequence appears twice");
        }
        if (r.n <= 0 || r.tokens == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at() + "needs at least one token");
        for (int64_t t = 0; t < r.n; ++t) {
            if (r.tokens[t] < 0 || r.tokens[t] >= config_.vocab_size) {
                fail(NC_ERR_INVALID_ARGUMENT, at() + "token " + std::to_string(r.tokens[t]) + " at row " + std::to_string(t) +
                                                  " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
            }
        }
        if (r.seq->length() + r.n > config_.max_position_embeddings) {
            fail(NC_ERR_INVALID_ARGUMENT, at() + "positions up to " + std::to_string(r.seq->length() + r.n) +
                                              " exceed max_position_embeddings " +
                                              std::to_string(config_.max_position_embeddings));
        }
        if (r.embed_rows != nullptr && r.embeds == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at() + "embed_rows without embeds");
        if ((r.want & ~known) != 0) fail(NC_ERR_INVALID_ARGUMENT, at() + "unknown flags in want");
        if ((r.want & NC_STEP_LOGITS) && r.logits == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at() + "logits buffer is null");
        if ((r.want & (NC_STEP_HIDDEN | NC_STEP_ALL_HIDDEN)) && r.hidden == nullptr) {
            fail(NC_ERR_INVALID_ARGUMENT, at() + "hidden buffer is null");
        }
        if (r.locate_rows != nullptr) {
            for (int64_t t = 0; t < r.n; ++t) {
                if (r.locate_rows[t] && r.tokens[t] != config_.at_token_id) {
                    fail(NC_ERR_INVALID_ARGUMENT, at() + "row " + std::to_string(t) + " is marked for a location but is not <at>");
                }
            }
            if (r.boxes == nullptr) fail(NC_ERR_INVALID_ARGUMENT, at() + "locate_rows without a boxes buffer");
        }
    }
}

void Model::step(KVCache& cache, nc_step_input* inputs, int32_t n, Sequence* (*sequence_of)(nc_seq*)) {
    std::unique_lock<std::mutex> lock(step_mu_, std::try_to_lock);
    if (!lock.owns_lock()) fail(NC_ERR_INVALID_ARGUMENT, "nc_step called concurrently on one model");
    if (limits_) within_plan(n, limits_->max_sequences, "sequences in one step");  // before the request list grows
    requests_.clear();
    for (int32_t i = 0; i < n; ++i) {
        const nc_step_input& in = inputs[i];
        requests_.push_back(StepRequest{sequence_of(in.seq), in.tokens, in.n_tokens, in.embeds, in.embed_rows, in.want,
                                        in.logits, in.hidden, in.locate_rows, in.boxes, in.at_hidden});
    }
    run_step(cache, requests_);
    for (int32_t i = 0; i < n; ++i) {
        inputs[i].token = requests_[size_t(i)].token;
        inputs[i].n_located = requests_[size_t(i)].n_located;
    }
}

void Model::run_step(KVCache& cache, std::vector<StepRequest>& requests) {
    validate(cache, requests);
    const bool planned = limits_.has_value();
    for (StepRequest& r : requests) {
        if (planned) r.seq->reserve_bookkeeping(limits_->max_context, config_.hidden_size);
        r.seq->reserve(r.n);
    }

    const int64_t H = llm_.hidden(), V = llm_.vocab();
    int64_t T = 0;
    for (const StepRequest& r : requests) T += r.n;
    const StepBuffers sizes = step_buffers(T, int64_t(requests.size()));
    grown(x_, sizes.x, planned);
    std::vector<LlmSegment>& segments = segments_;
    segments.clear();  // within its reserved capacity under a plan, else grown once to the largest batch
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
    grown(last_, sizes.last, planned);
    grown(logits_, sizes.logits, planned);
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
        r.forced = locate(r, s);
        if (r.forced) r.token = config_.boxes_token_id;  // never sampled
    }
    // Each sequence samples from its own logits with its own sampler: in parallel (a sampled token orders up to the
    // whole vocabulary, ~0.5 ms, which one thread would repeat for every sequence of the batch).
    ops_->parallel(B, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            StepRequest& r = requests[size_t(b)];
            if (r.forced || !(r.want & NC_STEP_SAMPLE)) continue;
            r.token = r.seq->sampler().next(logits_.data() + b * V, int32_t(V), r.seq->history());
        }
    });
}

bool Model::locate(StepRequest& r, const LlmSegment& s) {
    if (r.locate_rows == nullptr) return false;
    const int64_t H = llm_.hidden();
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
            r.seq->pending_location().resize(size_t(H));  // within reserve_bookkeeping's capacity
            loc_.encode(*ops_, box, 1, r.seq->pending_location().data());
        }
    }
    return last;
}

void Model::weight_bytes(std::array<uint64_t, NC_COMPONENT_COUNT>& required, uint64_t& unused) const {
    weights_.byte_counts(required, unused);
    required[NC_COMPONENT_LLM] = required[NC_COMPONENT_LLM] - llm_.recoded_stored_bytes() + llm_.recoded_bytes();
}

nc_memory_report Model::memory(int32_t kv_dtype) const {
    if (!dtype_valid(kv_dtype)) fail(NC_ERR_INVALID_ARGUMENT, "unknown KV dtype code " + std::to_string(kv_dtype));
    nc_memory_report r{};
    r.struct_size = sizeof(r);
    std::array<uint64_t, NC_COMPONENT_COUNT> by_component{};
    weight_bytes(by_component, r.unused_bytes);
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

// ---- memory plan (docs/ARCHITECTURE.md "Memory plan") ---------------------------------------------------------

Model::StepBuffers Model::step_buffers(int64_t rows, int64_t sequences) const {
    return StepBuffers{rows * llm_.hidden(), sequences * llm_.hidden(), sequences * llm_.vocab(), sequences};
}

Model::SamBuffers Model::sam_buffers(int64_t locations) const {
    const int64_t m = sam_decoder_.mask_size();
    return SamBuffers{locations * sam_prompt_.sparse_tokens() * sam_prompt_.width(), locations * m * m,
                      sam_masks_work(sam_encoder_.image_size())};
}

int64_t Model::vision_features(int64_t images) const {
    return std::min(images, kImagesPerPass) * vision_.patches() * vision_.width();
}

std::array<uint64_t, NC_STAGE_COUNT> Model::workspace_plan(const nc_plan_request& r) const {
    std::array<uint64_t, NC_STAGE_COUNT> w{};
    const StepBuffers step = step_buffers(r.max_step_rows, r.max_sequences);
    w[NC_STAGE_STEP] = step.bytes() + llm_.workspace(r.max_step_rows).bytes() +
                       loc_.workspace(r.max_locations).bytes();
    const int64_t pass = std::min<int64_t>(r.max_images, kImagesPerPass);
    w[NC_STAGE_VISION] = 4 * uint64_t(vision_features(pass)) + vision_.workspace(pass).bytes() +
                         projector_.workspace(pass * vision_.patches()).bytes();
    w[NC_STAGE_SAM_ENCODER] = sam_encoder_.workspace().bytes();
    const SamBuffers sam = sam_buffers(r.max_locations);
    w[NC_STAGE_SAM_DECODER] = 4 * uint64_t(sam.sparse + sam.lowres + sam.work) +
                              sam_prompt_.workspace(r.max_locations).bytes() +
                              sam_decoder_.workspace(r.max_locations, sam_prompt_.sparse_tokens()).bytes();
    return w;
}

namespace {

// What the CPU ops allocate for each stage at the plan's shapes: the op calls of llm.cpp, loc.cpp, vision.cpp,
// projector.cpp, sam_encoder.cpp, sam_prompt.cpp and sam_decoder.cpp, in their shapes.
std::array<OpScratch, NC_STAGE_COUNT> op_scratch(const nc_config& c, const nc_plan_request& r, int64_t sparse_tokens,
                                                 nc_llm_weights llm_weights) {
    std::array<OpScratch, NC_STAGE_COUNT> s;
    {  // LLM step and loc heads
        OpScratch& o = s[NC_STAGE_STEP];
        const int64_t T = r.max_step_rows, B = r.max_sequences, H = c.hidden_size, I = c.intermediate_size;
        const int64_t d = H / c.num_attention_heads, kv = int64_t(c.num_key_value_heads) * d, L = r.max_locations;
        o.norm(H, false);
        o.linear(T, H, {H, kv, kv});
        o.linear(T, H, {H});
        o.linear(T, H, {I, I});
        o.linear(T, I, {H});
        o.kv_attention(T, r.max_context, c.num_attention_heads, d);
        o.linear(B, H, {c.vocab_size});
        if (llm_weights != NC_LLM_WEIGHTS_AS_STORED) {
            o.recoded_linear(H, llm_weights);
            o.recoded_linear(I, llm_weights);
        }
        for (int64_t rows : {int64_t(1), L}) {  // a located <at> per step; user boxes per nc_encode_boxes
            o.linear(rows, H, {c.loc_hidden_size});
            o.linear(rows, c.loc_hidden_size, {4});
            o.linear(rows, 4, {c.loc_hidden_size});
            o.linear(rows, c.loc_hidden_size, {H});
        }
    }
    {  // CLIP tower and projector, kImagesPerPass images per pass
        OpScratch& o = s[NC_STAGE_VISION];
        const int64_t m = std::min<int64_t>(r.max_images, kImagesPerPass), g = c.vision_image_size / c.vision_patch_size;
        const int64_t P = g * g, R = m * (P + 1), Dv = c.vision_hidden_size, H = c.hidden_size;
        o.linear(m * P, 3 * int64_t(c.vision_patch_size) * c.vision_patch_size, {Dv});
        o.norm(Dv, true);
        o.linear(R, Dv, {Dv, Dv, Dv});
        o.attention(P + 1, P + 1, Dv / c.vision_num_attention_heads, 0);
        o.linear(R, Dv, {Dv});
        o.linear(R, Dv, {c.vision_intermediate_size});
        o.linear(R, c.vision_intermediate_size, {Dv});
        o.linear(m * P, Dv, {H});
        o.linear(m * P, H, {H});
    }
    // The SAM encoder and decoder share one op set (one Ops: the same pool and convolution buffers).
    OpScratch sam;
    {  // SAM image encoder, one image per call
        const int64_t g = c.sam_image_size / c.sam_patch_size, T = g * g, E = c.sam_encoder_embed_dim;
        const int64_t d = E / c.sam_encoder_num_heads, D = c.sam_prompt_embed_dim, win = c.sam_window_size;
        sam.linear(T, 3 * int64_t(c.sam_patch_size) * c.sam_patch_size, {E});
        sam.norm(E, true);
        sam.linear(T, E, {E});
        if (c.sam_num_global_attn > 0) sam.attention(T, T, d, g);
        if (c.sam_num_global_attn < c.sam_encoder_depth) sam.attention(win * win, win * win, d, win);
        sam.linear(T, E, {c.sam_encoder_mlp_dim});
        sam.linear(T, c.sam_encoder_mlp_dim, {E});
        sam.linear(T, E, {D});
        sam.norm(D, true);
        sam.conv(T, D, D, 3);
        s[NC_STAGE_SAM_ENCODER] = sam;
    }
    {  // SAM prompt encoder, mask decoder (passes of up to 8 prompts) and the mask post-processing
        OpScratch& o = s[NC_STAGE_SAM_DECODER];
        o = sam;
        const int64_t g = c.sam_image_size / c.sam_patch_size, G = g * g, D = c.sam_prompt_embed_dim;
        const int64_t L = r.max_locations, m = std::min<int64_t>(L, 8), heads = c.sam_decoder_num_heads;
        const int64_t Q = 1 + (c.sam_num_multimask_outputs + 1) + sparse_tokens, inner = D / c.sam_attention_downsample;
        const int64_t R = Q * heads, c1 = D / 4, c2 = D / 8, H = c.hidden_size;
        o.linear(L, H, {H});
        o.linear(L, H, {int64_t(c.seg_prompt_tokens) * D});
        o.linear(G, D, {inner});
        for (int64_t width : {D, inner}) o.linear(m * Q, D, {width});
        o.linear(m * Q, inner, {D});
        o.attention(Q, Q, D / heads, 0);
        o.attention(m * Q, G, inner / heads, 0);
        o.linear(m * Q, inner, {heads * D});
        o.attention(R, G, D, 0);
        o.linear(m * Q, heads * D, {inner});
        o.linear(m * Q, inner, {heads});
        o.linear(G, D, {R});
        o.linear(G, R, {D});
        o.linear(m * Q, D, {c.sam_decoder_mlp_dim});
        o.linear(m * Q, c.sam_decoder_mlp_dim, {D});
        o.norm(D, true);
        const int64_t band = SamMaskDecoder::kUpscaleRows * g;
        o.linear(band, D, {4 * c1});
        o.norm(c1, true);
        o.linear(4 * band, c1, {4 * c2});
        o.linear(1, c2, {16 * band});
        o.linear(m, D, {D});
        o.linear(m, D, {c.sam_iou_head_hidden_dim});
        o.linear(m, c.sam_iou_head_hidden_dim, {c.sam_num_multimask_outputs + 1});
        o.resize(int64_t(1) << 15);  // the widest image side (kMaxMaskSide)
    }
    return s;
}

}  // namespace

nc_plan Model::plan(const nc_plan_request& request) const {
    nc_plan_request r = plan_limits(config_, request);
    if (r.threads == 0) r.threads = threads_;  // the model's own pools
    nc_plan p{};
    p.struct_size = sizeof(nc_plan);
    p.request = r;
    std::array<uint64_t, NC_COMPONENT_COUNT> by_component{};
    uint64_t unused = 0;
    weight_bytes(by_component, unused);
    for (int c = 0; c < NC_COMPONENT_COUNT; ++c) {
        p.weight_bytes[c] = by_component[size_t(c)];
        p.weights_total += by_component[size_t(c)];
    }
    p.derived_bytes[NC_STAGE_SAM_DECODER] = sam_prompt_.derived_bytes() + sam_decoder_.derived_bytes();
    const int64_t blocks_per_seq = (r.max_context + r.kv_block_size - 1) / r.kv_block_size;
    p.kv_blocks = blocks_per_seq * r.max_sequences;
    p.kv_block_bytes = KVCache::block_bytes(config_, r.kv_block_size, nc_dtype(r.kv_dtype));
    p.kv_bytes = KVCache::allocation_bytes(config_, r.kv_block_size, p.kv_blocks, nc_dtype(r.kv_dtype));
    const auto workspace = workspace_plan(r);
    const auto scratch = op_scratch(config_, r, sam_prompt_.sparse_tokens(), llm_.held_as());
    const bool cuda = r.backend == NC_BACKEND_CUDA;
    uint64_t derived = 0, stages = 0, scratch_total = 0;
    for (int st = 0; st < NC_STAGE_COUNT; ++st) {
        p.workspace_bytes[st] = workspace[size_t(st)];
        // The CUDA backend's kernels will work in the planned workspace: no op scratch beyond it.
        p.scratch_bytes[st] = cuda ? 0 : scratch[size_t(st)].bytes(pool_threads(r.threads));
    }
    // Both SAM stages run on one op set, whose per-thread and convolution buffers serve both: the decoder's figure
    // covers the encoder's shapes too, so the decoder's line is what it adds.
    p.scratch_bytes[NC_STAGE_SAM_DECODER] -= p.scratch_bytes[NC_STAGE_SAM_ENCODER];
    for (int st = 0; st < NC_STAGE_COUNT; ++st) {
        derived += p.derived_bytes[st];
        stages += p.workspace_bytes[st];
        scratch_total += p.scratch_bytes[st];
    }
    p.sequence_bytes = uint64_t(r.max_sequences) *
                       Sequence::bookkeeping_bytes(r.max_context, r.kv_block_size, config_.hidden_size, config_.vocab_size);
    const int64_t image_tokens = vision_.patches(), g = sam_encoder_.grid();
    p.feature_cache_bytes = uint64_t(r.feature_cache_images) * 4 * uint64_t(image_tokens * config_.hidden_size);
    p.sam_cache_bytes = uint64_t(r.sam_cache_images) * 4 * uint64_t(sam_encoder_.out_channels() * g * g);
    const uint64_t host_always = p.sequence_bytes + p.feature_cache_bytes + p.sam_cache_bytes;
    const uint64_t model = p.weights_total + derived + p.kv_bytes + stages + scratch_total;
    if (cuda) {
        p.device_bytes = model;
        p.host_bytes = host_always;
    } else {
        p.host_bytes = model + host_always;
    }
    return p;
}

nc_plan Model::reserve(const nc_plan_request& request) {
    const nc_plan p = plan(request);
    const nc_plan_request& r = p.request;
    if (r.backend != NC_BACKEND_CPU) fail(NC_ERR_UNSUPPORTED, "this build runs models on the CPU backend only: a CUDA plan cannot be reserved");
    if (pool_threads(r.threads) != pool_threads(threads_)) {
        fail(NC_ERR_INVALID_ARGUMENT, "plan request for " + std::to_string(pool_threads(r.threads)) +
                                          " threads per op pool, the model runs " + std::to_string(pool_threads(threads_)));
    }
    std::scoped_lock lock(step_mu_, vision_mu_, sam_mu_);
    const StepBuffers step = step_buffers(r.max_step_rows, r.max_sequences);
    reserve_exact(x_, step.x);
    reserve_exact(last_, step.last);
    reserve_exact(logits_, step.logits);
    segments_.clear();
    segments_.shrink_to_fit();
    segments_.reserve(size_t(step.sequences));
    requests_.clear();
    requests_.shrink_to_fit();
    requests_.reserve(size_t(step.sequences));
    llm_.reserve(r.max_step_rows);
    loc_.reserve(r.max_locations);
    const int64_t pass = std::min<int64_t>(r.max_images, kImagesPerPass);
    reserve_exact(features_, vision_features(pass));
    vision_.reserve(pass);
    projector_.reserve(pass * vision_.patches());
    sam_encoder_.reserve();
    const SamBuffers sam = sam_buffers(r.max_locations);
    reserve_exact(sam_sparse_, sam.sparse);
    reserve_exact(sam_lowres_, sam.lowres);
    reserve_exact(sam_work_, sam.work);
    sam_prompt_.reserve(r.max_locations);
    sam_decoder_.reserve(r.max_locations, sam_prompt_.sparse_tokens());
    limits_ = r;
    return p;
}

std::array<uint64_t, NC_STAGE_COUNT> Model::workspace_held() const {
    std::array<uint64_t, NC_STAGE_COUNT> w{};
    w[NC_STAGE_STEP] = held_bytes(x_) + held_bytes(last_) + held_bytes(logits_) + held_bytes(segments_) +
                       held_bytes(requests_) + llm_.workspace_held() + loc_.workspace_held();
    w[NC_STAGE_VISION] = held_bytes(features_) + vision_.workspace_held() + projector_.workspace_held();
    w[NC_STAGE_SAM_ENCODER] = sam_encoder_.workspace_held();
    w[NC_STAGE_SAM_DECODER] = held_bytes(sam_sparse_) + held_bytes(sam_lowres_) + held_bytes(sam_work_) +
                              sam_prompt_.workspace_held() + sam_decoder_.workspace_held();
    return w;
}

}  // namespace nc
