#include "runtime/kv_cache.h"

#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace nc {

namespace {

// One block of one layer: K and V for every KV head.
int64_t layer_block_bytes(const nc_config& c, int32_t block_size, nc_dtype dtype) {
    const int64_t head_dim = c.hidden_size / c.num_attention_heads;
    return int64_t(2) * c.num_key_value_heads * block_size * head_dim * int64_t(dtype_size(dtype));
}

}  // namespace

uint64_t KVCache::block_bytes(const nc_config& c, int32_t block_size, nc_dtype dtype) {
    return uint64_t(layer_block_bytes(c, block_size, dtype)) * uint64_t(c.num_hidden_layers);
}

uint64_t KVCache::allocation_bytes(const nc_config& c, int32_t block_size, int64_t num_blocks, nc_dtype dtype) {
    return uint64_t(num_blocks) * (block_bytes(c, block_size, dtype) + 2 * sizeof(int32_t));
}

KVCache::KVCache(const nc_config& config, int32_t block_size, int64_t num_blocks, nc_dtype dtype)
    : block_size_(block_size),
      num_blocks_(num_blocks),
      dtype_(dtype),
      layers_(config.num_hidden_layers),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.hidden_size / config.num_attention_heads) {
    if (block_size <= 0 || block_size > 4096 || (block_size & (block_size - 1)) != 0) {
        fail(NC_ERR_INVALID_ARGUMENT, "KV block size " + std::to_string(block_size) + " is not a power of two in [1, 4096]");
    }
    if (num_blocks <= 0 || num_blocks > (int64_t(1) << 31) - 1) {
        fail(NC_ERR_INVALID_ARGUMENT, "KV block count " + std::to_string(num_blocks) + " out of range");
    }
    if (!dtype_valid(dtype)) fail(NC_ERR_INVALID_ARGUMENT, "unknown KV dtype code " + std::to_string(int(dtype)));
    block_bytes_ = layer_block_bytes(config, block_size, dtype);
    storage_.resize(size_t(layer_bytes() * layers_));
    refs_.assign(size_t(num_blocks), 0);
    free_.reserve(size_t(num_blocks));
    for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

int32_t KVCache::allocate() {
    if (free_.empty()) {
        fail(NC_ERR_OUT_OF_MEMORY, "KV cache full: all " + std::to_string(num_blocks_) + " blocks of " +
                                       std::to_string(block_size_) + " positions are in use");
    }
    const int32_t b = free_.back();
    free_.pop_back();
    refs_[size_t(b)] = 1;
    return b;
}

void KVCache::retain(int32_t block) { ++refs_[size_t(block)]; }

void KVCache::release(int32_t block) {
    if (--refs_[size_t(block)] == 0) free_.push_back(block);
}

int32_t KVCache::copy(int32_t block) {
    const int32_t fresh = allocate();
    for (int32_t l = 0; l < layers_; ++l) {
        uint8_t* base = storage_.data() + l * layer_bytes();
        std::memcpy(base + fresh * block_bytes_, base + block * block_bytes_, size_t(block_bytes_));
    }
    return fresh;
}

ops::KVSeqView KVCache::view(int32_t layer, const int32_t* blocks) const {
    auto* base = const_cast<uint8_t*>(storage_.data()) + layer * layer_bytes();
    return ops::KVSeqView{base, blocks, block_size_, kv_heads_, head_dim_, dtype_};
}

}  // namespace nc
