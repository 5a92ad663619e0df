/*
 * nextchat.h — the C ABI of the nextchat inference core.
 *
 * Rules that hold for every call (docs/ARCHITECTURE.md, "C ABI"):
 *   - Every call that can fail returns an nc_status; NC_OK is 0. On failure the calling thread's
 *     nc_last_error() holds a message naming what was wrong (tensor, argument, file). No C++ exception,
 *     abort or exit ever crosses this boundary.
 *   - Handles are opaque. Whatever a call returns through an out-pointer is owned by the caller and must be
 *     released with the matching *_free call; *_free accepts NULL.
 *   - Strings passed in are copied (or only read during the call) unless stated otherwise. Strings
 *     returned are owned by the library and valid as documented on each call.
 *   - Enum-valued fields and arguments are int32_t holding the enum's constants, so their size is fixed and an
 *     out-of-range value from a caller is an NC_ERR_INVALID_ARGUMENT, not undefined behaviour.
 *   - Structs passed in start with `struct_size` so that later ABI versions can grow them: set it to
 *     sizeof(the struct) as compiled against this header.
 *
 * Thread safety: functions without a handle argument are safe from any thread. A handle may be used from
 * several threads at once only where its calls say "thread-safe".
 */
#ifndef NEXTCHAT_H
#define NEXTCHAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define NC_API __declspec(dllexport)
#else
#define NC_API __attribute__((visibility("default")))
#endif

/* Bumped on every incompatible change of this header. */
#define NC_ABI_VERSION 2

typedef enum nc_status {
    NC_OK = 0,
    NC_ERR_INVALID_ARGUMENT = 1, /* null pointer, bad size, value out of range */
    NC_ERR_IO = 2,               /* a file could not be opened, sized or mapped */
    NC_ERR_FORMAT = 3,           /* tensor bytes outside their file, inconsistent sizes */
    NC_ERR_SHAPE = 4,            /* a tensor's shape is not what the config implies */
    NC_ERR_DTYPE = 5,            /* a tensor's dtype is not supported */
    NC_ERR_MISSING = 6,          /* a required tensor is absent */
    NC_ERR_CONFIG = 7,           /* the model config is inconsistent */
    NC_ERR_UNSUPPORTED = 8,      /* a backend or feature not compiled in or not present */
    NC_ERR_OUT_OF_MEMORY = 9,
    NC_ERR_INTERNAL = 10,
    NC_ERR_OVER_PLAN = 11        /* work beyond the memory plan the model reserved (nc_model_reserve) */
} nc_status;

typedef enum nc_dtype {
    NC_DTYPE_F32 = 0,
    NC_DTYPE_F16 = 1,
    NC_DTYPE_BF16 = 2
} nc_dtype;

/* How the language model's bf16 matrices are held in memory. */
typedef enum nc_llm_weights {
    NC_LLM_WEIGHTS_AS_STORED = 0, /* mapped from the files as they are */
    /* Re-coded at load in 12 bits per weight, losslessly (docs/ARCHITECTURE.md "Compact weights"): 25 % less
     * memory for them and less to read per decode step, at a one-off cost at load; the files' pages are released.
     * NC_ERR_DTYPE when a layer matrix or lm_head is not bf16. */
    NC_LLM_WEIGHTS_COMPACT = 1,
    /* LOSSY, opt-in: quantized at load to 8 bits per weight with one float32 scale per output row (docs/ARCHITECTURE.md
     * "Int8 weights"); activations and sums stay float32. Half the memory of bf16 for them and about half the bytes
     * read per decode step; outputs no longer match the reference exactly. Any stored dtype; NC_ERR_DTYPE when a
     * weight is not finite. */
    NC_LLM_WEIGHTS_INT8 = 2
} nc_llm_weights;

typedef enum nc_backend {
    NC_BACKEND_CPU = 1,
    NC_BACKEND_CUDA = 2
} nc_backend;

/* The model components of MODEL_SPEC §1; every tensor belongs to exactly one. */
typedef enum nc_component {
    NC_COMPONENT_LLM = 0,         /* embed_tokens, decoder layers, final norm, lm_head (§1.1) */
    NC_COMPONENT_VISION = 1,      /* CLIP vision tower (§1.2) */
    NC_COMPONENT_PROJECTOR = 2,   /* mm_projector (§1.3) */
    NC_COMPONENT_LOC = 3,         /* loc_encoder + loc_decoder (§3) */
    NC_COMPONENT_SEG_PROMPT = 4,  /* seg_prompt_mlp (§4) */
    NC_COMPONENT_SAM_ENCODER = 5, /* SAM ViT image encoder (§5.1) */
    NC_COMPONENT_SAM_PROMPT = 6,  /* SAM prompt encoder (§5.2) */
    NC_COMPONENT_SAM_DECODER = 7, /* SAM mask decoder (§5.3) */
    NC_COMPONENT_COUNT = 8
} nc_component;

/* Whether a tensor of the official checkpoint is read by the engine (MODEL_SPEC §7.2). */
typedef enum nc_tensor_role {
    NC_TENSOR_REQUIRED = 0, /* must be present with the exact shape */
    NC_TENSOR_UNUSED = 1    /* present in the release but never read (CLIP post_layernorm, SAM mask_downscaling) */
} nc_tensor_role;

/* What a tensor is, so that tools (synthetic checkpoints, converters) treat each kind right. */
typedef enum nc_tensor_kind {
    NC_KIND_MATRIX = 0,     /* linear or conv weight: [out, in...] (ConvTranspose: [in, out, kh, kw]) */
    NC_KIND_BIAS = 1,       /* additive bias of a linear or conv */
    NC_KIND_NORM_SCALE = 2, /* RMSNorm / LayerNorm weight */
    NC_KIND_NORM_SHIFT = 3, /* LayerNorm bias */
    NC_KIND_EMBEDDING = 4,  /* rows used as vectors: token, class, position, prompt and output-token embeddings */
    NC_KIND_REL_POS = 5,    /* SAM decomposed relative-position tables */
    NC_KIND_GAUSSIAN = 6    /* SAM's random Fourier feature matrix (a buffer drawn from N(0, 1)) */
} nc_tensor_kind;

#define NC_MAX_DIMS 4
#define NC_MAX_GLOBAL_ATTN 8

/*
 * Every dimension of the model (MODEL_SPEC §1, §5). Fill it from config.json; nc_config_default_7b() gives
 * the released nextchat-7b-336 values. All counts are positive; eps values positive and finite.
 */
typedef struct nc_config {
    size_t struct_size;

    /* LLaMA (§1.1) */
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t intermediate_size;
    int32_t num_hidden_layers;
    int32_t num_attention_heads;
    int32_t num_key_value_heads;
    int32_t max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;

    /* CLIP vision tower (§1.2) */
    int32_t vision_hidden_size;
    int32_t vision_intermediate_size;
    int32_t vision_num_hidden_layers;
    int32_t vision_num_attention_heads;
    int32_t vision_image_size;
    int32_t vision_patch_size;
    float vision_layer_norm_eps;
    int32_t vision_select_layer; /* negative: index into hidden_states from the end (-2 in the release) */

    /* Box encoder / decoder hidden width (§3: 2048) */
    int32_t loc_hidden_size;

    /* SAM image encoder (§5.1) */
    int32_t sam_image_size;
    int32_t sam_patch_size;
    int32_t sam_encoder_embed_dim;
    int32_t sam_encoder_depth;
    int32_t sam_encoder_num_heads;
    int32_t sam_encoder_mlp_dim;
    int32_t sam_window_size;
    int32_t sam_num_global_attn;
    int32_t sam_global_attn_indexes[NC_MAX_GLOBAL_ATTN];
    float sam_layer_norm_eps;

    /* SAM prompt encoder and mask decoder (§5.2, §5.3) */
    int32_t sam_prompt_embed_dim;       /* 256: neck output channels and transformer width */
    int32_t sam_mask_in_chans;          /* 16: unused mask branch, sized for the release's tensors */
    int32_t sam_decoder_depth;          /* 2 */
    int32_t sam_decoder_num_heads;      /* 8 */
    int32_t sam_decoder_mlp_dim;        /* 2048 */
    int32_t sam_attention_downsample;   /* 2 */
    int32_t sam_num_multimask_outputs;  /* 3 */
    int32_t sam_iou_head_hidden_dim;    /* 256 */
    int32_t sam_iou_head_depth;         /* 3 */
    int32_t seg_prompt_tokens;          /* 4 LLM tokens per location (§4) */

    /* Location tokens (§2.1): a generated <at> is decoded to a box; the <boxes> after it carries the box. */
    int32_t at_token_id;    /* 32003 */
    int32_t boxes_token_id; /* 32004 */
} nc_config;

/* One tensor the engine expects, as implied by a config (MODEL_SPEC §7.2). */
typedef struct nc_tensor_spec {
    const char* name; /* owned by the nc_spec; valid until nc_spec_free */
    int32_t ndim;
    int64_t shape[NC_MAX_DIMS];
    int32_t component; /* nc_component */
    int32_t role;      /* nc_tensor_role */
    int32_t kind;      /* nc_tensor_kind */
} nc_tensor_spec;

/* One tensor as stored in a file: where its bytes are and what they are. */
typedef struct nc_tensor_ref {
    const char* name;
    int32_t dtype; /* nc_dtype */
    int32_t ndim;
    int64_t shape[NC_MAX_DIMS];
    int32_t file_index; /* index into nc_model_params.files */
    uint64_t offset;    /* absolute byte offset in the file */
    uint64_t nbytes;    /* must equal numel * sizeof(dtype) */
} nc_tensor_ref;

typedef struct nc_model_params {
    size_t struct_size;
    const nc_config* config;
    const char* const* files; /* weight files, memory-mapped read-only for the model's lifetime */
    int32_t n_files;
    const nc_tensor_ref* tensors;
    int64_t n_tensors; /* tensors not in the spec are ignored (the caller reports them) */
    int32_t backend; /* nc_backend */
    int32_t device; /* GPU ordinal for NC_BACKEND_CUDA; ignored for CPU */
    int32_t threads; /* CPU compute threads; 0 = one per hardware thread */
    int32_t llm_weights; /* nc_llm_weights */
} nc_model_params;

/* Bytes of weights the engine reads, by component, plus what is mapped but never read. */
typedef struct nc_memory_report {
    size_t struct_size;
    uint64_t weight_bytes[NC_COMPONENT_COUNT];
    uint64_t weight_bytes_total;
    uint64_t unused_bytes;     /* NC_TENSOR_UNUSED tensors present in the files */
    uint64_t mapped_bytes;     /* total size of the mapped files */
    uint64_t kv_bytes_per_token; /* K and V for every layer at the given KV dtype */
} nc_memory_report;

/* The stages of the engine that own working memory (docs/ARCHITECTURE.md "Memory plan"). */
typedef enum nc_stage {
    NC_STAGE_STEP = 0,        /* nc_step and nc_encode_boxes: LLM, loc heads, sampler, sequences' bookkeeping */
    NC_STAGE_VISION = 1,      /* nc_encode_images: CLIP tower + projector */
    NC_STAGE_SAM_ENCODER = 2, /* nc_sam_encode_image */
    NC_STAGE_SAM_DECODER = 3, /* nc_sam_decode_masks: prompt encoder, mask decoder, mask post-processing */
    NC_STAGE_COUNT = 4
} nc_stage;

/*
 * The limits a memory plan is made for. Work within them never allocates after nc_model_reserve; work beyond
 * them is refused with NC_ERR_OVER_PLAN. Zero takes the default noted on a field.
 */
typedef struct nc_plan_request {
    size_t struct_size;
    int32_t backend;             /* nc_backend the plan is for (CUDA: the layout its backend will use) */
    int32_t threads;             /* CPU threads of each op pool (0 = the model's); nc_model_reserve needs the model's */
    int64_t max_context;         /* positions per sequence, ≤ max_position_embeddings (0 = that maximum) */
    int32_t max_sequences;       /* sequences alive in the KV cache at once, and per nc_step (0 = 1) */
    int32_t max_step_rows;       /* rows of one nc_step, all sequences together (0 = max_context) */
    int32_t max_images;          /* images per nc_encode_images call (0 = 1) */
    int32_t max_locations;       /* boxes per nc_encode_boxes and locations per nc_sam_decode_masks (0 = 8) */
    int32_t kv_block_size;       /* positions per KV block, a power of two (0 = 16) */
    int32_t kv_dtype;            /* nc_dtype of the KV cache */
    int32_t feature_cache_images; /* CLIP features a caller keeps (the Go engine's cache), for the plan's total */
    int32_t sam_cache_images;    /* SAM image embeddings a caller keeps, likewise */
} nc_plan_request;

/* Bytes of a memory plan. Host and device totals are exact for everything the core allocates; op scratch is the
 * bound the kernels' blocking constants give. */
typedef struct nc_plan {
    size_t struct_size;            /* set by the caller to sizeof(nc_plan); the library sets what it wrote */
    nc_plan_request request;       /* the request with defaults filled in */
    uint64_t weight_bytes[NC_COMPONENT_COUNT]; /* weights read, per component (host mapped pages / device) */
    uint64_t weights_total;
    uint64_t derived_bytes[NC_STAGE_COUNT];    /* float copies made from weights at load (SAM tables, maps) */
    int64_t kv_blocks;             /* what nc_cache_create must be given: max_sequences × ⌈max_context / block⌉ */
    uint64_t kv_block_bytes;       /* one block: K and V of every layer */
    uint64_t kv_bytes;             /* kv_blocks × kv_block_bytes: exactly what nc_cache_create allocates */
    uint64_t workspace_bytes[NC_STAGE_COUNT];  /* model-owned activations, reserved by nc_model_reserve */
    uint64_t scratch_bytes[NC_STAGE_COUNT];    /* op working memory: per call, per pool thread, per op set */
    uint64_t sequence_bytes;       /* max_sequences × one sequence's bookkeeping (history, blocks, sampler) */
    uint64_t feature_cache_bytes;  /* feature_cache_images × one image's projected features */
    uint64_t sam_cache_bytes;      /* sam_cache_images × one SAM image embedding */
    uint64_t host_bytes;           /* everything in host memory */
    uint64_t device_bytes;         /* everything in device memory (0 for a CPU plan) */
} nc_plan;

typedef struct nc_spec nc_spec;
typedef struct nc_model nc_model;
typedef struct nc_cache nc_cache;
typedef struct nc_seq nc_seq;

/* A paged KV cache: num_blocks blocks of block_size positions (a power of two) for every layer. */
typedef struct nc_cache_params {
    size_t struct_size;
    int32_t block_size;
    int64_t num_blocks;
    int32_t dtype; /* nc_dtype of stored keys and values */
} nc_cache_params;

/* How a sequence chooses tokens (docs/SAMPLING.md). temperature 0 = greedy. */
typedef struct nc_sampling {
    size_t struct_size;
    float temperature;
    int32_t top_k;            /* 0 = no limit */
    float top_p;              /* 1 = no limit */
    float repetition_penalty; /* 1 = none */
    uint64_t seed;
} nc_sampling;

/* What a step returns for a sequence. */
#define NC_STEP_SAMPLE 1     /* choose the next token from the last row: nc_step_input.token */
#define NC_STEP_LOGITS 2     /* copy the last row's logits [vocab] into .logits */
#define NC_STEP_HIDDEN 4     /* copy the last row's final-normed hidden state [hidden] into .hidden */
#define NC_STEP_ALL_HIDDEN 8 /* copy every row's final-normed hidden state [n_tokens, hidden] into .hidden */

/* One sequence's part of a batched step: n_tokens rows appended at its current length. */
typedef struct nc_step_input {
    nc_seq* seq;
    const int32_t* tokens;     /* [n_tokens] ids; every row has one (e.g. <im_patch> under an image row) */
    int32_t n_tokens;
    const float* embeds;       /* optional [n_tokens, hidden]: input embeddings replacing the token's */
    const uint8_t* embed_rows; /* optional [n_tokens]: 1 where embeds applies; NULL = every row */
    int32_t want;              /* NC_STEP_* flags */
    float* logits;             /* caller-owned output buffers, see the flags */
    float* hidden;
    int32_t token;             /* out: the chosen token with NC_STEP_SAMPLE (<boxes> after a located <at>) */
    /*
     * Locations (MODEL_SPEC §2.3). Rows marked here must hold <at>; each is decoded by loc_decoder into a box.
     * When the last row is located, the next token is <boxes> (never sampled, no random draw) and the next step's
     * <boxes> row of this sequence gets loc_encoder(box) as its embedding unless embeds overrides it.
     */
    const uint8_t* locate_rows; /* optional [n_tokens] */
    float* boxes;               /* [located rows, 4] out: normalized xyxy in the expand2square frame, raw */
    float* at_hidden;           /* optional [located rows, hidden] out: the <at> hidden states (SAM prompts) */
    int32_t n_located;          /* out */
} nc_step_input;

/* ---- Library ---------------------------------------------------------------------------------------- */

/* NC_ABI_VERSION the library was built with; compare with the header's. */
NC_API int32_t nc_abi_version(void);
/* Semantic version of the library, e.g. "0.1.0". Static string. */
NC_API const char* nc_version(void);
/* Message of the last failed call on this thread; "" if none. Valid until the next call on this thread. */
NC_API const char* nc_last_error(void);
/* Static name of a status code, e.g. "NC_ERR_SHAPE". */
NC_API const char* nc_status_name(int32_t status);
/* Static lower-case name of a component, e.g. "sam_decoder"; "" when out of range. */
NC_API const char* nc_component_name(int32_t component);
/* Static lower-case name of a stage, e.g. "sam_encoder"; "" when out of range. */
NC_API const char* nc_stage_name(int32_t stage);
/* Whether the backend was compiled into this library. */
NC_API int32_t nc_backend_compiled(int32_t backend);
/* Devices usable by a backend right now: 1 for CPU; CUDA devices visible to the runtime (0 when the
 * driver is absent). Never fails for a compiled backend; NC_ERR_UNSUPPORTED for one not compiled in. */
NC_API nc_status nc_backend_device_count(int32_t backend, int32_t* out_count);

/* ---- Config and tensor spec ------------------------------------------------------------------------- */

/* The released nextchat-7b-336 architecture (MODEL_SPEC §1, §5). */
NC_API nc_status nc_config_default_7b(nc_config* out);
/* Checks a config for consistency (positive sizes, heads dividing widths, window/global indexes in range). */
NC_API nc_status nc_config_validate(const nc_config* config);

/* Builds the tensor list a config implies. Thread-safe. */
NC_API nc_status nc_spec_create(const nc_config* config, nc_spec** out);
NC_API void nc_spec_free(nc_spec* spec);
NC_API int64_t nc_spec_count(const nc_spec* spec);
NC_API nc_status nc_spec_get(const nc_spec* spec, int64_t index, nc_tensor_spec* out);

/* ---- Model ------------------------------------------------------------------------------------------ */

/*
 * Maps the files and binds every required tensor of the spec, checking before any compute: presence,
 * shape, supported dtype, bytes within the file. Fails naming every offending tensor. Thread-safe.
 */
NC_API nc_status nc_model_open(const nc_model_params* params, nc_model** out);
/* Unmaps and frees. Must not race with other calls on the same model. */
NC_API void nc_model_free(nc_model* model);
/* Weight bytes by component and KV bytes per token for kv_dtype. Thread-safe. */
NC_API nc_status nc_model_memory(const nc_model* model, int32_t kv_dtype, nc_memory_report* out);

/*
 * The memory plan of this model for the request's limits (docs/ARCHITECTURE.md "Memory plan"): weights per
 * component, the KV cache, each stage's workspace and op scratch, the caller's image caches, host and device
 * totals. Computes only; allocates nothing. Thread-safe.
 */
NC_API nc_status nc_model_plan(const nc_model* model, const nc_plan_request* request, nc_plan* out);
/*
 * Allocates every stage's workspace for the request's limits up front (out, when not NULL, receives the plan).
 * Afterwards calls within the limits never grow a model buffer, and calls beyond them fail with
 * NC_ERR_OVER_PLAN before any compute: nc_step with more rows or sequences, or positions past max_context;
 * nc_encode_images with more images; nc_encode_boxes or nc_sam_decode_masks with more locations. A second call
 * replaces the limits (buffers are reallocated to the new plan). Call it before other calls on the model: it
 * waits for running calls.
 */
NC_API nc_status nc_model_reserve(nc_model* model, const nc_plan_request* request, nc_plan* out);
/* Workspace bytes the model holds now per stage (model-owned buffers only: what nc_plan.workspace_bytes plans).
 * Thread-safe with respect to nothing but itself: read it between calls. */
NC_API nc_status nc_model_workspace(const nc_model* model, uint64_t out_bytes[NC_STAGE_COUNT]);

/* ---- Locations ---------------------------------------------------------------------------------------- */

/* embeds [n, hidden] = loc_encoder(boxes [n, 4]) (MODEL_SPEC §3): the input embeddings of user <boxes> tokens,
 * boxes normalized xyxy in the expand2square frame (§3.3). Thread-safe with respect to other calls except
 * nc_step on the same model. */
NC_API nc_status nc_encode_boxes(nc_model* model, const float* boxes, int32_t n, float* embeds);

/* ---- Images ------------------------------------------------------------------------------------------- */

/* The image side of a model (MODEL_SPEC §1.2, §1.3, §4, §5): what nc_encode_images and the SAM calls take and
 * return. */
typedef struct nc_model_dims {
    size_t struct_size;         /* set by the caller to sizeof(nc_model_dims); the library sets what it wrote */
    int32_t image_size;         /* S: CLIP input side in pixels (336) */
    int32_t patch_size;         /* CLIP patch side (14) */
    int32_t image_tokens;       /* P = (S / patch)²: <im_patch> rows per image (576) */
    int32_t vision_hidden_size; /* CLIP width (1024) */
    int32_t vision_layers;      /* CLIP encoder layers that run: up to hidden_states[select_layer] (23) */
    int32_t hidden_size;        /* LLM width = projector output (4096) */
    int32_t sam_image_size;     /* SAM input side in pixels (1024) */
    int32_t sam_grid;           /* g = sam_image_size / SAM patch: image embedding side (64) */
    int32_t sam_embed_dim;      /* D: image embedding channels = prompt token width (256) */
    int32_t sam_mask_size;      /* 4g: low-res mask side (256) */
    int32_t sam_sparse_tokens;  /* sparse prompt tokens per location: seg_prompt_tokens + 2 box corners (6) */
} nc_model_dims;

/* The model's image dimensions. Thread-safe. */
NC_API nc_status nc_model_get_dims(const nc_model* model, nc_model_dims* out);

/*
 * CLIP vision tower + projector over n ≥ 1 images (MODEL_SPEC §1.2, §1.3).
 *   pixels        [n, 3, S, S] float32, CLIP-normalized (§1.4: expand2square, resize, (x/255 − mean)/std); every
 *                 value must be finite. Read only during the call.
 *   out_projected [n, P, hidden_size]: the input embeddings of each image's <im_patch> rows. Caller-owned.
 *   out_clip      optional [n, P, vision_hidden_size]: hidden_states[select_layer] without the class token;
 *                 NULL when not wanted. Caller-owned.
 * S, P and the widths come from nc_model_get_dims. On failure the outputs hold no meaningful values.
 * Thread-safe: it runs on the model's own vision worker threads and may overlap nc_step and the other calls on
 * the same model; concurrent nc_encode_images calls on one model run one after the other.
 */
NC_API nc_status nc_encode_images(nc_model* model, const float* pixels, int32_t n, float* out_projected,
                                  float* out_clip);

/* ---- Masks (SAM) -------------------------------------------------------------------------------------- */

/*
 * SAM's ViT image encoder (MODEL_SPEC §5.1) over one image: run it once per image that has at least one <at>.
 *   pixels     [3, S, S] float32 with S = sam_image_size: the raw image resized so its long side is S, normalized
 *              with SAM's mean/std and zero-padded centred (§4); every value must be finite. Read only during
 *              the call.
 *   embedding  [D, g, g] out (D = sam_embed_dim, g = sam_grid). Caller-owned.
 * Thread-safe: it runs on the model's own SAM worker threads and may overlap nc_step and nc_encode_images;
 * concurrent SAM calls on one model run one after the other. On failure the output holds no meaningful values.
 */
NC_API nc_status nc_sam_encode_image(nc_model* model, const float* pixels, float* embedding);

/*
 * The masks of n ≥ 1 located <at> tokens of one image (MODEL_SPEC §4, §5.2, §5.3): sparse prompt = seg_prompt_mlp
 * of the <at> hidden state (seg_prompt_tokens tokens) + the box's two corner tokens; dense prompt = no_mask_embed;
 * the mask decoder keeps mask token 0 (multimask_output=False); the logits are resized to S×S, then to
 * max(width, height)², thresholded at 0 and the centred pad of the short side cropped.
 *   embedding  [D, g, g]: nc_sam_encode_image's output for the image. Finite.
 *   at_hidden  [n, hidden_size]: the final-normed hidden states of the <at> rows (nc_step_input.at_hidden). Finite.
 *   boxes      [n, 4]: their decoded boxes, normalized xyxy in the expand2square frame (nc_step_input.boxes).
 *   width, height: the original image's size in pixels, each in [1, 32768].
 *   lowres     optional [n, 4g, 4g] out: the low-res mask logits.
 *   iou        [n] out: the predicted IoU of each mask (the demo drops masks below 0.3; nothing is dropped here).
 *   masks      optional [n, height, width] out: 1 inside the mask, 0 outside.
 *   sparse     optional [n, sam_sparse_tokens, D] out: the sparse prompt tokens (for dumps and tests).
 * NULL optional outputs are not computed (masks) or not returned. All buffers are caller-owned, read or written
 * only during the call. Thread-safety as nc_sam_encode_image.
 */
NC_API nc_status nc_sam_decode_masks(nc_model* model, const float* embedding, int32_t n, const float* at_hidden,
                                     const float* boxes, int32_t width, int32_t height, float* lowres, float* iou,
                                     uint8_t* masks, float* sparse);

/* ---- KV cache, sequences, steps ----------------------------------------------------------------------- */

/* Allocates the whole cache up front (no allocation during steps). The cache may be freed before its
 * sequences: they keep its memory alive. */
NC_API nc_status nc_cache_create(nc_model* model, const nc_cache_params* params, nc_cache** out);
NC_API void nc_cache_free(nc_cache* cache);
/* Free and total blocks. */
NC_API nc_status nc_cache_blocks(const nc_cache* cache, int64_t* free_blocks, int64_t* total_blocks);

/* Checks sampling parameters as nc_seq_create does (temperature finite and ≥ 0, top_k ≥ 0, top_p in (0, 1],
 * repetition_penalty finite and > 0) without a sequence, so that a caller can refuse a request before any work.
 * Thread-safe. */
NC_API nc_status nc_sampling_check(const nc_sampling* sampling);

/* An empty sequence in a cache. */
NC_API nc_status nc_seq_create(nc_cache* cache, const nc_sampling* sampling, nc_seq** out);
/* A copy sharing the parent's cached positions (copied on write) and sampler state: for beams and prefixes. */
NC_API nc_status nc_seq_fork(const nc_seq* parent, nc_seq** out);
/* A new request that continues the parent's first `positions` positions (a cached prompt prefix, 0 ≤ positions ≤
 * the parent's length): those cache blocks shared (copied on write), with its own sampling and no pending location.
 * The parent is unchanged and may be freed at once. */
NC_API nc_status nc_seq_fork_prefix(const nc_seq* parent, int64_t positions, const nc_sampling* sampling, nc_seq** out);
NC_API void nc_seq_free(nc_seq* seq);
/* Positions in the cache; -1 for NULL. */
NC_API int64_t nc_seq_length(const nc_seq* seq);

/*
 * One batched step over n sequences of one cache (prefill chunks and single decode tokens mixed). Everything
 * is validated before any compute; on error no sequence changed. Not re-entrant for a model; the sequences
 * and cache must not be used concurrently by other calls.
 */
NC_API nc_status nc_step(nc_model* model, nc_cache* cache, nc_step_input* inputs, int32_t n);

/* ---- Machine probes ----------------------------------------------------------------------------------- */

/*
 * The ceilings that benchmarks are judged against, measured now on this machine. threads: 0 = one per hardware
 * thread, at most 1024; seconds: how long to measure, in (0, 60]. Both block for about that long, run their own
 * threads (not a model's) and are thread-safe, though concurrent probes measure each other.
 */
/* Sustained fp32 FMA throughput in GFLOP/s (an FMA counts 2 per lane): every thread runs independent
 * register-resident FMA chains on the widest vector ISA the compute kernels use (AVX-512F, else AVX2+FMA, else
 * scalar; NEXTCHAT_CPU_ISA=avx2|portable caps both). */
NC_API nc_status nc_probe_fma_peak(int32_t threads, double seconds, double* gflops);
/* AMX tile throughput in GFLOP/s of bf16 products (TDPBF16PS on register-resident tiles), 0 where the compute kernels
 * do not use the tiles (no AMX-BF16, not granted by the OS, or NEXTCHAT_CPU_ISA=avx512 or narrower). The kernels'
 * float32-exact products take three tile products each, so their ceiling there is a third of it. */
NC_API nc_status nc_probe_amx_peak(int32_t threads, double seconds, double* gflops);
/* Sustained memory read bandwidth in GB/s (1e9 bytes): the threads stream disjoint slices of one buffer of 4×
 * the last-level cache (at least 256 MiB, at most 2 GiB), allocated and touched before the clock starts. */
NC_API nc_status nc_probe_read_bandwidth(int32_t threads, double seconds, double* gbytes_per_s);

#ifdef __cplusplus
}
#endif

#endif /* NEXTCHAT_H */
