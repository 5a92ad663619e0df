#include "model/loc.h"

#include "model/llm.h"
#include "model/workspace.h"

namespace nc {

LocHeads::LocHeads(const nc_config& c, const WeightStore& w)
    : width_(c.loc_hidden_size),
      enc0_w_(as_op_weight(w.get("loc_encoder.0.weight"))),
      enc0_b_(as_op_weight(w.get("loc_encoder.0.bias"))),
      enc2_w_(as_op_weight(w.get("loc_encoder.2.weight"))),
      enc2_b_(as_op_weight(w.get("loc_encoder.2.bias"))),
      dec0_w_(as_op_weight(w.get("loc_decoder.0.weight"))),
      dec0_b_(as_op_weight(w.get("loc_decoder.0.bias"))),
      dec2_w_(as_op_weight(w.get("loc_decoder.2.weight"))),
      dec2_b_(as_op_weight(w.get("loc_decoder.2.bias"))) {}

void LocHeads::reserve(int64_t n) {
    reserve_exact(mid_, workspace(n).mid);
    planned_ = true;
}

uint64_t LocHeads::workspace_held() const { return held_bytes(mid_); }

void LocHeads::decode(ops::Ops& ops, const float* hidden, int64_t n, float* boxes) {
    float* mid = grown(mid_, workspace(n).mid, planned_);
    ops.linear(hidden, n, dec0_w_, &dec0_b_, mid);
    ops.relu(mid, n * width_);
    ops.linear(mid, n, dec2_w_, &dec2_b_, boxes);
}

void LocHeads::encode(ops::Ops& ops, const float* boxes, int64_t n, float* embeds) {
    float* mid = grown(mid_, workspace(n).mid, planned_);
    ops.linear(boxes, n, enc0_w_, &enc0_b_, mid);
    ops.relu(mid, n * width_);
    ops.linear(mid, n, enc2_w_, &enc2_b_, embeds);
}

}  // namespace nc
