"""The shipped miniature Stable Diffusion ("mini"): loads offline from package data within the size and time
budget, is the default model, generates deterministically, and draws what its captions say (read back by the
shipped Shapes probe)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from diffinv.api import generate
from diffinv.pipelines import DEFAULT_MODEL, builtin_model_path, default_size, load_pipeline
from diffinv.shapes import Scene, ShapeObject, caption
from diffinv.shapes.probe import read_scenes, scene_agreement

pytestmark = pytest.mark.stored_data  # reads shipped/stored numbers: also run on other CPUs (.ci/run)

MAX_WEIGHTS_MB = 30.0  # issue #3
MAX_LOAD_SECONDS = 10.0  # the budget is 2 s on an idle CPU; the test suite shares the machine


@pytest.fixture(scope="module")
def mini():
    return load_pipeline("mini")


def test_default_model_is_mini_and_loads_offline_within_budget(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert DEFAULT_MODEL == "mini"
    started = time.perf_counter()
    pipe = load_pipeline(None)
    assert time.perf_counter() - started < MAX_LOAD_SECONDS
    assert pipe.unet.dtype == torch.float32  # stored fp16, loaded fp32 on CPU
    folder = builtin_model_path("mini")
    size_mb = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e6
    assert 0 < size_mb <= MAX_WEIGHTS_MB
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))


def test_layout_is_stable_diffusion_like(mini) -> None:
    assert mini.vae.config.latent_channels == 4 and mini.unet.config.in_channels == 4
    assert mini.tokenizer.pad_token == mini.tokenizer.eos_token
    assert mini.text_encoder.config.max_position_embeddings == mini.tokenizer.model_max_length
    assert mini.scheduler.config.beta_schedule == "scaled_linear"
    assert (mini.scheduler.config.beta_start, mini.scheduler.config.beta_end) == (0.00085, 0.012)
    assert default_size(mini) == (64, 64)
    record = json.loads((builtin_model_path("mini") / "training.json").read_text())
    assert record["unet"]["complete"] and record["vae"]["eval"]["psnr_shapes"] >= 30.0


def test_seeded_generation_is_deterministic_and_prompt_dependent(mini) -> None:
    def run(prompt: str, seed: int) -> np.ndarray:
        return generate(mini, prompt, num_inference_steps=20, generator=torch.Generator().manual_seed(seed),
                        output_type="np")  # fmt: skip

    prompt = "a large red circle in the center on a white background"
    first, again = run(prompt, 3), run(prompt, 3)
    np.testing.assert_array_equal(first, again)
    other = run("a large blue square at the top left on a black background", 3)
    assert np.abs(first - other).mean() > 0.1


@pytest.mark.parametrize(
    ("background", "obj"),
    [
        ("white", ShapeObject(shape="circle", color="red", size="large", position="center")),
        ("yellow", ShapeObject(shape="square", color="blue", size="large", position="top left")),
        ("blue", ShapeObject(shape="star", color="yellow", size="large", position="bottom right")),
    ],
)
def test_probe_reads_the_captioned_scene_from_a_seeded_generation(mini, background: str, obj: ShapeObject) -> None:
    scene = Scene(background=background, objects=(obj,))
    prompt = caption(scene)
    image = generate(mini, prompt, num_inference_steps=50, guidance_scale=7.5,
                     generator=torch.Generator().manual_seed(0), output_type="np")  # fmt: skip
    read = read_scenes((np.asarray(image)[0] * 255).round().astype(np.uint8)[None])[0]
    assert scene_agreement(read, scene)["all"] == 1.0, f"{prompt!r} was read as {read}"
