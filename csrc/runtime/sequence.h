// One generation stream: its KV block table, length, tokens so far and sampler. Forking shares blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/kv_cache.h"
#include "runtime/sampler.h"

namespace nc {

class Sequence {
  public:
    Sequence(std::shared_ptr<KVCache> cache, const SamplingParams& params);
    // A fork: the same tokens and cache blocks (shared, copied on write), the same sampler state.
    Sequence(const Sequence& parent);
    // A new request continuing the parent's first `positions` positions (a cached prompt prefix): those blocks
    // shared, copied on write, the tokens so far, its own sampler and no pending location. 0 ≤ positions ≤ the
    // parent's length (checked by the caller).
    Sequence(const Sequence& parent, int64_t positions, const SamplingParams& params);
    ~Sequence();
    Sequence& operator=(const Sequence&) = delete;

    const std::shared_ptr<KVCache>& cache() const { return cache_; }
    int64_t length() const { return length_; }
    const int32_t* blocks() const { return blocks_.data(); }
    const std::vector<int32_t>& history() const { return history_; }
    Sampler& sampler() { return sampler_; }

    // The embedding the next <boxes> row takes after a located <at> (§2.3); empty when none is pending.
    std::vector<float>& pending_location() { return pending_location_; }

    // Makes positions [length, length + n) writable: new blocks as needed, and a private copy of a shared
    // partially filled last block. Throws NC_ERR_OUT_OF_MEMORY when the cache is full (nothing is lost:
    // blocks already taken stay with the sequence).
    void reserve(int64_t n);
    // Allocates the bookkeeping for up to `positions` positions at once (token history, block table, the pending
    // location of a hidden_size row), so that steps within them never grow it.
    void reserve_bookkeeping(int64_t positions, int64_t hidden_size);
    // Bytes one sequence holds for up to `positions` positions: the object, its history and block table, a pending
    // location, and the sampler's per-vocabulary buffers (sampler.h).
    static uint64_t bookkeeping_bytes(int64_t positions, int32_t block_size, int64_t hidden_size, int64_t vocab);

    // Records that n tokens were written at [length, length + n).
    void advance(const int32_t* tokens, int64_t n);

  private:
    std::shared_ptr<KVCache> cache_;
    std::vector<int32_t> blocks_;
    int64_t length_ = 0;
    std::vector<int32_t> history_;
    Sampler sampler_;
    std::vector<float> pending_location_;
};

}  // namespace nc
