// Shared pieces of the op harnesses (test_ops.cpp, test_vision_ops.cpp): random inputs that are never zero,
// weights stored in each dtype, outputs poisoned before each run, NMSE against the reference.
#pragma once

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ops/convert.h"
#include "ops/cpu_simd.h"
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

// linear of both backends on one random case — weights (and bias) of the dtype from seeds seed and seed + 1, x
// from seed + 2, poisoned outputs — equal within NMSE 1e-10.
inline void expect_linear_matches(nc::ops::Ops& ref, nc::ops::Ops& cpu, nc_dtype dtype, int64_t rows, int64_t in,
                                  int64_t out, bool with_bias, uint32_t seed) {
    SCOPED_TRACE("dtype " + std::to_string(dtype) + " rows " + std::to_string(rows) + " in " + std::to_string(in) +
                 " out " + std::to_string(out));
    StoredWeight w(random_floats(size_t(in * out), seed), dtype, out, in);
    StoredWeight b(random_floats(size_t(out), seed + 1), dtype, 1, out);
    const auto x = random_floats(size_t(rows * in), seed + 2);
    auto want = poisoned(size_t(rows * out)), got = poisoned(size_t(rows * out));
    ref.linear(x.data(), rows, w.w, with_bias ? &b.w : nullptr, want.data());
    cpu.linear(x.data(), rows, w.w, with_bias ? &b.w : nullptr, got.data());
    EXPECT_LT(nmse(got, want), 1e-10);
}

// cpu.linears of x [rows, K] over weights[i] (bias[i] where not null) in one call, against ref.linear over
// as_stored[i] (the same weights as the reference reads them), each output within NMSE 1e-10.
inline void expect_linears_match(nc::ops::Ops& ref, nc::ops::Ops& cpu, const std::vector<float>& x, int64_t rows,
                                 const std::vector<const nc::ops::Weight*>& weights,
                                 const std::vector<const nc::ops::Weight*>& as_stored,
                                 const std::vector<const nc::ops::Weight*>& bias) {
    const size_t n = weights.size();
    std::vector<std::vector<float>> got, want;
    std::vector<nc::ops::LinearOut> outs;
    for (size_t i = 0; i < n; ++i) {
        got.push_back(poisoned(size_t(rows * weights[i]->rows)));
        want.push_back(poisoned(size_t(rows * weights[i]->rows)));
        outs.push_back({weights[i], bias[i], got.back().data()});
    }
    cpu.linears(x.data(), rows, outs.data(), int32_t(n));
    for (size_t i = 0; i < n; ++i) {
        ref.linear(x.data(), rows, *as_stored[i], bias[i], want[i].data());
        EXPECT_LT(nmse(got[i], want[i]), 1e-10) << "output " << i;
    }
}

// A test run once per kernel ISA (AMX tiles, AVX-512, AVX2, the portable loops), skipped where the CPU lacks it: the CPU ops
// (with more threads than cores, so that work splits unevenly) against the reference ops.
// Caps the CPU kernels at isa (undone by release_isa); false where the CPU lacks it, and the test should skip.
inline bool use_isa(nc::ops::Isa isa) {
    nc::ops::limit_isa(isa);
    return nc::ops::cpu_level() == isa;
}
inline void release_isa() { nc::ops::limit_isa(nc::ops::Isa::Amx); }

class PerIsa : public testing::TestWithParam<nc::ops::Isa> {
  protected:
    void SetUp() override {
        if (!use_isa(GetParam())) GTEST_SKIP() << "this CPU lacks the ISA";
    }
    void TearDown() override { release_isa(); }

    std::unique_ptr<nc::ops::Ops> ref = nc::ops::make_reference_ops();
    std::unique_ptr<nc::ops::Ops> cpu = nc::ops::make_cpu_ops(3);
};

inline const auto kAllIsas =
    testing::Values(nc::ops::Isa::Amx, nc::ops::Isa::Avx512, nc::ops::Isa::Avx2, nc::ops::Isa::Portable);

inline std::string isa_name(const testing::TestParamInfo<nc::ops::Isa>& i) {
    switch (i.param) {
        case nc::ops::Isa::Amx: return "Amx";
        case nc::ops::Isa::Avx512: return "Avx512";
        case nc::ops::Isa::Avx2: return "Avx2";
        case nc::ops::Isa::Portable: return "Portable";
    }
    return "Unknown";
}

}  // namespace nc_test
