"""``diffinv generate``: text-to-image with the sampler the inversions use."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffinv.cli.options import (
    SEED,
    Command,
    add_config_options,
    add_model_options,
    add_output_options,
    check_output,
    config_values,
    count,
    load_model,
)
from diffinv.config import SamplingConfig


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", required=True, help="what the image should show")
    parser.add_argument("--negative-prompt", default=None, help="what it should not show")
    parser.add_argument("--height", type=count(1), default=None, help="pixels (default: the model's native size)")
    parser.add_argument("--width", type=count(1), default=None, help="pixels (default: the model's native size)")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the initial noise (default: 0)")
    add_output_options(parser)
    add_config_options(parser, SamplingConfig, "sampling")
    add_model_options(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from diffinv import api, io

    output: Path = check_output(args, args.output)
    config = SamplingConfig(**config_values(args, SamplingConfig))
    pipe = load_model(args)
    image = api.generate(
        pipe,
        args.prompt,
        negative_prompt=args.negative_prompt,
        config=config,
        generator=torch.Generator().manual_seed(args.seed),
        height=args.height,
        width=args.width,
        progress=True,
    )[0]
    io.save_image(image, output)
    return {"output": str(output)}


COMMAND = Command(help="text-to-image", build=build, run=run)
