"""The optimisation loop of a training stage, shared by the stages of :mod:`diffinv.train.mini`,
:mod:`diffinv.train.probe`, :mod:`diffinv.train.e4t` and the personalization methods: :func:`restore_stage`
(fresh start or resume from the newest checkpoint), then :func:`run_stage` (warm-up + cosine LR, gradient
clipping, an optional EMA, checkpoints, SIGTERM and time budget).

Checkpoints follow the layout of :mod:`diffinv.loop.common`: :data:`~diffinv.loop.common.MODEL_FILE` holds the
modules' :func:`~diffinv.loop.common.flat_state`, :data:`~diffinv.loop.common.EMA_FILE` its EMA (stages with
one), and ``state.json`` the :class:`StageRun` snapshot (step, seed, loss EMA, EMA updates, stage config, timings).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm import tqdm

from diffinv.errors import DiffinvError
from diffinv.loop.common import (
    CHECKPOINTS,
    EMA,
    EMA_FILE,
    LATEST,
    MODEL_FILE,
    Clock,
    StopFlag,
    flat_state,
    learning_rate,
    load_flat_state,
    read_checkpoint,
    sigterm_sets,
    write_checkpoint,
)


def save_checkpoint(
    folder: Path,
    modules: Mapping[str, nn.Module],
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write ``folder/checkpoints/step-NNNNNN/`` (:data:`MODEL_FILE`: the modules' :func:`flat_state`,
    :data:`EMA_FILE`: its EMA if any, the optimizer and ``state``) with :func:`write_checkpoint`."""
    tensors = {MODEL_FILE: (flat_state(modules), {"step": str(state["step"])})}
    if ema is not None:
        tensors[EMA_FILE] = (ema.state(), {"updates": str(ema.updates)})
    return write_checkpoint(folder, tensors, optimizer, state, keep)


def load_checkpoint(
    folder: Path, modules: Mapping[str, nn.Module], ema: EMA | None, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore the newest checkpoint of ``folder`` into the modules, the EMA (if any) and the optimizer; returns
    its state."""
    target, state = read_checkpoint(folder, optimizer)
    load_flat_state(modules, load_file(target / MODEL_FILE))
    if ema is not None:
        ema.load(load_file(target / EMA_FILE), int(state["ema_updates"]))
    return state


MUTABLE_FIELDS: Final[frozenset[str]] = frozenset(
    {"steps", "max_minutes", "checkpoint_every", "eval_every_minutes", "eval_prompts", "eval_images"}
)
"""Stage-config fields a resumed stage may change (``steps`` may grow; the LR schedule then stretches)."""


class StageConfig(Protocol):
    """What :func:`run_stage` reads of a stage's config (a :class:`~diffinv.config.Config`, whose
    :meth:`~diffinv.config.Config.to_dict` every ``state.json`` holds and whose ``from_dict`` reads it back)."""

    steps: int
    learning_rate: float
    warmup_steps: int
    min_lr_ratio: float
    grad_clip: float
    checkpoint_every: int

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Any, name: str | None = None) -> StageConfig: ...


def _frozen_part(config_json: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config_json.items() if k not in MUTABLE_FIELDS}


def check_resumable(state: Mapping[str, Any], stage_config: StageConfig, stage: str) -> None:
    """Refuse (DiffinvError) to resume from a checkpoint whose saved stage config differs from ``stage_config``
    in a field outside :data:`MUTABLE_FIELDS`; a checkpoint without a saved config is accepted. Fields added to
    the config after the checkpoint was written count with their defaults (which keep the old behaviour), and
    settings renamed since are read under their new names (:class:`~diffinv.loop.config.TrainingConfig`)."""
    saved = state.get("config")
    if saved is None:
        return
    try:
        saved = type(stage_config).from_dict(saved).to_dict()
    except (TypeError, ValueError) as exc:
        raise DiffinvError(f"cannot resume the {stage} stage: its checkpoint's config is unreadable ({exc})") from None
    if _frozen_part(saved) != _frozen_part(stage_config.to_dict()):
        raise DiffinvError(f"cannot resume the {stage} stage with a different config than its checkpoint's")


def restore_stage(
    stage: str,
    folder: Path,
    modules: Mapping[str, nn.Module],
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    stage_config: StageConfig,
    resume: bool,
) -> dict[str, Any]:
    """Resume or refuse: with ``resume``, load the newest checkpoint of ``folder`` (its frozen config fields must
    match ``stage_config``); without, refuse a ``folder`` that already holds one. Creates ``folder`` and returns
    the state to start from (``{"step": 0, ...}`` for a fresh run)."""
    state: dict[str, Any] = {"step": 0, "train_wall_seconds": 0.0, "train_cpu_seconds": 0.0}
    if resume:
        state = load_checkpoint(folder, modules, ema, optimizer)
        check_resumable(state, stage_config, stage)
    elif (folder / CHECKPOINTS / LATEST).exists():
        raise DiffinvError(f"{folder} already holds a checkpoint; pass --resume or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return state


@dataclass(frozen=True)
class StageRun:
    """What :func:`run_stage` did: it trained from step ``start_step`` to step ``step``; ``state`` is the final
    snapshot (what a checkpoint's ``state.json`` holds then) and ``clock`` the stage's clock."""

    start_step: int
    step: int
    state: dict[str, Any]
    clock: Clock


def run_stage(
    stage: str,
    folder: Path,
    modules: Mapping[str, nn.Module],
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    stage_config: StageConfig,
    seed: int,
    state: Mapping[str, Any],
    compute_loss: Callable[[int], tuple[Tensor, dict[str, float]]],
    *,
    minutes: float | None = None,
    progress: bool = True,
    loss_ema_weight: float = 0.02,
    clip_parameters: Iterable[Tensor] | None = None,
    after_step: Callable[[int, Clock], None] | None = None,
    start_wall: float | None = None,
) -> StageRun:
    """The optimisation loop of a training stage, from ``state`` (see :func:`restore_stage`) to
    ``stage_config.steps``.

    Step ``k`` sets every param group's LR to :func:`learning_rate` × its ``"lr_scale"`` (default 1), calls
    ``compute_loss(k)`` (the scalar loss of batch ``k`` and numbers shown in the progress bar), back-propagates,
    clips the gradient norm of ``clip_parameters`` (default: the modules' parameters; their order is the order of
    the norm's sum, so it is kept per stage) to ``stage_config.grad_clip``, steps the optimizer and the EMA (if
    any), then calls ``after_step(k + 1, clock)``. It checkpoints (:func:`save_checkpoint`) every
    ``checkpoint_every`` steps, at the end, when SIGTERM or the time budget stops it, and on Ctrl-C (re-raised).
    The budget is ``minutes`` (``0``: none), else ``stage_config.max_minutes`` (none if it has no such field),
    counted from ``start_wall`` (default now).

    ``loss_ema_weight`` is the weight of a new loss in the saved loss EMA, whose decay is ``1 - loss_ema_weight``
    (given this way round because ``1 - 0.02 == 0.98`` in floating point while ``1 - 0.98 != 0.02``).
    """
    budget = getattr(stage_config, "max_minutes", 0.0) if minutes is None else minutes
    wall = time.perf_counter() if start_wall is None else start_wall
    clock = Clock(state["train_wall_seconds"], state["train_cpu_seconds"], budget * 60.0, start_wall=wall)
    start_step = step = int(state["step"])
    loss_ema: float | None = state.get("loss_ema")
    flag = StopFlag()
    if clip_parameters is None:
        clip_parameters = [p for module in modules.values() for p in module.parameters()]
    params = list(clip_parameters)

    def snapshot() -> dict[str, Any]:
        ema_updates = {} if ema is None else {"ema_updates": ema.updates}
        return {"step": step, "seed": seed, "loss_ema": loss_ema, **ema_updates, "config": stage_config.to_dict(),
                **clock.totals()}  # fmt: skip

    steps = stage_config.steps
    bar = tqdm(total=steps, initial=step, desc=stage, disable=not progress, dynamic_ncols=True, mininterval=5)
    with sigterm_sets(flag):
        try:
            while step < steps and not flag:
                rate = learning_rate(
                    step, stage_config.learning_rate, steps, stage_config.warmup_steps, stage_config.min_lr_ratio
                )
                for group in optimizer.param_groups:
                    group["lr"] = rate * group.get("lr_scale", 1.0)
                loss, terms = compute_loss(step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, stage_config.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update()
                step += 1
                value = float(loss.detach())
                loss_ema = value if loss_ema is None else (1.0 - loss_ema_weight) * loss_ema + loss_ema_weight * value
                bar.update(1)
                bar.set_postfix(loss=f"{loss_ema:.4f}", **{k: f"{v:.4f}" for k, v in terms.items()}, refresh=False)
                if clock.over_budget():
                    flag.reason = f"time budget of {budget:g} min"
                if step % stage_config.checkpoint_every == 0 or step == steps or flag:
                    save_checkpoint(folder, modules, ema, optimizer, snapshot())
                if after_step is not None:
                    after_step(step, clock)
        except KeyboardInterrupt:
            if step > start_step:
                save_checkpoint(folder, modules, ema, optimizer, snapshot())
            bar.close()
            raise
    bar.close()
    if flag:
        print(f"{stage}: stopped at step {step}/{steps} ({flag.reason}); --resume continues", flush=True)
    return StageRun(start_step, step, snapshot(), clock)


__all__ = [
    "MUTABLE_FIELDS",
    "StageConfig",
    "StageRun",
    "check_resumable",
    "load_checkpoint",
    "restore_stage",
    "run_stage",
    "save_checkpoint",
]
