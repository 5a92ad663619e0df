// Scalar conversions between float32 and the 16-bit storage formats (round to nearest even, as PyTorch).
#pragma once

#include <cstdint>
#include <cstring>

namespace nc::ops {

inline float bf16_to_f32(uint16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// IEEE binary16 → float32, exact (subnormals included).
inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        float v = float(mant) * (1.0f / 16777216.0f);  // mant × 2^-24
        return sign ? -v : v;
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    if ((b & 0x7fffffffu) > 0x7f800000u) return uint16_t((b >> 16) | 0x40);  // quiet NaN
    b += 0x7fffu + ((b >> 16) & 1u);
    return uint16_t(b >> 16);
}

inline uint16_t f32_to_f16(float f) {
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    const uint16_t sign = uint16_t((b >> 16) & 0x8000u);
    const int32_t exp = int32_t((b >> 23) & 0xff);
    const uint32_t mant = b & 0x7fffffu;
    if (exp == 0xff) return uint16_t(sign | (mant ? 0x7e00u : 0x7c00u));
    const int32_t e = exp - 127 + 15;
    if (e >= 0x1f) return uint16_t(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return sign;
        const uint32_t m = mant | 0x800000u;
        const uint32_t shift = uint32_t(14 - e);
        const uint32_t half = 1u << (shift - 1), rest = m & ((1u << shift) - 1), kept = m >> shift;
        return uint16_t(sign | (kept + (rest > half || (rest == half && (kept & 1u)))));
    }
    const uint32_t rest = mant & 0x1fffu, kept = (uint32_t(e) << 10) | (mant >> 13);
    return uint16_t(sign | (kept + (rest > 0x1000u || (rest == 0x1000u && (kept & 1u)))));
}

}  // namespace nc::ops
