// mm_projector (MODEL_SPEC §1.3, LLaVA-1.5 mlp2x_gelu): CLIP features → LLM input embeddings of the image rows.
#pragma once

#include <cstdint>
#include <vector>

#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"

namespace nc {

class Projector {
  public:
    Projector(const nc_config& config, const WeightStore& weights);

    // Elements of the workspace for `rows` feature rows per call.
    struct Workspace {
        int64_t mid;
        uint64_t bytes() const { return 4 * uint64_t(mid); }
    };
    Workspace workspace(int64_t rows) const { return Workspace{rows * hidden_}; }
    void reserve(int64_t rows);
    uint64_t workspace_held() const;

    // out [rows, hidden] = Linear(H→H) · GELU(erf) · Linear(Dv→H) of features [rows, Dv].
    void forward(ops::Ops& ops, const float* features, int64_t rows, float* out);

  private:
    int64_t hidden_;
    ops::Weight w0_, b0_, w2_, b2_;
    std::vector<float> mid_;
    bool planned_ = false;
};

}  // namespace nc
