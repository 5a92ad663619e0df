#include "model/projector.h"

#include "model/llm.h"
#include "model/workspace.h"

namespace nc {

Projector::Projector(const nc_config& c, const WeightStore& w)
    : hidden_(c.hidden_size),
      w0_(as_op_weight(w.get("model.mm_projector.0.weight"))),
      b0_(as_op_weight(w.get("model.mm_projector.0.bias"))),
      w2_(as_op_weight(w.get("model.mm_projector.2.weight"))),
      b2_(as_op_weight(w.get("model.mm_projector.2.bias"))) {}

void Projector::reserve(int64_t rows) {
    reserve_exact(mid_, workspace(rows).mid);
    planned_ = true;
}

uint64_t Projector::workspace_held() const { return held_bytes(mid_); }

void Projector::forward(ops::Ops& ops, const float* features, int64_t rows, float* out) {
    // features [rows, Dv] → mid [rows, H] → out [rows, H]
    float* mid = grown(mid_, workspace(rows).mid, planned_);
    ops.linear(features, rows, w0_, &b0_, mid);
    ops.gelu(mid, rows * hidden_);
    ops.linear(mid, rows, w2_, &b2_, out);
}

}  // namespace nc
