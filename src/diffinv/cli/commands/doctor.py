"""``diffinv doctor``: what this installation has and where it looks for weights."""

from __future__ import annotations

import argparse
from typing import Any

from diffinv.cli.options import Command, add_json_option


def build(parser: argparse.ArgumentParser) -> None:
    add_json_option(parser, "print one JSON object")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.doctor import format_report, report

    data = report()
    if not args.json:
        print(format_report(data))
    return data


COMMAND = Command(
    help="versions, devices and dtypes, built-in model checksums, where weights are looked up", build=build, run=run
)
