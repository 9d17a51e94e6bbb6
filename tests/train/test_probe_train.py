"""The probe's training entry point: a few steps of a tiny config, checkpoints and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffinv.errors import DiffinvError
from diffinv.loop.common import learning_rate
from diffinv.shapes.probe import ShapesProbe, encode_targets
from diffinv.train import probe as probe_training
from diffinv.train.augment import AugmentConfig, augment
from diffinv.train.probe import TrainConfig, main, train, training_batch

TINY = {
    "model": {"channels": [4, 4, 4], "pool_after": [0, 1], "hidden": 8},
    "batch_size": 4,
    "warmup_steps": 2,
    "checkpoint_every": 2,
    "eval_images": 4,
    "eval_splits": ["test", "heldout_shape"],
}


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def _latest(out: Path) -> tuple[int, dict[str, torch.Tensor], dict]:
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    folder = out / "checkpoints" / latest["dir"]
    state = json.loads((folder / "state.json").read_text())
    return latest["step"], load_file(folder / "model.safetensors"), state


def test_train_three_steps_then_resume_to_five(tmp_path: Path, tiny_config: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["--out", str(out), "--config", str(tiny_config), "--no-progress"]
    assert main([*args, "--steps", "3"]) == 0
    step, weights3, state = _latest(out)
    assert step == 3 and state["step"] == 3 and state["seed"] == 0
    assert len(list((out / "checkpoints").glob("step-*"))) == 1  # older checkpoints are pruned
    assert (out / "eval.json").is_file() and "background" in capsys.readouterr().out
    probe = ShapesProbe.from_pretrained(out)
    assert probe.config.channels == (4, 4, 4)

    assert main([*args, "--steps", "5"]) == 2  # refuses to overwrite a run without --resume
    assert main(["--out", str(out), "--steps", "5", "--resume", "--no-progress", "--seed", "1"]) == 2
    assert main(["--out", str(out), "--steps", "5", "--resume", "--no-progress"]) == 0
    step, weights5, state = _latest(out)
    assert step == 5 and state["step"] == 5
    assert any(not torch.equal(weights3[k], weights5[k]) for k in weights3)
    assert json.loads((out / "config.json").read_text())["metadata"]["steps"] == 5


def test_interrupted_run_resumes_like_an_uninterrupted_one(tmp_path: Path, monkeypatch) -> None:
    """A run killed at step 3 checkpoints; resuming it ends with the weights of a run never interrupted."""
    config = TrainConfig.from_dict({**TINY, "steps": 5, "checkpoint_every": 100})
    straight = train(config, tmp_path / "straight", progress=False)

    def interrupted_batch(cfg: TrainConfig, step: int):
        if step == 3:
            raise KeyboardInterrupt
        return training_batch(cfg, step)

    monkeypatch.setattr(probe_training, "training_batch", interrupted_batch)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=False)
    assert _latest(tmp_path / "killed")[0] == 3
    monkeypatch.undo()
    resumed = train(config, tmp_path / "killed", resume=True, progress=False)
    assert resumed.state_dict().keys() == straight.state_dict().keys()
    for key, value in straight.state_dict().items():  # bit for bit: both runs computed here
        assert torch.equal(resumed.state_dict()[key], value), key


def test_batches_are_deterministic_and_augmented() -> None:
    config = TrainConfig.from_dict({**TINY, "batch_size": 8})
    images, scenes, cells = training_batch(config, 3)
    again, scenes_again, cells_again = training_batch(config, 3)
    assert scenes == scenes_again and torch.equal(images, again) and torch.equal(cells, cells_again)
    assert images.shape == (8, 3, 64, 64) and 0.0 <= float(images.min()) <= float(images.max()) <= 1.0
    assert training_batch(config, 4)[1] != scenes
    # every occupied cell is trained on, plus `empty_cells_per_image` empty ones
    occupied = encode_targets(scenes).shape != 0
    assert bool(cells[occupied].all())
    assert int((cells & ~occupied).sum()) == 8 * config.empty_cells_per_image


def test_augment_identity_when_disabled() -> None:
    off = AugmentConfig(jpeg_prob=0, shift_prob=0, color_prob=0, resample_prob=0, blur_prob=0, noise_prob=0)
    images = torch.rand(3, 3, 64, 64)
    torch.testing.assert_close(augment(images, off, torch.Generator().manual_seed(0)), images)


def test_config_round_trip_and_schedule() -> None:
    config = TrainConfig.from_dict(TINY)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    schedule = (config.learning_rate, config.steps, config.warmup_steps, config.min_lr_ratio)
    assert learning_rate(0, *schedule) < learning_rate(1, *schedule) == pytest.approx(config.learning_rate)
    assert learning_rate(config.steps, *schedule) == pytest.approx(config.learning_rate * config.min_lr_ratio)
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"split_mix": [["test", 1.0]]})
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"no_such_field": 1})


def test_a_probe_for_world_v3_trains_saves_and_reads_fills(tmp_path: Path) -> None:
    config = TrainConfig.from_dict({**TINY, "model": {**TINY["model"], "world": "v3", "crop_size": 36}, "steps": 2})
    probe = train(config, tmp_path / "v3", progress=False)
    loaded = ShapesProbe.from_pretrained(tmp_path / "v3")
    assert loaded.config.world == "v3" and loaded.fill_head is not None
    meta = json.loads((tmp_path / "v3" / "config.json").read_text())
    assert meta["config"]["world"] == "v3" and meta["vocabulary"]["fills"] == ["solid", "striped", "outlined"]
    assert len(meta["vocabulary"]["slot_classes"]) == 1 + 37
    for key, value in probe.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    images, scenes, cells = training_batch(config, 0)
    assert {s.world for s in scenes} == {"v3"}
    targets = encode_targets(scenes, config.model.world_spec)
    assert targets.fill is not None and set(targets.fill[targets.shape != 0].tolist()) <= {0, 1, 2}
    scores = probe_training.evaluate(loaded, config)["test"]["clean"]
    assert "fill" in scores and 0 <= scores["fill"] <= 1
    # a v2 probe's record says nothing of worlds or fills, so the shipped probe loads as it did
    (tmp_path / "v3" / "config.json").write_text(
        json.dumps({**meta, "vocabulary": {**meta["vocabulary"], "fills": []}})
    )
    with pytest.raises(DiffinvError, match="another Shapes vocabulary"):
        ShapesProbe.from_pretrained(tmp_path / "v3")


def test_training_evaluations_find_the_probe_of_their_world(tmp_path: Path, monkeypatch) -> None:
    from diffinv.shapes import probe as probe_module
    from diffinv.train.evaluate import load_probe

    config = TrainConfig.from_dict({**TINY, "model": {**TINY["model"], "world": "v3", "crop_size": 36}, "steps": 1})
    train(config, tmp_path / "v3", progress=False)
    assert load_probe(tmp_path / "v3", "v3").config.world == "v3"
    assert load_probe(tmp_path / "none", "v3") is None  # no probe there: the evaluation runs unscored
    with pytest.raises(DiffinvError, match="reads world v3"):
        load_probe(tmp_path / "v3", "v2")
    # without a path: the probe shipped for the world, or None while none is shipped (never another world's)
    monkeypatch.setattr(probe_module, "SHIPPED", {"v2": probe_module.DEFAULT_PATH, "v3": tmp_path / "missing"})
    assert load_probe(None, "v3") is None
    assert load_probe(None, "v2").config.world == "v2"
