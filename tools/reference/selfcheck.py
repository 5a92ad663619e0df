#!/usr/bin/env python3
"""Self-checks of the reference. Exits non-zero when one fails.

(a) determinism: two fresh loads and runs of the same case give bit-identical tensors;
(b) the HF LLM against an independent plain-PyTorch LLaMA written here (embedding rows in, RMSNorm, rotate-half
    RoPE, causal attention with GQA head sharing, SwiGLU, final norm, lm_head), float64, on the same spliced
    input embeddings: NMSE of logits and final hidden states < 1e-10, on an MHA and a GQA checkpoint;
(c) decoding with the KV cache gives the same tokens as recomputing the whole sequence at every step
    (greedy with forced <at>, the odd GQA config, seeded sampling);
(d) the splitmix64 stream and uniform() against the known answers of docs/SAMPLING.md;
(e) CLIP feature = hidden_states[mm_vision_select_layer] without CLS equals pre_layrnorm(embeddings) run through
    the first num_layers + select_layer + 1 encoder layers (23 of 24 for the release, §1.2);
(f) an <at> cut by max_new_tokens is still fed and decoded (generate.py rule 5), cached and recomputed alike;
    user boxes map to the expand2square frame and back to the same pixels.
"""
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures  # noqa: E402
from goldens import setup_torch  # noqa: E402
from nextchat_ref import checkpoint, llm as llm_mod, preprocess  # noqa: E402
from nextchat_ref.loc import boxes_from_image, boxes_to_image  # noqa: E402
from nextchat_ref.generate import Sampling, SplitMix64  # noqa: E402
from nextchat_ref.model import NextChatReference, as_numpy  # noqa: E402

NMSE_LIMIT = 1e-10
REC = dict(prompt="Where is the red circle in the image?", forced_ids=[673, 29901, 32003], max_new_tokens=10)
SAMPLED = dict(prompt="Describe the image.", forced_ids=[673, 29901, 32003], max_new_tokens=12,
               sampling=Sampling(temperature=0.8, top_k=5, top_p=0.8, seed=1234))

failures = []


def report(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if not ok:
        failures.append(name)


def nmse(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(((a - b) ** 2).sum() / (b ** 2).sum())


# ---- (b) an independent LLaMA ----

def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate_half_rope(x, theta):
    """x [heads, L, d] at positions 0..L-1; pairs (i, i + d/2) rotate by pos · theta^(-2i/d)."""
    d, length = x.shape[-1], x.shape[-2]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = torch.arange(length, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cos(angle).repeat(1, 2), torch.sin(angle).repeat(1, 2)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def plain_llama(w: dict, cfg: dict, x: torch.Tensor):
    """Input embeddings [L, H] → (logits [L, V], final-normed hidden [L, H]); everything float64."""
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg["hidden_size"] // nh
    eps, theta = cfg["rms_norm_eps"], float(cfg.get("rope_theta", 10000.0))
    length = x.shape[0]
    causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(length, nh, d).transpose(0, 1)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(length, nkv, d).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(length, nkv, d).transpose(0, 1)
        q, k = rotate_half_rope(q, theta), rotate_half_rope(k, theta)
        k = k.repeat_interleave(nh // nkv, dim=0)  # query head j reads KV head j // (nh / nkv)
        v = v.repeat_interleave(nh // nkv, dim=0)
        scores = (q @ k.transpose(1, 2)) / d ** 0.5
        attn = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1) @ v
        x = x + attn.transpose(0, 1).reshape(length, nh * d) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    hidden = rms_norm(x, w["model.norm.weight"], eps)
    return hidden @ w["lm_head.weight"].T, hidden


def check_llm(tag: str, model_dir: Path, image: Path) -> None:
    ref = NextChatReference(model_dir, torch.float64)
    ans = ref.answer(image, REC["prompt"], max_new_tokens=1)
    embeds = ans.tensors["llm.input_embeds"]
    logits, hidden, _ = llm_mod.forward(ref.llm, embeds)
    weights = checkpoint.load_weights(model_dir, torch.float64)
    with torch.no_grad():
        plain_logits, plain_hidden = plain_llama(weights, ref.cfg, embeds)
    e_logits, e_hidden = nmse(logits, plain_logits), nmse(hidden, plain_hidden)
    e_last = nmse(ans.tensors["llm.prefill_logits"][0], plain_logits[-1])
    e_prefill_hidden = nmse(ans.tensors["llm.prefill_hidden"], plain_hidden)
    worst = max(e_logits, e_hidden, e_last, e_prefill_hidden)
    report(f"(b) HF LLaMA == plain LLaMA, float64 [{tag}, L={embeds.shape[0]}]", worst < NMSE_LIMIT,
           f"NMSE logits(all positions) {e_logits:.3e}, final hidden {e_hidden:.3e}, "
           f"golden prefill_logits {e_last:.3e}, golden prefill_hidden {e_prefill_hidden:.3e}")
    ref32 = NextChatReference(model_dir, torch.float32)
    logits32, _, _ = llm_mod.forward(ref32.llm, embeds.float())
    print(f"      info: float32 reference vs plain float64 LLaMA: NMSE logits {nmse(logits32, plain_logits):.3e}")


# ---- (a), (c) ----

def check_determinism(model_dir: Path, image: Path) -> None:
    runs = [as_numpy(NextChatReference(model_dir).answer(image, **REC).tensors) for _ in range(2)]
    same = runs[0].keys() == runs[1].keys() and all(
        runs[0][k].dtype == runs[1][k].dtype and runs[0][k].tobytes() == runs[1][k].tobytes() for k in runs[0])
    report("(a) two fresh runs bit-identical", same, f"{len(runs[0])} tensors compared byte for byte")


def check_cache(tag: str, model_dir: Path, image: Path, case: dict) -> None:
    ref = NextChatReference(model_dir)
    cached = ref.answer(image, **case, use_cache=True)
    full = ref.answer(image, **case, use_cache=False)
    ta, tb = cached.decoded.tokens, full.decoded.tokens
    e = max(nmse(a, b) for a, b in zip(cached.decoded.step_logits, full.decoded.step_logits))
    ats = len(cached.decoded.at_positions)
    e_at = nmse(cached.tensors["gen.at_hidden"], full.tensors["gen.at_hidden"]) if ats else 0.0
    report(f"(c) KV cache == recomputation [{tag}]", ta == tb,
           f"{len(ta)} tokens {'equal' if ta == tb else f'{ta} vs {tb}'}, {ats} <at>; "
           f"max step-logits NMSE {e:.3e}, h_at NMSE {e_at:.3e}")


def check_splitmix() -> None:
    r = SplitMix64(0)
    got = [r.next() for _ in range(3)]
    want = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    r = SplitMix64(1234)
    u = [r.uniform() for _ in range(3)]
    ok = got == want and u == [0.730666524540624, 0.5928898580149862, 0.20213287431010984]
    report("(d) splitmix64 known answers", ok, f"next() {[hex(g) for g in got]}, uniform() {u}")


def check_clip_layers(model_dir: Path, image: Path) -> None:
    ref = NextChatReference(model_dir)
    features = ref.answer(image, REC["prompt"], max_new_tokens=1).tensors["clip.features"]
    vm = ref.vision.clip.vision_model
    pixels = torch.from_numpy(preprocess.clip_pixels(preprocess.to_rgb(Image.open(image)),
                                                     ref.cfg["vision_config"]["image_size"]))[None].double()
    n = len(vm.encoder.layers) + ref.cfg["mm_vision_select_layer"] + 1
    with torch.no_grad():
        x = vm.pre_layrnorm(vm.embeddings(pixels))
        for layer in vm.encoder.layers[:n]:
            x = layer(x, None, None)[0]
    report("(e) CLIP hidden_states[select_layer] semantics", torch.equal(x[:, 1:], features),
           f"features == first {n} of {len(vm.encoder.layers)} layers on pre-LN'd embeddings, CLS dropped")


def check_at_cut(model_dir: Path, image: Path) -> None:
    ref = NextChatReference(model_dir)
    case = dict(prompt=REC["prompt"], forced_ids=[673, 29901, 32003], max_new_tokens=3)
    a, b = ref.answer(image, **case), ref.answer(image, **case, use_cache=False)
    ok = (a.decoded.tokens == b.decoded.tokens == [673, 29901, 32003] and a.decoded.at_positions == [2]
          and "sam.masks" in a.tensors and torch.equal(a.tensors["gen.boxes"], b.tensors["gen.boxes"]))
    report("(f) <at> as the last allowed token still gets a box and mask", ok,
           f"tokens {a.decoded.tokens}, at_positions {a.decoded.at_positions}, "
           f"box {a.tensors['gen.boxes'].numpy().round(4).tolist()}")
    px = [[3, 5, 30, 60], [0, 0, 40, 72]]
    back = boxes_to_image(boxes_from_image(px, 40, 72), 40, 72)
    wide = boxes_to_image(boxes_from_image(px, 72, 40), 72, 40)
    ok = torch.equal(back, torch.tensor(px, dtype=torch.float64)) and torch.allclose(
        wide, torch.tensor([[3, 5, 30, 56], [0, 0, 40, 56]], dtype=torch.float64))  # clamped at the square's edge
    report("(f) user box → expand2square frame → pixels round trip", ok, f"tall {back.tolist()}, wide {wide.tolist()}")


def main() -> int:
    setup_torch()
    check_splitmix()
    with tempfile.TemporaryDirectory(prefix="nextchat-selfcheck-") as tmp:
        images = fixtures.write_images(Path(tmp) / "images")
        mha = fixtures.make_checkpoint("tiny", 1, Path(tmp) / "tiny-1")
        gqa = fixtures.make_checkpoint(str(fixtures.CONFIGS_DIR / "tiny_odd.json"), 3, Path(tmp) / "odd-3")
        check_determinism(mha, images["wide_64x48.png"])
        check_llm("tiny: MHA 4 heads", mha, images["wide_64x48.png"])
        check_llm("tiny_odd: GQA 6 heads / 3 KV", gqa, images["tall_40x72.png"])
        check_cache("tiny, forced <at> + greedy", mha, images["wide_64x48.png"], REC)
        check_cache("tiny_odd, forced <at> + greedy", gqa, images["square_50x50.png"], REC)
        check_cache("tiny, seeded sampling", mha, images["square_50x50.png"], SAMPLED)
        check_clip_layers(mha, images["tall_40x72.png"])
        check_at_cut(gqa, images["wide_64x48.png"])
    print("selfcheck:", "FAILED " + ", ".join(failures) if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
