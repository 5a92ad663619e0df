"""`make bench-compare`: the engine's `nextchat bench llm` against PyTorch eager (bench_llm.py) on the same
checkpoint and threads, PyTorch run both as is and with OMP_WAIT_POLICY=PASSIVE; prints the ratios.
Usage: bench_compare.py MODEL_DIR [THREADS [NEXTCHAT_BENCH_FLAGS...]]
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def main():
    model = sys.argv[1]
    threads = sys.argv[2] if len(sys.argv) > 2 else "2"
    engine_flags = sys.argv[3:]  # e.g. --llm-weights int8: the engine's options; PyTorch runs the checkpoint as stored
    ours = run_json([str(ROOT / "bin/nextchat"), "bench", "llm", "--model", model, "--threads", threads,
                     "--repeat", "2", "--steps", "4", "--prompt-tokens", "128", "--json", *engine_flags])
    ref = [sys.executable, str(ROOT / "tools/reference/bench_llm.py"), "--model", model, "--threads", threads,
           "--prompt", "128", "--steps", "4"]
    torch_asis = run_json(ref)
    torch_passive = run_json(ref, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    decode = {s["benchmark"].split()[-1]: s for s in ours["stages"]}
    print(f"prefill: nextchat {ours['items_per_second']:.1f} tok/s "
          f"({ours['percent_of_fma_peak']:.1f}% of the measured FMA peak)")
    for label, t in (("as is", torch_asis), ("OMP_WAIT_POLICY=PASSIVE", torch_passive)):
        print(f"  vs PyTorch {label}: {t['prefill_tokens_per_s']:.1f} tok/s -> "
              f"{ours['items_per_second'] / t['prefill_tokens_per_s']:.2f}x")
    for batch, s in decode.items():
        print(f"decode batch {batch}: nextchat {s['items_per_second']:.2f} tok/s, "
              f"{s.get('percent_of_read_bandwidth', 0):.1f}% of the measured read bandwidth")
        for label, t in (("as is", torch_asis), ("OMP_WAIT_POLICY=PASSIVE", torch_passive)):
            theirs = t["decode_tokens_per_s"][batch]
            print(f"  vs PyTorch {label}: {theirs:.2f} tok/s -> {s['items_per_second'] / theirs:.2f}x")


if __name__ == "__main__":
    main()
