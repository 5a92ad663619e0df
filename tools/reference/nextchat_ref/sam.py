"""The mask path (§4, §5): Meta's segment-anything modules built from `sam_config`.

ImageEncoderViT (block LayerNorm eps from the config, 1e-6 in the release; the neck's LayerNorm2d is 1e-6 in
segment-anything itself), PromptEncoder, MaskDecoder with TwoWayTransformer. Weights: `sam.model.*`.

The prompt encoder stays in float32 whatever the compute dtype: its random-Fourier positional encoding is
computed in float32 (segment-anything casts the coordinates to float32 itself), and its outputs are cast to the
compute dtype afterwards. Per `<at>` the decoder gets 6 sparse tokens — the seg_prompt_mlp's 4 followed by the
2 box-corner tokens of `prompt_encoder(boxes=box_norm * S)` — and the dense no-mask embedding;
`multimask_output=False` keeps mask token 0 and its IoU.
"""
from functools import partial

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from .checkpoint import take


class SamReference(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        s = cfg["sam_config"]
        self.image_size = s["image_size"]
        self.grid = s["image_size"] // s["patch_size"]
        embed, mlp = s["encoder_embed_dim"], s["encoder_mlp_dim"]
        mlp_ratio = mlp / embed
        if int(embed * mlp_ratio) != mlp:
            raise ValueError(f"encoder_mlp_dim {mlp} is not expressible as embed_dim × mlp_ratio")
        dim = s["prompt_embed_dim"]
        self.image_encoder = ImageEncoderViT(
            img_size=s["image_size"],
            patch_size=s["patch_size"],
            in_chans=3,
            embed_dim=embed,
            depth=s["encoder_depth"],
            num_heads=s["encoder_num_heads"],
            mlp_ratio=mlp_ratio,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=s["layer_norm_eps"]),
            act_layer=nn.GELU,
            use_abs_pos=True,
            use_rel_pos=True,
            rel_pos_zero_init=True,
            window_size=s["window_size"],
            global_attn_indexes=tuple(s["global_attn_indexes"]),
        )
        self.prompt_encoder = PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(self.grid, self.grid),
            input_image_size=(s["image_size"], s["image_size"]),
            mask_in_chans=s["mask_in_chans"],
        )
        self.mask_decoder = MaskDecoder(
            transformer_dim=dim,
            transformer=TwoWayTransformer(
                depth=s["decoder_depth"],
                embedding_dim=dim,
                num_heads=s["decoder_num_heads"],
                mlp_dim=s["decoder_mlp_dim"],
                attention_downsample_rate=s["attention_downsample_rate"],
            ),
            num_multimask_outputs=s["num_multimask_outputs"],
            iou_head_depth=s["iou_head_depth"],
            iou_head_hidden_dim=s["iou_head_hidden_dim"],
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.image_encoder.patch_embed.proj.weight.dtype

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """sam pixels [3, S, S] (normalized, centred pad) → image embedding [1, D, g, g]."""
        return self.image_encoder(pixels.to(self.dtype).unsqueeze(0))

    @torch.no_grad()
    def prompts(self, llm_tokens: torch.Tensor, boxes_norm: torch.Tensor):
        """(sparse [N, T+2, D], dense [N, D, g, g]) in the compute dtype.

        llm_tokens: seg_prompt_mlp output [N, T, D]; boxes_norm: decoded boxes [N, 4], scaled by S for SAM.
        """
        box_tokens, dense = self.prompt_encoder(points=None, boxes=boxes_norm * self.image_size, masks=None)
        sparse = torch.cat([llm_tokens.to(self.dtype), box_tokens.to(self.dtype)], dim=1)
        return sparse, dense.to(self.dtype)

    @torch.no_grad()
    def decode(self, image_embedding: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor):
        """(low-res mask logits [N, 1, 4g, 4g], IoU [N, 1]) for mask token 0."""
        image_pe = self.prompt_encoder.get_dense_pe().to(self.dtype)
        return self.mask_decoder(
            image_embeddings=image_embedding,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )

    def upscale(self, lowres: torch.Tensor) -> torch.Tensor:
        """Low-res logits → [N, 1, S, S] (bilinear, align_corners=False), as SamForLMSeg returns them."""
        return F.interpolate(lowres, (self.image_size, self.image_size), mode="bilinear", align_corners=False)


def masks_to_image(logits: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """S×S mask logits [N, 1, S, S] → binary masks uint8 [N, H, W] of the original image (demo de_transform_mask).

    Bilinear (align_corners=False) resize to max(W, H)², threshold logit > 0, crop the centred pad
    (max-min)//2 of the short axis.
    """
    long_side, short_side = max(width, height), min(width, height)
    pad = (long_side - short_side) // 2
    m = F.interpolate(logits, (long_side, long_side), mode="bilinear", align_corners=False) > 0
    if width < height:
        m = m[..., :, pad:pad + short_side]
    else:
        m = m[..., pad:pad + short_side, :]
    return m[:, 0].to(torch.uint8)


def build_sam(cfg: dict, weights: dict, dtype: torch.dtype) -> SamReference:
    """SAM with the checkpoint's weights (the fine-tuned decoder, §4), eval mode; prompt encoder in float32."""
    sam = SamReference(cfg)
    sam.load_state_dict({k: v.float() for k, v in take(weights, "sam.model.").items()}, strict=True)
    sam.image_encoder.to(dtype)
    sam.mask_decoder.to(dtype)
    return sam.eval()
