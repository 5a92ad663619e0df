"""Inputs the reference scripts share: synthetic checkpoints from `bin/nextchat gen` and procedural test images.

Images are drawn with integer numpy arithmetic only (no PIL drawing, no RNG), so their pixels do not depend on
library versions; they are committed as PNGs under testdata/images/.
"""
import filecmp
import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
NEXTCHAT = Path(os.environ.get("NEXTCHAT_BIN", REPO / "bin" / "nextchat"))  # override: a binary built elsewhere
IMAGES_DIR = REPO / "testdata" / "images"
CONFIGS_DIR = REPO / "testdata" / "golden" / "configs"


def make_checkpoint(config: str, seed: int, out: Path, dtype: str = "f32") -> Path:
    """`nextchat gen` into out (from the repo root, so the default tokenizer path resolves). config: a preset name
    or a path relative to the repo root."""
    cmd = [str(NEXTCHAT), "gen", "--config", config, "--seed", str(seed), "--dtype", dtype, "--out", str(out),
           "--force"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (is bin/nextchat built and current?):\n{run.stderr.strip()}")
    return out


def report_verify(pairs) -> int:
    """pairs: (regenerated, committed) paths. Prints every committed file that differs and a summary; returns the
    exit status of a --verify run."""
    bad = [committed for regenerated, committed in pairs
           if not committed.exists() or not filecmp.cmp(regenerated, committed, shallow=False)]
    for p in bad:
        print(f"DIFFERS: {p}")
    print(f"verify: {len(pairs) - len(bad)}/{len(pairs)} files bit-identical")
    return 1 if bad else 0


def _shapes_image(width: int, height: int, shapes) -> np.ndarray:
    """A diagonal two-colour gradient with a fine checker texture, and filled shapes on top.

    shapes: ("rect", x0, y0, x1, y1, rgb) with half-open pixel ranges, or ("disc", cx, cy, r, rgb).
    """
    y, x = np.mgrid[0:height, 0:width]
    t = (x * 255 * 2 + y * 255) // (2 * (width - 1) + (height - 1))  # 0..255 along the diagonal
    img = np.stack([60 + t * 120 // 255, 90 + (255 - t) * 100 // 255, 170 + 0 * t], axis=-1)
    img += ((x // 2 + y // 2) % 2 * 12)[..., None]  # texture: resamplers must weigh neighbours correctly
    for s in shapes:
        if s[0] == "rect":
            _, x0, y0, x1, y1, rgb = s
            inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        else:
            _, cx, cy, r, rgb = s
            inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        img[inside] = rgb
    return img.clip(0, 255).astype(np.uint8)


RED, BLUE, YELLOW, GREEN = (220, 40, 40), (30, 60, 210), (240, 210, 30), (40, 170, 60)

# name → (width, height, shapes). Wide, tall and square cover both expand2square / SAM pad axes and none.
TEST_IMAGES = {
    "wide_64x48.png": (64, 48, [("disc", 18, 20, 10, RED), ("rect", 36, 10, 58, 30, BLUE),
                                ("rect", 8, 36, 50, 44, YELLOW)]),
    "tall_40x72.png": (40, 72, [("rect", 5, 6, 30, 26, GREEN), ("disc", 22, 48, 13, RED),
                                ("rect", 30, 60, 38, 70, BLUE)]),
    "square_50x50.png": (50, 50, [("disc", 15, 15, 9, YELLOW), ("rect", 26, 22, 46, 46, RED),
                                  ("rect", 4, 34, 20, 40, BLUE)]),
}


def write_images(directory: Path = IMAGES_DIR) -> dict:
    """Write the test images as PNG; returns name → path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (w, h, shapes) in TEST_IMAGES.items():
        paths[name] = directory / name
        Image.fromarray(_shapes_image(w, h, shapes), "RGB").save(paths[name], format="PNG")
    return paths
