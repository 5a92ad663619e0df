// Weights in memory: the model's files mapped read-only, each spec tensor bound to its bytes after the
// checks of docs/ARCHITECTURE.md ("Weights and model directory") — presence, shape, dtype, bounds.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/mapped_file.h"
#include "core/shape.h"
#include "nextchat.h"

namespace nc {

struct WeightView {
    nc_dtype dtype;
    Shape shape;
    const std::byte* data;
    uint64_t nbytes;
    nc_component component;
    nc_tensor_role role;
};

class WeightStore {
  public:
    // Maps the files and binds every tensor of the spec of `config` (validated); throws nc::Error listing every
    // problem found, with the status of the first.
    WeightStore(const nc_config& config, const std::vector<std::string>& files, const nc_tensor_ref* tensors,
                int64_t n_tensors);

    // The bound tensor; throws NC_ERR_MISSING for a name the spec does not require.
    const WeightView& get(std::string_view name) const;

    // Bytes of present tensors by component: required ones in `required`, the rest summed in `unused`.
    void byte_counts(std::array<uint64_t, NC_COMPONENT_COUNT>& required, uint64_t& unused) const;
    uint64_t mapped_bytes() const;

  private:
    std::vector<MappedFile> files_;
    std::unordered_map<std::string, WeightView> weights_;
};

}  // namespace nc
