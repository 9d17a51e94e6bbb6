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
:func:`v2_config`, :func:`v3_config`), ``--config FILE`` (JSON overrides of :class:`MiniConfig`, nested objects
allowed), ``--seed S``, ``--vae-steps N``, ``--unet-steps N``, ``--no-progress``.

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
   scored every ``eval_every_minutes`` (``unet/eval.jsonl``): DDIM 50 steps at guidance 7.5 on held-out single- and
   two-object captions.
4. ``assemble`` — a diffusers :class:`~diffusers.StableDiffusionPipeline` folder (fp16 safetensors, DDIM scheduler
   with SD's schedule) written to ``--out`` (default: the package's ``assets/models/mini``;
   :mod:`diffinv.train.assemble`).
5. ``eval`` — scores an assembled folder: VAE PSNR, generation accuracy with :func:`diffinv.api.generate` and the
   probe, seconds per 50-step image, load time and weight megabytes (``eval.json`` beside the stage folders;
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

Recipe (the defaults of :class:`MiniConfig`; measured on a shared 2-core CPU, one torch thread):

* Latents 4 x 16 x 16 (VAE factor 4), not SD's 8 x 8: at 64 px a small object is 11 px wide, 1.4 latent pixels at
  factor 8, so its shape has to be packed into a couple of latent vectors. With equal CPU time, a factor-4 VAE
  (16/32/64 channels, 450 steps) beat a factor-8 one (16/32/64/128, 700 steps) on held-out Shapes PSNR (21.1 vs
  20.8 dB), photo PSNR (17.3 vs 15.9 dB) and on what the probe reads back from its reconstructions (shape 30 % vs
  17 %, position 81 % vs 71 %), and the 16 x 16 UNet below costs about the same per step as a 64/128-channel 8 x 8
  one. Every consumer reads ``vae_scale_factor`` from the pipeline.
* Narrow full-resolution layers: 16 channels at 64 px run 3.5x faster than 32 (0.51 vs 1.76 s per batch of 16),
  which buys 4,500 VAE steps in ~34 min; L1 + MSE + gradient losses, EMA 0.999, 25 % photo crops.
* UNet 32/64/128 channels, cross-attention at 8 x 8, 4 x 4 and the middle (none at 16 x 16), 4 heads: a 50-step
  guided generation costs ~0.9 s on one thread (diffusers' per-module overhead dominates; wider or deeper UNets
  were 1.1-2.3 s). Text encoder: width 64, 3 layers, 32 positions (captions have at most 30 tokens + BOS + EOS).
* AdamW 1e-3 (warm-up 200, cosine to 10 %), batch 32, EMA 0.999: with identical batches, 1e-3 reached a lower loss
  than 3e-4 after 570 steps (0.042 vs 0.064).
* A pretrained, frozen text encoder (the ``text`` stage, 2,000 steps, ~5 min; 100 % held-out parsing accuracy).
  Trained jointly from scratch with the UNet instead, three runs (plain min-SNR-5; a 0.2 x0 floor; a 0.5 floor with
  30 % high-noise steps) all stayed at chance after ~3,400 steps (probe: position 12-18 %, shape ≤ 2 %) with
  backgrounds right: the x0 predicted for a caption did not change at all when its position words changed. With the
  pretrained encoder, 1,931 steps reached position 100 %, size 96 %, colour 71 %, shape 23 %, and 12,000 steps
  (76 min) shape 85 %, colour 98 % (48 held-out captions; the curve is in ``docs/mini.md``).
* Loss weighting: the x0-error weight is ``clamp(SNR, 0.2, 5)`` (min-SNR-5 plus a floor) and 30 % of the timesteps
  are drawn from ``[700, 1000)``, where only the caption decides the layout (kept from the joint-training attempts;
  not ablated with the pretrained encoder).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import torch

from diffinv.errors import DiffinvError
from diffinv.loop.common import CHECKPOINTS, LATEST, from_json, to_json, write_json
from diffinv.shapes.world import DEFAULT_WORLD
from diffinv.train.assemble import assemble, default_output
from diffinv.train.evaluate import evaluate_pipeline
from diffinv.train.text import TextTrainConfig, import_text_encoder, train_text
from diffinv.train.unet import UNetModelConfig, UNetTrainConfig, train_unet
from diffinv.train.vae import VAETrainConfig, train_vae

CONFIG_NAME: Final[str] = "config.json"
STAGES: Final[tuple[str, ...]] = ("vae", "text", "import-text", "unet", "assemble", "eval", "all")


@dataclass(frozen=True)
class MiniConfig:
    """Every hyperparameter of a mini training run."""

    vae: VAETrainConfig = field(default_factory=VAETrainConfig)
    text: TextTrainConfig = field(default_factory=TextTrainConfig)
    unet: UNetTrainConfig = field(default_factory=UNetTrainConfig)
    world: str = DEFAULT_WORLD
    """The Shapes world of the training scenes and captions (:mod:`diffinv.shapes.world`; v1 and v2: ``v2``)."""
    seed: int = 0
    num_threads: int = 1
    """Torch intra-op threads of the training processes."""
    guidance_scale: float = 7.5
    """Classifier-free guidance of the evaluations."""
    num_inference_steps: int = 50
    """DDIM steps of the evaluations."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible nested dictionary."""
        return to_json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MiniConfig:
        """Inverse of :meth:`to_dict`; missing keys keep their defaults, unknown keys raise ValueError."""
        return from_json(cls, data)


V2_UNET: Final[UNetModelConfig] = UNetModelConfig(
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
)
"""v2's UNet (issue 14): v1's 16 x 16 (32 channels) and 8 x 8 (64 channels, cross-attention) levels without its
4 x 4 level (128 channels, 3 M of its 4.1 M parameters); cross-attention at 8 x 8 down, middle and up. 1.0 M
parameters, 0.57 x v1's time per 50-step image (``benchmarks/unet_speed.py``: 6.2 vs 11.5 ms per batch-2
forward, one thread); wider 8 x 8 levels cost more than they save, the forward being arithmetic-bound here."""


def v2_config() -> MiniConfig:
    """The v2 recipe (issue 14): v1's VAE and text encoder (trained once, reused: ``train-artifacts/mini`` and
    ``import-text``), a faster UNet (:data:`V2_UNET`) trained longer, on a pool weighted towards two- and
    three-object scenes, the confused colours (pink/white, orange/red, yellow) and small objects."""
    base = MiniConfig()
    unet = replace(
        base.unet,
        model=V2_UNET,
        steps=60000,
        warmup_steps=500,
        ema_decay=0.9995,
        object_probs=(0.25, 0.4, 0.35),
        color_weights=(("pink", 2.0), ("white", 1.5), ("orange", 2.0), ("red", 1.5), ("yellow", 1.25)),
        size_weights=(("small", 1.5),),
        pool_size=65536,
        checkpoint_every=2000,
        eval_every_minutes=30.0,
    )
    return replace(base, unet=unet)


def v3_config() -> MiniConfig:
    """The v3 recipe (issue 23), a first choice to be measured: world v3 (37 shapes, up to four overlapping objects,
    fills), its VAE and text encoder trained anew (the text encoder with 64 positions: full v3 captions reach 62
    tokens), v2's UNet on a pool of v3 scenes captioned at three levels of detail (full, partial as people write
    them, short) plus 10 % empty captions."""
    base = v2_config()
    text = replace(base.unet.text, max_length=64)
    unet = replace(
        base.unet,
        text=text,
        object_probs=(0.25, 0.3, 0.25, 0.2),
        color_weights=(),
        size_weights=(),
        caption_levels=(("full", 0.4), ("partial", 0.45), ("short", 0.15)),
    )
    vae = replace(base.vae, object_probs=(1.0, 1.0, 1.0, 1.0))
    text_stage = replace(base.text, steps=3000, object_probs=(1.0, 1.0, 1.0, 1.0))
    return replace(base, world="v3", vae=vae, text=text_stage, unet=unet)


PRESETS: Final[Mapping[str, Callable[[], MiniConfig]]] = {"v1": MiniConfig, "v2": v2_config, "v3": v3_config}
"""Named base configs of a new work folder (``--preset``); ``v1`` (the default) is the shipped model's recipe."""


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
    parser.add_argument("--vae-steps", type=int, help=f"VAE optimisation steps (default {VAETrainConfig.steps})")
    parser.add_argument("--unet-steps", type=int, help=f"UNet optimisation steps (default {UNetTrainConfig.steps})")
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
        data = _merge(data, json.loads(path.read_text()))
    if args.config is not None:
        try:
            data = _merge(data, json.loads(Path(args.config).read_text()))
        except (OSError, ValueError) as exc:
            raise DiffinvError(f"{args.config}: cannot read the config ({exc})") from None
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
    "PRESETS",
    "V2_UNET",
    "MiniConfig",
    "build_parser",
    "main",
    "resolve_config",
    "run",
    "v2_config",
]
