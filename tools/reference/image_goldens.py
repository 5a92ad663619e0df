#!/usr/bin/env python3
"""Image preprocessing goldens for the Go port of the CLIP and SAM input paths (MODEL_SPEC §1.4, §4).

Usage:  python image_goldens.py --out testdata/golden/image

Writes, deterministically (fixed seeds, integer-only image synthesis, gzip with mtime=0 and no file name):
  src/*.png|*.jpg       procedurally generated source images (PNG lossless; JPEG only for CMYK and EXIF cases)
  rgb/*.u8.gz           PIL's convert("RGB") of every source that is not already a plain RGB PNG (HWC uint8)
  decoded/*.u8.gz       PIL's raw decode of each JPEG source before any conversion (HWC uint8, 3 or 4 bands)
  clip/*.u8.gz          expand2square(white) + PIL bicubic resize, HWC uint8, targets 56 and 336
  sam/*.u8.gz           PIL bilinear long-side resize, HWC uint8 (unpadded), target 256 (and 1024 for a few)
  clip_pixels/*.f32.gz  CLIPImageProcessor output, CHW float32 (subset)
  sam_pixels/*.f32.gz   normalized + centre-padded SAM input, CHW float32 (subset)
  manifest.json         every file with shape, dtype, geometry and the sha256 of its *uncompressed* bytes

All arrays are raw little-endian, C order. Before writing anything the script checks itself and exits non-zero on
any failure:
  * an integer fixed-point re-implementation of PIL's resampler (PIL_RESAMPLING_NOTES.md) must reproduce every
    resize bit for bit, including the pass-order rule;
  * a float64 re-implementation (no fixed point) must be within one uint8 step of PIL everywhere;
  * the convert("RGB") formulas of the notes must reproduce PIL exhaustively (L, LA, RGBA, P, CMYK, I;16);
  * clip_pixels must equal the closed-form rescale/normalize of clip_resized bit for bit, and torchvision's
    resize of a PIL image must equal PIL BILINEAR (the SAM path of the reference uses torchvision).

The image functions themselves come from nextchat_ref.preprocess (the reference); nothing here re-implements them
except the checking models.
"""
import argparse
import gzip
import hashlib
import io
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nextchat_ref import preprocess as P  # noqa: E402

CLIP_TARGETS = (56, 336)  # tiny config CLIP size, release CLIP size
SAM_TARGETS = (256,)  # tiny config SAM size: every source
SAM_1024_SOURCES = ("rgb_1280x720", "rgb_1024x768", "rgb_200x150", "rgb_300x1100", "rgb_700x13", "rgb_1x1")
# float32 subsets (need max(W, H) not in {1, 3}: see the transformers note in the manifest)
CLIP_PIXELS = {56: ("rgb_37x91", "rgb_333x335", "mode_RGBA_120x80", "rgb_5x1"), 336: ("rgb_91x37",)}
SAM_PIXELS = {256: ("rgb_37x91", "rgb_1280x720", "rgb_13x700", "mode_P_100x75"), 1024: ("rgb_700x13",)}

RGB_SIZES = [
    (1, 1), (2, 3), (5, 1),  # tiny
    (37, 91), (91, 37), (333, 335), (337, 336),  # odd
    (336, 336), (56, 56),  # exact CLIP targets
    (256, 171), (1024, 768),  # exact SAM long side (256 tiny, 1024 release): the SAM resize is a copy
    (30, 50), (60, 40), (200, 150), (500, 400), (1100, 900),  # up/down around 56, 256, 336, 1024
    (300, 1100),  # tall, downscaled on the SAM path with aspect > 2: Pillow 13 resamples vertically first
    (13, 700), (700, 13),  # extreme aspect
    (1, 300), (300, 1),  # SAM 256 keeps the 1-px side: a single vertical / horizontal pass
    (1280, 720), (800, 1200),  # large-ish
]


# ----------------------------------------------------------------------------------------------------------------
# Source synthesis: integer arithmetic only (bit-identical on any machine), numpy PCG64 for the noise.
# ----------------------------------------------------------------------------------------------------------------

def pattern(w: int, h: int, seed: int) -> np.ndarray:
    """HWC uint8: x-gradient top half, y-gradient bottom half, black/white blocks with hard edges, a saturated
    disc, a 1-px checker band (clipping and ringing), a seeded noise patch. Rows repeat a lot, so it gzips well."""
    rng = np.random.default_rng(seed)
    if w * h <= 16:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    img = np.zeros((h, w, 3), np.int64)
    top = y < h // 2
    rx = (x * 255) // max(w - 1, 1)
    ry = (y * 255) // max(h - 1, 1)
    img[..., 0] = np.where(top, rx, ry)
    img[..., 1] = np.where(top, 255 - rx, 64)
    img[..., 2] = np.where(top, np.minimum((x * 8 // w) * 36, 255), 255 - ry)
    # black block next to a white block (a hard 0/255 edge both ways)
    y0, y1, x0, x1, x2 = h // 8, max(h // 3, h // 8 + 1), w // 8, max(w // 4, w // 8 + 1), max(w // 3, w // 4 + 2)
    img[y0:y1, x0:x1] = 0
    img[y0:y1, x1:x2] = 255
    # saturated disc: (x-cx)^2 + (y-cy)^2 <= r^2 in integers
    cx, cy, r = (7 * w) // 10, (7 * h) // 20, max(min(w, h) // 6, 1)
    disc = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    img[disc] = (230, 25, 40)
    # 1-px checker band
    band = (y >= (11 * h) // 20) & (y < max((12 * h) // 20, (11 * h) // 20 + 1))
    img[band] = (((x + y) & 1) * 255)[band][:, None]
    # seeded noise patch
    ny0, ny1, nx0, nx1 = (3 * h) // 4, max((9 * h) // 10, (3 * h) // 4 + 1), (3 * w) // 5, max((9 * w) // 10, (3 * w) // 5 + 1)
    img[ny0:ny1, nx0:nx1] = rng.integers(0, 256, (ny1 - ny0, nx1 - nx0, 3))
    return img.astype(np.uint8)


def exif_bytes(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def build_sources(src_dir: Path):
    """Write the source files; return [(name, relpath, note)]."""
    out = []

    def save(name, im, ext, note="", **kw):
        rel = f"src/{name}.{ext}"
        im.save(src_dir / f"{name}.{ext}", **kw)
        out.append((name, rel, note))

    for i, (w, h) in enumerate(RGB_SIZES):
        save(f"rgb_{w}x{h}", Image.fromarray(pattern(w, h, 1000 + i), "RGB"), "png", optimize=False)

    base = pattern(97, 61, 2001).astype(np.int64)
    lum = ((base[..., 0] * 299 + base[..., 1] * 587 + base[..., 2] * 114) // 1000).astype(np.uint8)
    save("mode_L_97x61", Image.fromarray(lum, "L"), "png", "grayscale L")

    g = pattern(61, 97, 2002)[..., 1]
    yy, xx = np.mgrid[0:97, 0:61]
    alpha = ((xx * 255) // 60).astype(np.uint8)
    alpha[:20] = 0  # fully transparent rows that still carry grey values
    save("mode_LA_61x97", Image.fromarray(np.stack([g, alpha], -1), "LA"), "png", "L + alpha: alpha is dropped")

    rgb = pattern(120, 80, 2003)
    yy, xx = np.mgrid[0:80, 0:120]
    a = ((yy * 255) // 79).astype(np.uint8)
    a[:, 100:] = 0  # transparent but colourful: shows that convert("RGB") does not composite
    save("mode_RGBA_120x80", Image.fromarray(np.dstack([rgb, a]), "RGBA"), "png", "RGBA: alpha dropped, not composited")

    idx = (pattern(100, 75, 2004).astype(np.int64).sum(-1) // 12 % 64).astype(np.uint8)
    pal = []
    for k in range(256):
        pal += [(k * 37) % 256, (k * 91 + 13) % 256, (255 - k * 23) % 256]
    pim = Image.fromarray(idx, "P")
    pim.putpalette(pal)
    save("mode_P_100x75", pim, "png", "palette, no transparency")

    idx2 = (pattern(90, 60, 2005).astype(np.int64)[..., 0] // 16).astype(np.uint8)
    pim2 = Image.fromarray(idx2, "P")
    pim2.putpalette(pal)
    save("mode_PT_90x60", pim2, "png", "palette with tRNS index 3: transparency dropped", transparency=3)

    yy, xx = np.mgrid[0:48, 0:64]
    v16 = (xx * 1030 + yy * 13).astype(np.uint16)  # 0..65501: nearly the whole range
    v16[:12] = (xx[:12] * 4 + yy[:12]).astype(np.uint16)  # a band of values < 256 that survive conversion
    save("mode_I16_64x48", Image.fromarray(v16), "png", "16-bit grayscale: values >= 256 become 255")

    c = pattern(90, 70, 2006)
    k = pattern(70, 90, 2007)[..., 0].T.copy()
    cmyk = Image.fromarray(np.dstack([c, k]), "CMYK")
    save("mode_CMYK_90x70", cmyk, "jpg", "CMYK JPEG (Adobe, inverted on disk)", quality=95)

    save("exif6_160x90", Image.fromarray(pattern(160, 90, 2008), "RGB"), "jpg",
         "RGB JPEG, EXIF Orientation=6", quality=95, subsampling=0, exif=exif_bytes(6))
    save("exif8_120x70", Image.fromarray(pattern(120, 70, 2009), "RGB"), "png",
         "RGB PNG with eXIf Orientation=8 (orientation without JPEG decoding differences)", exif=exif_bytes(8))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Checking models of PIL's resampler (see PIL_RESAMPLING_NOTES.md). Independent of PIL.
# ----------------------------------------------------------------------------------------------------------------

def bicubic_filter(x: float) -> float:
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def bilinear_filter(x: float) -> float:
    if x < 0.0:
        x = -x
    return 1.0 - x if x < 1.0 else 0.0


FILTERS = {"bicubic": (bicubic_filter, 2.0), "bilinear": (bilinear_filter, 1.0)}
PRECISION_BITS = 22


def precompute_coeffs(in_size: int, out_size: int, filt: str):
    """[(xmin, [w0, w1, ...])] per output index, float64 weights normalized to sum 1 (box = whole input)."""
    fn, base_support = FILTERS[filt]
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    ss = 1.0 / filterscale
    rows = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ws = [fn((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for v in ws:
            ww += v
        if ww != 0.0:
            ws = [v / ww for v in ws]
        rows.append((xmin, ws))
    return rows


def quantize(w: float) -> int:
    return int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS))


def one_pass(a: np.ndarray, axis: int, out_size: int, filt: str, fixed: bool, taint=None):
    """Resample one axis of an HWC uint8 array; the result is stored as uint8 like PIL's intermediate image.

    Float mode also returns two masks over the output: `tie` where the exact value lies so close to a
    rounding boundary (k + 0.5) that PIL's 22-bit coefficients may round it the other way (|frac - 0.5| <=
    (taps*255 + 1) * 2^-23, a bound on |fixed-point sum - exact sum|), and `taint` where any input tap was
    itself such a tie in the previous pass (the propagated `taint` argument, combined with the input ties)."""
    src = np.moveaxis(a, axis, 0)
    rows = precompute_coeffs(src.shape[0], out_size, filt)
    if fixed:
        src = src.astype(np.int64)
        out = np.empty((out_size,) + src.shape[1:], np.int64)
        for i, (xmin, ws) in enumerate(rows):
            acc = np.full(src.shape[1:], 1 << (PRECISION_BITS - 1), np.int64)
            for j, w in enumerate(ws):
                acc += src[xmin + j] * quantize(w)
            out[i] = np.clip(acc >> PRECISION_BITS, 0, 255)  # arithmetic shift = floor
        return np.moveaxis(out.astype(np.uint8), 0, axis)
    src = src.astype(np.float64)
    tin = None if taint is None else np.moveaxis(taint, axis, 0)
    out = np.empty((out_size,) + src.shape[1:], np.float64)
    tie = np.zeros(out.shape, bool)
    tout = np.zeros(out.shape, bool)
    for i, (xmin, ws) in enumerate(rows):
        acc = np.zeros(src.shape[1:], np.float64)
        for j, w in enumerate(ws):
            acc += src[xmin + j] * w
            if tin is not None and w != 0.0:
                tout[i] |= tin[xmin + j]
        bound = (len(ws) * 255 + 1) * 2.0 ** -23
        tie[i] = np.abs(acc - np.floor(acc) - 0.5) <= bound
        out[i] = np.clip(np.floor(acc + 0.5), 0, 255)
    mv = lambda m: np.moveaxis(m, 0, axis)  # noqa: E731
    return mv(out.astype(np.uint8)), mv(tie), mv(tout)


def pass_order(w: int, h: int, W: int, H: int) -> str:
    """Pillow 13 (PR #9549): vertical first iff the height shrinks by more than twice the width's shrink."""
    need_h, need_v = W != w, H != h
    if need_h and need_v:
        return "v,h" if (H < h and (h - H) > 2 * (w - W)) else "h,v"
    return "h" if need_h else ("v" if need_v else "none")


def model_resize(a: np.ndarray, W: int, H: int, filt: str, fixed: bool):
    """Fixed point: the uint8 result. Float64: (result, tie, taint) with the masks of one_pass for the last pass;
    `taint` marks outputs that depend on a tie of the first pass."""
    h, w = a.shape[:2]
    tie = np.zeros(a.shape, bool)
    taint = np.zeros(a.shape, bool)
    for p in pass_order(w, h, W, H).split(","):
        if p == "none":
            continue
        ax, n = (1, W) if p == "h" else (0, H)
        if fixed:
            a = one_pass(a, ax, n, filt, True)
        else:
            a, tie2, taint2 = one_pass(a, ax, n, filt, False, taint | tie)
            tie, taint = tie2, taint2
    a = np.ascontiguousarray(a)
    return a if fixed else (a, tie, taint)


# ----------------------------------------------------------------------------------------------------------------
# Checking models of convert("RGB") (see the notes), checked exhaustively against PIL.
# ----------------------------------------------------------------------------------------------------------------

def muldiv255(a, b):
    t = a * b + 128
    return ((t >> 8) + t) >> 8


def check_convert(failures: list):
    def expect(name, got, want):
        if got.shape != want.shape or not np.array_equal(got, want):
            failures.append(f"convert: {name} differs from the documented formula")

    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expect("L", np.asarray(Image.fromarray(v, "L").convert("RGB")), np.repeat(v[..., None], 3, -1))
    la = np.dstack([v, v[::-1]])
    expect("LA", np.asarray(Image.fromarray(la, "LA").convert("RGB")), np.repeat(v[..., None], 3, -1))
    rgba = np.random.default_rng(7).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    expect("RGBA", np.asarray(Image.fromarray(rgba, "RGBA").convert("RGB")), rgba[..., :3])
    pal = np.random.default_rng(8).integers(0, 256, 768, dtype=np.uint8)
    pim = Image.fromarray(v, "P")
    pim.putpalette(pal.tolist())
    expect("P", np.asarray(pim.convert("RGB")), pal.reshape(256, 3)[v])
    pim.info["transparency"] = 5
    expect("P+tRNS", np.asarray(pim.convert("RGB")), pal.reshape(256, 3)[v])
    # CMYK: every (channel value, K) pair
    X, K = np.meshgrid(np.arange(256), np.arange(256))
    c = np.stack([X, 255 - X, (X * 7) % 256, K], -1).astype(np.uint8)
    nk = 255 - K
    want = np.stack([np.clip(nk - muldiv255(c[..., i].astype(np.int64), nk), 0, 255) for i in range(3)], -1)
    expect("CMYK", np.asarray(Image.fromarray(c, "CMYK").convert("RGB")), want.astype(np.uint8))
    # I;16: every value, through a PNG round trip (how such files arrive)
    u16 = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    buf = io.BytesIO()
    Image.fromarray(u16).save(buf, "PNG")
    im16 = Image.open(io.BytesIO(buf.getvalue()))
    if im16.mode != "I;16":
        failures.append(f"convert: a 16-bit grey PNG opened as {im16.mode}, not I;16")
    sat = np.minimum(u16, 255).astype(np.uint8)
    expect("I;16", np.asarray(im16.convert("RGB")), np.repeat(sat[..., None], 3, -1))


# ----------------------------------------------------------------------------------------------------------------
# Output plumbing
# ----------------------------------------------------------------------------------------------------------------

def gz(raw: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(raw)
    return buf.getvalue()


class Writer:
    def __init__(self, out: Path):
        self.out = out
        self.cases = []

    def array(self, rel: str, arr: np.ndarray, **meta):
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.uint8:
            dtype, ext = "uint8", "u8"
        elif arr.dtype == np.float32:
            dtype, ext = "float32", "f32"
            arr = arr.astype("<f4")
        else:
            raise TypeError(arr.dtype)
        raw = arr.tobytes()
        path = f"{rel}.{ext}.gz"
        (self.out / path).parent.mkdir(parents=True, exist_ok=True)
        (self.out / path).write_bytes(gz(raw))
        self.cases.append(dict(meta, file=path, dtype=dtype, shape=list(arr.shape),
                               sha256=hashlib.sha256(raw).hexdigest()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (replaced if it holds a previous manifest)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        if not (out / "manifest.json").exists() and any(out.iterdir()):
            print(f"refusing to clear {out}: not empty and no manifest.json", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    (out / "src").mkdir(parents=True)

    failures: list = []
    stats = dict(resizes=0, values=0, float64_exact=0, float64_maxdiff=0, float64_gt1=0, float64_gt1_untainted=0,
                 tie_or_taint=0, float64_noround_maxdiff=0)

    def checked_resize(pil_out: np.ndarray, src: np.ndarray, W: int, H: int, filt: str, label: str):
        """Compare PIL's output with both checking models; record failures."""
        fixed = model_resize(src, W, H, filt, fixed=True)
        if not np.array_equal(fixed, pil_out):
            n = int((fixed != pil_out).sum())
            failures.append(f"fixed-point model != PIL on {label} ({n} values)")
        flt, tie, taint = model_resize(src, W, H, filt, fixed=False)
        d = np.abs(flt.astype(np.int16) - pil_out.astype(np.int16))
        clean = ~tie & ~taint
        # Away from rounding ties the float64 model must be exact; at a tie of the last pass one step; downstream of
        # a first-pass tie (whose 8-bit rounding PIL decides by its 22-bit coefficients) two steps at most.
        if d[clean].max(initial=0) > 0 or d[tie & ~taint].max(initial=0) > 1 or d.max(initial=0) > 2:
            failures.append(f"float64 model: clean {int(d[clean].max(initial=0))}, tie "
                            f"{int(d[tie & ~taint].max(initial=0))}, max {int(d.max(initial=0))} on {label}")
        stats["resizes"] += 1
        stats["values"] += d.size
        stats["float64_exact"] += int((d == 0).sum())
        stats["float64_maxdiff"] = max(stats["float64_maxdiff"], int(d.max(initial=0)))
        stats["float64_gt1"] += int((d > 1).sum())
        stats["float64_gt1_untainted"] += int(((d > 1) & ~taint).sum())
        stats["tie_or_taint"] += int((tie | taint).sum())

    sources = build_sources(out / "src")
    w_ = Writer(out)
    manifest_sources = []
    # transformers 4.31 infers channels-first for an HxWx3 array whose first dim is 1 or 3: a square of side 3
    # comes out permuted, side 1 raises. Only max(W, H) in {1, 3} is affected; no clip_pixels for those.
    hf_quirk = {1, 3}

    for name, rel, note in sources:
        path = out / rel
        with Image.open(path) as im0:
            im0.load()
            im = im0.copy()
            im.info = dict(im0.info)
            fmt = im0.format
        entry = dict(name=name, file=rel, format=fmt, mode=im.mode, size=list(im.size),
                     file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), note=note)
        orient = im.getexif().get(0x0112)
        if orient is not None:
            entry["exif_orientation"] = int(orient)
        manifest_sources.append(entry)

        if fmt == "JPEG":
            w_.array(f"decoded/{name}", np.asarray(im), source=name, kind="decoded_u8", layout="HWC",
                     note=f"PIL/libjpeg decode before convert, mode {im.mode}")
        variants = [("raw", im)]
        if orient not in (None, 1):
            variants.append(("transposed", ImageOps.exif_transpose(im)))
        for exif_label, img in variants:
            tag = name if exif_label == "raw" else f"{name}.transposed"
            exif_field = exif_label if len(variants) > 1 else None
            rgb = np.asarray(P.to_rgb(img))
            if img.mode != "RGB" or fmt != "PNG" or exif_field:
                w_.array(f"rgb/{tag}", rgb, source=name, exif=exif_field, kind="rgb_u8", layout="HWC",
                         note=f'convert("RGB") of mode {img.mode}')
            W0, H0 = img.size

            for T in CLIP_TARGETS:
                square, offset = P.expand2square(img)
                S = square.size[0]
                arr = P.clip_resized(img, T)
                checked_resize(arr, np.asarray(square), T, T, "bicubic", f"clip {tag} -> {T}")
                geo = dict(square_side=S, paste_offset=list(offset), resize_from=[S, S], resize_to=[T, T],
                           filter="bicubic", pass_order=pass_order(S, S, T, T))
                w_.array(f"clip/{tag}__{T}", arr, source=name, exif=exif_field, path="clip", kind="resized_u8",
                         target=T, layout="HWC", **geo)
                if exif_label == "raw" and name in CLIP_PIXELS.get(T, ()):
                    assert S not in hf_quirk
                    px = P.clip_pixels(img, T)
                    x = (arr.astype(np.uint8) * (1 / 255)).astype(np.float32)
                    ref = ((x - np.asarray(P.CLIP_MEAN, np.float32)) / np.asarray(P.CLIP_STD, np.float32))
                    if not np.array_equal(px, ref.transpose(2, 0, 1)):
                        failures.append(f"clip_pixels {name}@{T} != closed-form normalize of clip_resized")
                    w_.array(f"clip_pixels/{tag}__{T}", px, source=name, exif=exif_field, path="clip",
                             kind="pixels_f32", target=T, layout="CHW", **geo)

            sam_targets = SAM_TARGETS + ((1024,) if name in SAM_1024_SOURCES else ())
            for T in sam_targets:
                arr = P.sam_resized(img, T)
                nh, nw = arr.shape[:2]
                checked_resize(arr, rgb, nw, nh, "bilinear", f"sam {tag} -> {T}")
                geo = dict(resized_hw=[nh, nw], pad_top_left=[(T - nh) // 2, (T - nw) // 2], filter="bilinear",
                           pass_order=pass_order(W0, H0, nw, nh))
                w_.array(f"sam/{tag}__{T}", arr, source=name, exif=exif_field, path="sam", kind="resized_u8",
                         target=T, layout="HWC", **geo)
                if exif_label == "raw" and name in SAM_PIXELS.get(T, ()):
                    px, frame = P.sam_pixels(img, T)
                    assert (frame.resized_h, frame.resized_w) == (nh, nw)
                    w_.array(f"sam_pixels/{tag}__{T}", px, source=name, exif=exif_field, path="sam",
                             kind="pixels_f32", target=T, layout="CHW", **geo)

    # float64 without the 8-bit intermediate: informative only (how far a "naive" separable filter drifts)
    for name in ("rgb_333x335", "rgb_1280x720", "rgb_37x91"):
        a = np.asarray(Image.open(out / f"src/{name}.png"))
        h, w = a.shape[:2]
        for (W, H, filt) in ((56, int(56 * h / w) or 1, "bicubic"), (256, int(256 * h / w) or 1, "bilinear")):
            pil = np.asarray(Image.fromarray(a).resize((W, H), Image.BICUBIC if filt == "bicubic" else Image.BILINEAR))
            t = a.astype(np.float64)
            for p in pass_order(w, h, W, H).split(","):
                ax, n = (1, W) if p == "h" else (0, H)
                s = np.moveaxis(t, ax, 0)
                o = np.zeros((n,) + s.shape[1:])
                for i, (xmin, ws) in enumerate(precompute_coeffs(s.shape[0], n, filt)):
                    for j, wt in enumerate(ws):
                        o[i] += s[xmin + j] * wt
                t = np.moveaxis(o, 0, ax)
            d = np.abs(np.clip(np.floor(t + 0.5), 0, 255) - pil)
            stats["float64_noround_maxdiff"] = max(stats["float64_noround_maxdiff"], int(d.max()))

    check_convert(failures)
    try:  # the reference SAM path resizes with torchvision on a PIL image
        import torch  # noqa: F401
        import torchvision.transforms.functional as TF
        for name in ("rgb_1280x720", "rgb_13x700", "rgb_91x37"):
            im = Image.open(out / f"src/{name}.png").convert("RGB")
            nh, nw = P.sam_resize_shape(im.height, im.width, 256)
            if not np.array_equal(np.asarray(TF.resize(im, [nh, nw])), P.sam_resized(im, 256)):
                failures.append(f"torchvision resize != PIL BILINEAR for {name}")
    except ImportError as e:  # pragma: no cover
        print(f"note: torchvision check skipped ({e})", file=sys.stderr)

    if failures:
        for f in failures:
            print("FAIL:", f, file=sys.stderr)
        return 1

    import PIL
    import transformers
    manifest = dict(
        format=("Every array file is gzip (RFC 1952, mtime 0, no name) of raw little-endian C-order bytes; "
                "sha256 is of the uncompressed bytes. HWC uint8 for images, CHW float32 for *_pixels."),
        generator="tools/reference/image_goldens.py --out testdata/golden/image",
        versions=dict(pillow=PIL.__version__, numpy=np.__version__, transformers=transformers.__version__),
        pipeline=dict(
            clip=("RGB = convert('RGB'); expand2square on white (255,255,255) to side max(W,H), paste at "
                  "((S-W)//2, 0) if H>W else (0, (S-H)//2); PIL BICUBIC resize SxS -> TxT; "
                  "clip_pixels = float32(float64(u8) * (1/255)) then (x - float32(mean)) / float32(std) in "
                  "float32, CHW. mean=%s std=%s" % (list(P.CLIP_MEAN), list(P.CLIP_STD))),
            sam=("RGB = convert('RGB') of the raw (not squared) image; scale = T/max(H,W); "
                 "(nh, nw) = (int(H*scale+0.5), int(W*scale+0.5)); PIL BILINEAR resize; sam_pixels = "
                 "(float32(u8) - float32(mean)) / float32(std), zero canvas TxT, image at "
                 "(top, left) = ((T-nh)//2, (T-nw)//2), CHW. mean=%s std=%s" % (list(P.SAM_MEAN), list(P.SAM_STD))),
            pass_order=("PIL resamples horizontally then vertically, except (Pillow 13) vertically first when "
                        "H_out < H_in and (H_in - H_out) > 2*(W_in - W_out); a pass whose size does not change "
                        "is skipped; pass_order in each case records which ran. See PIL_RESAMPLING_NOTES.md."),
        ),
        notes=[
            "EXIF: NExT-Chat never calls ImageOps.exif_transpose. Its dataset loader "
            "(mllm/dataset/utils/io.py read_img_general) does Image.open(path).convert('RGB') and the demo's "
            "open_image on a path does the same, so the reference expectation for a file is exif='raw' "
            "(pixels as stored). Only the gradio web demo sees transposed pixels, because gradio's upload "
            "decoding (processing_utils.decode_base64_to_image) applies exif_transpose before NExT-Chat gets "
            "the array. Both variants are recorded; 'raw' is the one to match by default.",
            "JPEG sources: decoded/* is PIL's (libjpeg-turbo) decode. A Go decoder (image/jpeg) differs from "
            "libjpeg-turbo in IDCT and upsampling, so hold the Go resampler to clip/sam goldens of JPEG sources "
            "starting from decoded/* (or rgb/*), and measure decode differences separately.",
            "transformers 4.31 CLIPImageProcessor misreads an HxWx3 array as channels-first when its first dim "
            "is 1 or 3: a 3x3 square (sources with max(W,H)=3, e.g. rgb_2x3) is resized with axes permuted, "
            "and a 1x1 square (rgb_1x1) raises in normalize. clip_pixels goldens avoid those sizes; "
            "clip/*.u8 for them is the plain PIL result.",
            "SAM shape: when max(W,H) > 2*T*min(W,H) (e.g. 1x700 or 2x1100 at T=256) int(short*scale+0.5) is 0 "
            "and the reference's PIL resize raises 'height and width must be > 0'; no golden covers it (the "
            "engine must reject or clamp such inputs). rgb_1x300 / rgb_300x1 keep the 1-px side: one pass only.",
            "convert('RGB'): L and LA replicate L (alpha dropped), RGBA drops alpha (no compositing), P looks "
            "up the palette (tRNS ignored), CMYK: v = 255-K, t = C*v + 128, R = clip(v - ((t + (t >> 8)) >> 8)) "
            "(same for M->G, Y->B), I;16: min(value, 255).",
        ],
        selfcheck=dict(
            resizes_checked=stats["resizes"], values=stats["values"],
            fixed_point_model="bit-exact on every resize",
            float64_model_exact_fraction=round(stats["float64_exact"] / max(stats["values"], 1), 6),
            float64_model_max_abs_diff=stats["float64_maxdiff"],
            float64_model_values_off_by_2=stats["float64_gt1"],
            float64_model_values_off_by_2_not_downstream_of_a_tie=stats["float64_gt1_untainted"],
            values_at_or_downstream_of_a_rounding_tie=stats["tie_or_taint"],
            float64_without_8bit_intermediate_max_abs_diff=stats["float64_noround_maxdiff"],
        ),
        sources=manifest_sources,
        cases=w_.cases,
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(w_.cases)} arrays from {len(sources)} sources to {out}; "
          f"{stats['resizes']} resizes checked, fixed-point model exact, float64 model max diff "
          f"{stats['float64_maxdiff']} (exact on {stats['float64_exact'] / max(stats['values'], 1):.4%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
