"""``diffinv sdedit-sweep``: SDEdit's t0 trade-off on stroke paintings of Shapes scenes."""

from __future__ import annotations

import argparse
from typing import Any

from diffinv.bench.config import SDEditSweepConfig
from diffinv.cli.options import Command, add_job_options, config_values, run_sharded


def build(parser: argparse.ArgumentParser) -> None:
    add_job_options(parser, SDEditSweepConfig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.datasets import load_dataset
    from diffinv.bench.sdedit_sweep import run_sweep
    from diffinv.bench.sweep_report import write_sweep_summary

    config = SDEditSweepConfig(**config_values(args, SDEditSweepConfig))
    samples = load_dataset(config.dataset, seed=config.seed)

    def summarize(records: list[dict[str, Any]]) -> None:
        write_sweep_summary(records, args.out)
        print((args.out / "sweep.md").read_text(), end="")

    return run_sharded(
        args,
        lambda pipe, rank, world_size: run_sweep(pipe, samples, config, args.out, rank=rank, world_size=world_size),
        summarize,
        "sdedit_tradeoff.png",
    )


COMMAND = Command(
    help="SDEdit's t0 trade-off: stroke paintings of Shapes scenes at every strength; table, plot and strips",
    build=build,
    run=run,
)
