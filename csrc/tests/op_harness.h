// Shared pieces of the op harnesses (test_ops.cpp, test_vision_ops.cpp): random inputs that are never zero,
// weights stored in each dtype, outputs poisoned before each run, NMSE against the reference.
#pragma once

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ops/convert.h"
#include "ops/ops.h"

namespace nc_test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) {
        do x = dist(rng);
        while (x == 0.0f);
    }
    return v;
}

// Weight storage of a given dtype holding `values` rounded to it.
struct StoredWeight {
    std::vector<uint8_t> bytes;
    nc::ops::Weight w;
    StoredWeight(const std::vector<float>& values, nc_dtype dtype, int64_t rows, int64_t cols) {
        const size_t esize = dtype == NC_DTYPE_F32 ? 4 : 2;
        bytes.resize(values.size() * esize);
        for (size_t i = 0; i < values.size(); ++i) {
            if (dtype == NC_DTYPE_F32) {
                std::memcpy(&bytes[i * 4], &values[i], 4);
            } else {
                const uint16_t h = dtype == NC_DTYPE_BF16 ? nc::ops::f32_to_bf16(values[i]) : nc::ops::f32_to_f16(values[i]);
                std::memcpy(&bytes[i * 2], &h, 2);
            }
        }
        w = nc::ops::Weight{dtype, bytes.data(), rows, cols};
    }
};

inline double nmse(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        if (!std::isfinite(got[i])) return INFINITY;
        num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        den += double(want[i]) * want[i];
    }
    return num / std::max(den, 1e-30);
}

inline std::vector<float> poisoned(size_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }

}  // namespace nc_test
