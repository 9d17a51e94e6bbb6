"""SDEdit (Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations").

Perturb the guide's latent to an intermediate time t0 with the forward process, ``x(t0) = sqrt(ᾱ_t0) x_guide +
sqrt(1 − ᾱ_t0) ε`` (Alg. 1), then solve the reverse process from t0 to 0 with the prompt. t0 (``strength``) trades
faithfulness to the guide (small t0) for realism (large t0). With a mask (Alg. 3), after every step the region
outside the mask is replaced by the guide perturbed to the step's noise level, and the output keeps the guide's
pixels outside the mask exactly. ``repeats = K`` repeats perturb-and-denoise K times from the previous result
(Alg. 2). The reverse process is the project's sampling loop with DDIM's η (1 by default: DDPM's ancestral sampler,
the discretisation of the reverse SDE the paper solves; 0 gives the ODE); timesteps and noising come from diffusers
as in its img2img pipeline (``strength · T`` of the ``T`` steps run; ``DDIMScheduler.add_noise``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, StableDiffusionPipeline
from PIL import Image
from torch import Tensor

from diffinv import images
from diffinv.denoiser import Denoiser, Schedule, noise_like
from diffinv.editing.config import SDEditConfig
from diffinv.errors import DiffinvError
from diffinv.sampling import denoise
from diffinv.text import encode_negative_prompt, encode_prompt


def sdedit_latents(
    pipe: StableDiffusionPipeline,
    guide: Tensor,
    prompt: str,
    config: SDEditConfig,
    *,
    mask: Tensor | None = None,
    negative_prompt: str | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """SDEdit in latent space: ``guide`` pixels ``(1, 3, H, W)`` in [-1, 1], ``mask`` ``(1, 1, H, W)`` in [0, 1]
    (1 = edit) → ``(1, C, h, w)`` latents."""
    denoiser = Denoiser.for_pipeline(pipe, Schedule.from_config(pipe.scheduler.config, config.num_inference_steps))
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(config.num_inference_steps)
    dtype, device = denoiser.compute_dtype, denoiser.device
    source = images.encode(pipe.vae, guide, sample=config.posterior == "sample", generator=generator)
    source = source.to(device, dtype)
    start = config.start_step
    cond = encode_prompt(pipe, prompt).embeds.to(device, dtype)
    uncond = encode_negative_prompt(pipe, negative_prompt).to(device, dtype)
    keep = None if mask is None else 1 - F.interpolate(mask.to(device, dtype), size=source.shape[-2:], mode="area")

    def noised(latents: Tensor, step: int) -> Tensor:
        timestep = scheduler.timesteps[step : step + 1].to(device)
        return scheduler.add_noise(latents, noise_like(latents, generator), timestep)

    def keep_source(i: int, latents: Tensor) -> Tensor:
        last = i + 1 == len(denoiser.schedule)
        return latents * (1 - keep) + (source if last else noised(source, i + 1)) * keep

    latents = source
    for _ in range(config.repeats):
        latents = denoise(
            denoiser,
            noised(latents, start),
            cond,
            uncond,
            config.guidance_scale,
            start_step=start,
            callback=None if keep is None else keep_source,
            eta=config.eta,
            generator=generator,
            progress=progress,
        )
    return latents


def paste(base: Image.Image, patch: Image.Image, left: int, top: int) -> tuple[Image.Image, Image.Image]:
    """Image compositing's inputs (the paper's third task): ``patch`` pasted onto ``base`` with its top-left corner
    at (left, top), and the mask of the pasted region (white) to pass to :func:`diffinv.sdedit`."""
    if not (0 <= left < base.width and 0 <= top < base.height):
        raise DiffinvError(f"the paste position ({left}, {top}) is outside the {base.width}×{base.height} image")
    guide = base.convert("RGB")
    guide.paste(patch.convert("RGB"), (left, top))
    mask = Image.new("L", base.size, 0)
    mask.paste(255, (left, top, min(base.width, left + patch.width), min(base.height, top + patch.height)))
    return guide, mask
