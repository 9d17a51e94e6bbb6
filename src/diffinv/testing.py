"""Tiny, seeded Stable Diffusion pipelines built in code, for tests and benchmarks (diffusers'
``get_dummy_components`` style).

The components have Stable Diffusion's interfaces and layout — VAE downsampling factor 8 with 4 latent channels,
CLIP text encoder with the real 49,408-token BPE vocabulary and EOS padding to 77 positions, SD's scaled-linear beta
schedule — at a size that runs a 50-step generation in well under a second on a laptop CPU. Weights are random:
the images are meaningless, but every shape, dtype and code path is the real one.
"""

from __future__ import annotations

from importlib import resources

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

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


def clip_tokenizer() -> CLIPTokenizer:
    """OpenAI CLIP's BPE tokenizer (SD 1.x's), from the files shipped in ``diffinv/assets/clip_tokenizer``."""
    return CLIPTokenizer.from_pretrained(str(resources.files("diffinv") / "assets" / "clip_tokenizer"))


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
    vae = AutoencoderKL(
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
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    with torch.no_grad():
        unet.conv_out.weight.mul_(output_scale)
        unet.conv_out.bias.mul_(output_scale)
        smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8) * 2 - 1, size=image_size, mode="bilinear")
        vae.register_to_config(scaling_factor=1.0 / vae.encode(smooth).latent_dist.mean.std().item())
    scheduler = DDIMScheduler(**SD_SCHEDULER_CONFIG, prediction_type=prediction_type)
    return _assemble(unet, vae, text_encoder, tokenizer, scheduler, dtype)


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
    pipe.set_progress_bar_config(disable=True)
    for model in (unet, vae, text_encoder):
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
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
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
    return _assemble(unet, vae, text_encoder, tokenizer, DDIMScheduler(**SD_SCHEDULER_CONFIG), dtype)
