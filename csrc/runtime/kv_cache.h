// The paged KV cache (docs/ARCHITECTURE.md "Memory and scheduling"): a fixed pool of blocks of block_size
// positions for every layer, allocated up front; sequences own lists of blocks. Blocks are reference-counted
// so forked sequences (beams, shared prefixes) share them, copied on the first write to a shared block.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nextchat.h"
#include "ops/kv_view.h"

namespace nc {

class KVCache {
  public:
    // block_size must be a power of two; num_blocks ≥ 1.
    KVCache(const nc_config& config, int32_t block_size, int64_t num_blocks, nc_dtype dtype);

    // Bytes of one block: K and V of every layer.
    static uint64_t block_bytes(const nc_config& config, int32_t block_size, nc_dtype dtype);
    // Bytes a cache of num_blocks blocks allocates: the blocks, and a reference count and free-list slot per block.
    static uint64_t allocation_bytes(const nc_config& config, int32_t block_size, int64_t num_blocks, nc_dtype dtype);

    int32_t block_size() const { return block_size_; }
    nc_dtype dtype() const { return dtype_; }
    int64_t num_blocks() const { return num_blocks_; }
    int64_t free_blocks() const { return int64_t(free_.size()); }
    uint64_t bytes() const { return uint64_t(storage_.size()); }
    // Whether this cache's layers and heads are those of `config`.
    bool fits(const nc_config& config) const {
        return layers_ == config.num_hidden_layers && kv_heads_ == config.num_key_value_heads &&
               head_dim_ == config.hidden_size / config.num_attention_heads;
    }

    // A block with reference count 1; throws NC_ERR_OUT_OF_MEMORY when none is free.
    int32_t allocate();
    void retain(int32_t block);
    void release(int32_t block);
    int32_t refcount(int32_t block) const { return refs_[size_t(block)]; }
    // A fresh block holding a copy of `block` in every layer (copy on write).
    int32_t copy(int32_t block);

    // The view attention reads for one layer of a sequence with this block table.
    ops::KVSeqView view(int32_t layer, const int32_t* blocks) const;

  private:
    int64_t layer_bytes() const { return num_blocks_ * block_bytes_; }

    int32_t block_size_;
    int64_t num_blocks_;
    nc_dtype dtype_;
    int32_t layers_, kv_heads_, head_dim_;
    int64_t block_bytes_;  // one block of one layer
    std::vector<uint8_t> storage_;
    std::vector<int32_t> refs_;
    std::vector<int32_t> free_;
};

}  // namespace nc
