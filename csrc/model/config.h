// The model's dimensions (nc_config): the release's values and the consistency rules every config obeys.
#pragma once

#include "nextchat.h"

namespace nc {

// nextchat-7b-336 as released: Vicuna-7B v1.5, CLIP ViT-L/14-336, SAM ViT-H (MODEL_SPEC §1, §5).
nc_config default_7b_config();

// Throws nc::Error(NC_ERR_CONFIG) naming the first inconsistent field.
void validate_config(const nc_config& config);

// Transformer layers of CLIP that run: hidden_states[select_layer] (§1.2: -2 of 24 ⇒ 23 layers).
int vision_layers_run(const nc_config& config);

}  // namespace nc
