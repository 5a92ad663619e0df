// The memory plan (docs/ARCHITECTURE.md "Memory plan"): the limits a caller plans for, with defaults, and the bound
// of the CPU ops' own working memory for the shapes a stage runs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "nextchat.h"

namespace nc {

// The request with every default filled in and every limit checked against the config.
nc_plan_request plan_limits(const nc_config& config, const nc_plan_request& request);

// Upper bound of what the CPU ops (csrc/ops) allocate themselves while a stage runs, from the kernels' blocking
// constants (cpu_gemm.cpp's tiles, cpu_gemv.cpp's row limit, cpu_sam.cpp's im2col chunk) and the sizes the decode and
// AMX kernels report (ops::gemv_scratch_bytes, ops::amx_scratch_bytes): buffers of one call (bias tiles,
// relative-position tables, resize taps), buffers each thread keeps (a packed weight block, attention panels, row
// scratch; a growing std::vector may hold up to twice its largest request) and buffers of one op set, which its
// caller fills before a parallel loop (the GEMM's activation panels, x prepared or packed for the decode and AMX
// kernels, the convolutions' re-laid weights and columns). The GEMM's and SAM's constants are private, so they are restated here;
// test_plan measures a planned workload's heap against this bound so that a change in the ops shows.
class OpScratch {
  public:
    // y [rows, Σ n] = x [rows, k] · Wᵀ for weights of n outputs each (Ops::linears).
    void linear(int64_t rows, int64_t k, std::initializer_list<int64_t> n);
    // Non-causal attention of q_rows queries over kv_rows keys of head_dim, optionally with SAM's relative-position
    // bias on a grid × grid map (0: none).
    void attention(int64_t q_rows, int64_t kv_rows, int64_t head_dim, int64_t bias_grid);
    // Causal attention of up to `rows` query rows of `heads` over a sequence's paged cache of up to `context`
    // positions (cpu.cpp's per-thread row; for a prompt chunk the gathered keys and values and the blocked kernel).
    void kv_attention(int64_t rows, int64_t context, int32_t heads, int64_t head_dim);
    // rms_norm / layer_norm rows of `dim` (their per-thread copy of the weights).
    void norm(int64_t dim, bool with_bias);
    // conv2d with a kernel > 1 over `pixels` pixels of `in` channels to `out` (weights re-laid, im2col chunk).
    void conv(int64_t pixels, int64_t in, int64_t out, int64_t kernel);
    // linear() on weights of input width k held as `how` says (their per-thread expanded rows; ops/compact_bf16.h,
    // ops/int8_rows.h).
    void recoded_linear(int64_t k, nc_llm_weights how);
    // resize_bilinear writing `cols` columns (its per-call taps).
    void resize(int64_t cols);
    // Bytes a stage's own code allocates for one call and frees (descriptors, per-call vectors).
    void call(uint64_t bytes) { call_ = std::max(call_, bytes); }

    // Bytes for a pool of `threads` threads (the caller included).
    uint64_t bytes(int threads) const { return call_ + per_thread_ * uint64_t(threads) + op_set_; }

  private:
    // A growing std::vector whose largest request so far is `largest` is asked for `need`: what it may hold, counted
    // in `total`, grows by up to twice the difference.
    static void grow(uint64_t& largest, uint64_t need, uint64_t& total);
    // cpu_sam.cpp's Buffers of the op set: re-laid weights and working rows, shared by both convolutions.
    void conv_buffers(uint64_t weights, uint64_t work);

    uint64_t call_ = 0, per_thread_ = 0, op_set_ = 0;
    // The largest request so far of each growing buffer: cpu.cpp's row, cpu_gemv.cpp's reordered rows, the GEMM's
    // weight blocks (0 until the first GEMM) and attention panels (keys, values, queries, scores, outputs, sums),
    // the relative-position rows.
    uint64_t row_scratch_ = 0, gemv_rows_ = 0, weight_blocks_ = 0, panels_[6] = {}, bias_rows_ = 0;
    // cpu_amx.cpp's buffers (ops::AmxScratch).
    uint64_t amx_packed_ = 0, amx_padded_ = 0, amx_tiles_ = 0, gemm_panels_ = 0;
    uint64_t conv_weights_ = 0, conv_work_ = 0, kv_dense_ = 0;
    uint64_t recoded_rows_ = 0;  // recoded_linear's per-thread buffers
};

// Threads of an op pool: nc_model_params.threads, 0 meaning one per hardware thread (ThreadPool's rule).
int pool_threads(int32_t threads);

}  // namespace nc
