"""What every inversion method shares: its configuration, its input (:class:`InversionProblem`) and its result
(:class:`Inversion`), and the protocol a method implements.

A method is one file exposing one object with ``name``, ``default_config``, ``requires_prompt`` and
``invert(problem) -> Inversion``; :mod:`diffinv.inversion.registry` lists them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from diffusers import StableDiffusionPipeline
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from diffinv.denoiser import Denoiser
from diffinv.errors import DiffinvError
from diffinv.inversion.trajectory import ddim_trajectory
from diffinv.io import atomic_write
from diffinv.pipelines import ModelFingerprint, fingerprint
from diffinv.text import EncodedPrompt

FORMAT_NAME = "diffinv.inversion"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class OptimizationConfig:
    """Per-timestep embedding optimisation shared by ``null-text`` and ``prompt-tokens``.

    Defaults are those of Mokady et al. 2022 ("Null-text Inversion", Alg. 1; official notebook): Adam with
    ``lr_i = learning_rate · (1 − i · lr_decay)`` = 1e-2·(1 − i/100) at step i, at most 10 inner iterations, stop early
    once the latent MSE < ``early_stop_epsilon + i · early_stop_growth`` = 1e-5 + i·2e-5.
    """

    num_inner_steps: int = field(default=10, metadata={"help": "maximum optimiser iterations per timestep"})
    learning_rate: float = field(default=1e-2, metadata={"help": "Adam learning rate at the first step"})
    lr_decay: float = field(default=1e-2, metadata={"help": "learning rate at step i = lr * (1 - i * lr_decay)"})
    early_stop_epsilon: float = field(default=1e-5, metadata={"help": "stop when latent MSE < epsilon + i*growth"})
    early_stop_growth: float = field(default=2e-5, metadata={"help": "per-step growth of the early-stop threshold"})

    def __post_init__(self) -> None:
        if self.num_inner_steps < 1:
            raise DiffinvError(f"num_inner_steps must be ≥ 1, got {self.num_inner_steps}")
        if not self.learning_rate > 0:
            raise DiffinvError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_decay < 0 or self.early_stop_epsilon < 0 or self.early_stop_growth < 0:
            raise DiffinvError("lr_decay and the early-stop thresholds must be ≥ 0")

    def learning_rate_at(self, step: int) -> float:
        """The learning rate at denoising step ``step`` (floored at 1 % of the initial rate for long schedules)."""
        return self.learning_rate * max(1.0 - step * self.lr_decay, 1e-2)

    def stop_threshold(self, step: int) -> float:
        return self.early_stop_epsilon + step * self.early_stop_growth


TOKEN_SLICES = ("semantic", "all")


@dataclass(frozen=True)
class InversionConfig:
    """Settings common to all methods.

    Attributes:
        num_inference_steps: DDIM steps; ``None`` takes the method's default (paper-given, see each method).
        guidance_scale: classifier-free guidance used when reconstructing/editing (7.5, as in Mokady et al. 2022
            and the reference paper).
        optimization: for the optimising methods.
        tokens: for ``prompt-tokens``, which positions of the conditional embedding are optimised: ``"semantic"``
            (BOS + prompt tokens + first EOS; the reference paper), ``"all"`` (every position) or a count ``"N"``.
    """

    num_inference_steps: int | None = None
    guidance_scale: float = 7.5
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    tokens: str = "semantic"

    def __post_init__(self) -> None:
        if self.num_inference_steps is not None and self.num_inference_steps < 1:
            raise DiffinvError(f"num_inference_steps must be ≥ 1, got {self.num_inference_steps}")
        if not math.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise DiffinvError(f"guidance_scale must be a finite number ≥ 0, got {self.guidance_scale}")
        if self.tokens not in TOKEN_SLICES and not (str(self.tokens).isdigit() and int(self.tokens) > 0):
            raise DiffinvError(f"tokens must be 'semantic', 'all' or a positive count, got {self.tokens!r}")

    def token_count(self, prompt: EncodedPrompt) -> int:
        """Number of leading positions of the conditional embedding that ``prompt-tokens`` optimises."""
        if self.tokens == "semantic":
            return prompt.n_tokens
        if self.tokens == "all":
            return prompt.max_length
        count = int(self.tokens)
        if count > prompt.max_length:
            raise DiffinvError(f"tokens={count} exceeds the text encoder's {prompt.max_length} positions")
        return count

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InversionConfig:
        data = dict(data)
        data["optimization"] = OptimizationConfig(**data.get("optimization", {}))
        return cls(**data)


@dataclass(frozen=True)
class InversionSettings:
    """How an inversion was made (stored in the file's metadata)."""

    method: str
    prompt: str
    num_inference_steps: int
    guidance_scale: float
    height: int
    width: int
    scheduler_config: dict[str, Any]
    model_fingerprint: ModelFingerprint
    config: InversionConfig
    optimized_positions: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["model_fingerprint"] = self.model_fingerprint.to_dict()
        data["config"] = self.config.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InversionSettings:
        data = dict(data)
        data["model_fingerprint"] = ModelFingerprint.from_dict(data["model_fingerprint"])
        data["config"] = InversionConfig.from_dict(data["config"])
        return cls(**data)


@dataclass(frozen=True)
class InversionStats:
    """Cost of an inversion: wall-clock seconds, UNet evaluations (one latent through the UNet counts 1), number of
    optimised scalars, and per step the inner iterations taken and the final latent MSE (optimising methods)."""

    seconds: float = 0.0
    unet_passes: int = 0
    optimized_params: int = 0
    inner_steps: tuple[int, ...] = ()
    final_losses: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InversionStats:
        data = dict(data)
        data["inner_steps"] = tuple(data.get("inner_steps", ()))
        data["final_losses"] = tuple(data.get("final_losses", ()))
        return cls(**data)


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
        path = Path(path)
        if not path.is_file():
            raise DiffinvError(f"{path}: no such file")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise DiffinvError(f"{path}: not a readable .safetensors file ({exc})") from None
        try:
            header = json.loads(metadata["diffinv"])
            if header.get("format") != FORMAT_NAME:
                raise KeyError("format")
            if header.get("version") != FORMAT_VERSION:
                raise DiffinvError(f"{path}: inversion format version {header.get('version')} is not supported")
            settings = InversionSettings.from_dict(header["settings"])
            stats = InversionStats.from_dict(header["stats"])
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
        """Check shapes agree with the settings and that every value is finite."""
        steps = self.settings.num_inference_steps
        for key, tensor in self._tensors().items():
            if not torch.isfinite(tensor).all():
                raise DiffinvError(f"{name}: tensor '{key}' contains NaN or Inf values")
        if self.latents.ndim != 4 or self.latents.shape != self.source_latents.shape:
            raise DiffinvError(f"{name}: latents have shape {tuple(self.latents.shape)}, expected (1, C, h, w)")
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
        """Raise :class:`DiffinvError` unless ``pipe`` is the model this inversion was made with."""
        current = fingerprint(pipe)
        if not self.settings.model_fingerprint.matches(current):
            raise DiffinvError(
                f"this inversion was made with model {self.settings.model_fingerprint}, "
                f"but the loaded model is {current}"
            )


@dataclass
class InversionProblem:
    """Everything a method needs, prepared once by :func:`diffinv.invert`.

    Attributes:
        denoiser: the UNet bound to the DDIM schedule of ``num_inference_steps`` steps.
        source_latents: ``(1, C, h, w)`` the photo's VAE latent (scaled), compute dtype.
        prompt: the encoded prompt (token counts).
        prompt_embeds: ``(1, L, D)`` conditional embedding, compute dtype.
        null_embeds: ``(1, L, D)`` embedding of the empty prompt, compute dtype.
        settings: what the result will record (method name, prompt, steps, model fingerprint, config...).
        generator: randomness for methods that sample (the five built-in methods are deterministic).
        progress: show a progress bar.
    """

    denoiser: Denoiser
    source_latents: Tensor
    prompt: EncodedPrompt
    prompt_embeds: Tensor
    null_embeds: Tensor
    settings: InversionSettings
    generator: torch.Generator | None = None
    progress: bool = False

    @property
    def config(self) -> InversionConfig:
        return self.settings.config

    @property
    def num_inference_steps(self) -> int:
        return len(self.denoiser.schedule)

    def ddim_trajectory(self) -> list[Tensor]:
        """The DDIM-inversion trajectory of the source latent under the prompt (see
        :func:`~diffinv.inversion.trajectory.ddim_trajectory`): ``T + 1`` latents, noisiest first."""
        return ddim_trajectory(self.denoiser, self.source_latents, self.prompt_embeds, progress=self.progress)

    def result(
        self,
        *,
        latents: Tensor,
        prompt_embeds: Tensor,
        negative_prompt_embeds: Tensor | None = None,
        latent_offsets: Tensor | None = None,
        optimized_positions: int = 0,
        optimized_params: int = 0,
        inner_steps: tuple[int, ...] = (),
        final_losses: tuple[float, ...] = (),
    ) -> Inversion:
        """Package a method's tensors with the settings and the UNet-pass count (seconds are added by the caller)."""
        return Inversion(
            latents=latents.detach(),
            prompt_embeds=prompt_embeds.detach(),
            negative_prompt_embeds=None if negative_prompt_embeds is None else negative_prompt_embeds.detach(),
            latent_offsets=None if latent_offsets is None else latent_offsets.detach(),
            source_latents=self.source_latents.detach(),
            settings=dataclasses.replace(self.settings, optimized_positions=optimized_positions),
            stats=InversionStats(
                unet_passes=self.denoiser.unet_passes,
                optimized_params=optimized_params,
                inner_steps=inner_steps,
                final_losses=final_losses,
            ),
        )


class InversionMethod(Protocol):
    """What a method file provides."""

    name: str
    requires_prompt: bool

    @property
    def default_config(self) -> InversionConfig:
        """The method's defaults (each method file says where they come from: a paper's table or our measurement)."""
        ...

    @property
    def presets(self) -> Mapping[str, InversionConfig]:
        """Named alternative settings, selected as ``"<name>@<preset>"`` (e.g. ``prompt-tokens@paper``)."""
        ...

    def invert(self, problem: InversionProblem) -> Inversion: ...
