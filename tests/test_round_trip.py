"""Every inversion method and preset, on ε- and v-prediction models, survives invert → save → load → reconstruct
bit-exactly, through the API and through the CLI. The cases come from the method registry, so a new method or
preset joins this test without being named here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import PROMPT
from diffinv import api
from diffinv.cli import main
from diffinv.inversion import Inversion
from diffinv.inversion.registry import method_config, method_names, resolve_method
from diffinv.pipelines import load_pipeline
from diffinv.testing import tiny_pipeline

STEPS = 3
INNER_STEPS = 2


@pytest.fixture(scope="module", params=["epsilon", "v_prediction"])
def model(request, tmp_path_factory):
    """``(pipe, folder)``: a tiny model saved as a diffusers folder, and that folder loaded as the CLI loads it."""
    folder = tmp_path_factory.mktemp(request.param) / "model"
    tiny_pipeline(seed=1, prediction_type=request.param).save_pretrained(folder)
    return load_pipeline(str(folder)), folder


def invert_in_memory(pipe, photo, spec: str) -> Inversion:
    """What ``diffinv invert --method SPEC --steps 3 --num-inner-steps 2`` computes, without writing a file."""
    config = method_config(spec, num_inference_steps=STEPS, **_inner(spec))
    return api.invert(pipe, photo, PROMPT, spec, config=config)


def _inner(spec: str) -> dict[str, int]:
    """The inner-step override, for the methods that have an optimiser (the others refuse it)."""
    return {"num_inner_steps": INNER_STEPS} if hasattr(resolve_method(spec)[1], "optimization") else {}


def assert_same_inversion(a: Inversion, b: Inversion) -> None:
    assert a.settings == b.settings
    assert a._tensors().keys() == b._tensors().keys()
    for key, tensor in a._tensors().items():
        assert torch.equal(tensor, b._tensors()[key]), key


@pytest.mark.parametrize("spec", method_names())
def test_api_save_load_reconstruct_is_bit_exact(model, photo, tmp_path, spec):
    pipe, _ = model
    inversion = invert_in_memory(pipe, photo, spec)
    path = inversion.save(tmp_path / "x.inv.safetensors")
    loaded = Inversion.load(path, pipe)
    assert_same_inversion(inversion, loaded)
    assert loaded.stats == inversion.stats
    before = api.reconstruct(pipe, inversion, output_type="latent")
    after = api.reconstruct(pipe, loaded, output_type="latent")
    assert torch.equal(before, after)


@pytest.mark.parametrize("spec", method_names())
def test_cli_invert_and_reconstruct_match_the_unsaved_inversion(model, photo, photo_path, tmp_path, spec):
    pipe, folder = model
    inv, png = tmp_path / "x.inv.safetensors", tmp_path / "x.png"
    common = ["--model", str(folder)]
    argv = ["invert", photo_path, "--prompt", PROMPT, "--method", spec, "--steps", str(STEPS)]
    inner = [f"--{k.replace('_', '-')}={v}" for k, v in _inner(spec).items()]
    assert main([*argv, *inner, "-o", str(inv), *common]) == 0
    assert main(["reconstruct", str(inv), "-o", str(png), *common]) == 0
    inversion = invert_in_memory(pipe, photo, spec)
    assert_same_inversion(inversion, Inversion.load(inv, pipe))
    expected = np.asarray(api.reconstruct(pipe, inversion)[0])
    with Image.open(png) as written:
        assert np.array_equal(np.asarray(written.convert("RGB")), expected)
