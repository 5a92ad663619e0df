// One sequence's keys and values in the paged KV cache of one layer, as the attention op reads them.
#pragma once

#include <cstdint>

#include "nextchat.h"
#include "ops/convert.h"

namespace nc::ops {

// Token `pos` of the sequence lives in block blocks[pos / block_size] at slot pos % block_size. A block of
// one layer holds [2 (K, V)][kv_heads][block_size][head_dim] elements of `dtype`, contiguous.
struct KVSeqView {
    void* base;             // this layer's block pool
    const int32_t* blocks;  // the sequence's block table
    int32_t block_size;
    int32_t kv_heads;
    int32_t head_dim;
    nc_dtype dtype;

    int64_t block_elems() const { return int64_t(2) * kv_heads * block_size * head_dim; }
    int64_t elem_size() const { return dtype == NC_DTYPE_F32 ? 4 : 2; }

    // Address of K (which = 0) or V (which = 1) of head h at position pos.
    void* row(int which, int64_t pos, int32_t h) const {
        const int64_t block = blocks[pos / block_size];
        const int64_t slot = pos % block_size;
        const int64_t offset = block * block_elems() + ((int64_t(which) * kv_heads + h) * block_size + slot) * head_dim;
        return static_cast<char*>(base) + offset * elem_size();
    }

    // Stores head_dim floats at dst (a row()), converting to the cache dtype.
    void store(void* dst, const float* src) const {
        if (dtype == NC_DTYPE_F32) {
            std::memcpy(dst, src, size_t(head_dim) * 4);
            return;
        }
        auto* out = static_cast<uint16_t*>(dst);
        for (int32_t i = 0; i < head_dim; ++i) out[i] = dtype == NC_DTYPE_BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
    }

    // Writes rows [r0, r1) of k, v [rows, kv_heads, head_dim] at positions start + r, each head's row through
    // put(dst, src) (a copy with dtype conversion that rounds like store: the same cache bytes for every backend).
    template <class Put>
    void write_rows(int64_t start, int64_t r0, int64_t r1, const float* k, const float* v, Put put) const {
        for (int64_t r = r0; r < r1; ++r) {
            for (int32_t h = 0; h < kv_heads; ++h) {
                put(row(0, start + r, h), k + (r * kv_heads + h) * head_dim);
                put(row(1, start + r, h), v + (r * kv_heads + h) * head_dim);
            }
        }
    }

    // All rows [0, rows) at positions [start, start + rows), through store.
    void write(int64_t start, int64_t rows, const float* k, const float* v) const {
        write_rows(start, 0, rows, k, v, [this](void* dst, const float* src) { store(dst, src); });
    }

    // Loads head_dim floats from src (a row()).
    void load(const void* src, float* dst) const {
        if (dtype == NC_DTYPE_F32) {
            std::memcpy(dst, src, size_t(head_dim) * 4);
            return;
        }
        const auto* in = static_cast<const uint16_t*>(src);
        for (int32_t i = 0; i < head_dim; ++i) dst[i] = dtype == NC_DTYPE_BF16 ? bf16_to_f32(in[i]) : f16_to_f32(in[i]);
    }
};

}  // namespace nc::ops
