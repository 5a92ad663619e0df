"""NextChatReference: the whole pipeline of MODEL_SPEC on one image and one user message.

    image ─► clip_pixels ─► VisionTower ─► projector ─┐
    user text ─► template ─► tokenizer ─► embed_tokens ┴► splice (image, user boxes) ─► decode loop
    every generated <at>: h_at ─► loc_decoder (box) and seg_prompt_mlp ─► SAM decoder (+ box corners) ─► mask

`answer` returns every stage's tensor under the golden names of tools/reference/README.md.
"""
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from . import checkpoint, generate, llm as llm_mod, preprocess
from .loc import boxes_from_image, boxes_to_image, build_loc
from .sam import build_sam, masks_to_image
from .template import build_prompt
from .tokenizer import ADDED_IDS, AT, BOXES, IM_END, IM_PATCH, IM_START, encode_prompt, load_tokenizer
from .vision import build_vision

IM_START_ID, IM_PATCH_ID, IM_END_ID = ADDED_IDS[IM_START], ADDED_IDS[IM_PATCH], ADDED_IDS[IM_END]
BOXES_ID = ADDED_IDS[BOXES]


class Answer:
    """tensors: golden name → torch tensor (compute dtype, int64 or uint8); plus the texts."""

    def __init__(self, tensors: dict, prompt_text: str, response: str, decoded: generate.Decoded):
        self.tensors, self.prompt_text, self.response, self.decoded = tensors, prompt_text, response, decoded


class NextChatReference:
    def __init__(self, model_dir, dtype: torch.dtype = torch.float64):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError("the reference runs in float32 or float64")
        self.model_dir, self.dtype = Path(model_dir), dtype
        self.cfg = checkpoint.load_config(model_dir)
        weights = checkpoint.load_weights(model_dir, dtype)
        self.llm = llm_mod.build_llm(self.cfg, weights, dtype)
        self.vision, self.projector = build_vision(self.cfg, weights, dtype)
        self.loc = build_loc(self.cfg, weights, dtype)
        self.sam = build_sam(self.cfg, weights, dtype)
        self.tokenizer = load_tokenizer(str(self.model_dir / "tokenizer.model"))
        if (self.cfg["at_token_id"], self.cfg["boxes_token_id"]) != (ADDED_IDS[AT], BOXES_ID):
            raise ValueError("config at_token_id/boxes_token_id differ from the tokenizer's <at>/<boxes> ids")
        self.image_tokens = checkpoint.image_tokens(self.cfg)

    def _image_features(self, image: Image.Image):
        pixels = torch.from_numpy(preprocess.clip_pixels(image, self.cfg["vision_config"]["image_size"]))[None]
        features = self.vision(pixels.to(self.dtype))
        return pixels, features, self.projector(features)

    def _splice_image(self, embeds: torch.Tensor, ids: list, image_rows: torch.Tensor) -> None:
        """§2.2 step 3: the rows after every <im_start> become the projected image features."""
        n = image_rows.shape[0]
        for p in (i for i, t in enumerate(ids) if t == IM_START_ID):
            if ids[p + 1:p + 1 + n] != [IM_PATCH_ID] * n or ids[p + 1 + n] != IM_END_ID:
                raise ValueError(f"<im_start> at {p} is not followed by {n} <im_patch> and <im_end>")
            embeds[p + 1:p + 1 + n] = image_rows

    @torch.no_grad()
    def answer(self, image, prompt: str, boxes=None, forced_ids=None, max_new_tokens: int = 64,
               sampling: Optional[generate.Sampling] = None, use_cache: bool = True) -> Answer:
        """Run the model. image: PIL image or path; boxes: pixel xyxy of the original image, referenced from the
        prompt as [i]; forced_ids: teacher-forced first generated tokens (generate.py)."""
        if not isinstance(image, Image.Image):
            image = Image.open(image)
        image = preprocess.to_rgb(image)
        width, height = image.size
        text, order = build_prompt(prompt, self.image_tokens)
        ids = encode_prompt(self.tokenizer, text)
        t = {"prompt.input_ids": torch.tensor(ids, dtype=torch.int64)}

        pixels, features, projected = self._image_features(image)
        t.update({"clip.pixels": pixels, "clip.features": features, "proj.out": projected})
        embeds = llm_mod.embed_tokens(self.llm, ids).clone()
        self._splice_image(embeds, ids, projected[0])

        n_boxes = ids.count(BOXES_ID)
        if n_boxes != len(order):
            raise ValueError(f"prompt has {n_boxes} <boxes> tokens but references {len(order)} boxes")
        if order:
            if boxes is None or max(order) >= len(boxes):
                raise ValueError(f"prompt references boxes {order}, {0 if boxes is None else len(boxes)} given")
            boxes_norm = boxes_from_image([boxes[i] for i in order], width, height).to(self.dtype)
            loc_embeds = self.loc.loc_encoder(boxes_norm)
            embeds[torch.tensor(ids) == BOXES_ID] = loc_embeds  # k-th <boxes> gets k-th referenced box
            t.update({"region.boxes_norm": boxes_norm, "region.loc_embeds": loc_embeds})
        t["llm.input_embeds"] = embeds

        step = generate.CachedStep(self.llm) if use_cache else generate.RecomputeStep(self.llm)
        dec = generate.decode(step, self.llm, self.loc, embeds, ids, max_new_tokens=max_new_tokens,
                              forced_ids=forced_ids, sampling=sampling, eos_id=self.cfg["eos_token_id"])
        t["llm.prefill_hidden"] = dec.prefill_hidden
        t["llm.prefill_logits"] = dec.prefill_logits[None]
        t["gen.tokens"] = torch.tensor(dec.tokens, dtype=torch.int64)
        t["gen.logits_top2"] = torch.stack([l.topk(2).values for l in dec.step_logits])
        t["gen.at_positions"] = torch.tensor(dec.at_positions, dtype=torch.int64)
        hidden_size = self.cfg["hidden_size"]
        at_hidden = torch.stack(dec.at_hidden) if dec.at_hidden else torch.zeros(0, hidden_size, dtype=self.dtype)
        boxes_out = self.loc.loc_decoder(at_hidden)
        t.update({"gen.at_hidden": at_hidden, "gen.boxes": boxes_out,
                  "gen.boxes_pixel": boxes_to_image(boxes_out, width, height)})
        if dec.at_hidden:
            t.update(self._segment(image, at_hidden, boxes_out))
        response = self.tokenizer.batch_decode([dec.tokens], skip_special_tokens=True)[0]
        return Answer(t, text, response, dec)

    def _segment(self, image: Image.Image, at_hidden: torch.Tensor, boxes_norm: torch.Tensor) -> dict:
        """§4: one SAM image encoding, then one mask per <at>."""
        size = self.cfg["sam_config"]["image_size"]
        pixels, _ = preprocess.sam_pixels(image, size)
        pixels = torch.from_numpy(pixels)
        embedding = self.sam.encode_image(pixels)
        sparse, dense = self.sam.prompts(self.loc.sam_tokens(at_hidden), boxes_norm)
        lowres, iou = self.sam.decode(embedding, sparse, dense)
        masks = masks_to_image(self.sam.upscale(lowres), *image.size)
        return {"sam.pixels": pixels, "sam.image_embedding": embedding[0], "sam.sparse": sparse,
                "sam.mask_logits_lowres": lowres, "sam.iou": iou, "sam.masks": masks}


def as_numpy(tensors: dict) -> dict:
    """Golden arrays: floats as float32, ids int64, masks uint8; all C-contiguous."""
    out = {}
    for name, v in tensors.items():
        a = v.detach().cpu()
        a = a.to(torch.float32) if a.is_floating_point() else a
        out[name] = np.ascontiguousarray(a.numpy())
    return out
