"""GPU check of batched inversion (issue 16): every method at B = 1 and B = 8 on an SD-1.5-sized random pipeline at
512 px in fp16, seconds per image, images/s relative to B = 1, and peak GPU memory; ``--compile`` adds rows with
``torch.compile(unet)`` for the launch-bound B = 1 case (optional and outside the 6 minutes: compiling the backward
graphs of the optimising methods takes minutes; on this CPU's tiny model, 4.5 minutes for prompt-tokens).

Sized to fit in 6 minutes on one H200 (measured there on main before batching: an SD-1.5-sized forward 37 ms at B = 1,
39 ms at B = 8; null-text inversion at 50 steps 57 s per image): every method runs 25 steps (prompt-token inversion's
default; null-text's is 50) with the optimisers' default 10 inner iterations, so the whole check is about 12 image
inversions' worth of UNet calls at B = 1 and as many batch-8 calls.

On the device machine (diffusers travels as wheels, see the tool's README)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \\
        .whl/*.whl && export PYTHONPATH=/tmp/site:src && python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json

On a CPU, ``--tiny`` runs the same code on the tiny in-code pipeline at 64 px (``tests/test_gpu_check.py``).
The table goes to ``docs/performance.md``; the last line printed is the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from diffinv import METHODS, invert  # noqa: E402
from diffinv.bench.datasets import load_dataset  # noqa: E402
from diffinv.pipelines import resolve_dtype  # noqa: E402
from diffinv.testing import sd15_sized_pipeline, tiny_pipeline  # noqa: E402


def _photos(count: int) -> tuple[list[Image.Image], list[str]]:
    """The first ``count`` bundled photos (scikit-image's, with our captions), repeated if needed."""
    samples = load_dataset("photos")
    chosen = [samples[i % len(samples)] for i in range(count)]
    return [s.load() for s in chosen], [s.caption for s in chosen]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(pipe, method: str, batch_size: int, steps: int, size: int, device: torch.device) -> dict:
    photos, prompts = _photos(batch_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    started = time.perf_counter()
    results = invert(pipe, photos, prompts, method, num_inference_steps=steps, batch_size=batch_size,
                     height=size, width=size)  # fmt: skip
    _sync(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "method": method,
        "batch_size": batch_size,
        "seconds_per_image": seconds / batch_size,
        "images_per_s": batch_size / seconds,
        "peak_gib": peak,
        "unet_passes_per_image": sum(r.stats.unet_passes for r in results) / batch_size,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny in-code pipeline at 64 px (a CPU test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp16")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(unet) at B = 1")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here too")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype)
    started = time.perf_counter()
    if args.tiny:
        pipe, size = tiny_pipeline(dtype=dtype).to(device), 64
    else:
        pipe, size = sd15_sized_pipeline(dtype=dtype, device=device), 512
    print(f"pipeline built in {time.perf_counter() - started:.1f} s", flush=True)
    methods = [m for m in args.methods.split(",") if m]
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    measure(pipe, "ddim", 1, 2, size, device)  # warm-up: kernels, allocator
    rows = []
    for method in methods:
        first = None
        for batch_size in sizes:
            row = measure(pipe, method, batch_size, args.steps, size, device)
            first = first or row
            rows.append({**row, "speedup": row["images_per_s"] / first["images_per_s"]})
            print(json.dumps(rows[-1]), flush=True)
    if args.compile:
        unet = pipe.unet
        pipe.unet = torch.compile(unet)
        try:
            for method in methods:
                measure(pipe, method, 1, 2, size, device)  # compiles the forward (and backward) graphs
                row = measure(pipe, method, 1, args.steps, size, device)
                plain = next(r for r in rows if r["method"] == method and r["batch_size"] == 1)
                rows.append({**row, "compiled": True, "speedup": row["images_per_s"] / plain["images_per_s"]})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            pipe.unet = unet
    print(f"\n{device} {args.dtype}, {size} px, {args.steps} steps, total {time.perf_counter() - started:.0f} s")
    print("| method | B | s/image | images/s | vs B=1 | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        label = r["method"] + (" (compiled)" if r.get("compiled") else "")
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(f"| {label} | {r['batch_size']} | {r['seconds_per_image']:.2f} | {r['images_per_s']:.3f} | "
              f"{r['speedup']:.2f}× | {peak} |")  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
