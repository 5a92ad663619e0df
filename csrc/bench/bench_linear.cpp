// Ops::linear on its own, for kernel work: time `linear` over N distinct weight matrices (so that, for large N, every
// call reads its weights from memory as a decode step does) at several row counts, and print ms per call, the weight
// bytes read per second and the FLOP rate. The kernel set is the CPU backend's choice for the machine, capped as the
// engine's by NEXTCHAT_CPU_ISA=avx512|avx2|portable.
//
//   nextchat_bench_linear OUTPUTS INPUTS MATRICES THREADS [bf16|compact|int8|f16|f32] ROWS...
//
// compact: bf16 weights re-coded as compact bf16 (ops/compact_bf16.h); int8: bf16 weights quantized to int8 rows
// (ops/int8_rows.h). The bytes per second are those they hold.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/compact_bf16.h"
#include "ops/int8_rows.h"
#include "ops/convert.h"
#include "ops/cpu_simd.h"
#include "ops/ops.h"

namespace {

const char* level_name(nc::ops::Isa isa) {
    switch (isa) {
        case nc::ops::Isa::Amx: return "amx";
        case nc::ops::Isa::Avx512: return "avx512";
        case nc::ops::Isa::Avx2: return "avx2";
        case nc::ops::Isa::Portable: return "portable";
    }
    return "?";
}

// `count` weight matrices [outputs, inputs] of random values in the dtype, each its own allocation.
std::vector<std::vector<uint8_t>> random_weights(int count, int64_t outputs, int64_t inputs, nc_dtype dtype) {
    const size_t esize = dtype == NC_DTYPE_F32 ? 4 : 2;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<std::vector<uint8_t>> out(size_t(count), std::vector<uint8_t>(size_t(outputs * inputs) * esize));
    for (auto& w : out) {
        for (size_t i = 0; i < size_t(outputs * inputs); ++i) {
            const float v = dist(rng);
            if (dtype == NC_DTYPE_F32) {
                std::memcpy(&w[i * 4], &v, 4);
            } else {
                const uint16_t h = dtype == NC_DTYPE_BF16 ? nc::ops::f32_to_bf16(v) : nc::ops::f32_to_f16(v);
                std::memcpy(&w[i * 2], &h, 2);
            }
        }
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 7) {
        std::fprintf(stderr, "usage: %s OUTPUTS INPUTS MATRICES THREADS bf16|compact|int8|f16|f32 ROWS...\n", argv[0]);
        return 2;
    }
    const int64_t outputs = std::atoll(argv[1]), inputs = std::atoll(argv[2]);
    const int matrices = std::atoi(argv[3]), threads = std::atoi(argv[4]);
    const std::string dt = argv[5];
    const nc_dtype dtype = dt == "f32" ? NC_DTYPE_F32 : dt == "f16" ? NC_DTYPE_F16 : NC_DTYPE_BF16;
    std::vector<int64_t> rows;
    for (int i = 6; i < argc; ++i) rows.push_back(std::atoll(argv[i]));
    if (outputs < 1 || inputs < 1 || matrices < 1 || threads < 0 || rows.empty() ||
        *std::min_element(rows.begin(), rows.end()) < 1) {
        std::fprintf(stderr, "outputs, inputs, matrices and rows must be ≥ 1, threads ≥ 0\n");
        return 2;
    }
    const auto weights = random_weights(matrices, outputs, inputs, dtype);
    const int64_t most = *std::max_element(rows.begin(), rows.end());
    std::vector<float> x(size_t(most * inputs)), y(size_t(most * outputs));
    std::mt19937 rng(2);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& v : x) v = dist(rng);
    auto ops = nc::ops::make_cpu_ops(threads);
    std::vector<std::unique_ptr<nc::ops::CompactBf16>> compact;
    std::vector<std::unique_ptr<nc::ops::Int8Rows>> int8;
    std::vector<nc::ops::Weight> views;
    double bytes = 0;
    for (const auto& w : weights) {
        if (dt == "compact") {
            compact.push_back(nc::ops::compact_bf16(*ops, w.data(), outputs, inputs));
            views.push_back(nc::ops::Weight{dtype, nullptr, outputs, inputs, compact.back().get()});
            bytes += double(compact.back()->bytes());
        } else if (dt == "int8") {
            int8.push_back(nc::ops::quantize_int8(*ops, nc::ops::Weight{dtype, w.data(), outputs, inputs}, "w"));
            views.push_back(nc::ops::Weight{NC_DTYPE_F32, nullptr, outputs, inputs, nullptr, int8.back().get()});
            bytes += double(int8.back()->bytes());
        } else {
            views.push_back(nc::ops::Weight{dtype, w.data(), outputs, inputs});
            bytes += double(w.size());
        }
    }
    std::printf("linear %lld -> %lld, %s weights, %d matrices (%.1f MB), %d threads, kernels: %s\n",
                static_cast<long long>(inputs), static_cast<long long>(outputs), dt.c_str(), matrices,
                bytes / 1e6, threads, level_name(nc::ops::cpu_level()));
    for (int64_t r : rows) {
        double best = 1e30;
        for (int rep = 0; rep < 6; ++rep) {  // the first pass warms up; the fastest of the rest counts
            const auto t0 = std::chrono::steady_clock::now();
            for (const nc::ops::Weight& w : views) ops->linear(x.data(), r, w, nullptr, y.data());
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (rep > 0) best = std::min(best, s);
        }
        const double flop = 2.0 * double(r * outputs * inputs) * matrices;
        std::printf("rows %5lld: %8.3f ms per call  %6.1f GB/s of weights  %7.1f GFLOP/s\n", static_cast<long long>(r),
                    best * 1e3 / matrices, bytes / best / 1e9, flop / best / 1e9);
    }
    return 0;
}
