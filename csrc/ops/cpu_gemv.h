// Matrix products of the CPU ops for the decode regime: a handful of rows (one per sequence in a batched decode
// step) against a weight matrix that is read from memory once per call. Memory-bound at one row, so the kernels
// are built around the weight stream: 16-bit weights widened in registers, every cache line of a weight tile
// prefetched while the tile before it is in use, all rows of x dotted with each weight vector loaded.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/ops.h"
#include "runtime/thread_pool.h"

namespace nc::ops {

// Up to this many rows the dot-product kernels here beat the packed GEMM of cpu_gemm.cpp (they read every weight
// once and pack nothing). 16 is the measured crossover (4096×11008 bf16 on 2 cores: 9 rows 6.8 ms dot vs 8.7 ms
// GEMM, 16 rows 11.3 vs 11.9, 24 rows 15.7 vs 12.0).
constexpr int64_t kGemvMaxRows = 16;

// x prepared for the AVX-512 kernel on the calling thread, owned by the calling Ops like GemmBuffers (cpu_gemm.h).
struct GemvBuffers {
    std::vector<float> x;
};

// Ops::linears for rows ≤ kGemvMaxRows: y_i [rows, w_i.rows] = x [rows, K] · w_iᵀ (+ bias_i), every w_i of width
// K. One parallel loop covers all the outputs, so q/k/v (or gate/up) cost one fork-join, not three.
void gemv_linears(ThreadPool& pool, GemvBuffers& buffers, const float* x, int64_t rows, const LinearOut* outs,
                  int32_t n);

// What a thread's buffer of expanded compact rows holds for width K (the kernels without AVX-512): the memory
// plan's bound (model/plan.cpp).
uint64_t gemv_compact_bytes(int64_t K);

// The same for expanded int8 rows (as floats).
uint64_t gemv_int8_bytes(int64_t K);

// What GemvBuffers holds for rows of width K: the memory plan's bound (model/plan.cpp).
uint64_t gemv_scratch_bytes(int64_t rows, int64_t K);

}  // namespace nc::ops
