"""``diffinv edit-bench``: the editing benchmark on Shapes (or PIE-Bench), scored against exact targets."""

from __future__ import annotations

import argparse
from typing import Any

from diffinv.bench.config import EditBenchConfig
from diffinv.bench.variants import split_methods
from diffinv.cli.options import Command, add_job_options, config_values, run_sharded


def build(parser: argparse.ArgumentParser) -> None:
    add_job_options(parser, EditBenchConfig, types={"methods": split_methods})


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.datasets import load_dataset
    from diffinv.bench.edit_bench import run_edit_bench
    from diffinv.bench.edit_report import write_edit_summary
    from diffinv.bench.pie import load_pie

    config = EditBenchConfig(**config_values(args, EditBenchConfig))
    if config.dataset.startswith("pie:"):
        samples = load_pie(config.dataset.removeprefix("pie:"), limit=config.limit, seed=config.seed)
    else:
        samples = load_dataset(config.dataset, limit=config.limit, seed=config.seed)
    return run_sharded(
        args,
        lambda pipe, rank, world_size: run_edit_bench(
            pipe, samples, config, args.out, rank=rank, world_size=world_size
        ),
        lambda records: write_edit_summary(records, args.out),
        "summary.md",
    )


COMMAND = Command(
    help="editing benchmark on Shapes: every inversion x editor x edit, scored against exact targets",
    description="Inverts every held-out scene once per inversion method, makes every edit with every editor "
    "from it, and scores each against the exact edited render (resumable and shardable like `diffinv bench`); "
    "writes OUT/records-<rank>.jsonl, summary.md/json, success_vs_preservation.png and examples/.",
    build=build,
    run=run,
)
