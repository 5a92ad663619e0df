"""Vision tower and projector (§1.2, §1.3).

CLIP: HF `CLIPVisionModel`; the feature is `hidden_states[mm_vision_select_layer]` without the CLS row.
`hidden_states[0]` is the pre-LayerNorm'd embedding and `hidden_states[i]` the output of encoder layer i, so the
release's -2 on 24 layers is the output of layer 23; the last layer and `post_layernorm` are computed by HF but
never read. Projector: Linear → GELU (exact erf) → Linear (`model.mm_projector.0/2`).
"""
import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from .checkpoint import take


def clip_config(cfg: dict) -> CLIPVisionConfig:
    v = cfg["vision_config"]
    return CLIPVisionConfig(
        hidden_size=v["hidden_size"],
        intermediate_size=v["intermediate_size"],
        num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"],
        image_size=v["image_size"],
        patch_size=v["patch_size"],
        layer_norm_eps=v["layer_norm_eps"],
        hidden_act=v["hidden_act"],
        num_channels=3,
    )


class VisionTower(nn.Module):
    """pixels [1, 3, S, S] → patch features [1, P, Dv], P = (S / patch)²."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.clip = CLIPVisionModel(clip_config(cfg))
        self.select_layer = cfg["mm_vision_select_layer"]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.clip(pixel_values=pixels, output_hidden_states=True, return_dict=True)
        return out.hidden_states[self.select_layer][:, 1:]


def build_projector(cfg: dict) -> nn.Sequential:
    """features [.., Dv] → LLM embeddings [.., H] (LLaVA-1.5 mlp2x_gelu)."""
    h = cfg["hidden_size"]
    return nn.Sequential(nn.Linear(cfg["mm_hidden_size"], h), nn.GELU(), nn.Linear(h, h))


def build_vision(cfg: dict, weights: dict, dtype: torch.dtype):
    """(VisionTower, projector) with the checkpoint's weights, eval mode, `dtype`."""
    if cfg["mm_depth"] != 2:
        raise ValueError(f"mm_depth {cfg['mm_depth']}: only the 2-layer projector (§1.3) exists in the release")
    tower = VisionTower(cfg)
    tower.clip.load_state_dict(take(weights, "model.vision_tower."), strict=True)
    projector = build_projector(cfg)
    projector.load_state_dict(take(weights, "model.mm_projector."), strict=True)
    return tower.to(dtype).eval(), projector.to(dtype).eval()
