"""The v2 recipe of the mini model (issue 14): the ``--preset`` base configs, the weighted scene sampler, the text
encoder import, and resuming checkpoints whose saved config predates new fields."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffinv.errors import DiffinvError
from diffinv.loop.stage import check_resumable
from diffinv.shapes.splits import is_train_object
from diffinv.train.config import PRESETS, V2_UNET, MiniConfig, v2_config
from diffinv.train.data import sample_train_scenes
from diffinv.train.mini import build_parser, main, resolve_config
from diffinv.train.text import build_text_encoder, build_tokenizer, import_text_encoder, load_text_encoder
from diffinv.train.unet import build_unet
from train.test_mini_train import TINY


def test_presets_keep_v1_as_the_default_and_v2_is_a_typed_config() -> None:
    assert PRESETS["v1"]() == MiniConfig()
    v2 = v2_config()
    assert MiniConfig.from_dict(v2.to_dict()) == v2
    assert v2.unet.model == V2_UNET and v2.unet.steps > MiniConfig().unet.steps
    assert v2.vae == MiniConfig().vae and v2.unet.text == MiniConfig().unet.text  # v1's VAE and text encoder
    assert dict(v2.unet.color_weights)["pink"] > 1 and dict(v2.unet.size_weights)["small"] > 1
    unet = build_unet(V2_UNET, 4, 16, 64)
    assert 0.9e6 <= sum(p.numel() for p in unet.parameters()) <= 8e6
    assert hasattr(unet.down_blocks[1], "attentions")  # cross-attention at 8 x 8 (after one downsampling) stays


def test_preset_is_the_base_of_a_new_work_folder_only(tmp_path: Path) -> None:
    args = build_parser().parse_args(["unet", "--work", str(tmp_path), "--preset", "v2"])
    assert resolve_config(args) == v2_config()
    again = build_parser().parse_args(["unet", "--work", str(tmp_path), "--unet-steps", "7"])
    config = resolve_config(again)  # the saved v2 config, not the v1 default
    assert config.unet.model == V2_UNET and config.unet.steps == 7


def test_unweighted_sampler_draws_what_it_always_drew() -> None:
    plain = sample_train_scenes(np.random.default_rng(3), 40, (1, 1, 1))
    assert sample_train_scenes(np.random.default_rng(3), 40, (1, 1, 1), (), ()) == plain


def test_weighted_sampler_shifts_colours_and_sizes_within_the_train_split() -> None:
    n = 1500
    plain = sample_train_scenes(np.random.default_rng(0), n, (1, 1, 1))
    weighted = sample_train_scenes(np.random.default_rng(0), n, (1, 1, 1), (("pink", 3.0),), (("small", 2.0),))
    again = sample_train_scenes(np.random.default_rng(0), n, (1, 1, 1), (("pink", 3.0),), (("small", 2.0),))
    assert weighted == again  # seeded
    assert all(is_train_object(o) for s in weighted for o in s.objects)

    def share(scenes: list, attribute: str, value: str) -> float:
        objects = [o for s in scenes for o in s.objects]
        return sum(getattr(o, attribute) == value for o in objects) / len(objects)

    assert share(weighted, "color", "pink") > 1.5 * share(plain, "color", "pink")
    assert share(weighted, "size", "small") > share(plain, "size", "small") + 0.08
    counts = Counter(len(s.objects) for s in weighted)  # the object count still follows object_probs
    assert all(abs(counts[k] / n - 1 / 3) < 0.05 for k in (1, 2, 3))
    with pytest.raises(ValueError, match="colour"):
        sample_train_scenes(np.random.default_rng(0), 1, (1,), (("mauve", 2.0),))
    with pytest.raises(ValueError, match="size"):
        sample_train_scenes(np.random.default_rng(0), 1, (1,), (), (("small", 0.0),))


def test_import_text_encoder_copies_an_assembled_one_in_fp32(tmp_path: Path) -> None:
    config = MiniConfig.from_dict(TINY)
    source = tmp_path / "pipe"
    tokenizer = build_tokenizer(config.unet.text)
    encoder = build_text_encoder(config.unet.text, tokenizer).half()
    encoder.save_pretrained(source / "text_encoder", safe_serialization=True)
    work = tmp_path / "run"
    final = import_text_encoder(config, source, work)
    loaded = load_text_encoder(work)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    saved = load_file(source / "text_encoder" / "model.safetensors")
    for key, value in loaded.state_dict().items():
        if key in saved:
            torch.testing.assert_close(value, saved[key].float())
    assert (final / "tokenizer" / "tokenizer_config.json").is_file()
    assert json.loads((work / "text" / "imported.json").read_text())["complete"]
    other = MiniConfig.from_dict({"unet": {"text": {"hidden_size": 32}}})
    with pytest.raises(DiffinvError, match="does not match"):
        import_text_encoder(other, source, tmp_path / "other")


def test_import_text_stage_then_unet_stage(tmp_path: Path) -> None:
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps(TINY))
    run = tmp_path / "run"
    args = ["--work", str(run), "--config", str(config_file), "--no-progress"]
    assert main(["vae", *args]) == 0
    assert main(["text", *args]) == 0
    trained = run / "text" / "final"
    other = tmp_path / "other"
    other.mkdir()
    (other / "vae").symlink_to(run / "vae", target_is_directory=True)
    (trained / "tokenizer").rename(trained / "tokenizer_moved")  # import-text needs only the text_encoder folder
    args2 = ["--work", str(other), "--config", str(config_file), "--no-progress"]
    assert main(["import-text", *args2, "--source", str(trained)]) == 0
    assert main(["unet", *args2]) == 0


def test_checkpoint_configs_without_new_fields_still_resume() -> None:
    config = v2_config().unet
    check_resumable({"config": v2_config().to_dict()["unet"]}, config, "unet")
    old = {k: v for k, v in MiniConfig().to_dict()["unet"].items() if k not in ("color_weights", "size_weights")}
    del old["model"]["transformer_layers_per_block"]
    check_resumable({"config": old}, MiniConfig().unet, "unet")  # v1 checkpoints predate the new fields
    with pytest.raises(DiffinvError, match="different config"):
        check_resumable({"config": old}, config, "unet")


def test_configs_stored_with_the_old_name_lr_read_as_learning_rate(tmp_path: Path) -> None:
    """Until issue 24 the training configs named the peak learning rate ``lr`` (config.json, state.json)."""
    old = json.loads(json.dumps(v2_config().to_dict()).replace('"learning_rate"', '"lr"'))
    old["unet"]["lr"] = 5e-4
    assert "learning_rate" not in json.dumps(old)
    config = MiniConfig.from_dict(old)
    assert config.unet.learning_rate == 5e-4 and config.vae.learning_rate == v2_config().vae.learning_rate
    check_resumable({"config": old["unet"]}, config.unet, "unet")
    with pytest.raises(DiffinvError, match="different config"):
        check_resumable({"config": old["unet"]}, v2_config().unet, "unet")
    with pytest.raises(DiffinvError, match="both lr"):
        MiniConfig.from_dict({"unet": {"lr": 1e-3, "learning_rate": 1e-3}})
    (tmp_path / "config.json").write_text(json.dumps(old))  # a work folder written before the rename
    args = build_parser().parse_args(["unet", "--work", str(tmp_path), "--preset", "v3", "--unet-steps", "7"])
    resumed = resolve_config(args)
    assert resumed.unet.learning_rate == 5e-4 and resumed.unet.steps == 7 and resumed.world == v2_config().world
    assert json.loads((tmp_path / "config.json").read_text())["unet"]["learning_rate"] == 5e-4
