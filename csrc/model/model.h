// A loaded model: config, bound weights and the backend it runs on. What nc_model* points to.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/llm.h"
#include "model/loc.h"
#include "model/projector.h"
#include "model/sam_decoder.h"
#include "model/sam_encoder.h"
#include "model/sam_prompt.h"
#include "model/vision.h"
#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"
#include "runtime/sequence.h"

namespace nc {

// One sequence's part of a batched step (nc_step_input without the C types).
struct StepRequest {
    Sequence* seq;
    const int32_t* tokens;
    int64_t n;
    const float* embeds;        // optional [n, hidden] rows replacing token embeddings
    const uint8_t* embed_rows;  // optional [n]: which rows of embeds apply (null: all, when embeds is set)
    int32_t want;               // NC_STEP_* flags
    float* logits;              // [vocab] for NC_STEP_LOGITS
    float* hidden;              // [hidden] (NC_STEP_HIDDEN) or [n, hidden] (NC_STEP_ALL_HIDDEN)
    const uint8_t* locate_rows; // optional [n]: generated <at> rows to decode into boxes
    float* boxes;               // [located, 4]
    float* at_hidden;           // optional [located, hidden]
    int32_t token = -1;         // out: the sampled token (NC_STEP_SAMPLE)
    bool forced = false;        // the token is the <boxes> after a located <at>, not sampled
    int32_t n_located = 0;      // out
};

class Model {
  public:
    // Validates the config and the backend choice, then maps and binds the weights.
    explicit Model(const nc_model_params& params);
    ~Model();

    const nc_config& config() const { return config_; }
    const WeightStore& weights() const { return weights_; }
    // kv_dtype: an nc_dtype code, checked.
    nc_memory_report memory(int32_t kv_dtype) const;
    // Bytes of weights read, by component (the LLM's compact matrices in place of their files' bytes), and of the
    // unused tensors present.
    void weight_bytes(std::array<uint64_t, NC_COMPONENT_COUNT>& required, uint64_t& unused) const;

    // The memory plan for a request's limits (nc_model_plan); computes only.
    nc_plan plan(const nc_plan_request& request) const;
    // Allocates every stage's workspace for the limits and enforces them from now on (nc_model_reserve).
    nc_plan reserve(const nc_plan_request& request);
    // Workspace bytes held now per stage (nc_stage).
    std::array<uint64_t, NC_STAGE_COUNT> workspace_held() const;

    // embeds [n, hidden] = loc_encoder(boxes [n, 4]).
    void encode_boxes(const float* boxes, int64_t n, float* embeds);

    // The CLIP tower's dimensions (image side, patch tokens per image, width).
    const VisionTower& vision() const { return vision_; }
    // projected [n, P, hidden] = mm_projector(CLIP features) of CLIP-normalized pixels [n, 3, S, S] (§1.2–1.4);
    // clip [n, P, vision_hidden] = the features themselves, unless null. Runs on the model's own vision workers,
    // so it may overlap step(); concurrent calls run one at a time.
    void encode_images(const float* pixels, int64_t n, float* projected, float* clip);

    // SAM (§4, §5). Dimensions: image side S, embedding grid g and width D, low-res mask side, sparse tokens.
    const SamImageEncoder& sam_encoder() const { return sam_encoder_; }
    const SamPromptEncoder& sam_prompt() const { return sam_prompt_; }
    const SamMaskDecoder& sam_decoder() const { return sam_decoder_; }
    // embedding [D, g, g] of SAM pixels [3, S, S] (normalized, centred pad; §4).
    void sam_encode_image(const float* pixels, float* embedding);
    // Per located <at> i < n: sparse prompt from at_hidden [n, hidden] and boxes [n, 4], the mask decoder over
    // embedding [D, g, g], then the mask of the original width × height image. iou [n] always; lowres [n, 4g, 4g],
    // masks [n, height, width] and sparse [n, tokens, D] when not null. Both SAM calls run on the model's own SAM
    // workers, so they may overlap step() and encode_images(); concurrent SAM calls run one at a time.
    void sam_decode_masks(const float* embedding, int64_t n, const float* at_hidden, const float* boxes, int32_t width,
                          int32_t height, float* lowres, float* iou, uint8_t* masks, float* sparse);

    // A KV cache sized for this model.
    std::shared_ptr<KVCache> make_cache(int32_t block_size, int64_t num_blocks, int32_t dtype) const;

    // Runs one batched step over the ABI's inputs (nc_step; sequence_of gives each handle's sequence, null for null):
    // appends each input's rows to its sequence, fills the wanted outputs and writes back token and n_located.
    // Validates everything before any compute; on error no sequence has changed length.
    void step(KVCache& cache, nc_step_input* inputs, int32_t n, Sequence* (*sequence_of)(nc_seq*));

  private:
    // Elements of the model's own buffers: a step's rows and last rows' logits, a CLIP pass's features, a SAM call's
    // prompt tokens and low-res masks.
    struct StepBuffers {
        int64_t x, last, logits, sequences;  // sequences: of the segment and request lists
        uint64_t bytes() const {
            return 4 * uint64_t(x + last + logits) + (sizeof(LlmSegment) + sizeof(StepRequest)) * uint64_t(sequences);
        }
    };
    StepBuffers step_buffers(int64_t rows, int64_t sequences) const;
    struct SamBuffers {
        int64_t sparse, lowres, work;
    };
    SamBuffers sam_buffers(int64_t locations) const;
    int64_t vision_features(int64_t images) const;

    // Workspace bytes of each stage for the limits (the components' workspace functions plus the model's own).
    std::array<uint64_t, NC_STAGE_COUNT> workspace_plan(const nc_plan_request& limits) const;
    // Fails with NC_ERR_OVER_PLAN when `count` exceeds a reserved limit.
    void within_plan(int64_t count, int64_t limit, const char* what) const;

    void validate(const KVCache& cache, const std::vector<StepRequest>& requests) const;
    // step's work on requests_, under step_mu_.
    void run_step(KVCache& cache, std::vector<StepRequest>& requests);
    // Decodes the request's located <at> rows into boxes; true when its last row was one (§2.3).
    bool locate(StepRequest& r, const LlmSegment& s);

    nc_config config_;
    int32_t threads_;  // nc_model_params.threads: every op pool's size
    WeightStore weights_;
    // The reserved plan's limits (nc_model_reserve); none: buffers grow on demand.
    std::optional<nc_plan_request> limits_;
    Llm llm_;
    LocHeads loc_;
    std::unique_ptr<ops::Ops> ops_;
    std::mutex step_mu_;  // a step is not re-entrant (nextchat.h)
    std::vector<float> x_, last_, logits_;
    std::vector<LlmSegment> segments_;  // the step's sequences, for the forward
    std::vector<StepRequest> requests_;  // the step's inputs; both grow once to the largest batch (or the plan's)
    // The image encoder has its own ops (worker threads, scratch) and lock, so that it never blocks a step.
    VisionTower vision_;
    Projector projector_;
    std::unique_ptr<ops::Ops> vision_ops_;
    std::mutex vision_mu_;
    std::vector<float> features_;
    // SAM likewise.
    SamImageEncoder sam_encoder_;
    SamPromptEncoder sam_prompt_;
    SamMaskDecoder sam_decoder_;
    std::unique_ptr<ops::Ops> sam_ops_;
    std::mutex sam_mu_;
    std::vector<float> sam_sparse_, sam_lowres_, sam_work_;
};

}  // namespace nc
