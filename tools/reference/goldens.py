#!/usr/bin/env python3
"""Write one golden file: every stage tensor of the reference on one (model, image, prompt) case.

    goldens.py --model DIR --image FILE --prompt TEXT [--boxes JSON] [--force-ids 673,29901,32003]
               [--max-new-tokens N] [--temperature T --top-k K --top-p P --seed S] --out FILE.safetensors

Tensor names and meanings: tools/reference/README.md. Floats are stored as F32 (computed in float64 unless
--dtype float32), ids as I64, masks as U8. The safetensors metadata holds one key, "nextchat.golden", whose
value is a JSON object (sorted keys) with the whole recipe and the library versions; a single key because
safetensors writes several metadata keys in a random order, and golden files must be byte-reproducible.
"""
import argparse
import json
import sys
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nextchat_ref import checkpoint  # noqa: E402
from nextchat_ref.generate import Sampling  # noqa: E402
from nextchat_ref.model import NextChatReference, as_numpy  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32}
VERSIONED = ("torch", "transformers", "segment-anything", "pillow", "numpy", "safetensors", "sentencepiece")


def setup_torch() -> None:
    """Same thread count and deterministic kernels everywhere: part of what makes goldens bit-reproducible."""
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


def versions() -> dict:
    return {name: version(name) for name in VERSIONED}


def run_case(model, image: str, prompt: str, boxes=None, forced_ids=None, max_new_tokens: int = 32,
             sampling: Sampling = None):
    """(numpy arrays, metadata dict, Answer) of one case on a loaded NextChatReference."""
    ans = model.answer(image, prompt, boxes=boxes, forced_ids=forced_ids, max_new_tokens=max_new_tokens,
                       sampling=sampling)
    meta = {
        "prompt": prompt,
        "image": Path(image).name,
        "boxes": boxes,
        "forced_ids": list(forced_ids or []),
        "max_new_tokens": max_new_tokens,
        "sampling": None if sampling is None else vars(sampling),
        "response": ans.response,
        "compute_dtype": str(model.dtype).removeprefix("torch."),
        "config": checkpoint.load_config(model.model_dir),
        "weights_sha256": checkpoint.weights_sha256(model.model_dir),
        "versions": versions(),
    }
    return as_numpy(ans.tensors), meta, ans


def write_golden(path, arrays: dict, meta: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(path), metadata={"nextchat.golden": json.dumps(meta, sort_keys=True)})
    Path(path).chmod(0o644)  # safetensors creates the file 0600


def parse_sampling(args):
    if args.temperature is None:
        if args.top_k or args.top_p != 1.0 or args.repetition_penalty != 1.0 or args.seed is not None:
            raise SystemExit("sampling options need --temperature (without it decoding is greedy)")
        return None
    return Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                    repetition_penalty=args.repetition_penalty, seed=args.seed or 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, tokenizer)")
    ap.add_argument("--image", required=True)
    ap.add_argument("--prompt", required=True, help="user text; [i] refers to box i of --boxes")
    ap.add_argument("--boxes", help='JSON list of pixel xyxy boxes, e.g. "[[8,6,40,30]]"')
    ap.add_argument("--force-ids", help="comma-separated token ids forced as the first generated tokens")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--top-k", type=int, default=0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float64", help="compute dtype")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    setup_torch()
    forced = [int(x) for x in args.force_ids.split(",")] if args.force_ids else None
    boxes = json.loads(args.boxes) if args.boxes else None
    model = NextChatReference(args.model, DTYPES[args.dtype])
    arrays, meta, ans = run_case(model, args.image, args.prompt, boxes=boxes, forced_ids=forced,
                                 max_new_tokens=args.max_new_tokens, sampling=parse_sampling(args))
    write_golden(args.out, arrays, meta)
    print(f"{args.out}: tokens {arrays['gen.tokens'].tolist()} ({ans.response!r}), "
          f"{len(arrays['gen.at_positions'])} <at>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
