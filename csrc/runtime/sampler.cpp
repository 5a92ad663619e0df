#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"

namespace nc {

void validate_sampling(const SamplingParams& p) {
    if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
        fail(NC_ERR_INVALID_ARGUMENT, "temperature must be finite and ≥ 0 (0 = greedy)");
    }
    if (p.top_k < 0) fail(NC_ERR_INVALID_ARGUMENT, "top_k must be ≥ 0 (0 = no limit)");
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail(NC_ERR_INVALID_ARGUMENT, "top_p must be in (0, 1]");
    if (!std::isfinite(p.repetition_penalty) || p.repetition_penalty <= 0.0f) {
        fail(NC_ERR_INVALID_ARGUMENT, "repetition_penalty must be finite and > 0");
    }
}

double Sampler::uniform() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::next(const float* logits, int32_t vocab, const std::vector<int32_t>& history) {
    if (params_.temperature == 0.0f) {
        // Greedy: the first maximum of the raw logits, i.e. the lowest id among ties (docs/SAMPLING.md).
        return int32_t(std::max_element(logits, logits + vocab) - logits);
    }
    work_.assign(logits, logits + vocab);
    // HF RepetitionPenaltyLogitsProcessor: every token seen once is penalized once.
    if (params_.repetition_penalty != 1.0f) {
        const double p = params_.repetition_penalty;
        seen_.assign(size_t(vocab), false);
        for (int32_t t : history) {
            if (t < 0 || t >= vocab || seen_[size_t(t)]) continue;
            seen_[size_t(t)] = true;
            double& l = work_[size_t(t)];
            l = l > 0 ? l / p : l * p;
        }
    }
    const double t = params_.temperature;
    double mx = -INFINITY;
    for (double& l : work_) mx = std::max(mx, l /= t);
    double sum = 0;
    for (double& l : work_) sum += (l = std::exp(l - mx));
    for (double& l : work_) l /= sum;
    order_.resize(size_t(vocab));
    std::iota(order_.begin(), order_.end(), 0);
    size_t keep = order_.size();
    if (params_.top_k > 0) keep = std::min(keep, size_t(params_.top_k));
    // Steps 4–6, ordering only what can be kept: the top-k prefix at once, or for top-p prefixes of 64, 128, 256, …
    // ids, so it usually stops after the first instead of sorting the whole vocabulary for every sampled token.
    if (params_.top_p >= 1.0f) order_prefix(0, keep);
    size_t sorted = params_.top_p >= 1.0f ? keep : 0;
    double mass = 0;
    while (sorted < keep) {
        const size_t upto = std::min(keep, std::max<size_t>(64, 2 * sorted));
        order_prefix(sorted, upto);
        for (; sorted < upto; ++sorted) {
            mass += work_[size_t(order_[sorted])];
            if (mass >= params_.top_p) {
                keep = ++sorted;
                break;
            }
        }
    }
    double kept = 0;
    for (size_t i = 0; i < keep; ++i) kept += work_[size_t(order_[i])];
    const double u = uniform();
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
        cum += work_[size_t(order_[i])] / kept;
        if (cum > u) return order_[i];
    }
    return order_[keep - 1];  // u within rounding of 1
}

void Sampler::order_prefix(size_t from, size_t to) {
    // Probability descending, ties by lower id: a strict total order, so the first `to` ids are one set whichever way
    // they are found — selected from the rest, then sorted.
    const auto before = [&](int32_t a, int32_t b) {
        const double pa = work_[size_t(a)], pb = work_[size_t(b)];
        return pa > pb || (pa == pb && a < b);
    };
    const auto first = order_.begin() + std::ptrdiff_t(from), last = order_.begin() + std::ptrdiff_t(to);
    if (to < order_.size()) std::nth_element(first, last, order_.end(), before);
    std::sort(first, last, before);
}

}  // namespace nc
