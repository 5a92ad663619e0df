"""The language model: HF transformers 4.31 `LlamaForCausalLM` on the checkpoint's `model.*` / `lm_head` (§1.1).

`hidden` returned by `forward` is `hidden_states[-1]` of `LlamaModel`, which in 4.31 is the output of the final
RMSNorm — the vector `lm_head` reads and the one the box decoder reads at an `<at>` (§2.3). `forward` checks that
`lm_head(hidden)` reproduces HF's logits bit for bit, so a transformers upgrade that changed this fails loudly.

Precision of the float64 model: 4.31's RMSNorm normalizes in float32 and its attention softmax runs in float32
whatever the model dtype, so a float64 run carries float32 rounding (~1e-7 relative) at those two places. That is
HF's behaviour and is kept; selfcheck.py measures it against an all-float64 implementation.
"""
import contextlib

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_utils import no_init_weights


def llama_config(cfg: dict) -> LlamaConfig:
    """LlamaConfig of our config.json. 4.31 has no rope_theta: its RoPE base is fixed at 10000."""
    if float(cfg.get("rope_theta", 10000.0)) != 10000.0:
        raise ValueError(f"rope_theta {cfg['rope_theta']}: transformers 4.31 only implements base 10000")
    if cfg.get("rope_scaling") is not None:
        raise ValueError("rope_scaling is not supported (the release has null, §1.1)")
    return LlamaConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"],
        hidden_act=cfg["hidden_act"],
        max_position_embeddings=cfg["max_position_embeddings"],
        rms_norm_eps=cfg["rms_norm_eps"],
        bos_token_id=cfg["bos_token_id"],
        eos_token_id=cfg["eos_token_id"],
        pad_token_id=cfg["pad_token_id"],
        tie_word_embeddings=False,
        rope_scaling=None,
        pretraining_tp=1,
    )


def _exact_rope(model: LlamaForCausalLM) -> None:
    """Rebuild the RoPE cos/sin tables in float64.

    4.31 computes inv_freq and position×inv_freq in float32 whatever the model dtype, which at position p is off
    by ~p·6e-8 rad. In a float64 reference that error would dominate everything else, so the float64 model gets
    tables computed in float64 (what any exact implementation computes). The float32 model keeps 4.31's tables.
    """
    for layer in model.model.layers:
        rot = layer.self_attn.rotary_emb
        dim = rot.dim
        rot.inv_freq = 1.0 / (rot.base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        rot._set_cos_sin_cache(rot.max_seq_len_cached, rot.inv_freq.device, torch.float64)


def build_llm(cfg: dict, weights: dict, dtype: torch.dtype) -> LlamaForCausalLM:
    """LlamaForCausalLM with the checkpoint's LLM weights, in eval mode, in `dtype`."""
    with no_init_weights():
        model = LlamaForCausalLM(llama_config(cfg))
    state = {k: v for k, v in weights.items() if k == "lm_head.weight" or k.startswith("model.")}
    state = {k: v for k, v in state.items()
             if not k.startswith(("model.mm_projector.", "model.vision_tower."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # inv_freq is a recomputed buffer (§7.2: may be absent from checkpoints); everything else must be present.
    missing = [k for k in missing if not k.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        raise ValueError(f"LLM weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = model.to(dtype).eval()
    if dtype == torch.float64:
        _exact_rope(model)
    return model


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """4.31 builds its causal mask with torch.full(finfo(dtype).min) in the *default* dtype, which overflows for a
    float64 model unless the default dtype is float64 too. Nothing else in the forward reads the default dtype."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@torch.no_grad()
def forward(model: LlamaForCausalLM, embeds: torch.Tensor, past=None):
    """One LLM call on input embeddings [S, H] continuing `past` (None: from position 0).

    Returns (logits [S, V], hidden [S, H] final-normed, new past).
    """
    with _default_dtype(model.dtype):
        out = model(inputs_embeds=embeds.unsqueeze(0), past_key_values=past, use_cache=True,
                    output_hidden_states=True, return_dict=True)
    hidden = out.hidden_states[-1][0]
    # 4.31 returns logits cast to float32; recomputing lm_head(hidden) keeps float64 logits in a float64 model.
    logits = model.lm_head(hidden)
    if not torch.equal(logits.to(out.logits.dtype), out.logits[0]):
        raise AssertionError("hidden_states[-1] is not the vector lm_head reads (transformers changed?)")
    return logits, hidden, out.past_key_values


def embed_tokens(model: LlamaForCausalLM, ids) -> torch.Tensor:
    """embed_tokens rows of token ids: [len(ids), H]."""
    return model.model.embed_tokens.weight[torch.as_tensor(ids, dtype=torch.long)]
