"""PyTorch eager side of `nextchat bench sam` (issue "SAM").

Loads a nextchat model directory's SAM and seg_prompt_mlp (only those tensors, as float32) into segment-anything's
ImageEncoderViT, PromptEncoder and MaskDecoder (nextchat_ref.sam builds them from sam_config), and times, eagerly in
fp32 on the CPU with the given thread count:
  - the image encoder on one synthetic SAM-normalized image per run;
  - per call of --prompts locations, what nc_sam_decode_masks computes before post-processing: seg_prompt_mlp,
    the box prompt, the mask decoder (multimask_output=False) — nextchat_ref's SamReference.prompts + decode.
Prints one JSON object (fastest of --repeat runs after a warm-up). Run it twice, as is and with
OMP_WAIT_POLICY=PASSIVE, and report both (docs/BENCHMARKS.md).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nextchat_ref import checkpoint  # noqa: E402
from nextchat_ref.sam import SamReference  # noqa: E402

PREFIXES = ("sam.model.", "seg_prompt_mlp.")


def load_sam_weights(model_dir, dtype) -> dict:
    """SAM's and seg_prompt_mlp's tensors only, in the compute dtype."""
    out = {}
    for f in checkpoint.weight_files(model_dir):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                if name.startswith(PREFIXES):
                    out[name] = st.get_tensor(name).to(dtype)
    return out


def fastest(fn, repeat: int) -> list:
    fn()  # warm-up
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return seconds


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=8, help="locations per mask-decoder call")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--encoder", action=argparse.BooleanOptionalAction, default=True,
                    help="time the image encoder too (--no-encoder: the decoder alone, on a random embedding, as "
                         "`nextchat bench sam --encoder=false`)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="compute dtype: bfloat16 runs PyTorch's oneDNN bf16 kernels (AMX where the CPU has it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = checkpoint.load_config(args.model)
    dtype = getattr(torch, args.dtype)
    weights = load_sam_weights(args.model, dtype)
    sam = SamReference(cfg)
    sam.load_state_dict(checkpoint.take(weights, "sam.model."), strict=True)
    sam.to(dtype).eval()
    # segment-anything's prompt encoder multiplies float32 coordinates by its Gaussian matrix: it stays float32, and
    # SamReference casts what it returns to the encoder's dtype.
    sam.prompt_encoder.float()
    hidden, tokens, dim = cfg["hidden_size"], cfg["seg_prompt_tokens"], cfg["sam_config"]["prompt_embed_dim"]
    seg_prompt_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, tokens * dim))
    seg_prompt_mlp.load_state_dict(checkpoint.take(weights, "seg_prompt_mlp."), strict=True)
    seg_prompt_mlp.to(dtype).eval()
    del weights

    s = cfg["sam_config"]["image_size"]
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand((3, s, s), generator=gen).mul(4.7).sub(2.1).to(dtype)
    embedding = None

    def encode():
        nonlocal embedding
        embedding = sam.encode_image(pixels)

    if args.encoder:
        enc_seconds = fastest(encode, args.repeat)
    else:  # an image embedding's scale: the neck ends in a LayerNorm2d
        enc_seconds = []
        grid = s // cfg["sam_config"]["patch_size"]
        embedding = torch.randn((1, cfg["sam_config"]["prompt_embed_dim"], grid, grid), generator=gen).to(dtype)

    n = args.prompts
    at_hidden = torch.randn((n, hidden), generator=gen).to(dtype)
    xy = torch.rand((n, 2), generator=gen) * 0.6
    boxes = torch.cat([xy, xy + 0.1 + torch.rand((n, 2), generator=gen) * 0.3], dim=1).to(dtype)

    def decode():
        llm_tokens = seg_prompt_mlp(at_hidden).view(n, tokens, dim)
        sparse, dense = sam.prompts(llm_tokens, boxes)
        sam.decode(embedding, sparse, dense)

    dec_seconds = fastest(decode, args.repeat)
    print(json.dumps({
        "implementation": f"pytorch {torch.__version__} eager, segment-anything ImageEncoderViT / PromptEncoder / "
                          f"MaskDecoder + seg_prompt_mlp, {args.dtype}",
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "encoder_run_seconds": enc_seconds,
        "encoder_images_per_s": 1 / min(enc_seconds) if enc_seconds else None,
        "prompts_per_call": n,
        "decoder_run_seconds": dec_seconds,
        "decoder_ms_per_prompt": 1000 * min(dec_seconds) / n,
    }))


if __name__ == "__main__":
    main()
