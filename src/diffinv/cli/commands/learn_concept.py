"""``diffinv learn-concept``: learn a new word for a concept from a few images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffinv.cli.options import (
    SEED,
    Command,
    add_config_options,
    add_json_option,
    add_model_options,
    add_output_options,
    check_output,
    config_values,
    count,
    load_model,
    option_name,
)
from diffinv.config import init_fields
from diffinv.personalization.config import PROPERTIES, LearningConfig
from diffinv.personalization.registry import DEFAULT_METHOD, METHOD_CONFIGS


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="images of the concept (3-5 in the paper)")
    parser.add_argument("--token", default="<s*>", help="the new word (default: <s*>)")
    parser.add_argument(
        "--init-word", default=None, help="a one-token word describing the concept coarsely (ti, lora; e4t: unused)"
    )
    parser.add_argument(
        "--method", default=DEFAULT_METHOD, choices=METHOD_CONFIGS.names(), help=f"default: {DEFAULT_METHOD}"
    )
    parser.add_argument("--property", default=PROPERTIES[0], choices=PROPERTIES, help="template set (default: object)")
    parser.add_argument(
        "--caption",
        dest="captions",
        action="append",
        default=None,
        help="caption with {} for the token, instead of the templates: once for all images or once per image",
    )
    parser.add_argument("--seed", type=SEED, default=0, help="default: 0")
    parser.add_argument("--height", type=count(1), default=None, help="pixels (default: the model's native size)")
    parser.add_argument("--width", type=count(1), default=None, help="pixels (default: the model's native size)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="keep resumable checkpoints here")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir's newest checkpoint")
    add_output_options(parser, "the concept file (.safetensors)")
    parser.add_argument("--a1111", type=Path, default=None, help="also export the AUTOMATIC1111 embedding here")
    parser.add_argument(
        "--lora-file", type=Path, default=None, help="also export the UNet offsets (lora) for load_lora_weights here"
    )
    add_json_option(parser)
    defaults = {name: cls() for name, cls in METHOD_CONFIGS.items()}
    add_config_options(parser, LearningConfig, "learning (every method)", defaults=defaults)
    for name, cls in METHOD_CONFIGS.items():
        add_config_options(parser, cls, f"--method {name} only", skip=LearningConfig)
    add_model_options(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from diffinv import api, images, io
    from diffinv.errors import DiffinvError

    outputs = [p for p in (args.output, args.a1111, args.lora_file) if p is not None]
    if any(p.suffix != ".safetensors" for p in outputs):
        raise DiffinvError("concept files are written as .safetensors; give output names ending in .safetensors")
    if len({p.resolve() for p in outputs}) < len(outputs):
        raise DiffinvError("two outputs name the same file; give each its own name")
    if args.lora_file is not None and args.method == "ti":
        raise DiffinvError("--lora-file: textual inversion changes no UNet weights")
    for path in outputs:
        check_output(args, path, *args.images, *args.concept_files)
    if args.checkpoint_dir is not None:
        io.check_folder(args.checkpoint_dir)
    config_class = METHOD_CONFIGS[args.method]
    given = {k: v for cls in METHOD_CONFIGS.values() for k, v in config_values(args, cls).items()}
    foreign = sorted(given.keys() - init_fields(config_class).keys())
    if foreign:
        raise DiffinvError(f"{option_name(foreign[0])} does not apply to --method {args.method}")
    config = config_class(**given)
    if args.init_word is None and args.method != "e4t":
        raise DiffinvError(f"--init-word is needed for --method {args.method}")
    for path in args.images:  # validate every image before loading any model
        images.open_image(path)
    pipe = load_model(args)
    concept = api.learn_concept(
        pipe,
        args.images,
        args.token,
        "object" if args.init_word is None else args.init_word,  # e4t learns no word vector: any word serves
        method=args.method,
        property=args.property,
        captions=args.captions,
        config=config,
        height=args.height,
        width=args.width,
        generator=torch.Generator().manual_seed(args.seed),
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress=not args.json,
    )
    with io.all_or_nothing():
        concept.save(args.output)
        if args.a1111 is not None:
            concept.export_a1111(args.a1111)
        if args.lora_file is not None:
            concept.export_lora(args.lora_file)
    info = concept.info  # a learned concept always carries its description
    return {
        "token": concept.token,
        "vectors": concept.num_vectors,
        "steps": info.steps,
        "seconds": info.seconds,
        "loss": info.loss,
        "output": str(args.output),
    }


COMMAND = Command(
    help="learn a new word for a concept from a few images (textual inversion, LoRA, E4T) into a .safetensors file",
    description="Writes a concept file that `--concept FILE` of every command loads, and that diffusers' "
    "load_textual_inversion loads unchanged; --a1111 also exports the AUTOMATIC1111 format.",
    build=build,
    run=run,
)
