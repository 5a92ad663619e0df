#!/usr/bin/env python3
"""Seed archives for FuzzRead and FuzzUnpickle (testdata/seeds/*.pt): what torch.save really writes — a module's
state_dict (with its _metadata), a plain dict of bf16/fp16 views and scalars, protocol 4, a saved Parameter —
and one archive rewritten with zip64 records, which torch writes once a shard passes 4 GB (the release's are
5 GB). The fuzz targets add each file (FuzzUnpickle its data.pkl). Deterministic: torch.save output depends only
on the objects. Usage: python make_fuzz_seeds.py (the tools/reference venv)."""
import collections
import io
import zipfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def saved(obj, **kw) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def as_zip64(archive: bytes) -> bytes:
    """The same entries, stored, each with zip64 extra fields (zipfile pins their timestamps)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            with dst.open(zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0)), "w", force_zip64=True) as f:
                f.write(src.read(info))
    return out.getvalue()


def main():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2)).to(torch.bfloat16)
    base = torch.arange(12, dtype=torch.float16)
    mixed = collections.OrderedDict(
        w=torch.arange(6, dtype=torch.bfloat16).reshape(2, 3), view=base[2:6], rest=base[6:].view(2, 3),
        scalar=torch.tensor(3.0), empty=torch.zeros(0, 4), ids=torch.arange(5).unsqueeze(0))
    archives = {
        "module_state_dict": saved(module.state_dict()),
        "views_and_scalars": saved(mixed),
        "protocol4": saved({"x": torch.ones(2, dtype=torch.float16)}, pickle_protocol=4),
        "parameter": saved({"p": torch.nn.Parameter(torch.ones(2, 2))}),
    }
    archives["zip64"] = as_zip64(archives["views_and_scalars"])
    out = HERE / "seeds"
    out.mkdir(exist_ok=True)
    for name, archive in archives.items():
        (out / f"{name}.pt").write_bytes(archive)


if __name__ == "__main__":
    main()
