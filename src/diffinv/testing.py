"""Tiny, seeded Stable Diffusion pipelines built in code, for tests and benchmarks (diffusers'
``get_dummy_components`` style).

The components have Stable Diffusion's interfaces and layout — VAE downsampling factor 8 with 4 latent channels,
CLIP text encoder with the real 49,408-token BPE vocabulary and EOS padding to 77 positions, SD's scaled-linear beta
schedule — at a size that runs a 50-step generation in well under a second on a laptop CPU. Weights are random:
the images are meaningless, but every shape, dtype and code path is the real one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

# Stable Diffusion's training schedule (CompVis v1 configs): scaled-linear betas from 0.00085 to 0.012.
SD_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


# SDXL base's scheduler config (an EulerDiscreteScheduler over SD's training schedule, with the DDIM/PNDM keys its
# published scheduler_config.json carries, which DDIMScheduler.from_config reads).
SDXL_SCHEDULER_CONFIG = {
    **SD_SCHEDULER_CONFIG,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "sample_max_value": 1.0,
    "skip_prk_steps": True,
}


def clip_tokenizer(**kwargs: str) -> CLIPTokenizer:
    """OpenAI CLIP's BPE tokenizer (SD 1.x's), from the files shipped in ``diffinv/assets/clip_tokenizer``;
    ``kwargs`` override special tokens (SDXL's second tokenizer pads with ``pad_token="!"``)."""
    return CLIPTokenizer.from_pretrained(str(resources.files("diffinv") / "assets" / "clip_tokenizer"), **kwargs)


def _clip_config(tokenizer: CLIPTokenizer, **sizes: int | str) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
    )


def tiny_pipeline(
    seed: int = 0,
    *,
    prediction_type: str = "epsilon",
    dtype: torch.dtype = torch.float32,
    image_size: int = 64,
    hidden_size: int = 32,
    unet_channels: tuple[int, ...] = (32, 64),
    output_scale: float = 0.1,
) -> StableDiffusionPipeline:
    """A randomly initialised miniature SD pipeline (``image_size`` px → ``image_size/8`` latents).

    Args:
        seed: initialises every weight; two calls with the same seed give identical models.
        prediction_type: ``epsilon`` (SD 1.x) or ``v_prediction`` (SD 2.x).
        dtype: parameter dtype (float64 makes round-trip checks exact to ~1e-12).
        image_size: pixel resolution; must be a multiple of 8.
        hidden_size: text-encoder width D (the cross-attention dimension).
        unet_channels: UNet ``block_out_channels``.
        output_scale: multiplies the UNet's last layer. A trained denoiser's ε̂ varies slowly along the sampling
            ODE, a freshly initialised UNet's does not; at 0.1, DDIM inversion at guidance 1 reconstructs to
            ~5e-4 relative latent MSE at 50 steps, as it does on trained models, while guidance 7.5 still drifts.

    The VAE's ``scaling_factor`` is measured as Rombach et al. 2022 did (1 / std of the latents), here on seeded
    random smooth images, so latents have unit variance as in Stable Diffusion.
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=image_size // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=unet_channels,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",) + ("DownBlock2D",) * (len(unet_channels) - 1),
        up_block_types=("UpBlock2D",) * (len(unet_channels) - 1) + ("CrossAttnUpBlock2D",),
        cross_attention_dim=hidden_size,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = _tiny_vae(image_size)
    tokenizer = clip_tokenizer()
    sizes = {"hidden_size": hidden_size, "intermediate_size": 2 * hidden_size, "num_hidden_layers": 2}
    text_encoder = CLIPTextModel(_clip_config(tokenizer, **sizes, num_attention_heads=4))
    _scale_output(unet, output_scale)
    _measure_scaling_factor(vae, image_size)
    scheduler = DDIMScheduler(**SD_SCHEDULER_CONFIG, prediction_type=prediction_type)
    return _assemble(unet, vae, text_encoder, tokenizer, scheduler, dtype)


def tiny_sdxl_pipeline(
    seed: int = 0, *, dtype: torch.dtype = torch.float32, image_size: int = 64, output_scale: float = 0.1
) -> StableDiffusionXLPipeline:
    """A randomly initialised miniature SDXL pipeline: two CLIP text encoders (widths 32 and 32, the second with a
    32-wide projection giving the pooled embedding; hidden states side by side, D = 64), a UNet with SDXL's
    ``text_time`` addition embedding (pooled embedding + 6 size ids), SDXL's second tokenizer padding with ``!``,
    ``force_zeros_for_empty_prompt`` and an Euler scheduler config, otherwise as :func:`tiny_pipeline`."""
    torch.manual_seed(seed)
    width, time_dim = 32, 8
    unet = UNet2DConditionModel(
        sample_size=image_size // 8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=2 * width,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + width,
        norm_num_groups=8,
    )
    vae = _tiny_vae(image_size)
    tokenizer, tokenizer_2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    sizes = {"hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": 2, "num_attention_heads": 4}
    text_encoder = CLIPTextModel(_clip_config(tokenizer, **sizes))
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(tokenizer_2, **sizes, projection_dim=width))
    _scale_output(unet, output_scale)
    _measure_scaling_factor(vae, image_size)
    return _assemble_sdxl(unet, vae, (text_encoder, text_encoder_2), (tokenizer, tokenizer_2), dtype)


def sdxl_sized_pipeline(
    seed: int = 0, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> StableDiffusionXLPipeline:
    """A randomly initialised pipeline with SDXL base's architecture (2.6B-parameter UNet with its pooled and size
    conditioning, the SD VAE, CLIP ViT-L and OpenCLIP bigG text encoders), for shape/dtype smoke tests at real size;
    weights are created on ``device`` in ``dtype`` directly (3.5B parameters: 7 GB in bf16)."""
    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    with torch.device(device), _default_dtype(dtype):
        unet = UNet2DConditionModel(
            sample_size=128,
            block_out_channels=(320, 640, 1280),
            layers_per_block=2,
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=2048,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        vae = _sd_vae(sample_size=1024, scaling_factor=0.13025)
        text_encoder = CLIPTextModel(
            _clip_config(
                tokenizer,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                hidden_act="quick_gelu",
            )
        )
        text_encoder_2 = CLIPTextModelWithProjection(
            _clip_config(
                tokenizer_2,
                hidden_size=1280,
                intermediate_size=5120,
                num_hidden_layers=32,
                num_attention_heads=20,
                hidden_act="gelu",
                projection_dim=1280,
            )
        )
    return _assemble_sdxl(unet, vae, (text_encoder, text_encoder_2), (tokenizer, tokenizer_2), dtype)


def _assemble_sdxl(
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    text_encoders: tuple[CLIPTextModel, CLIPTextModelWithProjection],
    tokenizers: tuple[CLIPTokenizer, CLIPTokenizer],
    dtype: torch.dtype,
) -> StableDiffusionXLPipeline:
    """An SDXL base pipeline of these components (SDXL's scheduler config, zeros for an empty negative prompt)."""
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoders[0],
        text_encoder_2=text_encoders[1],
        tokenizer=tokenizers[0],
        tokenizer_2=tokenizers[1],
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
    )
    return _finish(pipe, dtype)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create parameters in ``dtype`` (restoring torch's default after)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _tiny_vae(image_size: int) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=image_size,
    )


def _sd_vae(**config: float) -> AutoencoderKL:
    """Stable Diffusion's VAE architecture (SD 1.x, 2.x and SDXL share it)."""
    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        **config,
    )


@torch.no_grad()
def _scale_output(unet: UNet2DConditionModel, output_scale: float) -> None:
    unet.conv_out.weight.mul_(output_scale)
    unet.conv_out.bias.mul_(output_scale)


@torch.no_grad()
def _measure_scaling_factor(vae: AutoencoderKL, image_size: int) -> None:
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8) * 2 - 1, size=image_size, mode="bilinear")
    vae.register_to_config(scaling_factor=1.0 / vae.encode(smooth).latent_dist.mean.std().item())


def _assemble(
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    scheduler: DDIMScheduler,
    dtype: torch.dtype,
) -> StableDiffusionPipeline:
    """A pipeline of these components in eval mode, progress bars off, in ``dtype``."""
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _finish(pipe, dtype)


def _finish(pipe: StableDiffusionPipeline | StableDiffusionXLPipeline, dtype: torch.dtype) -> Any:
    """``pipe`` with its models in eval mode, progress bars off, in ``dtype``."""
    pipe.set_progress_bar_config(disable=True)
    for model in pipe.components.values():
        if isinstance(model, torch.nn.Module):
            model.eval()
    return pipe.to(dtype=dtype)


def sd15_sized_pipeline(
    seed: int = 0, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> StableDiffusionPipeline:
    """A randomly initialised pipeline with Stable Diffusion 1.5's architecture (860M-parameter UNet, its VAE and
    12-layer CLIP text encoder), for shape/dtype smoke tests and speed measurements at real size; weights are
    created on ``device`` directly."""
    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=768,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )
        vae = _sd_vae(sample_size=512)
        text_encoder = CLIPTextModel(
            _clip_config(
                tokenizer, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12
            )
        )
    return _assemble(unet, vae, text_encoder, tokenizer, DDIMScheduler(**SD_SCHEDULER_CONFIG), dtype)
