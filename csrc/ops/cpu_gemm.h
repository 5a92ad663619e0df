// Matrix products of the CPU ops for the many-row regime: linear over hundreds of rows (CLIP's 577 tokens per
// image, prefill, the SAM decoder's maps) and non-causal attention. One register-blocked broadcast-FMA micro-kernel
// per ISA (12 × 32 on AVX-512, 6 × 16 on AVX2) runs over packed operands: weights converted to f32 in k-blocks that
// stay in L2, activations in row panels, keys and values per head or per chunk of keys (cpu_gemm.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/ops.h"
#include "runtime/thread_pool.h"

namespace nc::ops {

// The activation panels the GEMM packs on the calling thread before its parallel loop. Owned by the calling Ops
// (whose calls never overlap) and kept across calls: big panels are not faulted in afresh each call, and none is
// left behind in the OS threads a Go caller passes through.
struct GemmBuffers {
    std::vector<float> panels;
};

// y [rows, w.rows] = x [rows, w.cols] · Wᵀ (+ bias) — Ops::linear for rows well above the decode regime.
void gemm_linear(ThreadPool& pool, GemmBuffers& buffers, const float* x, int64_t rows, const Weight& w,
                 const Weight* bias, float* y);

// Ops::linears: x packed once for all the outputs when their weights share dtype and width.
void gemm_linears(ThreadPool& pool, GemmBuffers& buffers, const float* x, int64_t rows, const LinearOut* outs,
                  int32_t n);

// Queries whose scores one attention job keeps at once (a multiple of every ISA's query block), for q_rows queries over
// kv_rows keys of head_dim; a job holds them with their queries and outputs (model/plan.cpp sizes its buffers from
// this).
int64_t attention_group_queries(int64_t q_rows, int64_t kv_rows, int64_t head_dim);

// Ops::attention (non-causal, batched, optional score bias). With causal_start ≥ 0 it is causal instead: query i of
// each batch sits at key position causal_start + i and sees the keys up to it (the LLM's prefill over keys and
// values gathered from its cache); each job then computes only the keys its queries can see.
void gemm_attention(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t batch, int64_t q_rows,
                    int64_t kv_rows, int32_t heads, int32_t head_dim, float scale, const ScoreBias* bias, float* out,
                    int64_t causal_start = -1);

// Query rows of one sequence from which the paged-cache attention gathers the sequence's keys and values and runs
// gemm_attention (causal) rather than a dot product per cached position (cpu.cpp).
constexpr int64_t kGemmAttentionRows = 8;

// Cached positions whose scores a decode row's attention holds at once (cpu.cpp): an online softmax over chunks of
// this many keys keeps its per-thread scratch the same at every context length, so a growing context allocates
// nothing.
constexpr int64_t kDecodeKeyChunk = 256;

}  // namespace nc::ops
