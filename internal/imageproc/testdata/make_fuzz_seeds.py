#!/usr/bin/env python3
"""Seed corpus for FuzzDecode (testdata/fuzz/FuzzDecode): one tiny file per format and mode, written by
Pillow 13, in Go's corpus encoding. Usage: python make_fuzz_seeds.py (pillow, numpy)."""
import io
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "fuzz" / "FuzzDecode"


def go_bytes(b: bytes) -> str:
    s = []
    for c in b:
        ch = chr(c)
        if ch == '"' or ch == "\\":
            s.append("\\" + ch)
        elif 0x20 <= c < 0x7F:
            s.append(ch)
        else:
            s.append(f"\\x{c:02x}")
    return 'go test fuzz v1\n[]byte("' + "".join(s) + '")\n'


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rgb = (np.arange(4 * 3 * 3, dtype=np.uint8).reshape(3, 4, 3) * 7)
    im = Image.fromarray(rgb)
    ex = Image.Exif()
    ex[0x0112] = 6
    seeds = {}

    def save(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        seeds[name] = buf.getvalue()

    save("png_rgb", im, "PNG")
    save("png_rgba", im.convert("RGBA"), "PNG")
    save("png_la", im.convert("LA"), "PNG")
    save("png_p_trns", im.convert("P"), "PNG", transparency=1)
    save("png_exif", im, "PNG", exif=ex.tobytes())
    save("jpeg_exif", im, "JPEG", quality=90, exif=ex.tobytes())
    save("jpeg_420", im, "JPEG", quality=90, subsampling=2)
    save("jpeg_cmyk", im.convert("CMYK"), "JPEG", quality=90)
    save("jpeg_grey", im.convert("L"), "JPEG", quality=90)
    save("gif", im.convert("P"), "GIF", transparency=2)
    save("webp_lossy", im, "WEBP", quality=80)
    save("webp_lossless_alpha", im.convert("RGBA"), "WEBP", lossless=True)
    save("webp_exif", im, "WEBP", quality=80, exif=ex.tobytes())
    save("bmp", im, "BMP")
    save("bmp_p", im.convert("P"), "BMP")
    seeds["png_truncated"] = seeds["png_rgb"][:-20]
    for name, data in seeds.items():
        (OUT / f"seed_{name}").write_text(go_bytes(data))
    print(f"{len(seeds)} seeds, {sum(len(d) for d in seeds.values())} bytes")


if __name__ == "__main__":
    main()
