"""``diffinv token-influence``: how much embedding positions ≥ k change the generated image (the reference paper's
Fig. 1)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from diffinv.bench.config import TOKEN_REPLACEMENTS, TokenInfluenceConfig
from diffinv.cli.options import (
    Command,
    add_config_options,
    add_model_options,
    add_overwrite_option,
    check_output,
    config_values,
)

BOTH = "both"


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    parser.add_argument(
        "--replacement",
        "--mode",
        default=TokenInfluenceConfig.default("replacement"),
        choices=(*TOKEN_REPLACEMENTS, BOTH),
        help=TokenInfluenceConfig.help("replacement") + f"; {BOTH}: one run each"
        f" (default: {TokenInfluenceConfig.default('replacement')})",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for token_influence.png/.json")
    add_overwrite_option(parser)
    add_config_options(parser, TokenInfluenceConfig, "generation", skip=("replacement",))
    add_model_options(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.token_influence import plot_token_influence, token_influence
    from diffinv.cli.options import load_model
    from diffinv.io import atomic_write

    replacements = TOKEN_REPLACEMENTS if args.replacement == BOTH else (args.replacement,)
    configs = [
        TokenInfluenceConfig(**config_values(args, TokenInfluenceConfig, skip=("replacement",)), replacement=r)
        for r in replacements
    ]
    for name in ("token_influence.png", "token_influence.json"):
        check_output(args, args.out / name)
    pipe = load_model(args)
    results = [token_influence(pipe, prompt, config=config) for prompt in args.prompt for config in configs]
    plot_token_influence(results, args.out / "token_influence.png")
    rows = [dataclasses.asdict(r) | {"vanishes_at": r.vanishes_at} for r in results]
    atomic_write(args.out / "token_influence.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=2) + "\n"))
    for r in results:
        vanishes = f"influence vanishes at k = {r.vanishes_at:2d}"
        print(f"{r.replacement:>4}  prompt tokens {r.n_tokens:2d}  {vanishes}  {r.prompt}")
    return {"output": str(args.out / "token_influence.png")}


COMMAND = Command(
    help="how much embedding positions ≥ k change the generated image (reference paper, Fig. 1)",
    build=build,
    run=run,
)
