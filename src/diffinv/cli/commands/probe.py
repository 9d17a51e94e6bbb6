"""``diffinv probe``: read Shapes scenes back from images."""

from __future__ import annotations

import argparse
from typing import Any

from diffinv.cli.options import Command


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON list")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.shapes.probe import probe_main

    probe_main(args.images, as_json=args.as_json)
    return {}


COMMAND = Command(help="read the Shapes scene (background, objects) from images with the probe", build=build, run=run)
