"""Checkpoints written before the training code was split into modules still load and resume.

``data/vae_run`` and ``data/probe_run`` were written by the code of commit fb868e7 (``diffinv.train.mini`` in one
file, the probe with its own loop), two steps of a tiny config each::

    python -m diffinv.train.mini vae --work vae_run --config vae.json --no-progress
    python -m diffinv.train.probe --out probe_run --config probe.json --steps 2 --no-progress

keeping only the work folder's config and the checkpoints.

What holds on every machine, and so is what these tests assert: an old checkpoint loads with exactly its stored
tensors, step, seed, config and optimizer moments; and resuming it equals, bit for bit, resuming the same state
re-saved by today's checkpoint writer, both computed here. Retraining the stored steps would not be: the weights
after two steps differ by about 2e-3 between CPUs (AVX-512 vs AVX2 machines, measured), and that is float
rounding, not the resume logic. That a resumed run equals an uninterrupted one is tested bit for bit on runs
written during the test (``test_mini_train.py``, ``test_probe_train.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from diffinv.loop.common import EMA_FILE, MODEL_FILE, OPTIMIZER_FILE, flat_state
from diffinv.loop.stage import restore_stage, save_checkpoint
from diffinv.train import mini, probe
from diffinv.train.config import MiniConfig
from diffinv.train.vae import vae_stage_parts

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.stored_data  # reads stored checkpoints: also run on other CPUs (.ci/run)


def _latest(folder: Path) -> tuple[Path, dict]:
    latest = json.loads((folder / "checkpoints" / "latest.json").read_text())
    target = folder / "checkpoints" / latest["dir"]
    return target, json.loads((target / "state.json").read_text())


def _assert_identical(left: Any, right: Any) -> None:
    """``left`` and ``right`` (tensors, or dicts/lists/tuples of them and plain values) are equal bit for bit."""
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and left.dtype == right.dtype and torch.equal(left, right)
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys()
        for key in left:
            _assert_identical(left[key], right[key])
    elif isinstance(left, list | tuple):
        assert isinstance(right, list | tuple) and len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            _assert_identical(a, b)
    else:
        assert left == right


def _assert_same_files(a: Path, b: Path) -> None:
    _assert_identical(load_file(a), load_file(b))


def _copy_without_checkpoints(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints"))


def test_vae_stage_loads_an_old_checkpoint_exactly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "vae_run", run)
    config = MiniConfig.from_dict(json.loads((run / "config.json").read_text()))
    modules, ema, optimizer = vae_stage_parts(config.vae, config.seed)
    state = restore_stage("vae", run / "vae", modules, ema, optimizer, config.vae, resume=True)

    stored, stored_state = _latest(run / "vae")
    assert state == stored_state and state["step"] == 2 and state["seed"] == config.seed
    _assert_identical(flat_state(modules), load_file(stored / MODEL_FILE))
    _assert_identical(ema.state(), load_file(stored / EMA_FILE))
    assert ema.updates == stored_state["ema_updates"] == 2
    moments = torch.load(stored / OPTIMIZER_FILE, weights_only=True)
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(next(iter(moments["state"].values())))
    _assert_identical(optimizer.state_dict(), moments)


def test_vae_stage_resumes_an_old_checkpoint_as_one_saved_today(tmp_path: Path) -> None:
    old, resaved = tmp_path / "old", tmp_path / "resaved"
    shutil.copytree(DATA / "vae_run", old)
    _copy_without_checkpoints(DATA / "vae_run", resaved)
    config = MiniConfig.from_dict(json.loads((old / "config.json").read_text()))
    modules, ema, optimizer = vae_stage_parts(config.vae, config.seed)
    state = restore_stage("vae", old / "vae", modules, ema, optimizer, config.vae, resume=True)
    save_checkpoint(resaved / "vae", modules, ema, optimizer, state)

    for run in (old, resaved):
        assert mini.main(["vae", "--work", str(run), "--vae-steps", "3", "--resume", "--no-progress"]) == 0
    (a, a_state), (b, b_state) = _latest(old / "vae"), _latest(resaved / "vae")
    assert a_state["step"] == b_state["step"] == 3 and a_state["ema_updates"] == 3 and a_state["config"]["steps"] == 3
    assert a_state["loss_ema"] == b_state["loss_ema"]
    for name in (MODEL_FILE, EMA_FILE):
        _assert_same_files(a / name, b / name)
    _assert_identical(*(torch.load(c / OPTIMIZER_FILE, weights_only=True) for c in (a, b)))
    eval_a, eval_b = (json.loads((run / "vae" / "eval.json").read_text()) for run in (old, resaved))
    assert eval_a["complete"] and eval_a["eval"] == eval_b["eval"]
    assert eval_a["scaling_factor"] == eval_b["scaling_factor"]


def test_probe_loads_an_old_checkpoint_exactly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "probe_run", run)
    config = probe.TrainConfig.from_dict(json.loads((run / probe.CONFIG_NAME).read_text()))
    modules, optimizer = probe.probe_stage_parts(config)
    state = restore_stage("probe", run, modules, None, optimizer, config, resume=True)

    stored, stored_state = _latest(run)
    assert state == stored_state and state["step"] == 2 and state["seed"] == config.seed
    _assert_identical(flat_state(modules), load_file(stored / MODEL_FILE))
    _assert_identical(optimizer.state_dict(), torch.load(stored / OPTIMIZER_FILE, weights_only=True))


def test_probe_resumes_an_old_checkpoint_as_one_saved_today(tmp_path: Path) -> None:
    old, resaved = tmp_path / "old", tmp_path / "resaved"
    shutil.copytree(DATA / "probe_run", old)
    _copy_without_checkpoints(DATA / "probe_run", resaved)
    config = probe.TrainConfig.from_dict(json.loads((old / probe.CONFIG_NAME).read_text()))
    modules, optimizer = probe.probe_stage_parts(config)
    state = restore_stage("probe", old, modules, None, optimizer, config, resume=True)
    save_checkpoint(resaved, modules, None, optimizer, state)

    for run in (old, resaved):
        assert probe.main(["--out", str(run), "--steps", "3", "--resume", "--no-progress"]) == 0
    (a, a_state), (b, b_state) = _latest(old), _latest(resaved)
    assert a_state["step"] == b_state["step"] == 3 and a_state["loss_ema"] == b_state["loss_ema"]
    _assert_same_files(a / MODEL_FILE, b / MODEL_FILE)
    _assert_same_files(old / "probe.safetensors", resaved / "probe.safetensors")
    assert json.loads((old / probe.EVAL_NAME).read_text()) == json.loads((resaved / probe.EVAL_NAME).read_text())
