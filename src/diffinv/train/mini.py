"""Train the miniature Stable Diffusion ("mini") on the Shapes world, stage by stage, on a CPU.

Usage::

    python -m diffinv.train.mini vae      --work runs/mini [--minutes M] [--resume]
    python -m diffinv.train.mini text     --work runs/mini [--minutes M] [--resume]
    python -m diffinv.train.mini unet     --work runs/mini [--minutes M] [--resume] [--probe DIR]
    python -m diffinv.train.mini assemble --work runs/mini [--out DIR]
    python -m diffinv.train.mini eval     --work runs/mini [--out DIR] [--eval-prompts N] [--probe DIR]
    python -m diffinv.train.mini all      --work runs/mini [--minutes M] [--resume]   # vae, text, unet, assemble

    python -m diffinv.train.mini import-text --work runs/mini [--source DIR]   # instead of text: reuse one

Common options: ``--preset v1|v2|v3`` (the base config of a new work folder; default v1, the first shipped recipe;
:data:`~diffinv.train.config.PRESETS`), ``--config FILE`` (JSON overrides of
:class:`~diffinv.train.config.MiniConfig`, nested objects allowed), ``--seed S``, ``--vae-steps N``,
``--unet-steps N``, ``--no-progress``.

Stages (each can be re-run alone; each writes into its own folder of ``--work``):

1. ``vae`` — the :class:`~diffusers.AutoencoderKL` (:mod:`diffinv.train.vae`), exported to ``vae/final`` with its
   ``scaling_factor`` and ``vae/eval.json`` (round-trip PSNR).
2. ``text`` — the :class:`~transformers.CLIPTextModel`, pretrained to parse captions (:mod:`diffinv.train.text`),
   exported to ``text/final`` with ``text/eval.json`` (held-out caption parsing accuracy).
   ``import-text`` instead copies the text encoder of an assembled pipeline (default: the shipped ``mini``) into
   ``text/final`` (fp32), so a new UNet trains on the encoder that ships
   (:func:`diffinv.train.text.import_text_encoder`).
3. ``unet`` — the :class:`~diffusers.UNet2DConditionModel` on the frozen VAE's latents with the pretrained text
   encoder (:mod:`diffinv.train.unet`), its EMA exported to ``unet/final``. With a probe available, the EMA model is
   scored every ``eval_every_minutes`` (``unet/eval.jsonl``): DDIM with the config's ``num_inference_steps`` and
   ``guidance_scale`` on held-out single- and two-object captions.
4. ``assemble`` — a diffusers :class:`~diffusers.StableDiffusionPipeline` folder (fp16 safetensors, DDIM scheduler
   with SD's schedule) written to ``--out`` (default: the package's ``assets/models/mini``;
   :mod:`diffinv.train.assemble`).
5. ``eval`` — scores an assembled folder: VAE PSNR, generation accuracy with :func:`diffinv.api.generate` and the
   probe, seconds per image, load time and weight megabytes (``eval.json`` beside the stage folders;
   :mod:`diffinv.train.evaluate`).

Checkpoints (:mod:`diffinv.loop.stage`): ``<stage>/checkpoints/step-NNNNNN/`` holds ``model.safetensors`` (the
trained weights), ``ema.safetensors`` (their EMA), ``optimizer.pt`` (an optimizer state dict, read back with
``torch.load(weights_only=True)``) and ``state.json`` (step, timings, the stage config); ``checkpoints/latest.json``
names the newest complete one and is written last. A stage saves every ``checkpoint_every`` steps, on SIGTERM /
Ctrl-C, and when its ``--minutes`` budget runs out, so ``--resume`` continues a killed run. Batch ``k`` depends only
on ``(seed, k)`` (:func:`diffinv.loop.common.batch_rng`), so a resumed run sees the data of an uninterrupted one.
``--minutes`` caps the wall time of each training stage of one invocation; a stage stopped by it still exports its
EMA weights, marked ``"complete": false``. The config of a work folder is written to ``config.json`` on first use
and is the base of every later invocation (``--config`` and the flags override it).

The recipe (the defaults of :class:`~diffinv.train.config.MiniConfig`, with the ``--preset`` alternatives in
:mod:`diffinv.train.config`) and the measurements behind each choice: ``docs/mini.md`` ("Recipe").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import torch

from diffinv.errors import DiffinvError
from diffinv.loop.common import CHECKPOINTS, LATEST, write_json
from diffinv.loop.config import upgraded
from diffinv.train.assemble import assemble, default_output
from diffinv.train.config import PRESETS, MiniConfig, UNetTrainConfig, VAETrainConfig
from diffinv.train.evaluate import evaluate_pipeline
from diffinv.train.text import import_text_encoder, train_text
from diffinv.train.unet import train_unet
from diffinv.train.vae import train_vae

CONFIG_NAME: Final[str] = "config.json"
STAGES: Final[tuple[str, ...]] = ("vae", "text", "import-text", "unet", "assemble", "eval", "all")


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dictionary update (nested objects merge, other values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m diffinv.train.mini``."""
    parser = argparse.ArgumentParser(prog="python -m diffinv.train.mini", description=__doc__.splitlines()[0])
    parser.add_argument(
        "stage", choices=STAGES, help="vae, text, import-text, unet, assemble, eval, or all (vae, text, unet, assemble)"
    )
    parser.add_argument("--work", type=Path, required=True, help="run folder (config, stage folders, checkpoints)")
    parser.add_argument("--config", type=Path, help="JSON file of MiniConfig overrides (nested objects allowed)")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="base config of a new work folder (default v1; a saved one wins)"
    )
    parser.add_argument("--seed", type=int, help="seed of the run (default 0)")
    parser.add_argument(
        "--vae-steps", type=int, help=f"VAE optimisation steps (default {VAETrainConfig.default('steps')})"
    )
    parser.add_argument(
        "--unet-steps", type=int, help=f"UNet optimisation steps (default {UNetTrainConfig.default('steps')})"
    )
    parser.add_argument("--minutes", type=float, help="wall-time cap of each training stage of this invocation")
    parser.add_argument("--resume", action="store_true", help="continue the stages from their newest checkpoints")
    parser.add_argument("--out", type=Path, help="pipeline folder of assemble/eval (default: assets/models/mini)")
    parser.add_argument(
        "--source", type=Path, help="pipeline folder whose text encoder import-text copies (default: the shipped mini)"
    )
    parser.add_argument("--probe", type=Path, help="probe folder for the evaluations (default: the shipped probe)")
    parser.add_argument("--eval-prompts", type=int, default=100, help="captions per set of the eval stage")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def resolve_config(args: argparse.Namespace) -> MiniConfig:
    """Config of ``--work``: the saved one (or the ``--preset``, default v1), updated by ``--config`` and the flags;
    saved back."""
    path = args.work / CONFIG_NAME
    data: dict[str, Any] = PRESETS[args.preset or "v1"]().to_dict()
    if path.is_file():
        data = _merge(data, upgraded(MiniConfig, json.loads(path.read_text())))
    if args.config is not None:
        try:
            overrides = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise DiffinvError(f"{args.config}: cannot read the config ({exc})") from None
        data = _merge(data, upgraded(MiniConfig, overrides))
    flags: dict[str, Any] = {"seed": args.seed}
    if args.vae_steps is not None:
        flags["vae"] = {"steps": args.vae_steps}
    if args.unet_steps is not None:
        flags["unet"] = {"steps": args.unet_steps}
    data = _merge(data, {k: v for k, v in flags.items() if v is not None})
    try:
        config = MiniConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise DiffinvError(f"invalid training config: {exc}") from None
    if args.stage in ("vae", "text", "import-text", "unet", "all"):
        args.work.mkdir(parents=True, exist_ok=True)
        write_json(path, config.to_dict())
    return config


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the requested stage(s) of :func:`build_parser`'s ``args``; returns their results (JSON-ready)."""
    config = resolve_config(args)
    torch.set_num_threads(config.num_threads)
    progress = not args.no_progress
    result: dict[str, Any] = {}
    if args.stage in ("vae", "all"):
        train_vae(config, args.work, resume=args.resume, minutes=args.minutes, progress=progress)
        result["vae"] = json.loads((args.work / "vae" / "eval.json").read_text())
    if args.stage in ("text", "all"):
        resume = args.resume and (args.work / "text" / CHECKPOINTS / LATEST).is_file()
        train_text(config, args.work, resume=resume, minutes=args.minutes, progress=progress)
        result["text"] = json.loads((args.work / "text" / "eval.json").read_text())["accuracy"]
    if args.stage == "import-text":
        source = args.source if args.source is not None else default_output()
        result["text"] = str(import_text_encoder(config, source, args.work))
    if args.stage in ("unet", "all"):
        resume = args.resume and (args.work / "unet" / CHECKPOINTS / LATEST).is_file()
        train_unet(config, args.work, resume=resume, minutes=args.minutes, progress=progress, probe_path=args.probe)
    if args.stage in ("assemble", "all"):
        result["out"] = str(assemble(config, args.work, args.out))
    if args.stage == "eval":
        folder = args.out if args.out is not None else default_output()
        result = evaluate_pipeline(config, folder, args.eval_prompts, args.probe, grid_dir=args.work).scores
        write_json(args.work / "eval.json", result)
        print(json.dumps(result, indent=2))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except DiffinvError as exc:
        print(f"python -m diffinv.train.mini: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "CONFIG_NAME",
    "STAGES",
    "build_parser",
    "main",
    "resolve_config",
    "run",
]
