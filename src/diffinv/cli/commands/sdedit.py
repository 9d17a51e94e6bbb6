"""``diffinv sdedit``: SDEdit from a stroke painting, a photo with strokes or a composite."""

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
    load_model,
)
from diffinv.editing.config import SDEditConfig


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("guide", type=Path, help="the guide image (stroke painting, edited photo, or the base image)")
    parser.add_argument("--prompt", required=True, help="what the result should show")
    parser.add_argument(
        "--mask",
        type=Path,
        default=None,
        help="image of the guide's size, white (or, where it has transparency, opaque) where it may change",
    )
    parser.add_argument("--paste", type=Path, default=None, help="image compositing: paste this image onto the guide")
    parser.add_argument(
        "--at", default=None, metavar="X,Y", help="--paste position of the patch's top-left corner (default: 0,0)"
    )
    parser.add_argument("--negative-prompt", default=None, help="what the result should not show")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of every random draw (default: 0)")
    add_output_options(parser)
    add_config_options(parser, SDEditConfig, "SDEdit")
    add_model_options(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from diffinv import api, images, io
    from diffinv.editing.sdedit import paste
    from diffinv.errors import DiffinvError

    config = SDEditConfig(**config_values(args, SDEditConfig))
    check_output(args, args.output, args.guide, args.mask, args.paste)
    guide, mask = images.open_image(args.guide), None if args.mask is None else images.open_mask(args.mask)
    if args.at is not None and args.paste is None:
        raise DiffinvError("--at places a --paste patch; give --paste PATCH too")
    if args.paste is not None:
        try:
            left, top = (int(v) for v in (args.at or "0,0").split(","))
        except ValueError:
            raise DiffinvError(f"--at takes X,Y in pixels, e.g. 16,8; got {args.at!r}") from None
        guide, pasted = paste(guide, images.open_image(args.paste), left, top)
        mask = mask or pasted
    pipe = load_model(args)
    image = api.sdedit(
        pipe,
        guide,
        args.prompt,
        config=config,
        mask=mask,
        negative_prompt=args.negative_prompt,
        generator=torch.Generator().manual_seed(args.seed),
        progress=True,
    )[0]
    io.save_image(image, args.output)
    return {"output": str(args.output)}


COMMAND = Command(
    help="SDEdit: a stroke painting, a photo with strokes or a composite → an image that follows the prompt",
    description="Perturbs the guide to t0 (--strength) and denoises it with the prompt (Meng et al. 2022). "
    "With --mask only the white region changes; --paste builds a composite and its mask.",
    build=build,
    run=run,
)
