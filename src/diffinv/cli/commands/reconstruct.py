"""``diffinv reconstruct``: regenerate the photo from an inversion file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffinv.cli.options import Command, add_model_options, add_output_options, check_output, load_model


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inversion", type=Path, help="an .inv.safetensors file written by `diffinv invert`")
    parser.add_argument("--negative-prompt", default=None, help="use a negative prompt (free-slot methods only)")
    add_output_options(parser)
    add_model_options(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv import api, io
    from diffinv.inversion.base import Inversion

    check_output(args, args.output, args.inversion)
    Inversion.load(args.inversion)  # validate the file before loading any model
    pipe = load_model(args)
    inversion = Inversion.load(args.inversion, pipe)
    image = api.reconstruct(pipe, inversion, negative_prompt=args.negative_prompt, progress=True)[0]
    io.save_image(image, args.output)
    return {"output": str(args.output)}


COMMAND = Command(help="regenerate the photo from an inversion file", build=build, run=run)
