#include "runtime/sequence.h"

namespace nc {

Sequence::Sequence(std::shared_ptr<KVCache> cache, const SamplingParams& params)
    : cache_(std::move(cache)), sampler_(params) {}

Sequence::Sequence(const Sequence& parent)
    : cache_(parent.cache_),
      blocks_(parent.blocks_),
      length_(parent.length_),
      history_(parent.history_),
      sampler_(parent.sampler_),
      pending_location_(parent.pending_location_) {
    for (int32_t b : blocks_) cache_->retain(b);
}

Sequence::Sequence(const Sequence& parent, int64_t positions, const SamplingParams& params)
    : cache_(parent.cache_),
      blocks_(parent.blocks_.begin(),
              parent.blocks_.begin() + (positions + parent.cache_->block_size() - 1) / parent.cache_->block_size()),
      length_(positions),
      history_(parent.history_.begin(), parent.history_.begin() + positions),
      sampler_(params) {
    for (int32_t b : blocks_) cache_->retain(b);
}

Sequence::~Sequence() {
    for (int32_t b : blocks_) cache_->release(b);
}

void Sequence::reserve(int64_t n) {
    const int64_t bs = cache_->block_size();
    const size_t first = size_t(length_ / bs);
    if (length_ % bs != 0 && cache_->refcount(blocks_[first]) > 1) {
        const int32_t own = cache_->copy(blocks_[first]);
        cache_->release(blocks_[first]);
        blocks_[first] = own;
    }
    const size_t needed = size_t((length_ + n + bs - 1) / bs);
    while (blocks_.size() < needed) blocks_.push_back(cache_->allocate());
}

void Sequence::reserve_bookkeeping(int64_t positions, int64_t hidden_size) {
    history_.reserve(size_t(positions));
    blocks_.reserve(size_t((positions + cache_->block_size() - 1) / cache_->block_size()));
    pending_location_.reserve(size_t(hidden_size));
}

uint64_t Sequence::bookkeeping_bytes(int64_t positions, int32_t block_size, int64_t hidden_size, int64_t vocab) {
    const int64_t blocks = (positions + block_size - 1) / block_size;
    return sizeof(Sequence) + sizeof(int32_t) * uint64_t(positions + blocks) + sizeof(float) * uint64_t(hidden_size) +
           Sampler::workspace_bytes(vocab);
}

void Sequence::advance(const int32_t* tokens, int64_t n) {
    history_.insert(history_.end(), tokens, tokens + n);
    length_ += n;
}

}  // namespace nc
