// The tensors a config implies: names exactly as the official checkpoint (MODEL_SPEC §7.2), shapes, the
// component each belongs to and whether the engine reads it. The one list used to validate a load, to
// generate synthetic checkpoints and to count parameters.
#pragma once

#include <string>
#include <vector>

#include "core/shape.h"
#include "nextchat.h"

namespace nc {

struct TensorSpec {
    std::string name;
    Shape shape;
    nc_component component;
    nc_tensor_role role;
    nc_tensor_kind kind;
};

// Requires a validated config.
std::vector<TensorSpec> build_spec(const nc_config& config);

}  // namespace nc
