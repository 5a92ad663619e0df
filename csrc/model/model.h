// A loaded model: config, bound weights and the backend it runs on. What nc_model* points to.
#pragma once

#include <string>
#include <vector>

#include "model/weights.h"
#include "nextchat.h"

namespace nc {

class Model {
  public:
    // Validates the config and the backend choice, then maps and binds the weights.
    explicit Model(const nc_model_params& params);

    const nc_config& config() const { return config_; }
    const WeightStore& weights() const { return weights_; }
    // kv_dtype: an nc_dtype code, checked.
    nc_memory_report memory(int32_t kv_dtype) const;

  private:
    nc_config config_;
    WeightStore weights_;
};

}  // namespace nc
