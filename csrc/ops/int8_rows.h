// Int8 rows: a weight matrix quantized to 8 bits per weight with one float32 scale per output row, for the language
// model's opt-in lossy mode (NC_LLM_WEIGHTS_INT8; docs/ARCHITECTURE.md "Int8 weights").
//
// Row r's weights become q = round(w / s_r), s_r = max_c |w[r, c]| / 127, q in [-127, 127]; the weight the ops use is
// s_r · q (float32). Only the weights are quantized: x stays float32 and every sum is float32, as for stored weights.
// A decode step at batch 1 reads every weight once, so it reads half the bytes of bf16: that is what the mode buys,
// at the price of each weight moving by up to s_r / 2.
//
// The kernels take s_r out of the sum: they add x · q (q is exact as a float and as a bf16, which lets the AMX
// tiles multiply it) and scale each output once (scale_int8_outputs). That rounds differently from summing
// x · (s_r · q) — the same value to float32 rounding.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/huge_array.h"
#include "ops/ops.h"

namespace nc::ops {

struct Int8Rows {
    int64_t rows = 0, cols = 0;
    int64_t stride = 0;  // bytes from one row to the next: cols rounded up to a cache line, so every row starts on one
    HugeArray<int8_t> q;       // rows · stride (core/huge_array.h); the padding is zero
    std::vector<float> scale;  // rows

    const int8_t* row(int64_t r) const { return q.get() + r * stride; }
    // Bytes held: the rows with their padding and the scales.
    uint64_t bytes() const { return uint64_t(rows * stride) + scale.size() * sizeof(float); }
};

// w [rows, cols] of any dtype quantized on the ops' threads. NC_ERR_DTYPE (via fail) when a weight is not finite:
// one infinity or NaN would set its row's scale. `name` names the tensor in that error.
std::unique_ptr<Int8Rows> quantize_int8(Ops& ops, const Weight& w, const std::string& name);

// q of rows [first, first + n), columns [k0, k0 + cols), as bf16 bits (exact), row i at out + i · ld: the AMX tiles'
// operand.
void expand_int8_bf16(const Int8Rows& w, int64_t first, int64_t n, int64_t k0, int64_t cols, uint16_t* out, int64_t ld);

// q of rows [first, first + n) as floats (exact), row i at out + i · ld: the AVX2 and portable dot products' operand.
void expand_int8_f32(const Int8Rows& w, int64_t first, int64_t n, float* out, int64_t ld);

// Weights [k0, k0 + n) of row r as the floats s_r · q: the packed GEMM's operand (its sums use them as they are).
void expand_int8_scaled(const Int8Rows& w, int64_t r, int64_t k0, int64_t n, float* out);

// y[r · ldy + o] = s_o · y[r · ldy + o] + bias_o for rows r < rows and outputs [o0, o1): turns the kernels' sums of
// x · q into outputs. `bias` may be null.
void scale_int8_outputs(const Int8Rows& w, const Weight* bias, int64_t o0, int64_t o1, int64_t rows, float* y,
                        int64_t ldy);

}  // namespace nc::ops
