"""The Inversion file format: lossless, model-checked, validated, written atomically."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import PROMPT
from diffinv import Inversion, OptimizationConfig, invert
from diffinv.errors import DiffinvError
from diffinv.inversion import OptimizingInversionConfig, PromptTokensConfig, base
from diffinv.testing import tiny_pipeline


@pytest.fixture(scope="module")
def null_text(pipe, photo):
    config = OptimizingInversionConfig(num_inference_steps=4, optimization=OptimizationConfig(num_inner_steps=2))
    return invert(pipe, photo, PROMPT, "null-text", config=config)


@pytest.fixture(scope="module")
def prompt_tokens(pipe, photo):
    config = PromptTokensConfig(num_inference_steps=4, optimization=OptimizationConfig(num_inner_steps=2))
    return invert(pipe, photo, PROMPT, "prompt-tokens", config=config)


@pytest.fixture(scope="module")
def direct(pipe, photo):
    return invert(pipe, photo, PROMPT, "direct", num_inference_steps=4)


@pytest.mark.parametrize("name", ["null_text", "prompt_tokens", "direct"])
def test_save_load_is_lossless(tmp_path, pipe, name, request):
    inversion = request.getfixturevalue(name)
    path = inversion.save(tmp_path / "x.inv.safetensors")
    loaded = Inversion.load(path, pipe)
    assert loaded.settings == inversion.settings
    assert loaded.stats == inversion.stats
    for key in ("latents", "prompt_embeds", "negative_prompt_embeds", "latent_offsets", "source_latents"):
        a, b = getattr(inversion, key), getattr(loaded, key)
        assert (a is None and b is None) or torch.equal(a, b), key
    assert [p.name for p in tmp_path.iterdir()] == ["x.inv.safetensors"]  # no temporary files left


def test_another_models_inversion_is_refused(tmp_path, direct):
    path = direct.save(tmp_path / "x.inv.safetensors")
    other = tiny_pipeline(seed=1)
    with pytest.raises(
        DiffinvError, match=r"made with another model \(sha256:.*\) than the loaded one \(sha256:.*same concepts"
    ):
        Inversion.load(path, other)


def test_nan_values_are_refused(tmp_path, direct):
    broken = Inversion(**{**direct.__dict__, "latents": direct.latents.clone()})
    broken.latents[0, 0, 0, 0] = float("nan")
    path = broken.save(tmp_path / "nan.inv.safetensors")
    with pytest.raises(DiffinvError, match="NaN or Inf"):
        Inversion.load(path)


def test_foreign_and_corrupt_files_are_refused(tmp_path, direct):
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(DiffinvError, match="not a diffinv inversion file"):
        Inversion.load(plain)
    garbage = tmp_path / "garbage.inv.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(DiffinvError, match="not a readable .safetensors file"):
        Inversion.load(garbage)
    good = direct.save(tmp_path / "good.inv.safetensors")
    truncated = tmp_path / "cut.inv.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(DiffinvError):
        Inversion.load(truncated)
    with pytest.raises(DiffinvError, match="no such file"):
        Inversion.load(tmp_path / "missing.inv.safetensors")


def test_inconsistent_shapes_are_refused(tmp_path, direct):
    broken = Inversion(**{**direct.__dict__, "latent_offsets": direct.latent_offsets[:2]})
    with pytest.raises(DiffinvError, match="latent_offsets"):
        Inversion.load(broken.save(tmp_path / "short.inv.safetensors"))


def test_interrupted_write_leaves_no_file(tmp_path, direct, monkeypatch):
    def failing_save(tensors, filename, metadata):
        with open(filename, "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(base, "save_file", failing_save)
    with pytest.raises(KeyboardInterrupt):
        direct.save(tmp_path / "x.inv.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_metadata_is_plain_json(tmp_path, direct):
    with safe_open(str(direct.save(tmp_path / "x.inv.safetensors")), framework="pt") as handle:
        header = json.loads(handle.metadata()["diffinv"])
    assert header["format"] == "diffinv.inversion" and header["settings"]["method"] == "direct"
    assert header["settings"]["prompt"] == PROMPT


def _header_and_tensors(path):
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["diffinv"]), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def test_the_config_is_the_one_home_of_steps_and_guidance(tmp_path, direct, prompt_tokens):
    header, _ = _header_and_tensors(direct.save(tmp_path / "direct.inv.safetensors"))
    assert header["version"] == 2 and "num_inference_steps" not in header["settings"]
    assert header["settings"]["config"] == {"num_inference_steps": 4, "guidance_scale": 7.5}  # ddim's fields only
    assert direct.settings.num_inference_steps == 4 and direct.settings.guidance_scale == 7.5
    header, _ = _header_and_tensors(prompt_tokens.save(tmp_path / "tokens.inv.safetensors"))
    assert set(header["settings"]["config"]) == {
        "num_inference_steps",
        "guidance_scale",
        "optimization",
        "tokens",
        "pooled",
    }


def _version_1(inversion, optimization, **config):
    """``inversion``'s settings as version 1 wrote them, by hand: steps and guidance beside the config and in it,
    and the one config class of every method (optimiser, ``tokens`` and ``pooled`` in a ddim file too)."""
    settings = inversion.settings
    return {
        "method": settings.method,
        "prompt": settings.prompt,
        "num_inference_steps": 4,
        "guidance_scale": 7.5,
        "height": settings.height,
        "width": settings.width,
        "scheduler_config": settings.scheduler_config,
        "model_fingerprint": settings.model_fingerprint.to_dict(),
        "config": {"num_inference_steps": 4, "guidance_scale": 7.5, "optimization": optimization, **config},
        "optimized_positions": settings.optimized_positions,
    }


def _write_version_1(inversion, settings, path):
    header = {"format": "diffinv.inversion", "version": 1, "settings": settings, "stats": inversion.stats.to_dict()}
    save_file(inversion._tensors(), str(path), metadata={"diffinv": json.dumps(header)})
    return path


MOKADY = {"num_inner_steps": 10, "learning_rate": 0.01, "lr_decay": 0.01, "early_stop_epsilon": 1e-5,
          "early_stop_growth": 2e-5}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "optimization", "config"),
    [
        ("direct", MOKADY, {"tokens": "semantic", "pooled": True}),  # fields direct does not have: dropped
        ("null_text", {**MOKADY, "num_inner_steps": 2}, {"tokens": "semantic", "pooled": True}),
        ("prompt_tokens", {**MOKADY, "num_inner_steps": 2}, {"tokens": "semantic"}),  # before SDXL: no pooled
    ],
)
def test_version_1_files_still_load(tmp_path, pipe, name, optimization, config, request):
    inversion = request.getfixturevalue(name)
    old = _write_version_1(inversion, _version_1(inversion, optimization, **config), tmp_path / "v1.inv.safetensors")
    loaded = Inversion.load(old, pipe)
    assert loaded.settings == inversion.settings and loaded.stats == inversion.stats
    assert torch.equal(loaded.latents, inversion.latents)


def test_version_1_duplicates_must_agree(tmp_path, direct):
    settings = _version_1(direct, MOKADY)
    settings["guidance_scale"] = 5.0
    with pytest.raises(DiffinvError, match=r"settings.guidance_scale \(5.0\) and settings.config.guidance_scale"):
        Inversion.load(_write_version_1(direct, settings, tmp_path / "v1.inv.safetensors"))


def test_unknown_versions_are_refused(tmp_path, direct):
    path = direct.save(tmp_path / "x.inv.safetensors")
    header, tensors = _header_and_tensors(path)
    save_file(tensors, str(path), metadata={"diffinv": json.dumps({**header, "version": 3})})
    with pytest.raises(DiffinvError, match="inversion format version 3 is not supported"):
        Inversion.load(path)
