"""``diffinv`` command line: a thin layer over :mod:`diffinv.api`.

One module per command under ``commands/`` (its options and its handler together, as ``COMMAND``), listed once in
``commands/__init__.py``; the option groups they share are in :mod:`diffinv.cli.options`. Every bad input ends with
one line ``diffinv: error: ...`` on stderr and exit status 2, and no output file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from diffinv.cli.options import EXIT_USAGE, Parser


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered command."""
    from diffinv import __version__
    from diffinv.cli.commands import COMMANDS

    parser = Parser(
        prog="diffinv", description="Invert, reconstruct and edit real photos with Stable Diffusion models."
    )
    parser.add_argument("--version", action="version", version=f"diffinv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.build(sub.add_parser(name, help=command.help, description=command.description))
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def _warn_one_line(
    message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    print(f"diffinv: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffinv`` console script; returns the exit status."""
    _quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from diffinv.cli.commands import COMMANDS
    from diffinv.errors import DiffinvError

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()

    warnings.showwarning = _warn_one_line
    try:
        result = COMMANDS[args.command].run(args)
    except DiffinvError as exc:
        print(f"diffinv: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "json", False):
        print(json.dumps(result))
    elif result.get("output") and result.get("rank", 0) == 0:
        print(f"wrote {result['output']}")
    return 0
