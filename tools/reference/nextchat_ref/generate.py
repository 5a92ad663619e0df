"""The decode loop: the clean port of NExT-Chat's generate (MODEL_SPEC §2.3), the contract the engine follows.

Contract (one sequence):

1. Prefill. The whole prompt's input embeddings (token embeddings with the image features spliced after every
   `<im_start>` and the user boxes' loc_encoder embeddings at the user `<boxes>` tokens, §2.2) go through the LLM
   at positions 0..L-1. The logits of position L-1 choose generated token 0.
2. Step t = 0, 1, ... chooses token t from the logits of the latest position, in this order of precedence:
   a. forced: if t < len(forced_ids), the token is forced_ids[t] (teacher forcing; nothing is sampled and
      the sampler's random stream is not advanced);
   b. `<boxes>` after `<at>`: else, if token t-1 is `<at>` (32003), the token is `<boxes>` (32004) — never
      sampled (the model was never trained to predict it, §2.3);
   c. otherwise greedy (argmax of the raw logits, ties to the lowest id) or, with a Sampling, the sampler of
      docs/SAMPLING.md (one uniform per such step; temperature 0 is greedy).
3. The token is appended to the output. Stop after appending EOS (config eos_token_id, 2; it is part of the
   output) or when max_new_tokens tokens exist.
4. Otherwise the token is fed at the next position (KV cache). Its input embedding is
      loc_encoder(loc_decoder(h_at))   if it is `<boxes>` and token t-1 is `<at>`,
      embed_tokens[token]               otherwise (a forced token other than `<boxes>` after `<at>` included),
   where h_at is the final-RMSNorm'd hidden state output at the `<at>` position, i.e. by the step whose input
   was that `<at>` (the vector lm_head reads there).
5. Every generated `<at>` is decoded: box = loc_decoder(h_at), SAM tokens = seg_prompt_mlp(h_at). An `<at>` that is
   the last token allowed by max_new_tokens is still fed (one extra LLM step, its logits unused) so that it has
   an h_at; the output never holds an `<at>` without a box.

User `<at>` tokens in the prompt are never decoded. With a KV cache (CachedStep) or with full recomputation of
the whole sequence at every step (RecomputeStep) the loop is the same code; the self-check compares the two.
"""
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from . import llm as llm_mod
from .tokenizer import ADDED_IDS, AT, BOXES

AT_ID, BOXES_ID = ADDED_IDS[AT], ADDED_IDS[BOXES]
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Sampling:
    """Sampler parameters (docs/SAMPLING.md). temperature 0 is greedy; top_k 0 and top_p 1.0 disable those
    filters."""

    temperature: float
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if not self.temperature >= 0:
            raise ValueError("temperature must be >= 0 (0: greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0 or self.repetition_penalty <= 0:
            raise ValueError("top_k must be >= 0 and repetition_penalty > 0")


class SplitMix64:
    """Steele, Lea & Flood's splitmix64: state += golden gamma, then the variant-13 mix."""

    def __init__(self, seed: int):
        self.state = seed & _MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        """A double in [0, 1): the top 53 bits of next() times 2^-53."""
        return (self.next() >> 11) * 2.0 ** -53


def greedy(logits) -> int:
    """argmax of the raw logits; the lowest id among equal maxima (numpy returns the first)."""
    return int(np.argmax(np.asarray(logits)))


def _f32(x: float) -> float:
    """The binary32 value nearest x, as a double: the sampler's parameters are float32 numbers (SAMPLING.md)."""
    return float(np.float32(x))


def _kept(logits, s: Sampling, history):
    """Steps 1–7 of docs/SAMPLING.md: (kept ids in order, their renormalized probabilities)."""
    penalty, temperature, top_p = _f32(s.repetition_penalty), _f32(s.temperature), _f32(s.top_p)
    x = [float(v) for v in logits]
    if penalty != 1.0:
        for i in set(history):
            x[i] = x[i] / penalty if x[i] > 0 else x[i] * penalty
    x = [v / temperature for v in x]
    m = max(x)
    e = [math.exp(v - m) for v in x]
    z = 0.0
    for v in e:
        z += v
    p = [v / z for v in e]
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))
    if s.top_k > 0:
        order = order[: s.top_k]
    if top_p < 1.0:
        c, keep = 0.0, 0
        for i in order:
            c += p[i]
            keep += 1
            if c >= top_p:
                break
        order = order[:keep]
    z = 0.0
    for i in order:
        z += p[i]
    return order, [p[i] / z for i in order]


def sample(logits, s: Sampling, history, u: float) -> int:
    """One draw of the docs/SAMPLING.md sampler: plain float64 arithmetic in the documented order."""
    order, q = _kept(logits, s, history)
    c = 0.0
    for i, qi in zip(order, q):
        c += qi
        if c > u:
            return i
    return order[-1]


def sample_margin(logits, s: Sampling, history, u: float) -> float:
    """Distance from u to the nearest cumulative boundary of the kept list: how far the logits may drift
    (in probability) before a port's draw differs. Diagnostic only."""
    _, q = _kept(logits, s, history)
    c, best = 0.0, float("inf")
    for qi in q[:-1]:
        c += qi
        best = min(best, abs(c - u))
    return best


class CachedStep:
    """LLM steps with the KV cache: each call runs only the new positions."""

    def __init__(self, model):
        self.model, self.past = model, None

    def __call__(self, embeds: torch.Tensor):
        logits, hidden, self.past = llm_mod.forward(self.model, embeds, self.past)
        return logits, hidden


class RecomputeStep:
    """LLM steps without a cache: each call reruns the whole sequence so far from position 0."""

    def __init__(self, model):
        self.model, self.seen = model, None

    def __call__(self, embeds: torch.Tensor):
        self.seen = embeds if self.seen is None else torch.cat([self.seen, embeds])
        logits, hidden, _ = llm_mod.forward(self.model, self.seen, None)
        n = embeds.shape[0]
        return logits[-n:], hidden[-n:]


@dataclass
class Decoded:
    prefill_logits: torch.Tensor  # [V] at the last prompt position
    prefill_hidden: torch.Tensor  # [L, H] final-normed, every prompt position
    tokens: list = field(default_factory=list)  # generated ids, EOS included when reached
    step_logits: list = field(default_factory=list)  # [V] logits that chose each token
    at_positions: list = field(default_factory=list)  # index in tokens of each <at>
    at_hidden: list = field(default_factory=list)  # [H] h_at of each <at>
    chosen_by: list = field(default_factory=list)  # per token: "forced", "after_at", "greedy" or "sampled"
    uniforms: dict = field(default_factory=dict)  # step → the uniform a sampled step drew


@torch.no_grad()
def decode(step, model, loc, prompt_embeds: torch.Tensor, prompt_ids, *, max_new_tokens: int,
           forced_ids=(), sampling: Optional[Sampling] = None, eos_id: int = 2) -> Decoded:
    """Run the contract above. `step` is a CachedStep or RecomputeStep on `model`; `loc` the LocHeads."""
    logits, hidden = step(prompt_embeds)
    out = Decoded(prefill_logits=logits[-1], prefill_hidden=hidden)
    last = logits[-1]
    if sampling is not None and _f32(sampling.temperature) == 0.0:
        sampling = None  # temperature 0 is greedy and draws nothing
    rng = SplitMix64(sampling.seed) if sampling is not None else None
    history = list(prompt_ids)
    forced = list(forced_ids or ())
    for t in range(max_new_tokens):
        prev = out.tokens[-1] if out.tokens else None
        if t < len(forced):
            tok, why = forced[t], "forced"
        elif prev == AT_ID:
            tok, why = BOXES_ID, "after_at"
        elif sampling is not None:
            out.uniforms[t] = rng.uniform()
            tok, why = sample(last.double().cpu().numpy(), sampling, history, out.uniforms[t]), "sampled"
        else:
            tok, why = greedy(last.cpu().numpy()), "greedy"
        out.tokens.append(tok)
        out.chosen_by.append(why)
        out.step_logits.append(last)
        history.append(tok)
        if tok == eos_id or (t == max_new_tokens - 1 and tok != AT_ID):
            break
        if tok == BOXES_ID and prev == AT_ID:
            embed = loc.loc_encoder(loc.loc_decoder(out.at_hidden[-1].unsqueeze(0)))
        else:
            embed = llm_mod.embed_tokens(model, [tok])
        logits, hidden = step(embed)
        last = logits[-1]
        if tok == AT_ID:
            out.at_positions.append(t)
            out.at_hidden.append(hidden[-1])
    return out
