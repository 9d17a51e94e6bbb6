"""``diffinv bench``: the reconstruction benchmark (every inversion method on a dataset)."""

from __future__ import annotations

import argparse
from typing import Any

from diffinv.bench.config import BenchConfig
from diffinv.bench.variants import split_methods
from diffinv.cli.options import Command, add_job_options, config_values, run_sharded


def build(parser: argparse.ArgumentParser) -> None:
    add_job_options(parser, BenchConfig, types={"methods": split_methods})


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.datasets import load_dataset
    from diffinv.bench.reconstruction import run_bench
    from diffinv.bench.reconstruction_report import write_reconstruction_summary

    config = BenchConfig(**config_values(args, BenchConfig))
    samples = load_dataset(config.dataset, limit=config.limit, seed=config.seed)
    return run_sharded(
        args,
        lambda pipe, rank, world_size: run_bench(pipe, samples, config, args.out, rank=rank, world_size=world_size),
        lambda records: write_reconstruction_summary(records, args.out),
        "summary.md",
    )


COMMAND = Command(
    help="reconstruction benchmark: every method on a dataset, resumable; summary.md/json + plots",
    description="Runs (image x method) jobs and appends one JSON line per job to OUT/records-<rank>.jsonl; "
    "re-running skips finished jobs. Shard over processes with `accelerate launch --num_processes N -m "
    "diffinv.cli bench ...`.",
    build=build,
    run=run,
)
