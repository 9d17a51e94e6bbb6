"""Checkpoints written before the training code was split into modules still resume.

``data/vae_run`` and ``data/probe_run`` were written by the code of commit fb868e7 (``diffinv.train.mini`` in one
file, the probe with its own loop), two steps of a tiny config each::

    python -m diffinv.train.mini vae --work vae_run --config vae.json --no-progress
    python -m diffinv.train.probe --out probe_run --config probe.json --steps 2 --no-progress

keeping only the work folder's config and the checkpoints. Resuming them to step 3 must give the weights of a
run that was never interrupted (every batch depends only on ``(seed, step)``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from diffinv.train import mini, probe

DATA = Path(__file__).parent / "data"


def _latest(folder: Path) -> tuple[Path, dict]:
    latest = json.loads((folder / "checkpoints" / "latest.json").read_text())
    target = folder / "checkpoints" / latest["dir"]
    return target, json.loads((target / "state.json").read_text())


def _assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a), load_file(b)
    assert left.keys() == right.keys()
    for key, value in left.items():
        torch.testing.assert_close(value, right[key], rtol=1e-4, atol=1e-5)


def test_vae_stage_resumes_an_old_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "vae_run", run)
    assert mini.main(["vae", "--work", str(run), "--vae-steps", "3", "--resume", "--no-progress"]) == 0
    resumed, state = _latest(run / "vae")
    assert state["step"] == 3 and state["ema_updates"] == 3 and state["config"]["steps"] == 3
    assert json.loads((run / "vae" / "eval.json").read_text())["complete"]

    straight = tmp_path / "straight"
    config = str(DATA / "vae_run" / "config.json")
    assert mini.main(["vae", "--work", str(straight), "--config", config, "--vae-steps", "3", "--no-progress"]) == 0
    uninterrupted, _ = _latest(straight / "vae")
    for name in ("model.safetensors", "ema.safetensors"):
        _assert_same_weights(resumed / name, uninterrupted / name)


def test_probe_resumes_an_old_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "probe_run", run)
    assert probe.main(["--out", str(run), "--steps", "3", "--resume", "--no-progress"]) == 0
    resumed, state = _latest(run)
    assert state["step"] == 3 and state["seed"] == 0

    straight = tmp_path / "straight"
    config = str(DATA / "probe_run" / "train_config.json")
    assert probe.main(["--out", str(straight), "--config", config, "--steps", "3", "--no-progress"]) == 0
    uninterrupted, _ = _latest(straight)
    _assert_same_weights(resumed / "model.safetensors", uninterrupted / "model.safetensors")
    _assert_same_weights(run / "probe.safetensors", straight / "probe.safetensors")
