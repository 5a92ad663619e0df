#!/usr/bin/env python3
"""Regenerate the whole model golden set: testdata/images/*.png, testdata/golden/model/*.safetensors, cases.json.

    make_model_goldens.py           write them into the repository
    make_model_goldens.py --verify  regenerate into a temporary directory and compare byte for byte with the
                                    committed files (the determinism check); exit 1 on any difference

Checkpoints come from `bin/nextchat gen` (synthetic, deterministic) in a temporary directory; cases.json records
each case's whole recipe, including the sha256 of the generated weights, so a test can confirm it regenerated the
same checkpoint before comparing against a golden. Every golden is computed in float64 and stored as float32.
"""
import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures  # noqa: E402
from goldens import run_case, setup_torch, write_golden  # noqa: E402
from nextchat_ref.generate import Sampling, sample_margin  # noqa: E402
from nextchat_ref.model import NextChatReference  # noqa: E402
from nextchat_ref.tokenizer import encode_continuation  # noqa: E402

GOLDEN_DIR = fixtures.REPO / "testdata" / "golden" / "model"
SIZE_LIMIT = 8_000_000  # bytes, goldens + images
ODD = "testdata/golden/configs/tiny_odd.json"
ANSWER_AT = [673, 29901, 32003]  # "Answer: <at>" as generate_rec writes it (§6.2)

CASES = [
    # (1) free greedy answer to a plain question
    dict(name="plain_greedy", config="tiny", seed=1, image="wide_64x48.png",
         prompt="What is in the image?", max_new_tokens=16),
    # (2) REC: forced "Answer: <at>", then <boxes> forced by the rule, then free greedy
    dict(name="rec_forced_prefix", config="tiny", seed=1, image="tall_40x72.png",
         prompt="Where is the red circle in the image?", forced_ids=ANSWER_AT, max_new_tokens=12),
    # (3) grounded caption: two forced <at>; the first <boxes> comes from the forced list, the second from the rule
    dict(name="grounded_caption_two_at", config="tiny", seed=2, image="square_50x50.png",
         prompt="Can you describe the image and include object locations?",
         forced_text="A yellow circle<at> <boxes> and a red square<at>", max_new_tokens=16),
    # (4) odd shapes: GQA 6/3 heads, hidden 72, 9 image tokens, SAM grid 12 with window 5 (padded windows)
    dict(name="odd_config", config=ODD, seed=3, image="tall_40x72.png",
         prompt="Can you locate the green square?", forced_ids=ANSWER_AT, max_new_tokens=10),
    # (5) region caption: a user box spliced at the prompt's <boxes>
    dict(name="region_caption", config="tiny", seed=1, image="wide_64x48.png",
         prompt="What is region [0]?", boxes=[[36, 10, 58, 30]], max_new_tokens=16),
    # (6) seeded sampling (docs/SAMPLING.md) after a forced <at>
    dict(name="sampling", config="tiny", seed=2, image="square_50x50.png",
         prompt="Where is the blue bar in the image?", forced_ids=ANSWER_AT,
         sampling=dict(temperature=0.8, top_k=5, top_p=0.8, seed=1234), max_new_tokens=16),
    # (7) REC exactly as generate_rec evaluates it: the whole answer teacher-forced, ends at EOS
    dict(name="rec_teacher_forced", config="tiny", seed=1, image="wide_64x48.png",
         prompt="Where is the blue square in the image?", forced_ids=[673, 29901, 32003, 32004, 29889, 2],
         max_new_tokens=8),
    # (8) generate.py rule 5: an <at> that is the last token max_new_tokens allows is still fed and decoded
    dict(name="odd_at_cut", config=ODD, seed=3, image="wide_64x48.png",
         prompt="Where is the yellow bar in the image?", forced_ids=ANSWER_AT, max_new_tokens=3),
    # (9) region syntax with several boxes: [1 0] is two groups, k-th <boxes> gets the k-th referenced box
    dict(name="region_multi", config="tiny", seed=2, image="tall_40x72.png",
         prompt="Compare region [1 0] with [2].", boxes=[[5, 6, 30, 26], [9, 35, 35, 61], [30, 60, 38, 70]],
         max_new_tokens=8),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary(ans, arrays: dict, prompt_ids: list, sampling) -> dict:
    """What a reader of cases.json wants to see without opening the golden, and how stable its tokens are:
    the smallest top-1/top-2 logit gap over greedy steps, and over sampled steps the smallest distance between
    the uniform and a cumulative-probability boundary (generate.sample_margin)."""
    dec = ans.decoded
    top2 = arrays["gen.logits_top2"].astype(np.float64)
    greedy = [t for t, why in enumerate(dec.chosen_by) if why == "greedy"]
    sampled = [t for t, why in enumerate(dec.chosen_by) if why == "sampled"]
    n = len(dec.at_positions)
    out = {
        "tokens": dec.tokens,
        "chosen_by": dec.chosen_by,
        "response": ans.response,
        "at_count": n,
        "at_positions": dec.at_positions,
        "boxes": np.round(arrays["gen.boxes"].astype(np.float64), 6).tolist(),
        "boxes_pixel": np.round(arrays["gen.boxes_pixel"].astype(np.float64), 4).tolist(),
        "iou": np.round(arrays["sam.iou"][:, 0].astype(np.float64), 6).tolist() if n else [],
        "mask_pixels": arrays["sam.masks"].reshape(n, -1).sum(1).tolist() if n else [],
        "min_greedy_top2_margin": round(float(min((top2[t, 0] - top2[t, 1] for t in greedy), default=0.0)), 6)
        if greedy else None,
    }
    if sampled:
        margins = [sample_margin(dec.step_logits[t].numpy(), sampling, prompt_ids + dec.tokens[:t],
                                 dec.uniforms[t]) for t in sampled]
        out["sampled_steps"] = len(sampled)
        out["sampled_not_argmax"] = sum(dec.tokens[t] != int(torch.argmax(dec.step_logits[t])) for t in sampled)
        out["min_sample_boundary_distance"] = round(min(margins), 6)
    return out


def _json(value, indent: str = "") -> str:
    """Indented JSON with every list of scalars on one line (token lists stay readable)."""
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}" if items else "{}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _json(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def generate_all(images_dir: Path, out_dir: Path) -> list:
    """Write images and goldens; return the written paths."""
    images = fixtures.write_images(images_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = list(images.values())
    records = []
    with tempfile.TemporaryDirectory(prefix="nextchat-ckpt-") as tmp:
        models = {}
        for case in CASES:
            key = (case["config"], case["seed"])
            if key not in models:
                ckpt = fixtures.make_checkpoint(case["config"], case["seed"], Path(tmp) / f"ckpt{len(models)}")
                models[key] = NextChatReference(ckpt, torch.float64)
            model = models[key]
            forced = case.get("forced_ids")
            if "forced_text" in case:
                forced = encode_continuation(model.tokenizer, case["forced_text"])
            sampling = Sampling(**case["sampling"]) if case.get("sampling") else None
            arrays, meta, ans = run_case(model, str(images[case["image"]]), case["prompt"], boxes=case.get("boxes"),
                                         forced_ids=forced, max_new_tokens=case["max_new_tokens"],
                                         sampling=sampling)
            path = out_dir / f"{case['name']}.safetensors"
            write_golden(path, arrays, meta)
            written.append(path)
            records.append({
                "name": case["name"],
                "file": path.name,
                "checkpoint": {"config": case["config"], "seed": case["seed"], "dtype": "f32",
                               "command": f"bin/nextchat gen --config {case['config']} --seed {case['seed']} "
                                          f"--dtype f32 --out DIR",
                               "weights_sha256": meta["weights_sha256"]},
                "compute_dtype": "float64",
                "image": f"testdata/images/{case['image']}",
                "prompt": case["prompt"],
                "boxes": case.get("boxes"),
                "forced_text": case.get("forced_text"),
                "forced_ids": list(forced or []),
                "sampling": case.get("sampling"),
                "max_new_tokens": case["max_new_tokens"],
                "result": summary(ans, arrays, arrays["prompt.input_ids"].tolist(), sampling),
                "golden_sha256": sha256(path),
            })
            r = records[-1]["result"]
            print(f"{case['name']}: {r['tokens']} {r['response']!r}: {r['at_count']} <at>, "
                  f"min greedy margin {r['min_greedy_top2_margin']}"
                  + (f", sampled {r['sampled_steps']} ({r['sampled_not_argmax']} not argmax, min boundary "
                     f"distance {r['min_sample_boundary_distance']})" if sampling else ""))
    cases_json = out_dir / "cases.json"
    doc = {"about": "Recipes of the model goldens; regenerate with tools/reference/make_model_goldens.py "
                    "(tensor names: tools/reference/README.md).",
           "versions": meta["versions"], "cases": records}
    cases_json.write_text(_json(doc) + "\n")
    written.append(cases_json)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verify", action="store_true", help="regenerate elsewhere and compare with the repository")
    args = ap.parse_args()
    setup_torch()
    if not args.verify:
        written = generate_all(fixtures.IMAGES_DIR, GOLDEN_DIR)
        total = sum(p.stat().st_size for p in written)
        print(f"wrote {len(written)} files, {total:,} bytes")
        if total > SIZE_LIMIT:
            print(f"error: goldens + images exceed {SIZE_LIMIT:,} bytes")
            return 1
        return 0
    with tempfile.TemporaryDirectory(prefix="nextchat-verify-") as tmp:
        written = generate_all(Path(tmp) / "images", Path(tmp) / "model")
        return fixtures.report_verify(
            [(p, (fixtures.IMAGES_DIR if p.suffix == ".png" else GOLDEN_DIR) / p.name) for p in written])


if __name__ == "__main__":
    sys.exit(main())
