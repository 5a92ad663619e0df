// The LLaMA decoder of NExT-Chat (MODEL_SPEC §1.1): embeddings, 32 pre-norm blocks (RMSNorm, rotate-half
// RoPE, causal MHA over the paged KV cache, SwiGLU MLP), final RMSNorm, lm_head. Rows of many sequences are
// processed together: every linear layer runs once over all of them; attention runs per sequence.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/weights.h"
#include "nextchat.h"
#include "ops/compact_bf16.h"
#include "ops/int8_rows.h"
#include "ops/ops.h"
#include "runtime/kv_cache.h"

namespace nc {

// Rows [row, row + rows) of a step's activations belong to one sequence, at positions [start, start + rows);
// its block table already covers them.
struct LlmSegment {
    int64_t row;
    int64_t rows;
    int64_t start;
    const int32_t* blocks;
};

class Llm {
  public:
    // Elements of each workspace buffer for a step of `rows` rows (all sequences together).
    struct Workspace {
        int64_t h, q, k, v, attn, gate, up, positions, rope;
        uint64_t bytes() const { return 4 * uint64_t(h + q + k + v + attn + gate + up + positions + rope); }
    };

    Llm(const nc_config& config, const WeightStore& weights);

    // Re-codes the matrices of the layers and lm_head as `how` says on the ops' threads, and releases their files'
    // pages: compact bf16 (ops/compact_bf16.h; throws NC_ERR_DTYPE, before any work, when one is not bf16) or int8
    // rows (ops/int8_rows.h; any dtype, NC_ERR_DTYPE for a weight that is not finite). AS_STORED leaves them.
    void recode(ops::Ops& ops, nc_llm_weights how);
    // How the matrices are held (recode's `how`).
    nc_llm_weights held_as() const { return held_as_; }
    // Bytes of the files' matrices recode() replaced, and of what replaced them.
    uint64_t recoded_stored_bytes() const { return recoded_stored_bytes_; }
    uint64_t recoded_bytes() const;

    Workspace workspace(int64_t rows) const;
    // Allocates the workspace of `rows` rows; forward then never allocates for up to that many.
    void reserve(int64_t rows);
    uint64_t workspace_held() const;

    int64_t hidden() const { return hidden_; }
    int64_t vocab() const { return vocab_; }

    // x [n, hidden] = embed_tokens rows of ids.
    void embed(ops::Ops& ops, const int32_t* ids, int64_t n, float* x) const;

    // In: x [T, hidden] input embeddings. Out: x = the final-RMSNorm'd hidden states (the vector lm_head reads,
    // §2.3's h). Writes every row's K and V into the cache.
    void forward(ops::Ops& ops, KVCache& cache, const std::vector<LlmSegment>& segments, float* x, int64_t T);

    // logits [rows, vocab] from final hidden states [rows, hidden].
    void logits(ops::Ops& ops, const float* h, int64_t rows, float* out) const;

  private:
    struct Layer {
        ops::Weight attn_norm, q, k, v, o, mlp_norm, gate, up, down;
        // The linear layers' weights, in the order of their names in llm.cpp (kLayerMatrices).
        std::array<ops::Weight*, 7> matrices() { return {&q, &k, &v, &o, &gate, &up, &down}; }
    };

    int64_t hidden_, vocab_, intermediate_;
    int32_t heads_, kv_heads_, head_dim_;
    float eps_;
    std::vector<float> inv_freq_;  // rope_inv_freq
    ops::Weight embed_, norm_, lm_head_;
    std::vector<Layer> layers_;
    nc_llm_weights held_as_ = NC_LLM_WEIGHTS_AS_STORED;
    std::vector<std::unique_ptr<ops::CompactBf16>> compact_;
    std::vector<std::unique_ptr<ops::Int8Rows>> int8_;
    uint64_t recoded_stored_bytes_ = 0;
    // Step workspace (workspace()): reserved by a plan, else grown on demand and reused.
    std::vector<float> h_, q_, k_, v_, attn_, gate_, up_, rope_;
    std::vector<int32_t> positions_;
    bool planned_ = false;
};

// RoPE's frequencies as transformers 4.31's LlamaRotaryEmbedding computes them (§1.1), in float32: inv_freq[i] =
// 1 / theta^(2i / head_dim) for i < head_dim / 2.
std::vector<float> rope_inv_freq(int32_t head_dim, float theta);

// cos and sin [rows, inv_freq.size()] of the angles float(position) · inv_freq[i], in float32 like transformers'
// cached tables (whose second half repeats the first): computed once per step for every layer's q and k.
void rope_angles(const std::vector<float>& inv_freq, const int32_t* positions, int64_t rows, float* cos, float* sin);

// The op-level view of a bound weight: [out, in] matrices, vectors as one row.
ops::Weight as_op_weight(const WeightView& w);

}  // namespace nc
