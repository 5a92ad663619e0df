// A read-only weight matrix or vector of any stored dtype, as ops see it: no copy, converted on the fly.
#pragma once

#include <cstdint>
#include <cstring>

#include "nextchat.h"
#include "ops/convert.h"

namespace nc::ops {

struct CompactBf16;  // ops/compact_bf16.h
uint16_t compact_bits(const CompactBf16& w, int64_t r, int64_t c);
struct Int8Rows;  // ops/int8_rows.h
// The weight (r, c) of int8 rows as the ops use it: its row's scale times q.
float int8_weight(const Int8Rows& w, int64_t r, int64_t c);

struct Weight {
    nc_dtype dtype;
    const void* data;  // null when compact is set
    int64_t rows;      // output features for a [out, in] matrix; 1 for a vector
    int64_t cols;      // input features; the length for a vector
    // A bf16 matrix held in 12 bits per weight (ops/compact_bf16.h) instead of its stored bytes; dtype is BF16.
    const CompactBf16* compact = nullptr;
    // A matrix quantized to int8 rows (ops/int8_rows.h) in place of its stored bytes; dtype is F32 (its weights are
    // the float32 products scale · q), data is null.
    const Int8Rows* int8 = nullptr;
};

// Element i (row-major) of a weight, as float.
inline float weight_at(const Weight& w, int64_t i) {
    if (w.compact != nullptr) return bf16_to_f32(compact_bits(*w.compact, i / w.cols, i % w.cols));
    if (w.int8 != nullptr) return int8_weight(*w.int8, i / w.cols, i % w.cols);
    switch (w.dtype) {
        case NC_DTYPE_F32: {
            float f;
            std::memcpy(&f, static_cast<const char*>(w.data) + i * 4, 4);
            return f;
        }
        case NC_DTYPE_F16: {
            uint16_t h;
            std::memcpy(&h, static_cast<const char*>(w.data) + i * 2, 2);
            return f16_to_f32(h);
        }
        case NC_DTYPE_BF16: {
            uint16_t h;
            std::memcpy(&h, static_cast<const char*>(w.data) + i * 2, 2);
            return bf16_to_f32(h);
        }
    }
    return 0.0f;
}

// Elements [first, first + n) of a weight as floats.
inline void convert_row(const Weight& w, int64_t first, int64_t n, float* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = weight_at(w, first + i);
}

}  // namespace nc::ops
