#include "model/projector.h"

#include "model/llm.h"

namespace nc {

Projector::Projector(const nc_config& c, const WeightStore& w)
    : hidden_(c.hidden_size),
      w0_(as_op_weight(w.get("model.mm_projector.0.weight"))),
      b0_(as_op_weight(w.get("model.mm_projector.0.bias"))),
      w2_(as_op_weight(w.get("model.mm_projector.2.weight"))),
      b2_(as_op_weight(w.get("model.mm_projector.2.bias"))) {}

void Projector::forward(ops::Ops& ops, const float* features, int64_t rows, float* out) {
    // features [rows, Dv] → mid [rows, H] → out [rows, H]
    if (mid_.size() < size_t(rows * hidden_)) mid_.resize(size_t(rows * hidden_));
    ops.linear(features, rows, w0_, &b0_, mid_.data());
    ops.gelu(mid_.data(), rows * hidden_);
    ops.linear(mid_.data(), rows, w2_, &b2_, out);
}

}  // namespace nc
