"""Image preprocessing of both paths, as the reference does it (MODEL_SPEC §1.4, §4).

CLIP path: RGB → white expand2square → CLIPImageProcessor (PIL bicubic resize to the square side, /255,
mean/std normalize, CHW float32). SAM path: RGB → PIL bilinear resize of the long side to the SAM input size
(int(x*scale+0.5)) → float 0..255 → SAM pixel mean/std → zero pad, centred, to a square.
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image
from transformers import CLIPImageProcessor

# openai/clip-vit-large-patch14-336 preprocessor_config (MODEL_SPEC §1.4).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# segment-anything Sam.pixel_mean / pixel_std (MODEL_SPEC §4).
SAM_MEAN = (123.675, 116.28, 103.53)
SAM_STD = (58.395, 57.12, 57.375)


def to_rgb(img: Image.Image) -> Image.Image:
    """PIL's convert("RGB"), which CLIPImageProcessor's do_convert_rgb also applies."""
    return img if img.mode == "RGB" else img.convert("RGB")


def expand2square(img: Image.Image):
    """Paste on a white square of side max(W, H), centred (§1.4: NExT-Chat uses white, not LLaVA's mean).

    Returns the square image and the (dx, dy) offset of the original inside it.
    """
    img = to_rgb(img)
    w, h = img.size
    if w == h:
        return img, (0, 0)
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    offset = (0, (w - h) // 2) if w > h else ((h - w) // 2, 0)
    canvas.paste(img, offset)
    return canvas, offset


def clip_processor(image_size: int) -> CLIPImageProcessor:
    """The openai CLIP processor at a given square size (336 for the release, smaller for tiny configs)."""
    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": image_size},
        resample=Image.BICUBIC,
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )


def clip_resized(img: Image.Image, image_size: int) -> np.ndarray:
    """The uint8 HWC image after expand2square and the bicubic resize: what normalization starts from."""
    square, _ = expand2square(img)
    return np.asarray(square.resize((image_size, image_size), Image.BICUBIC), dtype=np.uint8)


def clip_pixels(img: Image.Image, image_size: int) -> np.ndarray:
    """clip.pixels: float32 [3, S, S] exactly as CLIPImageProcessor (transformers 4.31) produces it."""
    square, _ = expand2square(img)
    out = clip_processor(image_size)(square, return_tensors="np")["pixel_values"][0]
    return out.astype(np.float32)


@dataclass(frozen=True)
class SamFrame:
    """Where the resized image sits in the padded SAM input (for the inverse maps of boxes and masks)."""

    size: int  # SAM input side (1024 for the release)
    resized_h: int
    resized_w: int
    pad_top: int
    pad_left: int


def sam_resize_shape(h: int, w: int, size: int):
    """Long side to `size`, rounding as NExT-Chat's ResizeAndPad: int(x * scale + 0.5)."""
    scale = size * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def sam_resized(img: Image.Image, size: int) -> np.ndarray:
    """The uint8 HWC image after the bilinear long-side resize (torchvision resize on PIL = PIL BILINEAR)."""
    img = to_rgb(img)
    w, h = img.size
    nh, nw = sam_resize_shape(h, w, size)
    return np.asarray(img.resize((nw, nh), Image.BILINEAR), dtype=np.uint8)


def sam_pixels(img: Image.Image, size: int):
    """sam.pixels: float32 [3, size, size], normalized then zero-padded centred; and its SamFrame."""
    resized = sam_resized(img, size)
    nh, nw, _ = resized.shape
    x = resized.astype(np.float32)
    x = (x - np.asarray(SAM_MEAN, np.float32)) / np.asarray(SAM_STD, np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = np.zeros((3, size, size), np.float32)
    out[:, top : top + nh, left : left + nw] = x.transpose(2, 0, 1)
    return out, SamFrame(size, nh, nw, top, left)
