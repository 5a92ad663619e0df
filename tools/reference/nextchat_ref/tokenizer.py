"""The NExT-Chat tokenizer as transformers 4.31 builds it (MODEL_SPEC §2.1, §6.3; TOKENIZER_NOTES.md §1).

Slow `LlamaTokenizer` in `legacy=False` mode; `sanitize_special_tokens()` (the last step of `from_pretrained`,
which makes `<s>`, `</s>`, `<unk>` no-split tokens); `pad_token = unk_token` (build_nextchat.py); then the five
added tokens the way `initialize_vision_tokenizer` adds them: `<im_patch>` alone, then the other four, both calls
with `special_tokens=True`. This is the one place a tokenizer is built: the model reference and
tokenizer_goldens.py both call `load_tokenizer`.
"""
from transformers import LlamaTokenizer

IM_PATCH, IM_START, IM_END, AT, BOXES = "<im_patch>", "<im_start>", "<im_end>", "<at>", "<boxes>"
ADDED_TOKENS = (IM_PATCH, IM_START, IM_END, AT, BOXES)
# Ids they get on the 32000-piece LLaMA vocabulary (§2.1); load_tokenizer checks them.
ADDED_IDS = {IM_PATCH: 32000, IM_START: 32001, IM_END: 32002, AT: 32003, BOXES: 32004}


def load_tokenizer(model_file: str) -> LlamaTokenizer:
    """The tokenizer of a model directory's tokenizer.model, with the added tokens at ids 32000–32004."""
    tok = LlamaTokenizer(vocab_file=model_file, legacy=False)
    tok.sanitize_special_tokens()
    tok.pad_token = tok.unk_token
    tok.add_tokens([IM_PATCH], special_tokens=True)
    tok.add_tokens([IM_START, IM_END, AT, BOXES], special_tokens=True)
    got = dict(zip(ADDED_TOKENS, tok.convert_tokens_to_ids(list(ADDED_TOKENS))))
    if got != ADDED_IDS:
        raise ValueError(f"added tokens got ids {got}, want {ADDED_IDS} (is {model_file} the LLaMA vocabulary?)")
    return tok


def encode_prompt(tok: LlamaTokenizer, text: str) -> list:
    """input_ids of a whole prompt string: BOS first, no EOS (§6.3)."""
    return tok(text, add_special_tokens=True).input_ids


def encode_continuation(tok: LlamaTokenizer, text: str) -> list:
    """ids of assistant text that follows `ASSISTANT:` (no BOS), e.g. forced answer prefixes."""
    return tok(text, add_special_tokens=False).input_ids
