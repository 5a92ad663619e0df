// SAM's ViT image encoder (MODEL_SPEC §5.1, segment-anything's ImageEncoderViT): patch embedding (conv 16×16
// stride 16 with bias: patches + linear), absolute position embedding, pre-norm blocks (LayerNorm, multi-head
// attention with decomposed relative positions — windowed, or global at the configured indexes —, LayerNorm,
// MLP with GELU), then the neck (1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d). Activations stay channels-last
// [g·g, channels] throughout; the output is transposed to the reference's [D, g, g] at the end.
#pragma once

#include <cstdint>
#include <vector>

#include "model/weights.h"
#include "nextchat.h"
#include "ops/ops.h"

namespace nc {

class SamImageEncoder {
  public:
    SamImageEncoder(const nc_config& config, const WeightStore& weights);

    // Elements of each workspace buffer for one image (the encoder runs one image per call).
    struct Workspace {
        int64_t x, h, q, k, v, big, fills, positions;
        uint64_t bytes() const { return 4 * uint64_t(x + h + q + k + v + big + fills + positions); }
    };
    Workspace workspace() const;
    void reserve();
    uint64_t workspace_held() const;

    int64_t image_size() const { return image_; }  // S: input side (1024)
    int64_t grid() const { return grid_; }         // g = S / patch: embedding side (64)
    int64_t out_channels() const { return out_; }  // D: embedding channels (256)

    // In: pixels [3, S, S], SAM-normalized and padded (§4). Out: embedding [D, g, g].
    void forward(ops::Ops& ops, const float* pixels, float* embedding);

  private:
    struct Block {
        ops::Weight norm1_w, norm1_b, q_w, q_b, k_w, k_b, v_w, v_b, proj_w, proj_b, rel_h, rel_w, norm2_w, norm2_b,
            lin1_w, lin1_b, lin2_w, lin2_b;
        int32_t window;  // 0: global attention over the whole grid
    };

    // x [g², E] += proj(attention(layer_norm1(x))) of one block, windowed or global.
    void attention(ops::Ops& ops, const Block& b, float* x);

    int64_t image_, patch_, grid_, width_, mlp_, out_;
    int32_t heads_;
    float eps_;
    ops::Weight patch_w_, patch_b_, pos_embed_, neck_conv1_, neck_norm1_w_, neck_norm1_b_, neck_conv3_, neck_norm2_w_,
        neck_norm2_b_;
    std::vector<Block> blocks_;
    // Workspace, reused: x, h, q, k, v [g², E]; big holds the MLP's hidden rows, or the windows of q, k, v and the
    // attention output, or the patch rows; fills holds the q, k, v biases of padded window positions.
    std::vector<float> x_, h_, q_, k_, v_, big_, fills_;
    std::vector<int32_t> positions_;
    bool planned_ = false;
};

}  // namespace nc
