// SIMD building blocks of the CPU ops: run-time ISA choice (vector ISA, and AMX tiles) and AVX2+FMA+F16C / AVX-512
// helpers (16-bit weight loads, horizontal sum, exp). Every function with AVX2 code carries its target attribute, so the library builds for
// baseline x86-64 and only runs these on machines that have them.
#pragma once

// GCC 12 flags the _mm512_undefined_* inside AVX-512 intrinsics as (maybe-)uninitialized (GCC bug 105593); this
// header is what every file with AVX-512 kernels includes, so the warnings are silenced for those files here.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "nextchat.h"
#include "ops/weight.h"

namespace nc::ops {

// The instruction sets the CPU kernels have code for, in increasing order. Amx is AVX-512 plus the AMX-BF16 tile unit
// (Sapphire Rapids and later), which the bf16 matrix products use.
enum class Isa : int { Portable = 0, Avx2 = 1, Avx512 = 2, Amx = 3 };

namespace simd_detail {
// AMX-BF16 usable by this process: the CPU has it (CPUID.7.0:EDX bits 22 and 24), the OS saves the tile state
// (XCR0 bits 17 and 18) and grants it to this process (Linux asks for it with arch_prctl, once per process).
inline bool amx_usable() {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
    if ((d & (1u << 22)) == 0 || (d & (1u << 24)) == 0) return false;
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

// What the CPU (and OS) support, capped by NEXTCHAT_CPU_ISA=portable|avx2|avx512|amx when set (to measure a narrower
// ISA on a wider machine).
inline Isa detected_isa() {
    static const Isa isa = [] {
        const char* cap = std::getenv("NEXTCHAT_CPU_ISA");
        const std::string c = cap == nullptr ? "amx" : cap;
        const Isa want = c == "portable" ? Isa::Portable : c == "avx2" ? Isa::Avx2 : c == "avx512" ? Isa::Avx512 : Isa::Amx;
        Isa best = Isa::Portable;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
            best = __builtin_cpu_supports("avx512f") ? Isa::Avx512 : Isa::Avx2;
        }
        if (best == Isa::Avx512 && want == Isa::Amx && amx_usable()) best = Isa::Amx;
        return Isa(std::min(int(best), int(want)));
    }();
    return isa;
}

inline std::atomic<int>& isa_limit() {
    static std::atomic<int> limit{int(Isa::Amx)};
    return limit;
}
}  // namespace simd_detail

// The instruction set the kernels use now: the best the machine has, within the limit tests may set.
inline Isa cpu_level() {
    return Isa(std::min(int(simd_detail::detected_isa()), simd_detail::isa_limit().load(std::memory_order_relaxed)));
}

// The vector ISA the kernels use now (AMX machines run the AVX-512 kernels besides the tile ones).
inline Isa cpu_isa() { return std::min(cpu_level(), Isa::Avx512); }

// Whether the bf16 matrix products run on the AMX tiles.
inline bool cpu_has_amx() { return cpu_level() == Isa::Amx; }

// Tests only: run the kernels of at most this level (process-wide).
inline void limit_isa(Isa max) { simd_detail::isa_limit().store(int(max)); }

// Whether the AVX2+FMA+F16C kernels (or wider) run.
inline bool cpu_has_avx2() { return cpu_isa() >= Isa::Avx2; }

// Loads 8 consecutive weights of dtype D as floats.
template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const void* p) {
    if constexpr (D == NC_DTYPE_F32) {
        return _mm256_loadu_ps(static_cast<const float*>(p));
    } else if constexpr (D == NC_DTYPE_F16) {
        return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    } else {
        const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
}

__attribute__((target("avx2,fma,f16c"))) inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c"))) inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// e^x for 8 floats, within 2 ulp of expf for x in [-87.3, 88]; inputs outside are clamped there (e^-87.3 ≈
// 1e-38 stands for 0, which is what softmax and sigmoid need). Cephes' expf: x = n·ln2 + r with ln2 split in
// two so r is exact, e^r by a degree-6 polynomial, 2^n through the exponent bits.
__attribute__((target("avx2,fma,f16c"))) inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 e = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
}

// exp8 on 16 lanes: the same reduction and polynomial, 2^n by vscalefps (so no upper clamp is needed: large
// inputs overflow to inf as expf does).
__attribute__((target("avx512f,avx2,fma,f16c"))) inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.33f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 e = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(e, n);
}

// n elements of a dtype at src as floats: 16-bit ones widened 8 at a time by AVX2/F16C (the same values as the
// scalar conversions, which are exact), the tail and CPUs without AVX2 element by element.
template <nc_dtype D>
__attribute__((target("avx2,fma,f16c"))) void load_floats_avx2(const void* src, int64_t n, float* dst) {
    constexpr int64_t esize = D == NC_DTYPE_F32 ? 4 : 2;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8<D>(static_cast<const char*>(src) + i * esize));
    for (; i < n; ++i) dst[i] = weight_at(Weight{D, src, 1, n}, i);
}

inline void load_floats(nc_dtype dtype, const void* src, int64_t n, float* dst) {
    if (!cpu_has_avx2()) {
        for (int64_t i = 0; i < n; ++i) dst[i] = weight_at(Weight{dtype, src, 1, n}, i);
        return;
    }
    switch (dtype) {
        case NC_DTYPE_F32: return load_floats_avx2<NC_DTYPE_F32>(src, n, dst);
        case NC_DTYPE_F16: return load_floats_avx2<NC_DTYPE_F16>(src, n, dst);
        case NC_DTYPE_BF16: return load_floats_avx2<NC_DTYPE_BF16>(src, n, dst);
    }
}

// n floats at src stored as a dtype at dst: f16 by F16C 8 at a time (round to nearest even, as f32_to_f16 for every
// finite value), the rest — bf16, the tail, CPUs without AVX2 — by the scalar conversions.
__attribute__((target("avx2,fma,f16c"))) inline void store_f16_avx2(const float* src, int64_t n, uint16_t* dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

inline void store_floats(nc_dtype dtype, const float* src, int64_t n, void* dst) {
    if (dtype == NC_DTYPE_F32) {
        std::memcpy(dst, src, size_t(n) * sizeof(float));
        return;
    }
    auto* out = static_cast<uint16_t*>(dst);
    if (dtype == NC_DTYPE_F16 && cpu_has_avx2()) return store_f16_avx2(src, n, out);
    for (int64_t i = 0; i < n; ++i) out[i] = dtype == NC_DTYPE_BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
}

// Σ a[i]·b[i]: 8 lanes with the tail in order, or in order throughout.
__attribute__((target("avx2,fma,f16c"))) inline float dot_avx2(const float* a, const float* b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float s = hsum(acc);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

inline float dot_portable(const float* a, const float* b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

// Softmax numerators e^d, d = x − max ≤ 0, with those below e^-64 (under 1.6e-28 of the largest, which is 1) set to
// 0: they cannot change a float32 sum or weighted sum, while products of the smallest of them are denormal floats,
// each of which costs the FMA units a microcode assist (a fifth of the SAM decoder's attention time with random
// weights, where scores spread widely).
constexpr float kNegligibleLogit = -64.0f;

inline float softmax_exp(float d) { return d < kNegligibleLogit ? 0.0f : std::exp(d); }

__attribute__((target("avx2,fma,f16c"))) inline __m256 softmax_exp8(__m256 d) {
    return _mm256_and_ps(exp8(d), _mm256_cmp_ps(d, _mm256_set1_ps(kNegligibleLogit), _CMP_GE_OQ));
}

__attribute__((target("avx512f,avx2,fma,f16c"))) inline __m512 softmax_exp16(__m512 d) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(d, _mm512_set1_ps(kNegligibleLogit), _CMP_GE_OQ), exp16(d));
}

}  // namespace nc::ops
