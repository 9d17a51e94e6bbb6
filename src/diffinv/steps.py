"""Pure DDIM / classifier-free-guidance step math.

Every function here is stateless and model-free: tensors in, tensors out. Methods call these functions; nothing
else in diffinv re-implements a diffusion step.

Notation (Song et al. 2021, "Denoising Diffusion Implicit Models", Eq. 12 with σ = 0):
``x_t = sqrt(ᾱ_t) · x_0 + sqrt(1 − ᾱ_t) · ε``, where ᾱ ("alpha_prod") is the cumulative product of (1 − β).

The deterministic DDIM update from noise level ᾱ_from to ᾱ_to is

    x̂_0 = (x − sqrt(1 − ᾱ_from) · ε̂) / sqrt(ᾱ_from)
    x'  = sqrt(ᾱ_to) · x̂_0 + sqrt(1 − ᾱ_to) · ε̂

It serves both directions: denoising (ᾱ_to > ᾱ_from) and DDIM inversion (ᾱ_to < ᾱ_from; Dhariwal & Nichol 2021,
Mokady et al. 2022 Sec. 3), where ε̂ is evaluated at the higher noise level ("the linearisation of inversion").
"""

from __future__ import annotations

import torch
from torch import Tensor

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def _check_prediction_type(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"unsupported prediction_type {prediction_type!r}; expected one of {PREDICTION_TYPES}")


def predict_epsilon(model_output: Tensor, sample: Tensor, alpha_prod: Tensor, prediction_type: str) -> Tensor:
    """Convert a model output to the noise ε̂ it implies.

    Args:
        model_output: the UNet's output, shape ``(B, C, h, w)``.
        sample: the noisy latent the model was given, same shape.
        alpha_prod: ᾱ of the timestep the model was told (scalar tensor or broadcastable).
        prediction_type: ``"epsilon"`` (SD 1.x), ``"v_prediction"`` (SD 2.x, Salimans & Ho 2022 Eq. 5:
            v = sqrt(ᾱ)·ε − sqrt(1−ᾱ)·x_0, hence ε = sqrt(ᾱ)·v + sqrt(1−ᾱ)·x_t) or ``"sample"`` (x_0).
    """
    _check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "v_prediction":
        return alpha_prod.sqrt() * model_output + (1 - alpha_prod).sqrt() * sample
    return (sample - alpha_prod.sqrt() * model_output) / (1 - alpha_prod).sqrt()


def predict_original(model_output: Tensor, sample: Tensor, alpha_prod: Tensor, prediction_type: str) -> Tensor:
    """Convert a model output to the clean-sample estimate x̂_0 (same arguments as :func:`predict_epsilon`)."""
    _check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return (sample - (1 - alpha_prod).sqrt() * model_output) / alpha_prod.sqrt()
    if prediction_type == "v_prediction":
        return alpha_prod.sqrt() * sample - (1 - alpha_prod).sqrt() * model_output
    return model_output


def ddim_transfer(sample: Tensor, epsilon: Tensor, alpha_from: Tensor, alpha_to: Tensor) -> Tensor:
    """Move ``sample`` deterministically from noise level ``alpha_from`` to ``alpha_to`` along ``epsilon``.

    DDIM Eq. 12 with σ_t = 0; see the module docstring. Shapes: ``sample`` and ``epsilon`` ``(B, C, h, w)``;
    alphas scalar tensors.
    """
    original = (sample - (1 - alpha_from).sqrt() * epsilon) / alpha_from.sqrt()
    return alpha_to.sqrt() * original + (1 - alpha_to).sqrt() * epsilon


def ddim_stochastic(
    sample: Tensor, epsilon: Tensor, alpha_from: Tensor, alpha_to: Tensor, eta: float, noise: Tensor
) -> Tensor:
    """Denoising DDIM step with noise (Song et al. 2021, Eq. 12 with σ_t from Eq. 16).

    ``σ = η · sqrt((1 − ᾱ_to) / (1 − ᾱ_from)) · sqrt(1 − ᾱ_from / ᾱ_to)``, then
    ``x' = sqrt(ᾱ_to) · x̂_0 + sqrt(1 − ᾱ_to − σ²) · ε̂ + σ · z``. ``η = 0`` is :func:`ddim_transfer`; ``η = 1`` is
    DDPM's ancestral sampler, the discretisation of the reverse SDE that SDEdit (Meng et al. 2022) solves.
    ``noise`` is z ~ N(0, I), shaped like ``sample``.
    """
    original = (sample - (1 - alpha_from).sqrt() * epsilon) / alpha_from.sqrt()
    sigma = eta * ((1 - alpha_to) / (1 - alpha_from)).sqrt() * (1 - alpha_from / alpha_to).sqrt()
    return alpha_to.sqrt() * original + (1 - alpha_to - sigma**2).clamp(min=0).sqrt() * epsilon + sigma * noise


def add_noise(original: Tensor, noise: Tensor, alpha_prod: Tensor) -> Tensor:
    """The forward process q(x_t | x_0) (Ho et al. 2020, Eq. 4): ``sqrt(ᾱ_t) · x_0 + sqrt(1 − ᾱ_t) · ε``.

    ``alpha_prod`` is a scalar tensor or one ᾱ per sample broadcastable to ``original`` (e.g. ``(B, 1, 1, 1)``).
    """
    return alpha_prod.sqrt() * original + (1 - alpha_prod).sqrt() * noise


def classifier_free_guidance(uncond: Tensor, cond: Tensor, guidance_scale: float) -> Tensor:
    """Ho & Salimans 2022, Eq. 6: ``uncond + w · (cond − uncond)``; ``w = 1`` returns ``cond``."""
    return uncond + guidance_scale * (cond - uncond)


def as_alpha(value: float | Tensor, like: Tensor) -> Tensor:
    """ᾱ as a 0-d tensor on ``like``'s device, in float64 when ``like`` is float64 and float32 otherwise."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.as_tensor(value, dtype=dtype, device=like.device)
