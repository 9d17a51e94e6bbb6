"""The DDIM schedule and the one place that calls the UNet.

:class:`Schedule` is built from any diffusers scheduler config (DDIM, PNDM, Euler, ... share the same training
schedule keys), so an inversion never depends on which scheduler class a checkpoint ships with.
:class:`Denoiser` wraps a ``UNet2DConditionModel`` and turns its output into ε̂ with :mod:`diffinv.steps`, whatever the
model's ``prediction_type``; it also counts UNet evaluations for benchmarks.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from diffinv import steps
from diffinv.conditioning import split_pooled, unet_pooled_width
from diffinv.errors import DiffinvError, check_integer, check_number, first_line


def check_training_steps(num_inference_steps: int, num_train_timesteps: int) -> None:
    """Refuse a schedule with more inference steps than the scheduler has training steps (DDIM's timesteps would
    repeat)."""
    if num_inference_steps > num_train_timesteps:
        raise DiffinvError(
            f"num_inference_steps={num_inference_steps} exceeds the scheduler's {num_train_timesteps} training steps"
        )


def noise_like(latents: Tensor, generator: torch.Generator | None) -> Tensor:
    """ε ~ N(0, I) of ``latents``' shape, dtype and device, drawn in float32 on ``generator``'s device (diffusers'
    ``randn_tensor``): a CPU generator gives the same draws for a model on any device."""
    noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=torch.float32)
    return noise.to(latents)


def _ddim_scheduler(scheduler_config: Mapping[str, Any]) -> DDIMScheduler:
    """A :class:`DDIMScheduler` from any scheduler's config; :class:`DiffinvError` in one line for a config diffusers
    cannot build one from (an unknown ``beta_schedule``, a field of the wrong type), an unknown ``prediction_type``
    and noise levels that are not finite numbers in (0, 1] (a ``beta_end`` of NaN)."""
    try:
        scheduler = DDIMScheduler.from_config(dict(scheduler_config))
    except (ValueError, TypeError, NotImplementedError, AttributeError, RuntimeError) as exc:
        raise DiffinvError(f"scheduler config: {first_line(exc)}") from None
    prediction_type = scheduler.config.prediction_type
    if prediction_type not in steps.PREDICTION_TYPES:
        raise DiffinvError(
            f"scheduler config: prediction_type {prediction_type!r} is none of {', '.join(steps.PREDICTION_TYPES)}"
        )
    alphas = scheduler.alphas_cumprod
    if not bool(torch.isfinite(alphas).all()) or bool((alphas <= 0).any()) or bool((alphas > 1).any()):
        raise DiffinvError("scheduler config: its noise levels are not finite numbers in (0, 1] (check the betas)")
    return scheduler


@dataclass(frozen=True)
class Schedule:
    """DDIM timesteps and their noise levels.

    Attributes:
        timesteps: ``(T,)`` int64, descending: denoising step ``i`` starts at ``timesteps[i]``.
        alphas: ``(T,)`` float64, ᾱ at each timestep.
        final_alpha: ᾱ reached after the last step (``final_alpha_cumprod`` in diffusers' DDIM).
        prediction_type: what the UNet predicts (``epsilon`` / ``v_prediction`` / ``sample``).
    """

    timesteps: Tensor
    alphas: Tensor
    final_alpha: float
    prediction_type: str

    @classmethod
    def from_config(cls, scheduler_config: Mapping[str, Any], num_inference_steps: int) -> Schedule:
        """DDIM timesteps for ``num_inference_steps`` from a diffusers scheduler config (any scheduler class)."""
        check_integer("num_inference_steps", num_inference_steps, minimum=1)
        scheduler = _ddim_scheduler(scheduler_config)
        check_training_steps(num_inference_steps, scheduler.config.num_train_timesteps)
        try:
            scheduler.set_timesteps(num_inference_steps)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise DiffinvError(f"scheduler config: {first_line(exc)}") from None
        timesteps = scheduler.timesteps.to(torch.int64)
        total = scheduler.config.num_train_timesteps
        if int(timesteps.max()) >= total or int(timesteps.min()) < 0:
            raise DiffinvError(
                f"num_inference_steps={num_inference_steps} puts a timestep at {int(timesteps.max())} with this "
                f"scheduler's spacing ({scheduler.config.timestep_spacing}, steps_offset "
                f"{scheduler.config.steps_offset}), outside its {total} training steps; use fewer steps"
            )
        return cls(
            timesteps=timesteps,
            alphas=scheduler.alphas_cumprod.to(torch.float64)[timesteps],
            final_alpha=float(scheduler.final_alpha_cumprod),
            prediction_type=scheduler.config.prediction_type,
        )

    @classmethod
    def training(cls, scheduler_config: Mapping[str, Any]) -> Schedule:
        """Every training timestep of a diffusers scheduler config, descending (step ``i`` is timestep ``N − 1 −
        i``): the schedule a denoising loss (:meth:`Denoiser.denoising_loss`) draws its timesteps from."""
        scheduler = DDIMScheduler.from_config(dict(scheduler_config))
        timesteps = torch.arange(scheduler.config.num_train_timesteps - 1, -1, -1, dtype=torch.int64)
        return cls(
            timesteps=timesteps,
            alphas=scheduler.alphas_cumprod.to(torch.float64)[timesteps],
            final_alpha=float(scheduler.final_alpha_cumprod),
            prediction_type=scheduler.config.prediction_type,
        )

    def __len__(self) -> int:
        return int(self.timesteps.numel())

    def alpha(self, i: int) -> float:
        """ᾱ at the start of denoising step ``i``."""
        return float(self.alphas[i])

    def alpha_after(self, i: int) -> float:
        """ᾱ at the end of denoising step ``i`` (the start of step ``i + 1``)."""
        return float(self.alphas[i + 1]) if i + 1 < len(self) else self.final_alpha


_DEADLINE: contextvars.ContextVar[tuple[float, float, threading.Event | None] | None] = contextvars.ContextVar(
    "diffinv_deadline", default=None
)


@contextlib.contextmanager
def time_limit(seconds: float, cancel: threading.Event | None = None) -> Iterator[None]:
    """Inside this context, a UNet call that starts more than ``seconds`` after entering, or after ``cancel`` is
    set (from another thread: a server's Cancel button), raises :class:`DiffinvError`: any inversion,
    reconstruction, edit or SDEdit stops at its next step (a server's job timeout; the limit follows the context,
    so each thread or task has its own)."""
    check_number("time limit (seconds)", seconds, minimum=0, above=True)
    token = _DEADLINE.set((time.monotonic() + seconds, seconds, cancel))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _check_deadline() -> None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return
    if deadline[2] is not None and deadline[2].is_set():
        raise DiffinvError("stopped: cancelled")
    if time.monotonic() > deadline[0]:
        raise DiffinvError(f"stopped: the job ran past its time limit of {deadline[1]:g} s")


class Denoiser:
    """A UNet bound to a :class:`Schedule`: ε̂ predictions, guided predictions and DDIM steps.

    Latents and embeddings are kept in a compute dtype (float32, or float64 for a float64 UNet) and cast to the UNet's
    dtype only for the forward pass, so optimisation stays in full precision with bf16/fp16 models.

    An SDXL UNet's embeddings carry the pooled text embedding as their last row (:mod:`diffinv.conditioning`); the
    denoiser hands it to the UNet with SDXL's size conditioning for an uncropped image of the latents' size
    (``add_time_ids`` = (H, W, 0, 0, H, W), as diffusers' SDXL pipeline by default), ``H × W`` being the latent size
    times ``vae_scale_factor``.
    """

    def __init__(self, unet: UNet2DConditionModel, schedule: Schedule, *, vae_scale_factor: int = 8) -> None:
        self.unet = unet
        self.schedule = schedule
        self.pooled_width = unet_pooled_width(unet)
        self.vae_scale_factor = vae_scale_factor
        self._time_ids: dict[tuple[int, ...], Tensor] = {}  # SDXL's size ids per latent shape, made once
        self.row_passes: Counter[int] = Counter()
        # Read once: diffusers' ModelMixin.device/.dtype walk every module on each access.
        self.device: torch.device = unet.device
        self.unet_dtype: torch.dtype = unet.dtype
        self.compute_dtype: torch.dtype = torch.float64 if unet.dtype == torch.float64 else torch.float32
        self._timesteps = schedule.timesteps.to(self.device)

    @classmethod
    def for_pipeline(cls, pipe: Any, schedule: Schedule) -> Denoiser:
        """The denoiser of ``pipe``'s UNet (with its VAE's scale factor, for SDXL's size conditioning)."""
        return cls(pipe.unet, schedule, vae_scale_factor=int(pipe.vae_scale_factor))

    @property
    def unet_passes(self) -> int:
        """UNet evaluations so far (one latent through the UNet counts 1)."""
        return sum(self.row_passes.values())

    def _alpha(self, i: int | Tensor, like: Tensor) -> Tensor:
        """ᾱ of step ``i`` as a 0-d tensor, or of steps ``i`` ``(B,)`` as ``(B, 1, 1, 1)``, on ``like``'s device."""
        if isinstance(i, Tensor):
            dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
            return self.schedule.alphas[i.cpu()].to(like.device, dtype).view(-1, *([1] * (like.ndim - 1)))
        return steps.as_alpha(self.schedule.alpha(i), like)

    def epsilon(self, latents: Tensor, i: int | Tensor, embeds: Tensor, rows: Sequence[int] | None = None) -> Tensor:
        """ε̂ for ``latents`` ``(B, C, h, w)`` at step ``i``'s timestep (or at steps ``i`` ``(B,)``, one per latent),
        conditioned on ``embeds`` ``(B, L, D)``.

        Counts one UNet evaluation for each of ``rows`` (which images of a batched problem the ``B`` latents are;
        default ``0 .. B-1``) in :attr:`row_passes`. Differentiable with respect to ``latents`` and ``embeds``. Raises
        :class:`DiffinvError` past a :func:`time_limit`.
        """
        _check_deadline()
        rows = range(latents.shape[0]) if rows is None else rows
        if len(rows) != latents.shape[0]:
            raise ValueError(f"{len(rows)} rows named for a batch of {latents.shape[0]}")
        output = self.unet(latents.to(self.unet_dtype), self._timesteps[i], **self._conditioning(latents, embeds))
        output = output.sample.to(latents.dtype)
        self.row_passes.update(rows)
        return steps.predict_epsilon(output, latents, self._alpha(i, latents), self.schedule.prediction_type)

    def _conditioning(self, latents: Tensor, embeds: Tensor) -> dict[str, Any]:
        """The UNet's keyword arguments for ``embeds`` ``(B, L, D)`` (or ``(B, L + 1, D)`` with a pooled row)."""
        hidden, pooled = split_pooled(embeds, self.pooled_width)
        kwargs: dict[str, Any] = {"encoder_hidden_states": hidden.to(self.unet_dtype)}
        if pooled is not None:
            shape = tuple(latents.shape[-2:])
            if shape not in self._time_ids:
                height, width = (int(size) * self.vae_scale_factor for size in shape)
                ids = [height, width, 0, 0, height, width]
                self._time_ids[shape] = torch.tensor(ids, dtype=self.unet_dtype, device=self.device)
            kwargs["added_cond_kwargs"] = {
                "text_embeds": pooled.to(self.unet_dtype),
                "time_ids": self._time_ids[shape].expand(latents.shape[0], -1),
            }
        return kwargs

    def denoising_loss(self, latents: Tensor, embeds: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The denoising objective of latent diffusion training, per sample ``(B,)``: DDPM's simple loss (Ho et al.
        2020, Eq. 14; Rombach et al. 2022, Eq. 2) ``‖ε − ε̂(sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε, t, c)‖²`` (mean over
        elements) with one step ``t`` uniform over the schedule (use :meth:`Schedule.training`) and one ε ~ N(0, I)
        per clean latent of ``latents`` ``(B, C, h, w)``, conditioned on ``embeds`` ``(B, L, D)``; both drawn from
        ``generator`` on its device (diffusers' ``randn_tensor``: a CPU generator gives the same draws for a model on
        any device). The error is measured on ε̂ for every ``prediction_type`` (for v-prediction that is
        ᾱ_t × the error on v). Differentiable with respect to ``embeds`` and the UNet's weights.
        """
        where = generator.device if generator is not None else torch.device("cpu")
        index = torch.randint(len(self.schedule), (latents.shape[0],), generator=generator, device=where).cpu()
        noise = noise_like(latents, generator)
        noisy = steps.add_noise(latents, noise, self._alpha(index, latents))
        return (self.epsilon(noisy, index, embeds) - noise).pow(2).flatten(1).mean(1)

    def guided_epsilon(
        self,
        latents: Tensor,
        i: int,
        prompt_embeds: Tensor,
        negative_prompt_embeds: Tensor,
        guidance_scale: float,
        rows: Sequence[int] | None = None,
    ) -> Tensor:
        """Classifier-free-guided ε̂ (one batched UNet call of 2·B; a single call when ``guidance_scale == 1``);
        ``rows`` as :meth:`epsilon`."""
        if guidance_scale == 1.0:
            return self.epsilon(latents, i, prompt_embeds, rows)
        rows = list(range(latents.shape[0]) if rows is None else rows)
        both = self.epsilon(
            torch.cat([latents, latents]), i, torch.cat([negative_prompt_embeds, prompt_embeds]), rows + rows
        )
        uncond, cond = both.chunk(2)
        return steps.classifier_free_guidance(uncond, cond, guidance_scale)

    def step(self, latents: Tensor, epsilon: Tensor, i: int, eta: float = 0.0, noise: Tensor | None = None) -> Tensor:
        """Denoising DDIM step ``i``: from ``timesteps[i]`` to the next lower noise level; deterministic at
        ``eta = 0``, otherwise with ``noise`` (z ~ N(0, I)) as :func:`diffinv.steps.ddim_stochastic`."""
        alpha_from = self._alpha(i, latents)
        alpha_to = steps.as_alpha(self.schedule.alpha_after(i), latents)
        if eta == 0.0:
            return steps.ddim_transfer(latents, epsilon, alpha_from, alpha_to)
        if noise is None:
            raise ValueError("a stochastic step (eta > 0) needs noise")
        return steps.ddim_stochastic(latents, epsilon, alpha_from, alpha_to, eta, noise)

    def inverse_step(self, latents: Tensor, epsilon: Tensor, i: int) -> Tensor:
        """Inverse DDIM step ``i``: from the end of step ``i`` back up to ``timesteps[i]``."""
        return steps.ddim_transfer(
            latents,
            epsilon,
            steps.as_alpha(self.schedule.alpha_after(i), latents),
            steps.as_alpha(self.schedule.alpha(i), latents),
        )
