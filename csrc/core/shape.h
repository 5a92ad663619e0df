// Tensor shapes: formatting and overflow-checked element counts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nc {

using Shape = std::vector<int64_t>;

// "[a, b, c]" as in error messages and PyTorch's printout.
std::string format_shape(const Shape& shape);

// Number of elements, or nullopt when a dimension is negative or the product overflows int64.
std::optional<int64_t> checked_numel(const Shape& shape);

}  // namespace nc
