// NExT-Chat's location heads (MODEL_SPEC §3): loc_decoder turns an <at> hidden state into a box (xyxy,
// normalized to the expand2square frame, raw: no activation, no clamping); loc_encoder turns a box into the
// input embedding of a <boxes> token.
#pragma once

#include <vector>

#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"

namespace nc {

class LocHeads {
  public:
    LocHeads(const nc_config& config, const WeightStore& weights);

    // Elements of the workspace for n boxes or hidden states per call.
    struct Workspace {
        int64_t mid;
        uint64_t bytes() const { return 4 * uint64_t(mid); }
    };
    Workspace workspace(int64_t n) const { return Workspace{n * width_}; }
    void reserve(int64_t n);
    uint64_t workspace_held() const;

    // boxes [n, 4] = Linear(4096→2048) · ReLU · Linear(2048→4) of hidden [n, H].
    void decode(ops::Ops& ops, const float* hidden, int64_t n, float* boxes);
    // embeds [n, H] = Linear(4→2048) · ReLU · Linear(2048→4096) of boxes [n, 4].
    void encode(ops::Ops& ops, const float* boxes, int64_t n, float* embeds);

  private:
    int64_t width_;
    ops::Weight enc0_w_, enc0_b_, enc2_w_, enc2_b_, dec0_w_, dec0_b_, dec2_w_, dec2_b_;
    std::vector<float> mid_;
    bool planned_ = false;
};

}  // namespace nc
