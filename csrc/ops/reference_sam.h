// The reference versions of the SAM ops (ops.h, "SAM"): the obviously-right loops, accumulating in double.
// ReferenceOps forwards to these.
#pragma once

#include <cstdint>
#include <memory>

#include "ops/ops.h"

namespace nc::ops::reference_sam {

std::unique_ptr<ScoreBias> rel_pos_bias(const float* q, int32_t heads, int32_t head_dim, int64_t grid_h,
                                        int64_t grid_w, const Weight& rel_h, const Weight& rel_w);
void window_partition(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window,
                      const float* fill, float* y);
void window_merge(const float* x, int64_t height, int64_t width, int64_t channels, int32_t window, float* y);
void conv2d(const float* x, int64_t n, int64_t height, int64_t width, const Weight& w, const Weight* bias,
            int32_t kernel, float* y);
void resize_bilinear(const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                     int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* y);
void transpose(const float* x, int64_t batch, int64_t rows, int64_t cols, float* y);
void softmax(float* x, int64_t rows, int64_t cols);

}  // namespace nc::ops::reference_sam
