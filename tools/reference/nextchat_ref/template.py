"""Prompt text: Vicuna v1.1 conversation, <image> expansion, region syntax (§6.1, §3.3).

Single turn, as the demo builds it:
    "{SYSTEM} USER: <image> {user text} ASSISTANT:"
`<image>` is prepended (with a space) when the user text has none, and becomes
`<im_start>` + `<im_patch>` × image_tokens + `<im_end>` with no spaces inside.

Region syntax: a bracketed list of box indices, `[0]`, `[1 2]` or `[1, 2]`, refers to the `boxes` argument
(pixel xyxy of the original image). A list of k indices becomes k `<at> <boxes>` groups separated by spaces;
the k-th `<boxes>` of the prompt, counted over the whole prompt, gets the k-th referenced box (an index may be
referenced more than once). Brackets holding anything else stay text.
"""
import re

from .tokenizer import AT, BOXES, IM_END, IM_PATCH, IM_START

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
IMAGE = "<image>"
BOX_GROUP = f"{AT} {BOXES}"
_REGION = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+|\s+\d+)*)\s*\]")


def expand_regions(text: str):
    """User text with region references rewritten → (text, referenced box indices in prompt order)."""
    order = []

    def group(m):
        idx = [int(x) for x in re.split(r"[\s,]+", m.group(1))]
        order.extend(idx)
        return " ".join([BOX_GROUP] * len(idx))

    return _REGION.sub(group, text), order


def conversation(user_text: str) -> str:
    """The demo's single-turn Vicuna v1.1 prompt, `<image>` not yet expanded."""
    if IMAGE not in user_text:
        user_text = f"{IMAGE} {user_text}"
    return f"{SYSTEM} USER: {user_text} ASSISTANT:"


def expand_image(prompt: str, image_tokens: int) -> str:
    return prompt.replace(IMAGE, IM_START + IM_PATCH * image_tokens + IM_END)


def build_prompt(user_text: str, image_tokens: int):
    """(full prompt string, box indices per <boxes> in order) for one user message."""
    text, order = expand_regions(user_text)
    return expand_image(conversation(text), image_tokens), order
