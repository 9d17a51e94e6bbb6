"""Train the Shapes attribute probe (:mod:`diffinv.shapes.probe`) on renders generated on the fly.

Usage::

    python -m diffinv.train.probe --out runs/probe [--steps N] [--batch-size B] [--seed S] [--resume]
    python -m diffinv.train.probe --eval-only [--out runs/probe]   # evaluate a trained (default: shipped) probe

Every training image is a freshly sampled scene of a random split (train, held-out shape or novel
combination -- the probe must read every shape and colour), rendered, then degraded at random (JPEG,
small shifts, colour jitter, down- and up-sampling, Gaussian blur, Gaussian noise;
:mod:`diffinv.train.augment`) so that the probe also reads the blurrier, noisier images a diffusion model
generates.

Seeds: the initial weights come from ``numpy.random.SeedSequence(seed, spawn_key=(INIT_STREAM,))``;
batch ``k`` is drawn from ``SeedSequence(seed, spawn_key=(TRAIN_STREAM, k))``, a stream disjoint from the
dataset streams of :func:`diffinv.shapes.splits.item_rng` (whose spawn keys have three entries);
evaluation uses :func:`diffinv.shapes.splits.dataset` on the test split, whose scene contents never occur
in the train split. A batch depends only on ``(seed, k)``, so a resumed run sees exactly the data an
uninterrupted one would.

Output folder ``--out``:

* ``train_config.json`` -- the :class:`TrainConfig` of the run (the single home of its hyperparameters);
* ``checkpoints/step-NNNNNN/`` -- ``model.safetensors`` (the probe's state dict), ``optimizer.pt`` (an
  optimizer state dict, read back with ``torch.load(weights_only=True)``) and ``state.json`` (step, seed,
  timings, the config); ``checkpoints/latest.json`` names the newest complete one and is written last,
  atomically (the loop and its checkpoints are :mod:`diffinv.loop.stage`'s);
* ``probe.safetensors`` + ``config.json`` -- the final probe (:meth:`ShapesProbe.from_pretrained` reads
  the folder), and ``eval.json`` -- its accuracy table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor

from diffinv.errors import DiffinvError
from diffinv.loop.common import batch_rng, init_seed, make_optimizer, write_json
from diffinv.loop.config import TrainingConfig, upgraded
from diffinv.loop.stage import restore_stage, run_stage
from diffinv.shapes.probe import (
    AGREEMENT_KEYS,
    CONFIG_FILE,
    NUM_CELLS,
    ProbeConfig,
    ShapesProbe,
    encode_targets,
    mean_agreement,
    probe_loss,
    read_scenes,
)
from diffinv.shapes.render import render
from diffinv.shapes.scene import Scene
from diffinv.shapes.splits import SPLITS, dataset, is_train_object, sample_scene
from diffinv.shapes.vocab import POSITIONS
from diffinv.shapes.world import get_world
from diffinv.train.augment import AugmentConfig, augment, gaussian_blur, jpeg

TRAIN_STREAM: Final[int] = 0x70726F6265  # "probe"
"""First spawn-key entry of the training batches' seed sequences."""

DEGRADE_STREAM: Final[int] = 0x6465677261  # "degra"
"""First spawn-key entry of the noise of the degraded evaluation."""

CONFIG_NAME: Final[str] = "train_config.json"
EVAL_NAME: Final[str] = "eval.json"


# --------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig(TrainingConfig):
    """Every hyperparameter of a probe training run."""

    model: ProbeConfig = field(default_factory=ProbeConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    steps: int = 3600
    batch_size: int = 64
    seed: int = 0
    learning_rate: float = 2e-3
    """Peak learning rate of AdamW (linear warm-up, then cosine decay to ``learning_rate * min_lr_ratio``)."""
    min_lr_ratio: float = 0.02
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    empty_cells_per_image: int = 2
    """Empty cells of every training image the loss uses (with all its occupied cells); the others are
    skipped, which spends the compute on objects (``9`` uses every cell)."""
    split_mix: tuple[tuple[str, float], ...] = (("train", 0.5), ("heldout_shape", 0.25), ("novel_combo", 0.25))
    """Splits training scenes are drawn from, with their probabilities (the test split is never used)."""
    checkpoint_every: int = 200
    eval_images: int = 2000
    """Images per split and condition of the final evaluation."""
    eval_seed: int = 1
    """Seed of :func:`diffinv.shapes.splits.dataset` for the evaluation scenes."""
    eval_splits: tuple[str, ...] = ("test", "heldout_shape", "novel_combo")
    degraded_blur_sigma: float = 1.0
    """Gaussian blur of the "degraded" evaluation condition (pixels)."""
    degraded_noise_std: float = 0.05
    """Gaussian noise of the "degraded" evaluation condition (image range ``[0, 1]``)."""
    num_threads: int = 1
    """Torch intra-op threads."""

    def __post_init__(self) -> None:
        if not 0 <= self.empty_cells_per_image <= NUM_CELLS:
            raise ValueError(f"TrainConfig.empty_cells_per_image must be in [0, {NUM_CELLS}]")
        for name in ("steps", "batch_size", "checkpoint_every", "eval_images", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        splits = [s for s, _ in self.split_mix]
        if "test" in splits or any(s not in SPLITS for s in splits) or not splits:
            raise ValueError(f"TrainConfig.split_mix must draw from {SPLITS} without 'test', got {splits}")
        if any(p < 0 for _, p in self.split_mix) or sum(p for _, p in self.split_mix) <= 0:
            raise ValueError("TrainConfig.split_mix probabilities must be non-negative with a positive sum")
        if any(s not in SPLITS for s in self.eval_splits):
            raise ValueError(f"TrainConfig.eval_splits must be among {SPLITS}, got {self.eval_splits}")


# --------------------------------------------------------------------------------------------------------
# Data and augmentation
# --------------------------------------------------------------------------------------------------------


def _to_tensor(arrays: Sequence[np.ndarray]) -> Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255.0)


def training_batch(config: TrainConfig, step: int) -> tuple[Tensor, list[Scene], Tensor]:
    """Training batch ``step`` (deterministic in ``(config.seed, step)``).

    Returns:
        Degraded renders ``(B, 3, S, S)`` in ``[0, 1]``; their scenes; and a boolean mask ``(B * 9,)`` of
        the cells to train on (every occupied cell and ``config.empty_cells_per_image`` random empty ones).
    """
    rng, generator = batch_rng(config.seed, TRAIN_STREAM, step)
    splits = [s for s, _ in config.split_mix]
    probs = np.array([p for _, p in config.split_mix], dtype=np.float64)
    probs /= probs.sum()
    scenes, arrays = [], []
    aug = config.augment
    mask = np.zeros((config.batch_size, NUM_CELLS), dtype=bool)
    for i in range(config.batch_size):
        scene = sample_scene(rng, splits[int(rng.choice(len(splits), p=probs))], world=config.model.world)
        image = render(scene, config.model.image_size)
        if rng.random() < aug.jpeg_prob:
            image = jpeg(image, int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1)))
        scenes.append(scene)
        arrays.append(image)
        occupied = [POSITIONS.index(o.position) for o in scene.objects]
        empty = [c for c in range(NUM_CELLS) if c not in occupied]
        mask[i, occupied] = True
        mask[i, rng.choice(empty, size=min(len(empty), config.empty_cells_per_image), replace=False)] = True
    return augment(_to_tensor(arrays), aug, generator), scenes, torch.from_numpy(mask.reshape(-1))


# --------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------

CONDITIONS: Final[tuple[str, ...]] = ("clean", "degraded")


def special_accuracy(preds: Sequence[Scene], truths: Sequence[Scene]) -> float:
    """Fraction of the held-out-shape / novel-combination objects of ``truths`` read entirely right
    (an object of the same shape, colour, size and fill in the same cell); NaN if there are none."""
    right = total = 0
    for pred, truth in zip(preds, truths, strict=True):
        world = get_world(truth.world)
        read = {(o.position, o.shape, o.color, o.size, o.fill) for o in pred.objects}
        for o in truth.objects:
            if not is_train_object(o, world):
                total += 1
                right += (o.position, o.shape, o.color, o.size, o.fill) in read
    return right / total if total else float("nan")


def evaluate(probe: ShapesProbe, config: TrainConfig) -> dict[str, dict[str, dict[str, float]]]:
    """Mean :func:`~diffinv.shapes.probe.scene_agreement` of the probe on fresh renders.

    For every split of ``config.eval_splits`` and both conditions (``"clean"`` renders; ``"degraded"``:
    blur ``degraded_blur_sigma`` then noise ``degraded_noise_std``), reads ``config.eval_images`` scenes
    of ``dataset(split, n, config.eval_seed)``. Returns ``table[split][condition][key]`` with the keys of
    :data:`~diffinv.shapes.probe.AGREEMENT_KEYS` plus ``"special"`` (see :func:`special_accuracy`).
    """
    table: dict[str, dict[str, dict[str, float]]] = {}
    size = probe.config.image_size
    for split_index, split in enumerate(config.eval_splits):
        truths = dataset(split, config.eval_images, config.eval_seed, world=config.model.world)
        clean = _to_tensor([render(s, size) for s in truths])
        sequence = np.random.SeedSequence(config.eval_seed, spawn_key=(DEGRADE_STREAM, split_index))
        generator = torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint32)[0]))
        sigma = torch.full((clean.shape[0],), config.degraded_blur_sigma)
        degraded = gaussian_blur(clean, sigma) if config.degraded_blur_sigma > 0 else clean
        degraded = (degraded + config.degraded_noise_std * torch.randn(degraded.shape, generator=generator)).clamp(0, 1)
        table[split] = {}
        for condition, pixels in zip(CONDITIONS, (clean, degraded), strict=True):
            preds = read_scenes(pixels, probe)
            table[split][condition] = {**mean_agreement(preds, truths), "special": special_accuracy(preds, truths)}
    return table


def format_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """Plain-text accuracy table (percentages) of :func:`evaluate`'s result."""
    first = next(iter(next(iter(table.values())).values()))
    keys = (*AGREEMENT_KEYS, *(["fill"] if "fill" in first else []), "special")
    header = f"{'split':<14} {'condition':<9} " + " ".join(f"{k:>10}" for k in keys)
    lines = [header, "-" * len(header)]
    for split, conditions in table.items():
        for condition, scores in conditions.items():
            cells = " ".join(f"{'-':>10}" if math.isnan(scores[k]) else f"{100 * scores[k]:>10.2f}" for k in keys)
            lines.append(f"{split:<14} {condition:<9} {cells}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------


def probe_stage_parts(config: TrainConfig) -> tuple[dict[str, ShapesProbe], torch.optim.AdamW]:
    """What probe training trains, freshly initialised from ``config.seed`` (the global RNG untouched): its modules
    (``{"": probe}``: checkpoints hold the probe's own state dict, unprefixed) and the optimizer; a checkpoint loads
    into them."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed(config.seed))
        probe = ShapesProbe(config.model)
    return {"": probe}, make_optimizer([probe], config.learning_rate, config.weight_decay)


def train(config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> ShapesProbe:
    """Train a probe into ``out`` (see the module docstring for the layout); returns it in eval mode.

    With ``resume``, continues from the newest checkpoint of ``out`` up to ``config.steps``. Does not
    evaluate (see :func:`evaluate`). Raises DiffinvError, after a checkpoint, when SIGTERM stops the run.
    """
    out = Path(out)
    torch.set_num_threads(config.num_threads)
    modules, optimizer = probe_stage_parts(config)
    probe = modules[""]
    state = restore_stage("probe", out, modules, None, optimizer, config, resume)
    write_json(out / CONFIG_NAME, config.to_dict())

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        images, scenes, cells = training_batch(config, step)
        logits = probe.forward_cells(probe.crops(images)[cells])
        targets = encode_targets(scenes, config.model.world_spec).select(cells)
        return probe_loss(logits, targets, config.label_smoothing)

    probe.train()
    run = run_stage("probe", out, modules, None, optimizer, config, config.seed, state, batch_loss, progress=progress)
    if run.step < config.steps:
        raise DiffinvError(f"{out}: training stopped at step {run.step} of {config.steps}; --resume continues")
    probe.eval()
    probe.save_pretrained(out, metadata={"steps": run.step, "seed": config.seed, **run.clock.totals()})
    return probe


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m diffinv.train.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="run folder (checkpoints, final probe, eval.json)")
    parser.add_argument("--steps", type=int, help=f"total optimisation steps (default {TrainConfig.steps})")
    parser.add_argument("--batch-size", type=int, help=f"images per step (default {TrainConfig.batch_size})")
    parser.add_argument("--seed", type=int, help=f"seed of the training stream (default {TrainConfig.seed})")
    parser.add_argument("--config", type=Path, help="JSON file of TrainConfig overrides (nested objects allowed)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of --out")
    parser.add_argument("--eval-only", action="store_true", help="evaluate the probe in --out (default: shipped)")
    parser.add_argument("--eval-images", type=int, help=f"images per split (default {TrainConfig.eval_images})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _requested_config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any]]:
    """Config from defaults, ``--config`` and flags; also returns the explicitly requested overrides."""
    data: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise DiffinvError(f"{args.config}: cannot read the config ({exc})") from None
    data = upgraded(TrainConfig, data)
    flags = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "eval_images": args.eval_images}
    data.update({k: v for k, v in flags.items() if v is not None})
    try:
        return TrainConfig.from_dict(data), data
    except (TypeError, ValueError) as exc:
        raise DiffinvError(f"invalid training config: {exc}") from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    config, overrides = _requested_config(args)
    if args.eval_only:
        torch.set_num_threads(config.num_threads)
        probe = ShapesProbe.from_pretrained(args.out)
        table = evaluate(probe, config)
        print(format_table(table))
        return {"eval": table}
    if args.out is None:
        raise DiffinvError("--out is required for training")
    if args.resume:
        saved_path = args.out / CONFIG_NAME
        if not saved_path.is_file():
            raise DiffinvError(f"{args.out}: no {CONFIG_NAME} to resume from")
        saved = TrainConfig.from_dict(json.loads(saved_path.read_text()))
        mutable = {"steps", "eval_images"}
        wanted, stored = config.to_dict(), saved.to_dict()
        clashes = [k for k in overrides if k not in mutable and wanted[k] != stored[k]]
        if clashes:
            raise DiffinvError(f"cannot resume with a different {', '.join(clashes)} than the run in {args.out}")
        config = dataclasses.replace(saved, **{k: getattr(config, k) for k in mutable if k in overrides})
    probe = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    table = evaluate(probe, config)
    write_json(args.out / EVAL_NAME, table)
    print(format_table(table))
    state = json.loads((args.out / CONFIG_FILE).read_text())["metadata"]
    print(
        f"probe: {probe.num_parameters():,} parameters, {state['steps']} steps, "
        f"{state['train_cpu_seconds']:.0f} s CPU / {state['train_wall_seconds']:.0f} s wall of training"
    )
    return {"eval": table, **state}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except DiffinvError as exc:
        print(f"python -m diffinv.train.probe: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
