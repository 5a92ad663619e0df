// The CPU versions of the SAM ops (ops.h, "SAM"): convolution as im2col + the packed GEMM
// of cpu_gemm.cpp, data movement split over the pool, the relative-position bias computed per query row with
// AVX2 dot products. CpuOps forwards to these.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ops/cpu_gemm.h"
#include "ops/ops.h"
#include "runtime/thread_pool.h"

namespace nc::ops::cpu_sam {

// The convolution's working memory — re-laid weights and im2col rows —
// owned by the calling Ops (whose calls never overlap) and reused across calls.
struct Buffers {
    std::vector<float> weights, work;
};

std::unique_ptr<ScoreBias> rel_pos_bias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h,
                                        int64_t grid_w, const Weight& rel_h, const Weight& rel_w);
void window_partition(ThreadPool& pool, const float* x, int64_t height, int64_t width, int64_t channels,
                      int32_t window, const float* fill, float* y);
void window_merge(ThreadPool& pool, const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                  float* y);
void conv2d(ThreadPool& pool, Buffers& buffers, GemmBuffers& gemm, const float* x, int64_t n, int64_t height,
            int64_t width, const Weight& w, const Weight* bias, int32_t kernel, float* y);
void resize_bilinear(ThreadPool& pool, const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h,
                     int64_t out_w, int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* y);
void transpose(ThreadPool& pool, const float* x, int64_t batch, int64_t rows, int64_t cols, float* y);
void softmax(ThreadPool& pool, float* x, int64_t rows, int64_t cols);

}  // namespace nc::ops::cpu_sam
