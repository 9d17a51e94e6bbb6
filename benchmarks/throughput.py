"""Batched-inversion throughput: images per second per method for batch sizes B, measured side by side in one run.

Each (method, B) inverts the same ``--images`` held-out Shapes scenes (default: the largest B) with
``diffinv.invert(..., batch_size=B)`` (one UNet call per step for B images at a time), so every B pays for the same
images (the optimising methods' early stops make some scenes cheaper than others); the table gives images/s and the
ratio to B = 1 of the same method; the last line is the same as JSON. Results equal one-at-a-time inversions up to
float rounding (``tests/inversion/test_batched.py``).

    python benchmarks/throughput.py                              # built-in model, every method, B = 1 ... 16
    python benchmarks/throughput.py --methods null-text,prompt-tokens --batch-sizes 1,16 --threads 1
    python benchmarks/throughput.py --model PATH --device cuda --dtype fp16

Issue 16's CPU target: ≥ 2.5× images/s at B = 16 vs B = 1 for null-text and prompt-tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402

from diffinv import METHODS, invert, load_pipeline  # noqa: E402
from diffinv.bench.datasets import load_dataset  # noqa: E402


def measure(pipe, samples, method: str, batch_size: int, steps: int | None) -> float:
    """Seconds to invert ``samples``, ``batch_size`` at a time."""
    started = time.perf_counter()
    invert(
        pipe,
        [s.load() for s in samples],
        [s.caption for s in samples],
        method,
        num_inference_steps=steps,
        batch_size=batch_size,
    )
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch-sizes", default="1,2,4,8,16")
    parser.add_argument("--images", type=int, default=None, help="scenes inverted at every B (default: the largest B)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: each method's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    samples = load_dataset(f"shapes:{args.images or max(sizes)}")
    measure(pipe, samples[:1], "ddim", 1, 2)  # warm-up: first calls allocate
    rows = []
    for method in methods:
        base = None
        for size in sizes:
            seconds = measure(pipe, samples, method, size, args.steps)
            rate = len(samples) / seconds
            base = base or rate
            rows.append({"method": method, "batch_size": size, "seconds": seconds, "images_per_s": rate,
                         "speedup": rate / base})  # fmt: skip
            print(f"{method:16s} B={size:<3d} {seconds:8.2f} s  {rate:7.3f} img/s  {rate / base:5.2f}x", flush=True)
    print()
    print(f"model {args.model}, device {args.device}, {torch.get_num_threads()} thread(s), {len(samples)} scenes, "
          f"steps {args.steps or 'method default'}")  # fmt: skip
    print("| method | " + " | ".join(f"B={b}" for b in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for method in methods:
        cells = [r for r in rows if r["method"] == method]
        print(f"| {method} | " + " | ".join(f"{r['images_per_s']:.3f} ({r['speedup']:.2f}×)" for r in cells) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
