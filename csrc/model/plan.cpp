#include "model/plan.h"

#include <algorithm>
#include <string>
#include <thread>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/cpu_amx.h"
#include "ops/cpu_gemm.h"
#include "ops/cpu_gemv.h"

namespace nc {

namespace {

// cpu_gemm.cpp's tiles, the largest of every ISA (AVX-512: 12 × 32, weight blocks 128 × 1024; AVX2: 6 × 16, 64 ×
// 1024), and AlignedBuffer's 16 floats of alignment slack.
constexpr int64_t kTileRows = 12, kTileCols = 32, kBlockOutputs = 128, kBlockDepth = 1024, kAlignFloats = 16;
// cpu_sam.cpp: im2col rows per chunk of a convolution.
constexpr int64_t kIm2colChunk = 1024;
// A std::vector grown by resize holds at most twice its largest request (libstdc++ doubles).
constexpr uint64_t kGrowth = 2;
// sizeof(cpu_sam.cpp's Tap): two int64 taps and two float weights.
constexpr uint64_t kTapBytes = 24;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

int pool_threads(int32_t threads) {
    return threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
}

nc_plan_request plan_limits(const nc_config& c, const nc_plan_request& in) {
    nc_plan_request r = in;
    r.struct_size = sizeof(nc_plan_request);
    auto bad = [](const std::string& m) { fail(NC_ERR_INVALID_ARGUMENT, "plan request: " + m); };
    if (r.backend != NC_BACKEND_CPU && r.backend != NC_BACKEND_CUDA) bad("unknown backend code " + std::to_string(r.backend));
    if (r.threads < 0 || r.threads > 1024) bad("threads " + std::to_string(r.threads) + " out of range [0, 1024]");
    if (r.max_context == 0) r.max_context = c.max_position_embeddings;
    if (r.max_context < 1 || r.max_context > c.max_position_embeddings) {
        bad("max_context " + std::to_string(r.max_context) + " out of range [1, max_position_embeddings " +
            std::to_string(c.max_position_embeddings) + "]");
    }
    constexpr int32_t kMaxCount = 1 << 20;
    if (r.max_sequences == 0) r.max_sequences = 1;
    if (r.max_step_rows == 0) r.max_step_rows = int32_t(std::min<int64_t>(r.max_context * r.max_sequences, kMaxCount));
    if (r.max_images == 0) r.max_images = 1;
    if (r.max_locations == 0) r.max_locations = 8;
    if (r.kv_block_size == 0) r.kv_block_size = 16;
    const std::pair<const char*, int64_t> counts[] = {{"max_sequences", r.max_sequences}, {"max_step_rows", r.max_step_rows},
                                                      {"max_images", r.max_images}, {"max_locations", r.max_locations}};
    for (const auto& [name, v] : counts) {
        if (v < 1 || v > kMaxCount) bad(std::string(name) + " " + std::to_string(v) + " out of range [1, 2^20]");
    }
    if (r.kv_block_size < 1 || r.kv_block_size > 4096 || (r.kv_block_size & (r.kv_block_size - 1)) != 0) {
        bad("kv_block_size " + std::to_string(r.kv_block_size) + " is not a power of two in [1, 4096]");
    }
    if (!dtype_valid(r.kv_dtype)) bad("unknown KV dtype code " + std::to_string(r.kv_dtype));
    if (r.feature_cache_images < 0 || r.feature_cache_images > kMaxCount || r.sam_cache_images < 0 ||
        r.sam_cache_images > kMaxCount) {
        bad("image cache capacities must be in [0, 2^20]");
    }
    return r;
}

void OpScratch::grow(uint64_t& largest, uint64_t need, uint64_t& total) {
    if (need > largest) {
        total += kGrowth * (need - largest);
        largest = need;
    }
}

void OpScratch::linear(int64_t rows, int64_t k, std::initializer_list<int64_t> n) {
    if (rows >= ops::kAmxMinRows) {
        // cpu_amx.cpp, when the CPU has AMX and the weights are bf16 (counted whether or not they will be): the op
        // set's AmxBuffers.
        const ops::AmxScratch amx = ops::amx_scratch_bytes(rows, k, n);
        grow(amx_packed_, amx.packed, op_set_);
        grow(amx_padded_, amx.padded, op_set_);
        grow(amx_tiles_, amx.tiles, op_set_);
    }
    if (rows <= ops::kGemvMaxRows) {
        // cpu_gemv.cpp: the op set's GemvBuffers; nothing else.
        grow(gemv_rows_, ops::gemv_scratch_bytes(rows, k), op_set_);
        return;
    }
    // cpu_gemm.cpp: the activations packed into the op set's GemmBuffers (bounds what the by-rows path leaves unused);
    // for the call, the bias tiles (every output rounded to the widest tile) and one part descriptor per output; per
    // thread, one packed weight block and one A panel (shared by every dtype).
    int64_t outputs = 0;
    for (int64_t o : n) outputs += round_up(o, kTileCols);
    grow(gemm_panels_, 4 * uint64_t(round_up(rows, kTileRows) * k + kAlignFloats), op_set_);
    call_ = std::max<uint64_t>(call_, 4 * uint64_t(outputs) + 64 * n.size());
    static constexpr uint64_t block =
        4 * uint64_t(kBlockOutputs * kBlockDepth + kTileRows * kBlockDepth + 2 * kAlignFloats);
    if (weight_blocks_ == 0) {
        per_thread_ += block;
        weight_blocks_ = block;
    }
}

void OpScratch::attention(int64_t q_rows, int64_t kv_rows, int64_t d, int64_t bias_grid) {
    // cpu_gemm.cpp's HeadPanels per thread: keys and values (a head's packed whole bounds a chunk's), and a group's
    // queries, scores, outputs and softmax reciprocals.
    const int64_t T = kv_rows, group = ops::attention_group_queries(q_rows, kv_rows, d);
    const uint64_t need[6] = {4 * uint64_t(round_up(T, kTileRows) * d + kAlignFloats),
                              4 * uint64_t(round_up(d, kTileRows) * T + kAlignFloats),
                              4 * uint64_t(group * d + kAlignFloats),
                              4 * uint64_t(group * round_up(T, kTileRows) + kAlignFloats),
                              4 * uint64_t(group * round_up(d, kTileRows) + kAlignFloats),
                              4 * uint64_t(group + kAlignFloats)};
    for (int i = 0; i < 6; ++i) {
        grow(panels_[i], need[i], per_thread_);
    }
    if (bias_grid > 0) {
        // cpu_sam.cpp's RelPosBias: float copies of both tables for the call, a per-thread table of a query block.
        call_ = std::max<uint64_t>(call_, 4 * uint64_t(2 * (2 * bias_grid - 1) * d));
        const uint64_t rows = 4 * uint64_t(2 * bias_grid * kTileCols);
        grow(bias_rows_, rows, per_thread_);
    }
}

void OpScratch::kv_attention(int64_t rows, int64_t context, int32_t heads, int64_t d) {
    const uint64_t need = 4 * uint64_t(ops::kDecodeKeyChunk + 2 * d);  // cpu.cpp's decode rows
    grow(row_scratch_, need, per_thread_);
    if (rows < ops::kGemmAttentionRows) return;
    // A prompt chunk: cpu.cpp's gathered keys and values (the op set's), then the blocked kernel.
    grow(kv_dense_, 4 * uint64_t(2 * context * heads * d), op_set_);
    attention(std::min(rows, context), context, d, 0);
}

void OpScratch::norm(int64_t dim, bool with_bias) {
    const uint64_t need = 4 * uint64_t(with_bias ? 2 * dim : dim);  // cpu.cpp's per-thread row, like kv_attention's
    grow(row_scratch_, need, per_thread_);
}

void OpScratch::conv_buffers(uint64_t weights, uint64_t work) {
    grow(conv_weights_, weights, op_set_);
    grow(conv_work_, work, op_set_);
}

void OpScratch::conv(int64_t pixels, int64_t in, int64_t out, int64_t kernel) {
    const int64_t k2 = kernel * kernel, chunk = std::min(kIm2colChunk, pixels);
    const uint64_t weights = 4 * uint64_t(out * k2 * in), work = 4 * uint64_t(chunk * k2 * in);
    conv_buffers(weights, work);
    linear(chunk, k2 * in, {out});
}

void OpScratch::recoded_linear(int64_t k, nc_llm_weights how) {
    // cpu_gemv.cpp's expanded tile rows, cpu_gemm.cpp's expanded panel of a k-block (bf16 for compact weights, float
    // for int8 rows), cpu_amx.cpp's expanded tiles: one of each per thread.
    const bool int8 = how == NC_LLM_WEIGHTS_INT8;
    const uint64_t gemv = int8 ? ops::gemv_int8_bytes(k) : ops::gemv_compact_bytes(k);
    const uint64_t panel = (int8 ? 4 : 2) * uint64_t(kTileCols * std::min(k, kBlockDepth));
    grow(recoded_rows_, gemv + panel + ops::amx_expanded_bytes(k), per_thread_);
}

void OpScratch::resize(int64_t cols) { call_ = std::max<uint64_t>(call_, kTapBytes * uint64_t(cols)); }

}  // namespace nc
