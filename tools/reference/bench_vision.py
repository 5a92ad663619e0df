"""PyTorch eager side of `nextchat bench vision` (issue "Vision").

Loads a nextchat model directory's CLIP tower and projector (only those tensors: a 7b checkpoint does not fit in
memory as fp32) into transformers 4.31's CLIPVisionModel and the reference projector, runs them eagerly in fp32 (or
--dtype bfloat16) on the CPU with the given thread count over --images synthetic CLIP-normalized images in one batch, and prints one
JSON object with images/s (fastest of --repeat runs after a warm-up).

By default the tower is cut to the layers the engine runs (hidden_states[select_layer], MODEL_SPEC §1.2: 23 of 24),
so both sides do the same work; --as-reference runs nextchat_ref's VisionTower as is (all layers, every hidden
state kept). Run it twice, as is and with OMP_WAIT_POLICY=PASSIVE, and report both (docs/BENCHMARKS.md).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nextchat_ref import checkpoint  # noqa: E402
from nextchat_ref.vision import VisionTower, build_projector  # noqa: E402

PREFIXES = ("model.vision_tower.", "model.mm_projector.")


def load_vision_weights(model_dir, dtype) -> dict:
    """The tower's and the projector's tensors only, in the compute dtype."""
    out = {}
    for f in checkpoint.weight_files(model_dir):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                if name.startswith(PREFIXES):
                    out[name] = st.get_tensor(name).to(dtype)
    return out


def layers_run(cfg: dict) -> int:
    """CLIP layers up to hidden_states[select_layer] (index 0 is the embedding)."""
    total, select = cfg["vision_config"]["num_hidden_layers"], cfg["mm_vision_select_layer"]
    return total + 1 + select if select < 0 else select


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=4, help="images per timed run, in one batch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--as-reference", action="store_true", help="run every CLIP layer, as nextchat_ref does")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="compute dtype: bfloat16 runs PyTorch's oneDNN bf16 kernels (AMX where the CPU has it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = checkpoint.load_config(args.model)
    dtype = getattr(torch, args.dtype)
    weights = load_vision_weights(args.model, dtype)
    tower = VisionTower(cfg)
    tower.clip.load_state_dict(checkpoint.take(weights, "model.vision_tower."), strict=True)
    projector = build_projector(cfg)
    projector.load_state_dict(checkpoint.take(weights, "model.mm_projector."), strict=True)
    tower.to(dtype).eval()
    projector.to(dtype).eval()
    del weights
    run = layers_run(cfg)

    if args.as_reference:
        def encode(pixels):
            return projector(tower(pixels))
    else:
        tower.clip.vision_model.encoder.layers = tower.clip.vision_model.encoder.layers[:run]

        def encode(pixels):
            hidden = tower.clip(pixel_values=pixels, return_dict=True).last_hidden_state
            return projector(hidden[:, 1:])

    v = cfg["vision_config"]
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand((args.images, 3, v["image_size"], v["image_size"]), generator=gen).mul(4).sub(1.8).to(dtype)
    encode(pixels[:1])  # warm-up
    seconds = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        encode(pixels)
        seconds.append(time.perf_counter() - t0)

    print(json.dumps({
        "implementation": f"pytorch {torch.__version__} eager, transformers 4.31 CLIPVisionModel + projector, {args.dtype}",
        "layers": run if not args.as_reference else v["num_hidden_layers"],
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "images_per_run": args.images,
        "run_seconds": seconds,
        "images_per_s": args.images / min(seconds),
    }))


if __name__ == "__main__":
    main()
