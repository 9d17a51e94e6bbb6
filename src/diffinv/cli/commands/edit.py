"""``diffinv edit``: prompt-to-prompt on an inverted photo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffinv.cli.options import (
    Command,
    add_config_options,
    add_json_option,
    add_model_options,
    add_output_options,
    check_output,
    config_values,
    load_model,
)
from diffinv.editing.config import EditConfig

SPECIAL = ("reweight", "local_blend")  # a repeatable WORD=SCALE and a word list, not comma lists


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inversion", type=Path, help="an .inv.safetensors file written by `diffinv invert`")
    parser.add_argument(
        "--target-prompt",
        default=None,
        help="the edited caption (default: the source prompt, for reweight or negative-prompt-only edits)",
    )
    parser.add_argument("--negative-prompt", default=None, help="the edit's negative prompt (free-slot methods only)")
    add_output_options(parser, "the edited image (.png)")
    parser.add_argument("--source-output", type=Path, default=None, help="also write the source reconstruction here")
    add_json_option(parser)
    group = parser.add_argument_group("prompt-to-prompt")
    group.add_argument(
        "--reweight", action="append", default=None, metavar="WORD=SCALE", help="scale attention to WORD; repeatable"
    )
    group.add_argument("--local-blend", nargs="+", default=None, metavar="WORD", help="edit only where WORDs attend")
    add_config_options(parser, EditConfig, "prompt-to-prompt settings", skip=SPECIAL)
    add_model_options(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv import api, io
    from diffinv.inversion.base import Inversion
    from diffinv.parsing import parse_word_weights

    check_output(args, args.output, args.inversion)
    if args.source_output is not None:
        check_output(args, args.source_output, args.inversion, args.output)
    reweight = parse_word_weights(args.reweight or [], "--reweight")
    config = EditConfig(
        **config_values(args, EditConfig, skip=SPECIAL),
        reweight=tuple(reweight.items()),
        local_blend=tuple(args.local_blend or ()),
    )
    Inversion.load(args.inversion)  # validate the file before loading any model
    pipe = load_model(args)
    inversion = Inversion.load(args.inversion, pipe)
    target = inversion.settings.prompt if args.target_prompt is None else args.target_prompt
    result = api.edit(
        pipe, inversion, target, config=config, negative_prompt=args.negative_prompt, progress=not args.json
    )
    with io.all_or_nothing():
        io.save_image(result.edit[0], args.output)
        if args.source_output is not None:
            io.save_image(result.source[0], args.source_output)
    return {
        "output": str(args.output),
        "source_output": None if args.source_output is None else str(args.source_output),
        "method": inversion.method,
        "source_prompt": inversion.settings.prompt,
        "target_prompt": target,
        "mode": config.mode,
        "seconds": round(result.seconds, 3),
        "blend_mask_fraction": None if result.mask is None else round(float(result.mask.mean()), 4),
    }


COMMAND = Command(
    help="edit an inverted photo with prompt-to-prompt (replace / refine / reweight, local blend, negative prompt)",
    description="Denoises the source prompt and the target prompt side by side from the inversion, injecting "
    "the source's attention into the target (Hertz et al. 2022). Works after every inversion method.",
    build=build,
    run=run,
)
