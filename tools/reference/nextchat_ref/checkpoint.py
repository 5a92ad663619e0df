"""A model directory as `nextchat gen` writes it and the engine reads it.

config.json: the release's fields at top level plus `vision_config`, `sam_config`, `loc_hidden_size` and
`seg_prompt_tokens` (schema: internal/config/config.go). Keys the release's own config.json lacks default to the
released architecture (§1.1, §1.2, §5), as in the engine. Weights: model.safetensors, or shards listed by
model.safetensors.index.json, with the official tensor names of MODEL_SPEC §7.2.
"""
import copy
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

# Released CLIP ViT-L/14-336 (§1.2) and SAM ViT-H (§5) dimensions: what a config.json without these keys means.
RELEASE_VISION = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      image_size=336, patch_size=14, layer_norm_eps=1e-5, hidden_act="quick_gelu")
RELEASE_SAM = dict(image_size=1024, patch_size=16, encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                   encoder_mlp_dim=5120, window_size=14, global_attn_indexes=[7, 15, 23, 31], layer_norm_eps=1e-6,
                   prompt_embed_dim=256, mask_in_chans=16, decoder_depth=2, decoder_num_heads=8,
                   decoder_mlp_dim=2048, attention_downsample_rate=2, num_multimask_outputs=3,
                   iou_head_hidden_dim=256, iou_head_depth=3)
RELEASE_TOP = dict(rope_theta=10000.0, loc_hidden_size=2048, seg_prompt_tokens=4, mm_vision_select_layer=-2,
                   mm_use_im_start_end=True, mm_depth=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                   max_position_embeddings=4096, rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False,
                   at_token_id=32003, boxes_token_id=32004)


def load_config(model_dir) -> dict:
    """config.json over the released defaults (nested dicts merged key by key)."""
    raw = json.loads((Path(model_dir) / "config.json").read_text())
    cfg = copy.deepcopy(RELEASE_TOP)
    cfg.update({k: v for k, v in raw.items() if k not in ("vision_config", "sam_config")})
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])  # HF LlamaConfig: MHA unless stated
    cfg["vision_config"] = {**RELEASE_VISION, **raw.get("vision_config", {})}
    cfg["sam_config"] = {**RELEASE_SAM, **raw.get("sam_config", {})}
    cfg.setdefault("mm_hidden_size", cfg["vision_config"]["hidden_size"])
    return cfg


def image_tokens(cfg: dict) -> int:
    """<im_patch> rows per image: one per CLIP patch (576 for 336/14, §1.2)."""
    v = cfg["vision_config"]
    return (v["image_size"] // v["patch_size"]) ** 2


def weight_files(model_dir) -> list:
    """The safetensors files of a model directory, in index order when sharded."""
    d = Path(model_dir)
    if (d / "model.safetensors").exists():
        return [d / "model.safetensors"]
    index = json.loads((d / "model.safetensors.index.json").read_text())
    return [d / name for name in sorted(set(index["weight_map"].values()))]


def weights_sha256(model_dir) -> str:
    """sha256 over the weight files' bytes, in order: identifies a regenerated synthetic checkpoint."""
    h = hashlib.sha256()
    for f in weight_files(model_dir):
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_weights(model_dir, dtype: torch.dtype) -> dict:
    """Every tensor of the checkpoint, converted to `dtype` (float32 or float64)."""
    out = {}
    for f in weight_files(model_dir):
        for name, t in load_file(str(f)).items():
            out[name] = t.to(dtype)
    return out


def take(weights: dict, prefix: str) -> dict:
    """The tensors under `prefix`, with the prefix removed (a submodule's state dict)."""
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
