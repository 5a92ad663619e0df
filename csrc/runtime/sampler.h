// Token choice from logits: greedy, or seeded sampling exactly as docs/SAMPLING.md defines it (the same
// procedure as tools/reference, so sampled outputs are reproducible across implementations).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nc {

struct SamplingParams {
    float temperature = 0.0f;  // 0: greedy (argmax of the raw logits; the other knobs do not apply)
    int32_t top_k = 0;         // 0: no limit
    float top_p = 1.0f;        // 1: no limit
    float repetition_penalty = 1.0f;
    uint64_t seed = 0;
};

// Checks ranges; throws NC_ERR_INVALID_ARGUMENT naming the bad field.
void validate_sampling(const SamplingParams& p);

class Sampler {
  public:
    explicit Sampler(const SamplingParams& params) : params_(params), state_(params.seed) {}

    // The next token given the last position's logits and every token so far (prompt + output), which the
    // repetition penalty reads.
    int32_t next(const float* logits, int32_t vocab, const std::vector<int32_t>& history);

    // Bytes a sampler keeps after sampling over `vocab` ids (probabilities, their order, a seen flag per id for the
    // repetition penalty); a call allocates nothing once they are there.
    static uint64_t workspace_bytes(int64_t vocab) {
        return uint64_t(vocab) * (sizeof(double) + sizeof(int32_t)) + uint64_t(vocab + 63) / 64 * 8;
    }

  private:
    double uniform();
    // Puts the ids order_[from, to) in their places of docs/SAMPLING.md's step 4, given order_[0, from) in theirs.
    void order_prefix(size_t from, size_t to);

    SamplingParams params_;
    uint64_t state_;  // splitmix64
    std::vector<double> work_;
    std::vector<int32_t> order_;
    std::vector<bool> seen_;
};

}  // namespace nc
