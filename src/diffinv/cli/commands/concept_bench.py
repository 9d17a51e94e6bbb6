"""``diffinv concept-bench``: personalization methods on shapes the model never saw."""

from __future__ import annotations

import argparse
from typing import Any

from diffinv.bench.config import ConceptBenchConfig
from diffinv.cli.options import Command, add_job_options, config_values, run_sharded


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--setting",
        dest="settings",
        action="append",
        default=None,
        metavar="METHOD:KEY=VALUE",
        help=ConceptBenchConfig.help("settings") + "; repeatable",
    )
    add_job_options(parser, ConceptBenchConfig, skip=("settings",), types={"concepts": _concepts})


def _concepts(text: str) -> tuple[str, ...]:
    from diffinv.bench.concept_bench import parse_concepts  # torch: only once an option is parsed

    return parse_concepts(text)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.concept_bench import parse_settings, run_concept_bench
    from diffinv.bench.concept_report import write_concept_summary

    values = config_values(args, ConceptBenchConfig)
    config = ConceptBenchConfig(**values | {"settings": parse_settings(args.settings or [])})

    def summarize(records: list[dict[str, Any]]) -> None:
        write_concept_summary(records, args.out)
        print((args.out / "summary.md").read_text(), end="")

    return run_sharded(
        args,
        lambda pipe, rank, world_size: run_concept_bench(pipe, config, args.out, rank=rank, world_size=world_size),
        summarize,
        "fidelity.png",
    )


COMMAND = Command(
    help="personalization methods on shapes the model never saw: fidelity, editability, seconds, file size",
    description="One job per (concept, method, shots), appended to OUT/records-<rank>.jsonl; re-running skips "
    "finished jobs; writes summary.md/json, fidelity.png, examples/ and the learned concepts/.",
    build=build,
    run=run,
)
