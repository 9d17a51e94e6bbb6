"""Smoke test at real size: an SD-1.5-*sized* random-init pipeline in bf16 (shapes and dtypes at scale).

Slow (about a minute on 2 cores): run with `make test-slow`.
"""

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from diffinv import Inversion, InversionConfig, OptimizationConfig, edit, invert, reconstruct, sdedit
from diffinv.testing import SD_SCHEDULER_CONFIG, clip_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sd15_sized():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(  # SD 1.5's UNet config (860M parameters)
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**SD_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    assert sum(p.numel() for p in unet.parameters()) > 800e6
    return pipe.to(dtype=torch.bfloat16)


@pytest.mark.parametrize("method", ["prompt-tokens", "null-text"])
def test_real_size_inversion_in_bf16(sd15_sized, photo, tmp_path, method):
    config = InversionConfig(num_inference_steps=2, optimization=OptimizationConfig(num_inner_steps=1))
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
