"""Box encoder, box decoder and SAM prompt MLP (§3, §4), with the official module names.

loc_encoder:    box xyxy (normalized to the expand2square frame) [.., 4] → embedding [.., H]
loc_decoder:    final-normed hidden at an <at> [.., H] → box [.., 4]; raw linear output, no clamp
seg_prompt_mlp: the same hidden [.., H] → seg_prompt_tokens SAM sparse tokens [.., T, D]
"""
import torch
from torch import nn

LOC_MODULES = ("loc_encoder", "loc_decoder", "seg_prompt_mlp")


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


class LocHeads(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, loc = cfg["hidden_size"], cfg["loc_hidden_size"]
        self.prompt_tokens = cfg["seg_prompt_tokens"]
        self.prompt_dim = cfg["sam_config"]["prompt_embed_dim"]
        self.loc_encoder = _mlp(4, loc, h)
        self.loc_decoder = _mlp(h, loc, 4)
        self.seg_prompt_mlp = _mlp(h, h, self.prompt_tokens * self.prompt_dim)

    def sam_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """[N, H] → [N, seg_prompt_tokens, prompt_embed_dim]."""
        return self.seg_prompt_mlp(hidden).view(hidden.shape[0], self.prompt_tokens, self.prompt_dim)


def build_loc(cfg: dict, weights: dict, dtype: torch.dtype) -> LocHeads:
    heads = LocHeads(cfg)
    state = {k: v for k, v in weights.items() if k.split(".", 1)[0] in LOC_MODULES}
    heads.load_state_dict(state, strict=True)
    return heads.to(dtype).eval()


def boxes_from_image(boxes_px, width: int, height: int) -> torch.Tensor:
    """User boxes, pixel xyxy in the original image → normalized xyxy in the expand2square frame (§3.3).

    Shift by the centring offset of expand2square ((max-min)//2 on the short axis), divide by the square side,
    clamp to [0, 1] as NExT-Chat's norm_box_xyxy does. Float64, [K, 4].
    """
    side = max(width, height)
    dx = (height - width) // 2 if height > width else 0
    dy = (width - height) // 2 if width > height else 0
    b = torch.as_tensor(boxes_px, dtype=torch.float64).reshape(-1, 4)
    b = (b + torch.tensor([dx, dy, dx, dy], dtype=torch.float64)) / side
    return b.clamp(0.0, 1.0)


def boxes_to_image(boxes_norm: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Decoded boxes (expand2square frame, normalized) → original-image pixels, unclipped (demo de_transform_box).

    Multiply by max(W, H), then subtract the centring pad (max-min)//2 from the x's when H > W, else from the
    y's (zero for a square image).
    """
    long_side, short_side = max(width, height), min(width, height)
    pad = (long_side - short_side) // 2
    b = boxes_norm * long_side
    shift = torch.zeros(4, dtype=b.dtype)
    if width < height:
        shift[[0, 2]] = pad
    else:
        shift[[1, 3]] = pad
    return b - shift
