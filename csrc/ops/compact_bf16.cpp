#include "ops/compact_bf16.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "ops/convert.h"
#include "ops/cpu_simd.h"

namespace nc::ops {

namespace {

constexpr int kPairs = 7;  // exponent pairs (high bytes per sign) in a table

// The first of the kPairs consecutive exponent pairs (high byte & 0x7f) that hold the most nonzero weights.
// Weight i of bf16 bits at any alignment.
uint16_t bits_at(const void* bits, int64_t i) {
    uint16_t b;
    std::memcpy(&b, static_cast<const char*>(bits) + i * 2, 2);
    return b;
}

int choose_window(Ops& ops, const void* bits, int64_t rows, int64_t cols) {
    std::array<int64_t, 128> count{};
    std::mutex mu;
    ops.parallel(rows, [&](int64_t r0, int64_t r1) {
        std::array<int64_t, 128> local{};
        for (int64_t i = r0 * cols; i < r1 * cols; ++i) {
            const uint16_t b = bits_at(bits, i);
            if ((b & 0x7fff) != 0) ++local[(b >> 8) & 0x7f];
        }
        std::lock_guard<std::mutex> lock(mu);
        for (int g = 0; g < 128; ++g) count[size_t(g)] += local[size_t(g)];
    });
    int best = 0;
    int64_t best_count = -1;
    for (int g0 = 0; g0 + kPairs <= 128; ++g0) {
        int64_t n = 0;
        for (int g = g0; g < g0 + kPairs; ++g) n += count[size_t(g)];
        if (n > best_count) {
            best = g0;
            best_count = n;
        }
    }
    return best;
}

struct Patch {
    int64_t row;
    uint32_t col;
    uint16_t bits;
};

}  // namespace

uint64_t CompactBf16::bytes() const {
    return uint64_t(rows * row_bytes) + sizeof(high) + patch_start.size() * sizeof(int64_t) +
           patch_col.size() * sizeof(uint32_t) + patch_bits.size() * sizeof(uint16_t);
}

std::unique_ptr<CompactBf16> compact_bf16(Ops& ops, const void* bits, int64_t rows, int64_t cols) {
    auto w = std::make_unique<CompactBf16>();
    w->rows = rows;
    w->cols = cols;
    const int64_t groups = cols / kCompactGroup, tail = cols - groups * kCompactGroup;
    w->row_bytes = groups * kCompactGroupBytes + tail * 2;
    w->data = huge_array<uint8_t>(size_t(rows * w->row_bytes), "compact weights");

    const int g0 = choose_window(ops, bits, rows, cols);
    std::array<uint8_t, 256> code_of{};  // high byte → code, 0 outside the table
    for (int s = 0; s < 2; ++s) {
        for (int i = 0; i < kPairs; ++i) {
            const int code = 1 + i + kPairs * s, high = s << 7 | (g0 + i);
            code_of[size_t(high)] = uint8_t(code);
            w->high[size_t(code)] = w->high[size_t(code + 16)] = uint16_t(high << 8);
            w->high_byte[size_t(code)] = w->high_byte[size_t(code + 16)] = uint8_t(high);
        }
    }

    std::vector<std::pair<int64_t, std::vector<Patch>>> found;  // (first row, its patches) per loop share
    std::mutex mu;
    ops.parallel(rows, [&](int64_t r0, int64_t r1) {
        std::vector<Patch> local;
        for (int64_t r = r0; r < r1; ++r) {
            const char* src = static_cast<const char*>(bits) + r * cols * 2;
            uint8_t* dst = w->data.get() + r * w->row_bytes;
            for (int64_t g = 0; g < groups; ++g) {
                uint8_t* low = dst + g * kCompactGroupBytes;
                uint8_t* codes = low + kCompactGroup;
                std::memset(codes, 0, kCompactGroup / 2);
                for (int64_t j = 0; j < kCompactGroup; ++j) {
                    const int64_t c = g * kCompactGroup + j;
                    const uint16_t b = bits_at(src, c);
                    const uint8_t code = code_of[size_t(b >> 8)];
                    if (code == 0 && b != 0) local.push_back(Patch{r, uint32_t(c), b});
                    low[j] = code == 0 ? 0 : uint8_t(b & 0xff);
                    codes[j % 16] |= uint8_t(j < 16 ? code : code << 4);
                }
            }
            std::memcpy(dst + groups * kCompactGroupBytes, src + groups * kCompactGroup * 2, size_t(tail) * 2);
        }
        std::lock_guard<std::mutex> lock(mu);
        found.emplace_back(r0, std::move(local));
    });

    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    w->patch_start.assign(size_t(rows + 1), 0);
    for (const auto& [r0, list] : found) {
        for (const Patch& p : list) {
            ++w->patch_start[size_t(p.row + 1)];
            w->patch_col.push_back(p.col);
            w->patch_bits.push_back(p.bits);
        }
    }
    for (int64_t r = 0; r < rows; ++r) w->patch_start[size_t(r + 1)] += w->patch_start[size_t(r)];
    return w;
}

uint16_t compact_bits(const CompactBf16& w, int64_t r, int64_t c) {
    const uint8_t* row = w.row(r);
    const int64_t g = c / kCompactGroup, j = c % kCompactGroup;
    if (g == w.cols / kCompactGroup) {
        uint16_t b;
        std::memcpy(&b, row + g * kCompactGroupBytes + j * 2, 2);
        return b;
    }
    const uint8_t* group = row + g * kCompactGroupBytes;
    const uint8_t byte = group[kCompactGroup + j % 16];
    const int code = j < 16 ? byte & 0xf : byte >> 4;
    if (code != 0) return uint16_t(w.high[size_t(code)] | group[j]);
    const auto first = w.patch_col.begin() + w.patch_start[size_t(r)];
    const auto last = w.patch_col.begin() + w.patch_start[size_t(r + 1)];
    const auto it = std::lower_bound(first, last, uint32_t(c));
    return it != last && *it == uint32_t(c) ? w.patch_bits[size_t(it - w.patch_col.begin())] : 0;
}

namespace {

// The bf16 of `groups` consecutive groups at p, code 0 as +0 (patches are the caller's), by the widest decode the
// CPU has.
__attribute__((target("avx512f,avx512bw"))) void decode_groups_avx512(const CompactBf16& w, const uint8_t* p,
                                                                       int64_t groups, uint16_t* out) {
    const __m512i table = _mm512_load_si512(w.high.data());
    for (int64_t g = 0; g < groups; ++g) {
        _mm512_storeu_si512(out + g * kCompactGroup, compact_group(p + g * kCompactGroupBytes, table));
    }
}

__attribute__((target("avx2"))) void decode_groups_avx2(const CompactBf16& w, const uint8_t* p, int64_t groups,
                                                        uint16_t* out) {
    const __m256i table = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.high_byte.data()));
    for (int64_t g = 0; g < groups; ++g) {
        __m256i first, second;
        compact_group_avx2(p + g * kCompactGroupBytes, table, first, second);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + g * kCompactGroup), first);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + g * kCompactGroup + 16), second);
    }
}

void decode_groups_portable(const CompactBf16& w, const uint8_t* p, int64_t groups, uint16_t* out) {
    for (int64_t g = 0; g < groups; ++g) {
        const uint8_t* group = p + g * kCompactGroupBytes;
        for (int64_t j = 0; j < kCompactGroup; ++j) {
            const uint8_t byte = group[kCompactGroup + j % 16];
            out[g * kCompactGroup + j] = uint16_t(w.high[size_t(j < 16 ? byte & 0xf : byte >> 4)] | group[j]);
        }
    }
}

void decode_groups(const CompactBf16& w, const uint8_t* p, int64_t groups, uint16_t* out) {
    if (compact_decodes_in_registers()) return decode_groups_avx512(w, p, groups, out);
    if (cpu_isa() >= Isa::Avx2) return decode_groups_avx2(w, p, groups, out);
    decode_groups_portable(w, p, groups, out);
}

}  // namespace

bool compact_decodes_in_registers() {
    static const bool bw = __builtin_cpu_supports("avx512bw");
    return bw && cpu_isa() >= Isa::Avx512;
}

void expand_rows(const CompactBf16& w, int64_t first, int64_t n, uint16_t* out, int64_t ld) {
    const int64_t groups = w.cols / kCompactGroup, body = groups * kCompactGroup;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t r = first + i;
        uint16_t* dst = out + i * ld;
        decode_groups(w, w.row(r), groups, dst);
        std::memcpy(dst + body, w.row(r) + groups * kCompactGroupBytes, size_t(w.cols - body) * 2);
        for (int64_t p = w.patch_start[size_t(r)]; p < w.patch_start[size_t(r + 1)]; ++p) {
            dst[w.patch_col[size_t(p)]] = w.patch_bits[size_t(p)];
        }
    }
}

void expand_segment(const CompactBf16& w, int64_t r, int64_t k0, int64_t n, uint16_t* out) {
    const int64_t body = w.cols / kCompactGroup * kCompactGroup;
    int64_t c = k0;
    while (c < k0 + n) {
        const int64_t whole = c % kCompactGroup == 0 ? (std::min(body, k0 + n) - c) / kCompactGroup : 0;
        if (whole > 0) {  // every whole group from here at once
            decode_groups(w, w.row(r) + c / kCompactGroup * kCompactGroupBytes, whole, out + (c - k0));
            c += whole * kCompactGroup;
        } else {
            out[c - k0] = compact_bits(w, r, c);
            ++c;
        }
    }
    const auto first = w.patch_col.begin() + w.patch_start[size_t(r)];
    const auto last = w.patch_col.begin() + w.patch_start[size_t(r + 1)];
    for (auto it = std::lower_bound(first, last, uint32_t(k0)); it != last && *it < uint64_t(k0 + n); ++it) {
        out[*it - k0] = w.patch_bits[size_t(it - w.patch_col.begin())];
    }
}

void add_patches(const CompactBf16& w, int64_t o0, int64_t o1, const float* x, int64_t rows, float* y, int64_t ldy) {
    const int64_t K = w.cols;
    for (int64_t o = o0; o < o1; ++o) {
        for (int64_t p = w.patch_start[size_t(o)]; p < w.patch_start[size_t(o + 1)]; ++p) {
            const float v = bf16_to_f32(w.patch_bits[size_t(p)]);
            const int64_t c = w.patch_col[size_t(p)];
            for (int64_t r = 0; r < rows; ++r) y[r * ldy + o] += v * x[r * K + c];
        }
    }
}

}  // namespace nc::ops
