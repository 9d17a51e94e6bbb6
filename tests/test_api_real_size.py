"""Smoke tests at real size: SD-1.5- and SDXL-*sized* random-init pipelines in bf16 (shapes and dtypes at scale).

Slow (all four: 3 m 31 s on 2 idle cores; SDXL alone 4 m 53 s beside other jobs, 80 s of it creating 3.5B random
weights in bf16, 7 GB): run with `make test-slow`.
"""

import pytest
import torch

from diffinv import (
    METHODS,
    Inversion,
    InversionConfig,
    OptimizationConfig,
    PromptTokensConfig,
    edit,
    invert,
    reconstruct,
    sdedit,
)
from diffinv.testing import sd15_sized_pipeline, sdxl_sized_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sd15_sized():
    pipe = sd15_sized_pipeline(dtype=torch.bfloat16)
    assert sum(p.numel() for p in pipe.unet.parameters()) > 800e6
    return pipe


@pytest.mark.parametrize("method", ["prompt-tokens", "null-text"])
def test_real_size_inversion_in_bf16(sd15_sized, photo, tmp_path, method):
    config_class = METHODS[method].config_class
    config = config_class(num_inference_steps=2, optimization=OptimizationConfig(num_inner_steps=1))
    inversion = invert(sd15_sized, photo, "a woman in a space suit", method, config=config, height=256, width=256)
    assert inversion.latents.shape == (1, 4, 32, 32) and inversion.latents.dtype == torch.float32
    width = 8 * 768 if method == "prompt-tokens" else 77 * 768
    assert inversion.stats.optimized_params == width * 2
    loaded = Inversion.load(inversion.save(tmp_path / "x.inv.safetensors"), sd15_sized)
    image = reconstruct(sd15_sized, loaded, output_type="pt")
    assert image.shape == (1, 3, 256, 256) and torch.isfinite(image).all()


def test_real_size_edit_and_sdedit_in_bf16(sd15_sized, photo):
    config = InversionConfig(num_inference_steps=2)
    inversion = invert(sd15_sized, photo, "a woman in a space suit", "ddim", config=config, height=256, width=256)
    result = edit(sd15_sized, inversion, "a man in a space suit", local_blend=["woman", "man"], output_type="pt")
    assert result.edit.shape == (1, 3, 256, 256) and torch.isfinite(result.edit).all()
    assert result.mask is not None and result.mask.shape == (1, 1, 32, 32)
    image = sdedit(sd15_sized, photo, "a man", strength=1.0, num_inference_steps=2, height=256, width=256,
                   output_type="pt")  # fmt: skip
    assert image.shape == (1, 3, 256, 256) and torch.isfinite(image).all()


@pytest.fixture(scope="module")
def sdxl_sized():
    pipe = sdxl_sized_pipeline(dtype=torch.bfloat16)
    assert sum(p.numel() for p in pipe.unet.parameters()) > 2.5e9
    return pipe


def test_sdxl_sized_inversion_reconstruction_and_edit_in_bf16(sdxl_sized, photo, tmp_path):
    config = PromptTokensConfig(num_inference_steps=2, optimization=OptimizationConfig(num_inner_steps=1))
    inversion = invert(sdxl_sized, photo, "a woman in a space suit", "prompt-tokens", config=config, height=256,
                       width=256)  # fmt: skip
    assert inversion.latents.shape == (1, 4, 32, 32) and inversion.prompt_embeds.shape == (2, 78, 2048)
    assert inversion.stats.optimized_params == (8 * 2048 + 1280) * 2  # semantic slice of both encoders + pooled
    loaded = Inversion.load(inversion.save(tmp_path / "xl.inv.safetensors"), sdxl_sized)
    image = reconstruct(sdxl_sized, loaded, negative_prompt="blurry", output_type="pt")
    assert image.shape == (1, 3, 256, 256) and torch.isfinite(image).all()
    result = edit(sdxl_sized, loaded, "a man in a space suit", output_type="pt")
    assert torch.isfinite(result.edit).all()
