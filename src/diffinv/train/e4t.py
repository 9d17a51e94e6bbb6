"""Pre-training of the E4T domain encoder (Gal et al. 2023) on the Shapes domain: ``python -m diffinv.train.e4t``.

Each step draws a batch of pre-training novel shapes (:func:`diffinv.shapes.novel.pretraining_shape`; the
held-out evaluation shapes and ``moon`` are never drawn), renders each twice — the encoder's input (a large object
of a random colour and place on white, as a user's shot) and the target (another colour, place and background) —
and minimises the denoising loss of the target under its caption, where the concept's word is the encoder's
w = e_class + Δw and the UNet carries the encoder's offsets for that prompt, plus E4T's L2 regularisers on Δw and on
the offset coefficients. The model (text encoder, UNet, VAE) stays frozen; the encoder (CNN, heads, offset bases)
learns. Seeded, resumable (``--resume``), checkpointed like the mini model's stages; the result goes to
``OUT/final`` (``--ship`` also copies it into the package).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import torch
from torch import Tensor

from diffinv import images
from diffinv.denoiser import Denoiser, Schedule
from diffinv.errors import DiffinvError, check_integer, check_number
from diffinv.loop.common import FINAL, batch_rng, make_optimizer
from diffinv.loop.config import TrainingConfig
from diffinv.loop.stage import restore_stage, run_stage
from diffinv.personalization.base import Concept
from diffinv.personalization.e4t_encoder import E4TEncoder, EncoderConfig, offset_layers, per_prompt_offsets
from diffinv.personalization.loading import loaded
from diffinv.personalization.problem import frozen, substituted, word_vector
from diffinv.pipelines import builtin_model_path, default_size, fingerprint, load_pipeline
from diffinv.shapes.novel import HELDOUT_OFFSET, concept_caption, pretraining_shape
from diffinv.shapes.vocab import ALLOWED_COLORS, BACKGROUNDS, POSITIONS
from diffinv.shapes.world import DEFAULT_WORLD, WORLDS, get_world
from diffinv.text import text_embeddings

STREAM: Final[int] = 0x653474  # "e4t"
TOKEN: Final[str] = "<e4t-concept>"
SHIPPED: Final[str] = "mini-e4t"
"""The shipped encoder's folder under ``diffinv/assets/models`` (for the built-in model)."""


@dataclass(frozen=True)
class E4TTrainConfig(TrainingConfig):
    """Every hyperparameter of an encoder pre-training run (defaults: our choice for the built-in model; E4T's
    regularisers are L2 penalties on the word offset and the weight offsets, weights ours)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    steps: int = 12_000
    batch_size: int = 8
    seed: int = 0
    learning_rate: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    word_reg: float = 1e-3
    """Weight of mean ‖Δw‖² (Δw: the word's offset from the class word's embedding)."""
    coefficient_reg: float = 1e-4
    """Weight of mean ‖c‖² over layers (c: the offsets' per-image coefficients)."""
    caption_dropout: float = 0.2
    """Probability of an empty caption (the offsets still applied). The offsets change the UNet for every prompt,
    the empty one too, and classifier-free guidance amplifies what they do to it: without this the unconditional
    prediction under offsets is never trained and guided generations fall apart (measured: docs/personalization.md,
    "E4T's encoder")."""
    checkpoint_every: int = 500
    max_minutes: float = 60.0
    num_threads: int = 1
    world: str = DEFAULT_WORLD
    """The Shapes world whose layout and grammar the pre-training images and captions follow (the model's)."""

    def __post_init__(self) -> None:
        get_world(self.world)  # ValueError naming the worlds
        for name in ("steps", "batch_size", "checkpoint_every", "num_threads"):
            check_integer(name, getattr(self, name), minimum=1)
        check_integer("seed", self.seed, minimum=0)
        check_integer("warmup_steps", self.warmup_steps, minimum=0)
        check_number("learning_rate", self.learning_rate, minimum=0, above=True)
        for name in ("min_lr_ratio", "weight_decay", "grad_clip", "word_reg", "coefficient_reg", "max_minutes"):
            check_number(name, getattr(self, name), minimum=0)
        check_number("caption_dropout", self.caption_dropout, minimum=0, maximum=1)


def _render_batch(
    rng: np.random.Generator, batch: int, size: int, caption_dropout: float, world: str = DEFAULT_WORLD
) -> tuple[Tensor, Tensor, list[str]]:
    """Encoder inputs ``(B, 3, S, S)``, targets ``(B, 3, S, S)`` (both in [-1, 1]) and the targets' captions (empty
    with probability ``caption_dropout``), in ``world``'s layout and grammar."""
    inputs, targets, captions = [], [], []
    for index in rng.integers(HELDOUT_OFFSET, size=batch):
        shape = dataclasses.replace(pretraining_shape(int(index)), world=world)
        white = ALLOWED_COLORS["white"]
        shot, _ = shape.render(white[rng.integers(len(white))], POSITIONS[rng.integers(len(POSITIONS))], "white", size)
        background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        color = ALLOWED_COLORS[background][rng.integers(len(ALLOWED_COLORS[background]))]
        position = POSITIONS[rng.integers(len(POSITIONS))]
        target, _ = shape.render(color, position, background, size)
        inputs.append(shot)
        targets.append(target)
        dropped = rng.random() < caption_dropout
        captions.append("" if dropped else concept_caption(color, position, background, TOKEN, world))

    def to_pixels(batch_images: list[np.ndarray]) -> Tensor:
        return torch.from_numpy(np.stack(batch_images)).permute(0, 3, 1, 2).float() / 127.5 - 1

    return to_pixels(inputs), to_pixels(targets), captions


def train_e4t(
    config: E4TTrainConfig,
    work: Path,
    *,
    model: str | None = None,
    resume: bool = False,
    minutes: float | None = None,
    progress: bool = True,
) -> E4TEncoder:
    """Pre-train an encoder for ``model`` (default: the built-in model) into ``work``; returns it (eval mode)."""
    torch.set_num_threads(config.num_threads)
    started = time.perf_counter()
    pipe = load_pipeline(model)
    text_encoder = pipe.text_encoder
    class_vector = word_vector(pipe, config.encoder.class_word, "class word").to(text_encoder.device)
    torch.manual_seed(config.seed)
    encoder = E4TEncoder(config.encoder, offset_layers(pipe.unet), int(class_vector.numel()))
    optimizer = make_optimizer([encoder], config.learning_rate, config.weight_decay)
    modules = {"encoder": encoder}
    state = restore_stage("e4t", work, modules, None, optimizer, config, resume)
    denoiser = Denoiser(pipe.unet, Schedule.training(pipe.scheduler.config))
    size = default_size(pipe)[0]

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        rng, generator = batch_rng(config.seed, STREAM, step)
        inputs, targets, captions = _render_batch(rng, config.batch_size, size, config.caption_dropout, config.world)
        word, coefficients = encoder(inputs)
        vectors = (class_vector + word).unsqueeze(1)
        with substituted(pipe, [TOKEN], vectors), per_prompt_offsets(pipe.unet, encoder, coefficients):
            embeds = text_embeddings(pipe, captions)
            loss = denoiser.denoising_loss(images.encode(pipe.vae, targets), embeds, generator).mean()
        reg = (
            config.word_reg * word.pow(2).sum(1).mean()
            + config.coefficient_reg * coefficients.pow(2).sum((1, 2)).mean()
        )
        return loss + reg, {"denoise": float(loss.detach()), "reg": float(reg.detach())}

    print(f"e4t: {sum(p.numel() for p in encoder.parameters()):,} encoder parameters, "
          f"{len(encoder.layers)} adapted layers, from step {state['step']}", flush=True)  # fmt: skip
    encoder.train()
    with loaded(pipe, [Concept(TOKEN, class_vector.unsqueeze(0))]), frozen(pipe.unet, text_encoder, pipe.vae):
        run = run_stage("e4t", work, modules, None, optimizer, config, config.seed, state, batch_loss,
                        minutes=minutes, progress=progress, start_wall=started)  # fmt: skip
    encoder.eval()
    trained = {"steps": run.step, "complete": run.step >= config.steps, "config": config.to_dict(),
               "loss_ema": run.state.get("loss_ema"), **run.clock.totals()}  # fmt: skip
    encoder.save(work / FINAL, fingerprint(pipe, base_model=True), trained)
    return encoder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m diffinv.train.e4t", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (checkpoints, final/)")
    parser.add_argument("--model", default=None, help="the model to pre-train for (default: the built-in model)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--minutes", type=float, default=None, help="time budget of this run (default: the config's)")
    parser.add_argument(
        "--steps", type=int, default=None, help=f"total steps (default: {E4TTrainConfig.default('steps')})"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument(
        "--world", choices=sorted(WORLDS), default=DEFAULT_WORLD, help="the model's Shapes world (default: %(default)s)"
    )
    parser.add_argument("--ship", action="store_true", help="copy final/ into the package as the shipped encoder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        overrides = {"num_threads": args.threads, "world": args.world} | ({"steps": args.steps} if args.steps else {})
        config = E4TTrainConfig(**overrides)
        train_e4t(config, args.out, model=args.model, resume=args.resume, minutes=args.minutes,
                  progress=not args.quiet)  # fmt: skip
        if args.ship:
            target = builtin_model_path("mini").parent / SHIPPED
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(args.out / FINAL, target)
            print(f"shipped {target}")
    except DiffinvError as exc:
        print(f"python -m diffinv.train.e4t: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
