"""What every inversion method shares: its input (:class:`InversionProblem`, which also hands a method its building
blocks: the DDIM trajectory, the embedding fit, DirectInversion's offsets) and its result (:class:`Inversion`).

A method is one file exposing one object that follows :class:`~diffinv.inversion.registry.InversionMethod`; its
configuration is a :class:`~diffinv.inversion.config.InversionConfig` (sub)class.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import StableDiffusionPipeline
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from diffinv import images
from diffinv.config import Config, init_fields
from diffinv.denoiser import Denoiser, Schedule, check_training_steps
from diffinv.errors import DiffinvError, check_integer, check_number
from diffinv.inversion.config import InversionConfig, OptimizingInversionConfig
from diffinv.inversion.embedding_fit import FitResult, fit_embeddings
from diffinv.inversion.registry import METHODS
from diffinv.inversion.trajectory import ddim_trajectory, direct_offsets
from diffinv.io import atomic_write, check_input_file
from diffinv.parsing import parse_json_header
from diffinv.pipelines import ModelFingerprint, fingerprint
from diffinv.text import EncodedPrompt, embedding_shape

FORMAT_NAME = "diffinv.inversion"
FORMAT_VERSION = 2  # 1: steps and guidance stored beside the config too, one config class for every method
MAX_ABS_VALUE = 1e4  # latents and text embeddings are O(1)-O(10); larger values in a file are garbage


@dataclass(frozen=True)
class InversionSettings(Config):
    """How an inversion was made (stored in the file's metadata).

    ``config`` is of the method's own config class (``METHODS[method].config_class``) and the one home of the
    number of steps and the guidance scale, which :attr:`num_inference_steps` and :attr:`guidance_scale` read.
    """

    method: str
    prompt: str
    height: int
    width: int
    scheduler_config: dict[str, Any]
    model_fingerprint: ModelFingerprint
    config: InversionConfig
    optimized_positions: int = 0

    def __post_init__(self) -> None:
        config_class = METHODS[self.method].config_class  # an unknown method raises here, naming the known ones
        if type(self.config) is not config_class:
            raise DiffinvError(
                f"config must be a {config_class.__name__} for inversion method {self.method}, "
                f"got {type(self.config).__name__}"
            )
        if not isinstance(self.prompt, str):
            raise DiffinvError(f"prompt must be a string, got {type(self.prompt).__name__}")
        images.check_size(
            check_integer("height", self.height, minimum=1), check_integer("width", self.width, minimum=1), multiple=1
        )
        check_integer("optimized_positions", self.optimized_positions, minimum=0)
        if not isinstance(self.scheduler_config, dict):
            raise DiffinvError("scheduler_config must be a mapping")
        train_steps = self.scheduler_config.get("num_train_timesteps", 1000)  # diffusers' default
        check_training_steps(self.num_inference_steps, check_integer("num_train_timesteps", train_steps, minimum=1))
        Schedule.from_config(self.scheduler_config, self.num_inference_steps)  # every other field, checked once

    @property
    def num_inference_steps(self) -> int:
        return self.config.num_inference_steps

    @property
    def guidance_scale(self) -> float:
        return self.config.guidance_scale

    @classmethod
    def from_dict(cls, data: Any, name: str | None = None) -> InversionSettings:
        """Read back :meth:`to_dict`'s output (e.g. from a file), every field checked; ``config`` as the method's
        config class."""
        if isinstance(data, Mapping) and isinstance(data.get("method"), str) and "config" in data:
            config_class = METHODS[data["method"]].config_class
            data = {**data, "config": config_class.from_dict(data["config"], f"{name or 'settings'}.config")}
        return super().from_dict(data, name or "settings")


def settings_from_version_1(data: Any) -> Any:
    """Version 1's settings in version 2's form.

    Version 1 stored ``num_inference_steps`` and ``guidance_scale`` beside the config, which held them too, and one
    config class for every method (a ``ddim`` file carried ``optimization``, ``tokens`` and ``pooled``). Version 2
    keeps them once, in the method's own config class: the duplicates must agree, the fields the method's class does
    not have are dropped. Anything malformed is passed on for :meth:`InversionSettings.from_dict` to name.
    """
    if not (
        isinstance(data, Mapping) and isinstance(data.get("config"), Mapping) and isinstance(data.get("method"), str)
    ):
        return data
    data, config = dict(data), dict(data["config"])
    for key in ("num_inference_steps", "guidance_scale"):
        if key not in data:
            continue
        value = data.pop(key)
        if config.get(key) is None:  # not stored twice after all (None once meant "the method's default")
            config[key] = value
        elif config[key] != value:
            raise DiffinvError(f"settings.{key} ({value!r}) and settings.config.{key} ({config[key]!r}) disagree")
    known = init_fields(METHODS[data["method"]].config_class)
    data["config"] = {key: value for key, value in config.items() if key in known}
    if "optimization" in known:
        data["config"].setdefault("optimization", {})  # version 1's default: Mokady et al.'s optimiser
    return data


@dataclass(frozen=True)
class InversionStats(Config):
    """Cost of an inversion: wall-clock seconds, UNet evaluations (one latent through the UNet counts 1), number of
    optimised scalars, and per step the inner iterations taken and the final latent MSE (optimising methods)."""

    seconds: float = 0.0
    unet_passes: int = 0
    optimized_params: int = 0
    inner_steps: tuple[int, ...] = ()
    final_losses: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_number("seconds", self.seconds, minimum=0)
        check_integer("unet_passes", self.unet_passes, minimum=0)
        check_integer("optimized_params", self.optimized_params, minimum=0)
        for value in self.inner_steps:
            check_integer("inner_steps", value, minimum=0)
        for value in self.final_losses:
            check_number("final_losses", value, minimum=0)


@dataclass
class Inversion:
    """The result of every inversion method: what regenerates the photo.

    Attributes:
        latents: ``(1, C, h, w)`` the initial noisy latent x_T.
        prompt_embeds: ``(S, L, D)`` conditional embedding, one per step (``S = T``) or shared (``S = 1``).
        negative_prompt_embeds: ``(S, L, D)`` when the method owns the unconditional slot (null-text,
            negative-prompt); ``None`` when the slot is free for a user's negative prompt.
        latent_offsets: ``(T, C, h, w)`` per-step corrections added after each step (DirectInversion), or ``None``.
        source_latents: ``(1, C, h, w)`` the photo's latent (the reconstruction target).
        settings: how it was made; stats: what it cost.
    """

    latents: Tensor
    prompt_embeds: Tensor
    negative_prompt_embeds: Tensor | None
    latent_offsets: Tensor | None
    source_latents: Tensor
    settings: InversionSettings
    stats: InversionStats

    @property
    def method(self) -> str:
        return self.settings.method

    @property
    def negative_slot_free(self) -> bool:
        """True when a negative prompt can be used at reconstruction time."""
        return self.negative_prompt_embeds is None

    def _tensors(self) -> dict[str, Tensor]:
        tensors = {
            "latents": self.latents,
            "prompt_embeds": self.prompt_embeds,
            "source_latents": self.source_latents,
            "negative_prompt_embeds": self.negative_prompt_embeds,
            "latent_offsets": self.latent_offsets,
        }
        return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items() if v is not None}

    def save(self, path: str | Path) -> Path:
        """Write one ``.safetensors`` file (tensors + JSON metadata), atomically."""
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "settings": self.settings.to_dict()}
        header["stats"] = self.stats.to_dict()
        metadata = {"diffinv": json.dumps(header)}
        # Own storage per tensor: a method may hand over views or one tensor under two names (negative-prompt
        # inversion's prompt_embeds is its negative_prompt_embeds), which safetensors refuses to write.
        tensors = {key: tensor.clone() for key, tensor in self._tensors().items()}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    @classmethod
    def load(cls, path: str | Path, pipe: StableDiffusionPipeline | None = None) -> Inversion:
        """Read an inversion file; with ``pipe``, refuse it unless it was made with the same model.

        Raises:
            DiffinvError: unreadable file, not a diffinv inversion, inconsistent shapes, NaN/Inf values, or a
                fingerprint different from ``pipe``'s.
        """
        path = check_input_file(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise DiffinvError(f"{path}: not a readable .safetensors file ({exc})") from None
        try:
            header = parse_json_header(metadata["diffinv"], f"{path}: not a diffinv inversion file")
            if header.get("format") != FORMAT_NAME:
                raise KeyError("format")
            version = header.get("version")
            if version not in (1, FORMAT_VERSION):
                raise DiffinvError(f"{path}: inversion format version {version} is not supported")
            settings = header["settings"] if version == FORMAT_VERSION else settings_from_version_1(header["settings"])
            settings = InversionSettings.from_dict(settings)
            stats = InversionStats.from_dict(header["stats"], "stats")
            inversion = cls(
                latents=tensors["latents"],
                prompt_embeds=tensors["prompt_embeds"],
                negative_prompt_embeds=tensors.get("negative_prompt_embeds"),
                latent_offsets=tensors.get("latent_offsets"),
                source_latents=tensors["source_latents"],
                settings=settings,
                stats=stats,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DiffinvError):
                raise
            raise DiffinvError(f"{path}: not a diffinv inversion file (missing or bad {exc})") from None
        inversion.validate(str(path))
        if pipe is not None:
            inversion.check_model(pipe)
        return inversion

    def validate(self, name: str = "inversion") -> None:
        """Check the tensors are floating point, finite and of sane magnitude, and their shapes agree with the
        settings."""
        steps = self.settings.num_inference_steps
        for key, tensor in self._tensors().items():
            if not tensor.is_floating_point():
                raise DiffinvError(f"{name}: tensor '{key}' has dtype {tensor.dtype}, expected floating point")
            if not torch.isfinite(tensor).all():
                raise DiffinvError(f"{name}: tensor '{key}' contains NaN or Inf values")
            if tensor.numel() and tensor.abs().max() > MAX_ABS_VALUE:
                raise DiffinvError(f"{name}: tensor '{key}' has values beyond ±{MAX_ABS_VALUE:g}")
        if self.latents.ndim != 4 or self.latents.shape != self.source_latents.shape:
            raise DiffinvError(
                f"{name}: latents have shape {tuple(self.latents.shape)} and source_latents "
                f"{tuple(self.source_latents.shape)}; an inversion holds one image's latents, both of shape "
                "(1, latent channels, latent height, latent width)"
            )
        for key in ("prompt_embeds", "negative_prompt_embeds"):
            embeds = getattr(self, key)
            if embeds is not None and (embeds.ndim != 3 or embeds.shape[0] not in (1, steps)):
                raise DiffinvError(f"{name}: {key} has shape {tuple(embeds.shape)}, expected (1 or {steps}, L, D)")
        if self.latent_offsets is not None and self.latent_offsets.shape != (steps, *self.latents.shape[1:]):
            raise DiffinvError(f"{name}: latent_offsets have shape {tuple(self.latent_offsets.shape)}")

    def check_negative_prompt(self, negative_prompt: str | None) -> None:
        """Raise :class:`DiffinvError` when a negative prompt is given but the method occupies its slot."""
        if negative_prompt is not None and not self.negative_slot_free:
            raise DiffinvError(
                f"the {self.method} inversion occupies the unconditional (negative-prompt) slot, so a negative "
                "prompt cannot be applied; invert with prompt-tokens, ddim or direct to use one"
            )

    def check_model(self, pipe: StableDiffusionPipeline) -> None:
        """Raise :class:`DiffinvError` unless ``pipe`` is the model this inversion was made with and the tensors
        have the shapes that model takes (a file may claim the right model and carry others)."""
        current = fingerprint(pipe)
        if not self.settings.model_fingerprint.matches(current):
            raise DiffinvError(
                f"this inversion was made with another model ({self.settings.model_fingerprint}) than the loaded "
                f"one ({current}); load the model it was made with, and the same concepts (--concept) if it was "
                "made with some (a concept's tokens change the text encoder)"
            )
        factor, settings = pipe.vae_scale_factor, self.settings
        latent = (pipe.unet.config.in_channels, settings.height // factor, settings.width // factor)
        if tuple(self.latents.shape[1:]) != latent:
            raise DiffinvError(f"latents have shape {tuple(self.latents.shape)}, but this model takes (1, *{latent})")
        embedding = embedding_shape(pipe)
        for key in ("prompt_embeds", "negative_prompt_embeds"):
            embeds = getattr(self, key)
            if embeds is not None and tuple(embeds.shape[1:]) != embedding:
                raise DiffinvError(
                    f"{key} have shape {tuple(embeds.shape)}, but this model's text embeddings are "
                    f"(rows, D) = {embedding}"
                )


@dataclass
class InversionProblem:
    """Everything a method needs, prepared once by :func:`diffinv.invert`, for a batch of ``B`` images inverted
    together (one UNet call per step for all of them; each image's optimisation stays its own).

    Attributes:
        denoiser: the UNet bound to the DDIM schedule of ``num_inference_steps`` steps.
        source_latents: ``(B, C, h, w)`` the photos' VAE latents (scaled), compute dtype.
        prompts: the encoded prompts (token counts), one per image.
        prompt_embeds: ``(B, L, D)`` conditional embeddings, compute dtype.
        null_embeds: ``(B, L, D)`` embeddings of the empty prompt, compute dtype.
        settings: what each result will record (method name, prompt, steps, model fingerprint, config...); the
            images differ only in their prompts.
        progress: show a progress bar.
    """

    denoiser: Denoiser
    source_latents: Tensor
    prompts: Sequence[EncodedPrompt]
    prompt_embeds: Tensor
    null_embeds: Tensor
    settings: Sequence[InversionSettings]
    progress: bool = False

    def __post_init__(self) -> None:
        sizes = {len(self.prompts), len(self.settings), *(t.shape[0] for t in self._batched())}
        if len(sizes) != 1:
            raise ValueError(f"an inversion problem's images, prompts and settings disagree in number: {sizes}")
        shared = [dataclasses.replace(s, prompt="") for s in self.settings]
        if any(s != shared[0] for s in shared):
            raise ValueError("the images of one inversion problem must share every setting but the prompt")

    def _batched(self) -> tuple[Tensor, ...]:
        return (self.source_latents, self.prompt_embeds, self.null_embeds)

    @property
    def batch_size(self) -> int:
        return len(self.settings)

    @property
    def config(self) -> InversionConfig:
        return self.settings[0].config

    @property
    def num_inference_steps(self) -> int:
        return len(self.denoiser.schedule)

    def ddim_trajectory(self) -> list[Tensor]:
        """The DDIM-inversion trajectory of the source latents under their prompts (see
        :func:`~diffinv.inversion.trajectory.ddim_trajectory`): ``T + 1`` latents ``(B, C, h, w)``, noisiest first."""
        return ddim_trajectory(self.denoiser, self.source_latents, self.prompt_embeds, progress=self.progress)

    def free_rows(self, n_positions: Sequence[int], *, pooled: bool) -> Tensor:
        """``(B, L)`` bool: per image, the first ``n_positions[b]`` token positions, and with ``pooled`` the pooled
        row of an SDXL embedding (:mod:`diffinv.conditioning`; a model without one has none to free)."""
        rows = self.prompt_embeds.shape[1]
        positions = rows - int(self.denoiser.pooled_width > 0)
        counts = torch.tensor(list(n_positions))
        if len(counts) != self.batch_size or bool((counts < 1).any() | (counts > positions).any()):
            raise ValueError(f"position counts {list(n_positions)} for {self.batch_size} images of {positions}")
        free = torch.arange(rows)[None, :] < counts[:, None]
        if pooled and positions < rows:
            free[:, positions:] = True
        return free

    def fit_embeddings(self, trajectory: list[Tensor], *, slot: Literal["cond", "uncond"], free: Tensor) -> FitResult:
        """Per-step optimisation of the rows ``free[b]`` (:meth:`free_rows`) of one embedding slot of each image
        along ``trajectory`` (see :func:`~diffinv.inversion.embedding_fit.fit_embeddings`), with the optimiser of the
        method's config (an :class:`~diffinv.inversion.config.OptimizingInversionConfig`)."""
        config = self.config
        if not isinstance(config, OptimizingInversionConfig):
            method = self.settings[0].method
            raise TypeError(f"{method} fits embeddings: its config class must be an OptimizingInversionConfig")
        return fit_embeddings(
            self.denoiser,
            trajectory,
            prompt_embeds=self.prompt_embeds,
            null_embeds=self.null_embeds,
            config=config,
            slot=slot,
            free=free,
            progress=self.progress,
        )

    def direct_offsets(self, trajectory: list[Tensor]) -> Tensor:
        """DirectInversion's per-step corrections ``(T, B, C, h, w)`` of the guided sampler toward ``trajectory``
        (see :func:`~diffinv.inversion.trajectory.direct_offsets`)."""
        return direct_offsets(
            self.denoiser,
            trajectory,
            self.prompt_embeds,
            self.null_embeds,
            self.config.guidance_scale,
            progress=self.progress,
        )

    def result(
        self,
        *,
        latents: Tensor,
        prompt_embeds: Tensor,
        negative_prompt_embeds: Tensor | None = None,
        latent_offsets: Tensor | None = None,
        fit: FitResult | None = None,
    ) -> list[Inversion]:
        """Split a method's batched tensors into one :class:`Inversion` per image, with its settings, UNet-pass
        count and, after an embedding fit, its optimisation record (seconds are added by the caller).

        Args:
            latents: ``(B, C, h, w)`` x_T.
            prompt_embeds / negative_prompt_embeds: ``(B, L, D)`` shared by all steps or ``(T, B, L, D)`` per step.
            latent_offsets: ``(T, B, C, h, w)``.
            fit: the embedding fit that produced one of the embeddings (its free rows count as optimised positions;
                an SDXL pooled row counts its pooled width of parameters, not its padding).
        """

        def own(tensor: Tensor) -> Tensor:
            return tensor.detach().clone()

        def embeds_of(embeds: Tensor, b: int) -> Tensor:  # (B, L, D) → (1, L, D); (T, B, L, D) → (T, L, D)
            return own(embeds[b : b + 1] if embeds.ndim == 3 else embeds[:, b])

        results = []
        for b, settings in enumerate(self.settings):
            positions, params = (0, 0) if fit is None else self._optimised(fit, b)
            negative = None if negative_prompt_embeds is None else embeds_of(negative_prompt_embeds, b)
            results.append(
                Inversion(
                    latents=own(latents[b : b + 1]),
                    prompt_embeds=embeds_of(prompt_embeds, b),
                    negative_prompt_embeds=negative,
                    latent_offsets=None if latent_offsets is None else own(latent_offsets[:, b]),
                    source_latents=own(self.source_latents[b : b + 1]),
                    settings=dataclasses.replace(settings, optimized_positions=positions),
                    stats=InversionStats(
                        unet_passes=self.denoiser.row_passes[b],
                        optimized_params=params,
                        inner_steps=() if fit is None else fit.inner_steps[b],
                        final_losses=() if fit is None else fit.final_losses[b],
                    ),
                )
            )
        return results

    def _optimised(self, fit: FitResult, b: int) -> tuple[int, int]:
        """Image ``b``'s optimised positions and scalars (over all steps) in ``fit``."""
        free = fit.free[b]
        steps, width = fit.embeds.shape[0], fit.embeds.shape[-1]
        pooled = self.denoiser.pooled_width
        params = int(free.sum()) * width
        if pooled and bool(free[-1]):
            params -= width - pooled
        return int(free.sum()), params * steps
