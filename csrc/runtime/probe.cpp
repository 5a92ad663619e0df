#include "runtime/probe.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "core/huge_array.h"
#include "ops/cpu_amx.h"
#include "ops/cpu_simd.h"

namespace nc {

namespace {

using Clock = std::chrono::steady_clock;

// Keeps results alive so the compiler cannot drop the work that produced them.
std::atomic<float> sink{0.0f};

// Starts `threads` threads, lets each run prepare(index) untimed, then body(index, deadline) from a common start;
// returns the sum of what the bodies return, and in *elapsed the wall time from that start to the last finish.
template <class Prepare, class Body>
double run_together(int threads, double seconds, Prepare prepare, Body body, double* elapsed) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    Clock::time_point deadline;
    std::vector<double> totals(size_t(threads), 0.0);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            prepare(i);
            ready.fetch_add(1);
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            totals[size_t(i)] = body(i, deadline);
        });
    }
    while (ready.load() < threads) std::this_thread::yield();
    const Clock::time_point start = Clock::now();
    deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    go.store(true, std::memory_order_release);
    for (auto& t : pool) t.join();
    *elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    double total = 0;
    for (double t : totals) total += t;
    return total;
}

int resolve_threads(int threads) {
    return threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
}

constexpr int kRound = 1024;  // FMA rounds between clock reads

// 12 independent chains: enough to cover FMA latency (4-5 cycles) on two FMA ports; 12 of the 16 ymm registers.
__attribute__((target("avx2,fma"))) double fma_flops_avx2(Clock::time_point deadline) {
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = _mm256_set1_ps(1.1f), a2 = _mm256_set1_ps(1.2f), a3 = _mm256_set1_ps(1.3f);
    __m256 a4 = _mm256_set1_ps(1.4f), a5 = _mm256_set1_ps(1.5f), a6 = _mm256_set1_ps(1.6f), a7 = _mm256_set1_ps(1.7f);
    __m256 a8 = _mm256_set1_ps(1.8f), a9 = _mm256_set1_ps(1.9f), a10 = _mm256_set1_ps(2.0f), a11 = _mm256_set1_ps(2.1f);
    uint64_t rounds = 0;
    do {
        for (int i = 0; i < kRound; ++i) {
            a0 = _mm256_fmadd_ps(a0, m, c);
            a1 = _mm256_fmadd_ps(a1, m, c);
            a2 = _mm256_fmadd_ps(a2, m, c);
            a3 = _mm256_fmadd_ps(a3, m, c);
            a4 = _mm256_fmadd_ps(a4, m, c);
            a5 = _mm256_fmadd_ps(a5, m, c);
            a6 = _mm256_fmadd_ps(a6, m, c);
            a7 = _mm256_fmadd_ps(a7, m, c);
            a8 = _mm256_fmadd_ps(a8, m, c);
            a9 = _mm256_fmadd_ps(a9, m, c);
            a10 = _mm256_fmadd_ps(a10, m, c);
            a11 = _mm256_fmadd_ps(a11, m, c);
        }
        rounds += kRound;
    } while (Clock::now() < deadline);
    const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                   _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)),
                                                 _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11))));
    sink.store(sink.load(std::memory_order_relaxed) + nc::ops::hsum(s), std::memory_order_relaxed);
    return double(rounds) * 12 * 8 * 2;
}

// The same on zmm registers: 16 lanes per FMA, 16 chains (of the 32 registers).
__attribute__((target("avx512f,avx2,fma"))) double fma_flops_avx512(Clock::time_point deadline) {
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(1.0f), a1 = _mm512_set1_ps(1.1f), a2 = _mm512_set1_ps(1.2f), a3 = _mm512_set1_ps(1.3f);
    __m512 a4 = _mm512_set1_ps(1.4f), a5 = _mm512_set1_ps(1.5f), a6 = _mm512_set1_ps(1.6f), a7 = _mm512_set1_ps(1.7f);
    __m512 a8 = _mm512_set1_ps(1.8f), a9 = _mm512_set1_ps(1.9f), a10 = _mm512_set1_ps(2.0f), a11 = _mm512_set1_ps(2.1f);
    __m512 a12 = _mm512_set1_ps(2.2f), a13 = _mm512_set1_ps(2.3f), a14 = _mm512_set1_ps(2.4f);
    __m512 a15 = _mm512_set1_ps(2.5f);
    uint64_t rounds = 0;
    do {
        for (int i = 0; i < kRound; ++i) {
            a0 = _mm512_fmadd_ps(a0, m, c);
            a1 = _mm512_fmadd_ps(a1, m, c);
            a2 = _mm512_fmadd_ps(a2, m, c);
            a3 = _mm512_fmadd_ps(a3, m, c);
            a4 = _mm512_fmadd_ps(a4, m, c);
            a5 = _mm512_fmadd_ps(a5, m, c);
            a6 = _mm512_fmadd_ps(a6, m, c);
            a7 = _mm512_fmadd_ps(a7, m, c);
            a8 = _mm512_fmadd_ps(a8, m, c);
            a9 = _mm512_fmadd_ps(a9, m, c);
            a10 = _mm512_fmadd_ps(a10, m, c);
            a11 = _mm512_fmadd_ps(a11, m, c);
            a12 = _mm512_fmadd_ps(a12, m, c);
            a13 = _mm512_fmadd_ps(a13, m, c);
            a14 = _mm512_fmadd_ps(a14, m, c);
            a15 = _mm512_fmadd_ps(a15, m, c);
        }
        rounds += kRound;
    } while (Clock::now() < deadline);
    const __m512 s = _mm512_add_ps(
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                      _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))),
        _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                      _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, s);
    float total = 0;
    for (float v : lanes) total += v;
    sink.store(sink.load(std::memory_order_relaxed) + total, std::memory_order_relaxed);
    return double(rounds) * 16 * 16 * 2;
}

double fma_flops_portable(Clock::time_point deadline) {
    float a[8] = {1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f, 1.7f};
    uint64_t rounds = 0;
    do {
        for (int i = 0; i < kRound; ++i) {
            for (float& x : a) x = x * 0.9999999f + 1e-7f;
        }
        rounds += kRound;
    } while (Clock::now() < deadline);
    float s = 0;
    for (float x : a) s += x;
    sink.store(sink.load(std::memory_order_relaxed) + s, std::memory_order_relaxed);
    return double(rounds) * 8 * 2;
}

// Sums a slice over and over until the deadline; returns the bytes read in complete passes.
__attribute__((target("avx2,fma"))) double read_bytes_avx2(const float* p, size_t n, Clock::time_point deadline) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    double bytes = 0;
    do {
        for (size_t i = 0; i + 32 <= n; i += 32) {
            s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
            s1 = _mm256_add_ps(s1, _mm256_load_ps(p + i + 8));
            s2 = _mm256_add_ps(s2, _mm256_load_ps(p + i + 16));
            s3 = _mm256_add_ps(s3, _mm256_load_ps(p + i + 24));
        }
        bytes += double(n / 32 * 32) * sizeof(float);
    } while (Clock::now() < deadline);
    const float total = nc::ops::hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    sink.store(sink.load(std::memory_order_relaxed) + total, std::memory_order_relaxed);
    return bytes;
}

double read_bytes_portable(const float* p, size_t n, Clock::time_point deadline) {
    double bytes = 0;
    float s = 0;
    do {
        for (size_t i = 0; i < n; ++i) s += p[i];
        bytes += double(n) * sizeof(float);
    } while (Clock::now() < deadline);
    sink.store(sink.load(std::memory_order_relaxed) + s, std::memory_order_relaxed);
    return bytes;
}

size_t default_stream_bytes() {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    const size_t cache = l3 > 0 ? size_t(l3) : size_t(32) << 20;
    return std::clamp(4 * cache, size_t(256) << 20, size_t(2) << 30);
}

// TDPBF16PS throughput until `deadline` on four independent accumulators (two A and two B tiles of ones
// in bf16); FLOPs of bf16 products (a 16 × 16 × 32-pair tile product counts 2·16·16·32).
__attribute__((target("amx-tile,amx-bf16"))) double amx_flops(Clock::time_point deadline) {
    alignas(64) uint16_t ones[16 * 32];
    std::fill(std::begin(ones), std::end(ones), uint16_t(0x3f80));  // bf16 1.0
    nc::ops::amx_configure_tiles();
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_loadd(2, ones, 64);
    _tile_loadd(3, ones, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(6);
    _tile_zero(7);
    uint64_t rounds = 0;
    do {
        for (int i = 0; i < kRound; ++i) {
            _tile_dpbf16ps(0, 2, 4);
            _tile_dpbf16ps(1, 3, 4);
            _tile_dpbf16ps(6, 2, 5);
            _tile_dpbf16ps(7, 3, 5);
        }
        ++rounds;
    } while (Clock::now() < deadline);
    _tile_release();
    return double(rounds) * kRound * 4 * (2.0 * 16 * 16 * 32);
}

}  // namespace

double probe_amx_peak(int threads, double seconds) {
    if (!nc::ops::cpu_has_amx()) return 0;
    threads = resolve_threads(threads);
    double elapsed = 0;
    const double flops = run_together(
        threads, seconds, [](int) {}, [](int, Clock::time_point deadline) { return amx_flops(deadline); }, &elapsed);
    return flops / elapsed / 1e9;
}

double probe_fma_peak(int threads, double seconds) {
    threads = resolve_threads(threads);
    const nc::ops::Isa isa = nc::ops::cpu_isa();
    double elapsed = 0;
    const double flops = run_together(
        threads, seconds, [](int) {},
        [&](int, Clock::time_point deadline) {
            switch (isa) {
                case nc::ops::Isa::Amx:  // cpu_isa() is a vector ISA: never Amx
                case nc::ops::Isa::Avx512: return fma_flops_avx512(deadline);
                case nc::ops::Isa::Avx2: return fma_flops_avx2(deadline);
                case nc::ops::Isa::Portable: break;
            }
            return fma_flops_portable(deadline);
        },
        &elapsed);
    return flops / elapsed / 1e9;
}

double probe_read_bandwidth(int threads, double seconds, size_t bytes) {
    threads = resolve_threads(threads);
    if (bytes == 0) bytes = default_stream_bytes();
    // Slices of whole 128-byte rows per thread, 64-byte aligned.
    const size_t slice = std::max<size_t>(32, bytes / sizeof(float) / size_t(threads) / 32 * 32);
    // On huge pages, like the re-coded weights (core/huge_array.h): on 4 KiB pages this stream measured 23 GB/s where
    // the same loop on huge pages reads 29–30, and the roofline is what the machine can do.
    const HugeArray<float> buf = huge_array<float>(slice * size_t(threads), "the read-bandwidth probe");
    const bool avx2 = nc::ops::cpu_has_avx2();
    double elapsed = 0;
    const double read = run_together(
        threads, seconds,
        // Each thread touches its own slice first, so its pages are local to it and faulted in before the clock.
        [&](int i) { std::memset(buf.get() + size_t(i) * slice, 0, slice * sizeof(float)); },
        [&](int i, Clock::time_point deadline) {
            const float* p = buf.get() + size_t(i) * slice;
            return avx2 ? read_bytes_avx2(p, slice, deadline) : read_bytes_portable(p, slice, deadline);
        },
        &elapsed);
    return read / elapsed / 1e9;
}

}  // namespace nc
