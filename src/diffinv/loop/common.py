"""Pieces shared by everything that trains (:mod:`diffinv.train.mini` and its stages, :mod:`diffinv.train.probe`,
:mod:`diffinv.train.e4t`, the personalization methods).

Atomic JSON files, the warm-up + cosine learning rate, the AdamW parameter groups, seeds of initial weights and of
batches, an EMA of module weights, the checkpoint folder layout, a SIGTERM stop flag and a wall/CPU clock with a time
budget. The optimisation loop of a stage that uses them is :mod:`diffinv.loop.stage`; the configs it runs derive
from :class:`diffinv.config.Config` (training runs': :class:`diffinv.loop.config.TrainingConfig`).

Checkpoint layout (all of them): ``<folder>/checkpoints/step-NNNNNN/`` holds safetensors files of weights
(:data:`MODEL_FILE`, and :data:`EMA_FILE` for a stage with an EMA), ``optimizer.pt`` (an optimizer state dict,
read back with ``torch.load(weights_only=True)``) and ``state.json`` (step, seed, loss EMA, timings, the stage
config's :meth:`~diffinv.config.Config.to_dict`); ``checkpoints/latest.json`` (``{"step": N, "dir":
"step-NNNNNN"}``) names the newest complete one and is written last, atomically.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from diffinv.errors import DiffinvError
from diffinv.io import atomic_write

INIT_STREAM: Final[int] = 0x696E6974  # "init"
"""First spawn-key entry of the seeds of initial weights (:func:`init_seed`)."""

CHECKPOINTS: Final[str] = "checkpoints"
LATEST: Final[str] = "latest.json"
MODEL_FILE: Final[str] = "model.safetensors"
EMA_FILE: Final[str] = "ema.safetensors"
FINAL: Final[str] = "final"
"""Sub-folder of a mini stage's folder holding its exported (EMA) weights."""
OPTIMIZER_FILE: Final[str] = "optimizer.pt"
STATE_FILE: Final[str] = "state.json"


# --------------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (with a final newline) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


# --------------------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------------------


def learning_rate(step: int, peak: float, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Learning rate of optimisation step ``step`` (0-based): linear warm-up to ``peak``, then cosine decay to
    ``peak * min_lr_ratio``."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    floor = peak * min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(modules: Sequence[nn.Module], learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and kernels only (not biases, norms, or embedding tables)."""
    decay, no_decay = [], []
    for module in modules:
        embeddings = {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        for p in module.parameters():
            (decay if p.ndim > 1 and id(p) not in embeddings else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate)


def n_params(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def init_seed(seed: int, *key: int) -> int:
    """Torch seed of initial weights: ``SeedSequence(seed, spawn_key=(INIT_STREAM, *key))``'s first word."""
    return int(np.random.SeedSequence(seed, spawn_key=(INIT_STREAM, *key)).generate_state(1)[0])


def batch_rng(seed: int, stream: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Independent numpy and torch generators of batch ``step`` of a training ``stream``.

    ``SeedSequence(seed, spawn_key=(stream, step))``: two entries, disjoint from the three-entry keys of
    :func:`diffinv.shapes.splits.item_rng` (evaluation scenes). A batch depends only on ``(seed, step)``, so a
    resumed run sees exactly the data of an uninterrupted one.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(stream, step))
    torch_seed = int(sequence.generate_state(1, dtype=np.uint32)[0])
    return np.random.default_rng(sequence), torch.Generator().manual_seed(torch_seed)


class EMA:
    """Exponential moving average of a set of modules' floating-point state (parameters and buffers).

    The decay of update ``k`` (0-based) is ``min(decay, (1 + k) / (10 + k))``, so early averages forget the
    random initialisation quickly. Non-floating-point state is copied as is.
    """

    def __init__(self, modules: Mapping[str, nn.Module], decay: float) -> None:
        self.modules = dict(modules)
        self.decay = decay
        self.updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in flat_state(self.modules).items()}

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in flat_state(self.modules).items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.lerp_(value.detach(), 1.0 - d)
            else:
                shadow.copy_(value)
        self.updates += 1

    def state(self) -> dict[str, Tensor]:
        """The averaged state, keyed as :func:`flat_state`."""
        return self.shadow

    def load(self, shadow: Mapping[str, Tensor], updates: int) -> None:
        """Restore a saved :meth:`state` after ``updates`` updates (DiffinvError if tensors are missing)."""
        missing = set(self.shadow) - set(shadow)
        if missing:
            raise DiffinvError(f"EMA checkpoint lacks {len(missing)} tensors (e.g. {sorted(missing)[0]})")
        self.shadow = {k: shadow[k].clone().to(self.shadow[k].dtype) for k in self.shadow}
        self.updates = updates

    def copy_to(self, modules: Mapping[str, nn.Module]) -> None:
        """Load the averaged state into ``modules`` (same names and architectures as the tracked ones)."""
        load_flat_state(modules, self.shadow)


def flat_state(modules: Mapping[str, nn.Module]) -> dict[str, Tensor]:
    """``{"<name>.<key>": tensor}`` over the modules' state dicts; a module named ``""`` (the only one, e.g. the
    probe) contributes its keys unprefixed."""
    return {_prefix(name) + k: v for name, m in modules.items() for k, v in m.state_dict().items()}


def load_flat_state(modules: Mapping[str, nn.Module], state: Mapping[str, Tensor]) -> None:
    """Inverse of :func:`flat_state`: load each module's ``"<name>."``-prefixed entries of ``state``."""
    for name, module in modules.items():
        prefix = _prefix(name)
        module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})


def _prefix(name: str) -> str:
    return f"{name}." if name else ""


# --------------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------------


def write_checkpoint(
    folder: Path,
    tensors: Mapping[str, tuple[Mapping[str, Tensor], dict[str, str]]],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write ``folder/checkpoints/step-NNNNNN/`` completely, then point ``latest.json`` at it and prune all but
    the ``keep`` newest (a kill at any moment leaves ``latest.json`` naming a complete checkpoint).

    Args:
        folder: The run (or stage) folder.
        tensors: ``{file name: (tensors, safetensors metadata)}``, e.g. ``{MODEL_FILE: (weights, {"step": "N"})}``;
            the tensors are saved detached, on the CPU and contiguous.
        optimizer: Its state dict goes to :data:`OPTIMIZER_FILE`.
        state: JSON-ready; written to :data:`STATE_FILE`; ``state["step"]`` names the folder.
        keep: How many checkpoints remain.

    Returns:
        The checkpoint folder.
    """
    root = folder / CHECKPOINTS
    target = root / f"step-{state['step']:06d}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name, (values, metadata) in tensors.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in values.items()}, str(target / name), metadata=metadata)
    torch.save(optimizer.state_dict(), target / OPTIMIZER_FILE)
    write_json(target / STATE_FILE, state)
    write_json(root / LATEST, {"step": state["step"], "dir": target.name})
    older = sorted(p for p in root.glob("step-*") if p.is_dir() and p.name < target.name)
    for old in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def read_checkpoint(folder: Path, optimizer: torch.optim.Optimizer) -> tuple[Path, dict[str, Any]]:
    """Restore the optimizer from the newest checkpoint of ``folder``; returns that checkpoint's folder (to read
    its weights from) and its state. Raises DiffinvError if there is none."""
    latest = folder / CHECKPOINTS / LATEST
    if not latest.is_file():
        raise DiffinvError(f"{folder}: no checkpoint to resume from")
    target = folder / CHECKPOINTS / json.loads(latest.read_text())["dir"]
    optimizer.load_state_dict(torch.load(target / OPTIMIZER_FILE, weights_only=True))
    return target, json.loads((target / STATE_FILE).read_text())


# --------------------------------------------------------------------------------------------------------
# Stopping and timing
# --------------------------------------------------------------------------------------------------------


class StopFlag:
    """Set by SIGTERM (and by the time budget) so the loop checkpoints and exits cleanly; true once set."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __bool__(self) -> bool:
        return self.reason is not None


@contextmanager
def sigterm_sets(flag: StopFlag) -> Iterator[None]:
    """Within the block, SIGTERM sets ``flag`` (reason ``"SIGTERM"``) instead of killing the process; the
    previous handler is restored on exit. Outside the main thread no handler is installed."""

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
        flag.reason = "SIGTERM"

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: no handler
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Clock:
    """Wall and CPU seconds of a stage, accumulated across resumed runs; ``budget`` caps this run (0: none)."""

    base_wall: float = 0.0
    base_cpu: float = 0.0
    budget_seconds: float = 0.0
    start_wall: float = field(default_factory=time.perf_counter)
    start_cpu: float = field(default_factory=time.process_time)

    def run_seconds(self) -> float:
        """Wall seconds of this run."""
        return time.perf_counter() - self.start_wall

    def totals(self) -> dict[str, float]:
        """``train_wall_seconds`` and ``train_cpu_seconds`` over all runs, rounded to 0.1 s."""
        return {
            "train_wall_seconds": round(self.base_wall + time.perf_counter() - self.start_wall, 1),
            "train_cpu_seconds": round(self.base_cpu + time.process_time() - self.start_cpu, 1),
        }

    def over_budget(self) -> bool:
        """Whether this run has used its wall-time budget."""
        return self.budget_seconds > 0 and self.run_seconds() >= self.budget_seconds


__all__ = [
    "CHECKPOINTS",
    "EMA",
    "EMA_FILE",
    "FINAL",
    "INIT_STREAM",
    "LATEST",
    "MODEL_FILE",
    "OPTIMIZER_FILE",
    "STATE_FILE",
    "Clock",
    "StopFlag",
    "batch_rng",
    "flat_state",
    "init_seed",
    "learning_rate",
    "load_flat_state",
    "make_optimizer",
    "n_params",
    "read_checkpoint",
    "sigterm_sets",
    "write_checkpoint",
    "write_json",
]
