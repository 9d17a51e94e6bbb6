"""The Inversion file format: lossless, model-checked, validated, written atomically."""

import json

import pytest
import torch
from safetensors.torch import save_file

from conftest import PROMPT
from diffinv import Inversion, InversionConfig, OptimizationConfig, invert
from diffinv.errors import DiffinvError
from diffinv.inversion import base
from diffinv.testing import tiny_pipeline


@pytest.fixture(scope="module")
def null_text(pipe, photo):
    config = InversionConfig(num_inference_steps=4, optimization=OptimizationConfig(num_inner_steps=2))
    return invert(pipe, photo, PROMPT, "null-text", config=config)


@pytest.fixture(scope="module")
def direct(pipe, photo):
    return invert(pipe, photo, PROMPT, "direct", num_inference_steps=4)


@pytest.mark.parametrize("name", ["null_text", "direct"])
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
    with pytest.raises(DiffinvError, match="made with model sha256:.* but the loaded model is sha256:"):
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
    from safetensors import safe_open

    with safe_open(str(direct.save(tmp_path / "x.inv.safetensors")), framework="pt") as handle:
        header = json.loads(handle.metadata()["diffinv"])
    assert header["format"] == "diffinv.inversion" and header["settings"]["method"] == "direct"
    assert header["settings"]["prompt"] == PROMPT
