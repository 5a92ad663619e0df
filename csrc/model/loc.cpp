#include "model/loc.h"

#include "model/llm.h"

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

void LocHeads::decode(ops::Ops& ops, const float* hidden, int64_t n, float* boxes) {
    if (mid_.size() < size_t(n * width_)) mid_.resize(size_t(n * width_));
    ops.linear(hidden, n, dec0_w_, &dec0_b_, mid_.data());
    ops.relu(mid_.data(), n * width_);
    ops.linear(mid_.data(), n, dec2_w_, &dec2_b_, boxes);
}

void LocHeads::encode(ops::Ops& ops, const float* boxes, int64_t n, float* embeds) {
    if (mid_.size() < size_t(n * width_)) mid_.resize(size_t(n * width_));
    ops.linear(boxes, n, enc0_w_, &enc0_b_, mid_.data());
    ops.relu(mid_.data(), n * width_);
    ops.linear(mid_.data(), n, enc2_w_, &enc2_b_, embeds);
}

}  // namespace nc
