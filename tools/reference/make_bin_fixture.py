#!/usr/bin/env python3
"""The `nextchat convert` fixture (testdata/convert): a tiny NExT-Chat release as `AoZhang/nextchat-7b-336` ships
it (MODEL_SPEC §7.1), and the same weights as safetensors, to check a conversion bit for bit.

testdata/convert/release/   what a user downloads, minus tokenizer.model (tests take it from ../shared):
    pytorch_model-0000{1,2,3}-of-00003.bin   torch.save of plain dicts, as transformers 4.31's save_pretrained
    pytorch_model.bin.index.json             {"metadata": {"total_size"}, "weight_map"}
    config.json                              the release's fields (mm_vision_tower, sam_path, torch_dtype
                                             "float32" ...) plus the tiny dimensions in our schema
    generation_config.json, added_tokens.json, special_tokens_map.json, tokenizer_config.json
testdata/convert/expected/model.safetensors  every spec tensor (used and unused, no buffers), written by the
                                             safetensors library from the same torch tensors

Weights: `nextchat gen` (seeded, well-conditioned) in float32, cast by torch: SAM to float16, the rest to bfloat16,
so both 16-bit storages occur. Added as the release may have them: the buffers `rotary_emb.inv_freq` (float32)
and the CLIP `embeddings.position_ids` (int64), which a conversion drops. The spec's unused tensors (CLIP's last
layer and post_layernorm, SAM mask_downscaling, ...) are in both. The LLM is 4 wide, so the real 32005-token
vocabulary costs 256 kB per matrix and the whole fixture stays near 1 MB.

Deterministic: `--verify` regenerates in a temporary directory and compares byte for byte.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures  # noqa: E402

OUT = fixtures.REPO / "testdata" / "convert"
SEED = 7
SHARDS = 3

# The release's config.json fields (MODEL_SPEC §1.1) with the tiny dimensions; vision_config, sam_config and
# loc_hidden_size are ours (the release leaves them implicit at the released sizes).
CONFIG = {
    "_name_or_path": "output/stage2_3epoch/checkpoint-4950/",
    "architectures": ["NextChatForSegLM"],
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4,
    "initializer_range": 0.02,
    "intermediate_size": 8,
    "max_position_embeddings": 256,
    "mm_depth": 2,
    "mm_hidden_size": 8,
    "mm_use_im_start_end": True,
    "mm_vision_select_layer": -2,
    "mm_vision_tower": "/data/models/clip-vit-large-patch14-336/",
    "model_type": "nextchat",
    "num_attention_heads": 1,
    "num_hidden_layers": 2,
    "num_key_value_heads": 1,
    "pad_token_id": 0,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "sam_path": "/home/zhangao/model/sam/sam_vit_h_4b8939.pth",
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "transformers_version": "4.31.0",
    "use_cache": False,
    "use_mm_proj": True,
    "vocab_size": 32005,
    "loc_hidden_size": 8,
    "vision_config": {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "image_size": 28, "patch_size": 14},
    "sam_config": {"image_size": 64, "patch_size": 16, "encoder_embed_dim": 8, "encoder_depth": 2,
                   "encoder_num_heads": 2, "encoder_mlp_dim": 16, "window_size": 3, "global_attn_indexes": [1],
                   "prompt_embed_dim": 16, "mask_in_chans": 4, "decoder_num_heads": 2, "decoder_mlp_dim": 16,
                   "iou_head_hidden_dim": 16},
}

# The release's small JSON files (MODEL_SPEC §2.1: five added tokens, special tokens bos/eos/unk/pad only).
SIDE_FILES = {
    "generation_config.json": {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
                               "transformers_version": "4.31.0"},
    "added_tokens.json": {"<at>": 32003, "<boxes>": 32004, "<im_end>": 32002, "<im_patch>": 32000,
                          "<im_start>": 32001},
    "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>", "unk_token": "<unk>"},
    "tokenizer_config.json": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                              "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": False,
                              "model_max_length": 2048, "pad_token": None, "padding_side": "right",
                              "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>"},
}


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def release_order(name: str) -> tuple:
    """The order NextChatForSegLM registers its modules in (model.*, lm_head, loc_*, sam, seg_prompt_mlp)."""
    for rank, prefix in enumerate(("model.", "lm_head.", "loc_encoder.", "loc_decoder.", "sam.", "seg_prompt_mlp.")):
        if name.startswith(prefix):
            return rank, name
    raise ValueError(name)


def state_dict(gen_dir: Path, cfg: dict) -> dict:
    """The release's tensors: spec tensors cast as the release stores them, then the buffers it may carry."""
    out = {}
    for name, t in sorted(load_file(str(gen_dir / "model.safetensors")).items(), key=lambda kv: release_order(kv[0])):
        out[name] = t.to(torch.float16 if name.startswith("sam.") else torch.bfloat16).contiguous()
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    for i in range(cfg["num_hidden_layers"]):
        out[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq.clone()
    v = cfg["vision_config"]
    positions = (v["image_size"] // v["patch_size"]) ** 2 + 1
    out["model.vision_tower.vision_model.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
    return dict(sorted(out.items(), key=lambda kv: release_order(kv[0])))


def split(tensors: dict, n: int) -> list:
    """n shards of about equal size in release order (save_pretrained fills shards by size the same way)."""
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    shards, size = [{}], 0
    for name, t in tensors.items():
        if size >= total * len(shards) / n and len(shards) < n:
            shards.append({})
        shards[-1][name] = t
        size += t.numel() * t.element_size()
    return shards


def generate(out: Path) -> list:
    release, expected = out / "release", out / "expected"
    release.mkdir(parents=True, exist_ok=True)
    expected.mkdir(parents=True, exist_ok=True)
    write_json(release / "config.json", CONFIG)
    for name, value in SIDE_FILES.items():
        write_json(release / name, value)
    with tempfile.TemporaryDirectory(prefix="nextchat-fixture-") as tmp:
        gen = fixtures.make_checkpoint(str(release / "config.json"), SEED, Path(tmp) / "gen")
        tensors = state_dict(gen, CONFIG)
    weight_map, written = {}, []
    for i, shard in enumerate(split(tensors, SHARDS)):
        name = f"pytorch_model-{i + 1:05d}-of-{SHARDS:05d}.bin"
        torch.save(shard, release / name)
        weight_map.update({k: name for k in shard})
        written.append(release / name)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    write_json(release / "pytorch_model.bin.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    spec = {k: v for k, v in tensors.items() if not k.endswith((".inv_freq", ".position_ids"))}
    save_file(spec, str(expected / "model.safetensors"), metadata={"format": "pt"})
    written += [release / "pytorch_model.bin.index.json", release / "config.json", expected / "model.safetensors"]
    written += [release / name for name in SIDE_FILES]
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verify", action="store_true", help="regenerate elsewhere and compare with the repository")
    args = ap.parse_args()
    if not args.verify:
        written = generate(OUT)
        print(f"wrote {len(written)} files, {sum(p.stat().st_size for p in written):,} bytes under {OUT}")
        return 0
    with tempfile.TemporaryDirectory(prefix="nextchat-fixture-verify-") as tmp:
        return fixtures.report_verify([(p, OUT / p.relative_to(tmp)) for p in generate(Path(tmp))])


if __name__ == "__main__":
    sys.exit(main())
