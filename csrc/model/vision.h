// The CLIP ViT vision tower of NExT-Chat (MODEL_SPEC §1.2): patch embedding (a conv without bias with stride =
// kernel: patches + linear), class token, learned position embeddings, pre_layrnorm, then pre-norm encoder
// layers (LayerNorm, multi-head attention with biases, LayerNorm, MLP with quick_gelu). The feature is
// hidden_states[select_layer] without the class token, so only vision_layers_run() layers run. Images are
// processed together: every linear layer runs once over all their tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"

namespace nc {

class VisionTower {
  public:
    VisionTower(const nc_config& config, const WeightStore& weights);

    // Elements of each workspace buffer for n images per forward.
    struct Workspace {
        int64_t x, h, q, k, v, attn, mlp, pixel_rows, positions;
        uint64_t bytes() const { return 4 * uint64_t(x + h + q + k + v + attn + mlp + pixel_rows + positions); }
    };
    Workspace workspace(int64_t n) const;
    void reserve(int64_t n);
    uint64_t workspace_held() const;

    int64_t image_size() const { return image_; }
    int64_t patches() const { return patches_; }  // P: patch tokens per image (576 for 336/14)
    int64_t width() const { return width_; }      // vision hidden size (1024)

    // In: pixels [n, 3, S, S], CLIP-normalized (§1.4). Out: features [n, P, width] = hidden_states[select_layer]
    // without the class token.
    void forward(ops::Ops& ops, const float* pixels, int64_t n, float* features);

  private:
    struct Layer {
        ops::Weight norm1_w, norm1_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b, norm2_w, norm2_b, fc1_w, fc1_b,
            fc2_w, fc2_b;
    };

    int64_t image_, patch_, patches_, width_, intermediate_;
    int32_t heads_;
    float eps_;
    ops::Weight patch_embed_, class_embed_, position_embed_, pre_norm_w_, pre_norm_b_;
    std::vector<Layer> layers_;
    // Workspace (workspace()): reserved by a plan, else grown on demand and reused.
    std::vector<float> x_, h_, q_, k_, v_, attn_, mlp_, pixel_rows_;
    std::vector<int32_t> positions_;
    bool planned_ = false;
};

}  // namespace nc
