"""Batched-edit throughput: ``diffinv.edit`` on N inversions one at a time vs in one call (one UNet call per step
for all), measured side by side in interleaved rounds; prints seconds per edit for each and the ratio, and as its
last line one JSON object. Results of the two agree to float rounding (``tests/editing/test_prompt_to_prompt.py``).

    python benchmarks/edit_throughput.py                         # built-in model, 8 held-out scenes, prompt-tokens
    python benchmarks/edit_throughput.py --n 8 --method ddim --model PATH --device cuda --dtype fp16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402

from diffinv import edit, invert, load_pipeline  # noqa: E402
from diffinv.bench.datasets import load_dataset  # noqa: E402
from diffinv.bench.edit_tasks import make_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="edits per call")
    parser.add_argument("--method", default="prompt-tokens", help="inversion method of the scenes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    samples = load_dataset(f"shapes:{args.n}")
    inversions = invert(pipe, [s.load() for s in samples], [s.caption for s in samples], args.method)
    targets = [make_task(s.scene, "recolor", k).target_prompt for k, s in enumerate(samples)]
    timings: dict[str, list[float]] = {"one at a time": [], "batched": []}
    for _ in range(args.rounds):
        started = time.perf_counter()
        for inversion, target in zip(inversions, targets, strict=True):
            edit(pipe, inversion, target, output_type="latent")
        timings["one at a time"].append((time.perf_counter() - started) / args.n)
        started = time.perf_counter()
        edit(pipe, inversions, targets, output_type="latent")
        timings["batched"].append((time.perf_counter() - started) / args.n)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    ratio = medians["one at a time"] / medians["batched"]
    for name, seconds in medians.items():
        print(f"{name:>14}: {seconds:.3f} s per edit")
    print(f"batched speed-up: {ratio:.2f}x ({args.n} edits, {args.method}, {args.device}, {args.threads} thread(s))")
    print(json.dumps({"n": args.n, "method": args.method, "seconds_per_edit": medians, "speedup": ratio}))


if __name__ == "__main__":
    main()
