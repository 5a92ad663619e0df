#!/usr/bin/env python3
"""Extra Pillow 13 cases for internal/imageproc (beyond testdata/golden/image).

Usage (from internal/imageproc/testdata, with pillow==13.0.0 and numpy):
    python make_pil_cases.py

Writes pil/manifest.json and small files under pil/:
  * "resize": rows [in_w, in_h, out_w, out_h, filter, content, seed, h] where h is the first 16 hex digits of
    the sha256 of Pillow's resize output. The source pixels are
    synthesized by the same integer hash in Go (synthPixels in pilcases_test.go), so only hashes are stored.
    Random size pairs plus the boundary of Pillow 13's pass-order rule, including mixed up/down scaling.
  * "decode": a source file in a format or mode the goldens lack (WebP, GIF, BMP, 16-bit colour PNG, low bit
    depths, tRNS, every EXIF orientation, 4:2:0 / 4:2:2 / grey JPEG) -> Pillow's convert("RGB") as .u8.gz,
    raw and, where an orientation is set, after ImageOps.exif_transpose.
"""
import gzip
import hashlib
import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

OUT = Path(__file__).resolve().parent / "pil"
M32 = 0xFFFFFFFF


def synth(w: int, h: int, seed: int, content: str) -> np.ndarray:
    """HWC uint8; must match synthPixels in Go. A 32-bit integer hash of (index, seed)."""
    i = np.arange(w * h * 3, dtype=np.uint64)
    v = (i * 0x9E3779B1 + (seed * 0x85EBCA77 & M32)) & M32
    v ^= v >> 15
    v = (v * 0x2C1B3C6D) & M32
    v ^= v >> 12
    v = (v * 0x297A2D39) & M32
    v ^= v >> 15
    b = (v & 0xFF).astype(np.uint8)
    if content == "binary":  # 0/255 only: maximal overshoot and clipping
        b = np.where(b & 1, 255, 0).astype(np.uint8)
    return b.reshape(h, w, 3)


def gz(raw: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(raw)
    return buf.getvalue()


def resize_cases():
    rng = random.Random(20240607)
    pairs = []
    for _ in range(400):  # random sizes, both directions
        pairs.append((rng.randint(1, 160), rng.randint(1, 160), rng.randint(1, 160), rng.randint(1, 160)))
    for _ in range(60):  # strong reductions and 1-px sides
        w, h = rng.randint(50, 400), rng.randint(50, 400)
        pairs.append((w, h, rng.randint(1, 12), rng.randint(1, 12)))
        pairs.append((rng.randint(1, 3), rng.randint(1, 300), rng.randint(1, 40), rng.randint(1, 40)))
    for _ in range(80):  # boundary of the order rule: dH == 2*dW (+ -1, 0, +1), dW of either sign
        w, h = rng.randint(2, 150), rng.randint(20, 300)
        dw = rng.randint(-40, min(w - 1, 40))
        for e in (-1, 0, 1):
            dh = 2 * dw + e
            if 0 < h - dh and w - dw > 0:
                pairs.append((w, h, w - dw, h - dh))
    cases = []
    for k, (w, h, W, H) in enumerate(pairs):
        for filt, name in ((Image.BICUBIC, "bicubic"), (Image.BILINEAR, "bilinear")):
            content = "binary" if k % 2 else "noise"
            seed = 7919 * k + (filt == Image.BICUBIC)
            src = Image.fromarray(synth(w, h, seed, content), "RGB")
            out = np.asarray(src.resize((W, H), filt))
            cases.append([w, h, W, H, name, content, seed, hashlib.sha256(out.tobytes()).hexdigest()[:16]])
    return cases


def decode_cases():
    files = []
    rgb = synth(37, 23, 1, "noise")
    # smooth content for lossy codecs (noise would hide upsampling details in quantization noise)
    yy, xx = np.mgrid[0:23, 0:37]
    smooth = np.dstack([(xx * 7) % 256, (yy * 11) % 256, ((xx + yy) * 5) % 256]).astype(np.uint8)
    smooth[5:12, 8:20] = (230, 25, 40)
    smooth[14:18, 3:30] = (20, 200, 90)
    rgba = np.dstack([rgb, synth(37, 23, 2, "noise")[..., 0]])

    def add(name, im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        files.append((name, fmt.lower(), buf.getvalue()))

    # WebP: lossy at odd and even sizes, with alpha, lossless
    add("webp_lossy_37x23", Image.fromarray(smooth), "WEBP", quality=80)
    add("webp_lossy_36x22", Image.fromarray(smooth[:22, :36]), "WEBP", quality=80)
    add("webp_lossy_alpha_37x23", Image.fromarray(np.dstack([smooth, rgba[..., 3]]), "RGBA"), "WEBP", quality=90)
    add("webp_lossless_37x23", Image.fromarray(rgb), "WEBP", lossless=True)
    add("webp_lossless_alpha_37x23", Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True)
    # GIF: global palette with transparency, a frame smaller than the screen, a grey-identity palette
    pal = []
    for k in range(256):
        pal += [(k * 37) % 256, (k * 91 + 13) % 256, (255 - k * 23) % 256]
    idx = synth(37, 23, 3, "noise")[..., 0] // 4
    p = Image.fromarray(idx, "P")
    p.putpalette(pal)
    add("gif_transparent_37x23", p, "GIF", transparency=5)
    add("gif_plain_37x23", p, "GIF")
    g = Image.fromarray((synth(20, 10, 4, "noise")[..., 0] // 2), "L")
    add("gif_grey_20x10", g, "GIF")
    # BMP: 24-bit, 8-bit palette, 32-bit with alpha
    add("bmp_rgb_37x23", Image.fromarray(rgb), "BMP")
    add("bmp_p_37x23", p, "BMP")
    add("bmp_rgba_37x23", Image.fromarray(rgba, "RGBA"), "BMP")
    # PNG modes the goldens lack
    v16 = (synth(37, 23, 5, "noise").astype(np.uint16) * 257 + np.arange(37, dtype=np.uint16)[None, :, None])
    add("png_1bit_37x23", Image.fromarray(synth(37, 23, 6, "binary")[..., 0] > 0), "PNG")
    add("png_l_trns_37x23", Image.fromarray(synth(37, 23, 7, "noise")[..., 0], "L"), "PNG", transparency=17)
    add("png_rgb_trns_37x23", Image.fromarray(rgb), "PNG", transparency=tuple(int(v) for v in rgb[0, 0]))
    p4 = Image.fromarray(idx % 16, "P")
    p4.putpalette(pal[: 16 * 3])
    add("png_p4bit_37x23", p4, "PNG", bits=4)
    # every EXIF orientation, on a PNG (no decoder differences)
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        add(f"png_exif{o}_7x4", Image.fromarray(synth(7, 4, 10 + o, "noise")), "PNG", exif=ex.tobytes())
    # JPEG chroma subsampling variants and grey: compared within the JPEG tolerance
    big = np.kron(smooth, np.ones((2, 2, 1), np.uint8))[:45, :73]
    add("jpeg_420_73x45", Image.fromarray(big), "JPEG", quality=92, subsampling=2)
    add("jpeg_422_73x45", Image.fromarray(big), "JPEG", quality=92, subsampling=1)
    add("jpeg_grey_73x45", Image.fromarray(big[..., 1], "L"), "JPEG", quality=92)
    ex = Image.Exif()
    ex[0x0112] = 3
    add("jpeg_exif3_73x45", Image.fromarray(big), "JPEG", quality=92, exif=ex.tobytes())

    # 16-bit colour PNGs: Pillow cannot write them, so write them by hand (zlib + chunks)
    import struct
    import zlib

    def png16(w, h, ct, arr):
        raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & M32)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ct, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    files.append(("png_rgb16_37x23", "png", png16(37, 23, 2, v16)))
    a16 = np.dstack([v16, (synth(37, 23, 8, "noise")[..., :1].astype(np.uint16) * 257)])
    files.append(("png_rgba16_37x23", "png", png16(37, 23, 6, a16)))
    files.append(("png_la16_37x23", "png", png16(37, 23, 4, a16[..., 2:4].copy())))

    cases = []
    for name, ext, data in files:
        (OUT / f"{name}.{ext}").write_bytes(data)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = im.mode
            orient = im.getexif().get(0x0112)
            variants = [("raw", im)]
            if orient not in (None, 1):
                variants.append(("transposed", ImageOps.exif_transpose(im)))
            for label, img in variants:
                out = np.ascontiguousarray(np.asarray(img.convert("RGB")))
                tag = name if label == "raw" else f"{name}.transposed"
                (OUT / f"{tag}.rgb.u8.gz").write_bytes(gz(out.tobytes()))
                cases.append(dict(name=name, file=f"{name}.{ext}", format=ext, mode=mode,
                                  orientation=int(orient or 0), exif=label, rgb=f"{tag}.rgb.u8.gz",
                                  shape=list(out.shape), lossy=ext in ("jpeg", "jpg") or name.startswith("webp_lossy")))
    return cases


def main():
    OUT.mkdir(exist_ok=True)
    for f in OUT.iterdir():
        f.unlink()
    import PIL
    manifest = dict(generator="internal/imageproc/testdata/make_pil_cases.py", pillow=PIL.__version__,
                    resize=resize_cases(), decode=decode_cases())
    # one resize row per line: [in_w, in_h, out_w, out_h, filter, content, seed, sha256[:16] of the output]
    rows = ",\n".join(json.dumps(r) for r in manifest.pop("resize"))
    text = json.dumps(manifest, indent=1, sort_keys=True)
    text = text[:-2] + ',\n "resize": [\n' + rows + "\n ]\n}\n"
    json.loads(text)
    (OUT / "manifest.json").write_text(text)
    print(f"{rows.count(chr(10)) + 1} resize cases, {len(manifest['decode'])} decode cases")


if __name__ == "__main__":
    main()
