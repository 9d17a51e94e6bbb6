"""The Python API: :func:`invert`, :func:`reconstruct`, :func:`generate`, :func:`edit`, :func:`sdedit`,
:func:`learn_concept`.

The CLI is a thin layer over these functions; methods live in :mod:`diffinv.inversion`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from diffinv import images
from diffinv.config import SamplingConfig, merge
from diffinv.denoiser import Denoiser, Schedule
from diffinv.editing import EditConfig, EditResult
from diffinv.editing.config import SDEditConfig
from diffinv.editing.prompt_to_prompt import batch_key, prompt_to_prompt
from diffinv.editing.sdedit import sdedit_latents
from diffinv.errors import DiffinvError, check_integer
from diffinv.images import open_image, prepare_image
from diffinv.inversion import Inversion, InversionConfig, InversionProblem, InversionSettings, resolve_method
from diffinv.inversion import registry as inversion_registry
from diffinv.inversion.registry import method_config
from diffinv.io import check_folder
from diffinv.personalization import Concept
from diffinv.personalization import registry as personalization_registry
from diffinv.personalization.base import check_token, extra_tokens
from diffinv.personalization.config import LearningConfig, check_property
from diffinv.personalization.loading import check_single_text_encoder, check_tokens_free
from diffinv.personalization.problem import ConceptProblem
from diffinv.personalization.registry import METHOD_CONFIGS, PERSONALIZERS
from diffinv.personalization.templates import PLACEHOLDER, TEMPLATES, check_captions
from diffinv.pipelines import default_size, fingerprint
from diffinv.sampling import denoise
from diffinv.text import encode_negative_prompt, encode_prompt

ImageInput = str | Path | Image.Image
ImageOutput = list[Image.Image] | np.ndarray | torch.Tensor


def _resolve_size(pipe: StableDiffusionPipeline, height: int | None, width: int | None) -> tuple[int, int]:
    native_h, native_w = default_size(pipe)
    size = (native_h if height is None else height, native_w if width is None else width)
    images.check_size(*size, multiple=pipe.vae_scale_factor)
    return size


@overload
def invert(pipe: StableDiffusionPipeline, image: ImageInput, prompt: str, *args: Any, **kwargs: Any) -> Inversion: ...


@overload
def invert(
    pipe: StableDiffusionPipeline, image: Sequence[ImageInput], prompt: str | Sequence[str], *args: Any, **kwargs: Any
) -> list[Inversion]: ...


def invert(
    pipe: StableDiffusionPipeline,
    image: ImageInput | Sequence[ImageInput],
    prompt: str | Sequence[str],
    method: str = inversion_registry.DEFAULT_METHOD,
    *,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    config: InversionConfig | None = None,
    batch_size: int = 8,
    strict: bool = False,
    progress: bool = False,
) -> Inversion | list[Inversion]:
    """Invert a photo, or a list of photos: find what makes ``pipe`` regenerate each from its prompt.

    Args:
        pipe: any Stable Diffusion pipeline (:func:`diffinv.load_pipeline`).
        image: a path or PIL image, or a list of them; read with EXIF orientation, converted to RGB,
            center-cropped and resized to ``height × width`` (default: the model's native size).
        prompt: the caption; with a list of images, one caption per image (or one for all).
        method: ``ddim``, ``null-text``, ``prompt-tokens`` (default), ``negative-prompt`` or ``direct``; or
            ``<method>@<preset>``, e.g. ``prompt-tokens@paper`` (the reference paper's setting).
        num_inference_steps: DDIM steps (overrides ``config``'s).
        guidance_scale: classifier-free guidance at reconstruction (overrides ``config``'s).
        config: full settings, of the method's config class (``METHODS[method].config_class``, e.g.
            :class:`~diffinv.inversion.PromptTokensConfig`); default: the method's defaults, or the named preset.
        batch_size: how many images of a list share each UNet call (their optimisations stay independent: the
            results equal one-at-a-time inversions up to floating-point rounding; see
            :func:`~diffinv.inversion.embedding_fit.fit_embeddings`).
        strict: refuse prompts longer than the text encoder's limit instead of truncating them.
        progress: show progress bars.

    Returns:
        An :class:`~diffinv.inversion.Inversion` (``.save(path)`` writes it), or a list of them for a list of
        images. A batched inversion's ``stats.seconds`` is its batch's time divided by the batch's size.

    Raises:
        DiffinvError: before any work, for any bad image, prompt or option.
    """
    started = time.perf_counter()
    batched = isinstance(image, list | tuple)
    photos = list(image) if batched else [image]
    prompts = _prompt_list(prompt, len(photos)) if batched else [prompt]
    if not photos:
        raise DiffinvError("no images to invert")
    check_integer("batch_size", batch_size, minimum=1)
    chosen = resolve_method(method)[0]
    config = method_config(method, config, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale)
    for text in prompts:
        if not isinstance(text, str):
            raise DiffinvError(f"the prompt must be a string, got {type(text).__name__}")
        if chosen.requires_prompt and not text.strip():
            raise DiffinvError(f"method {chosen.name!r} needs a non-empty prompt")
    height, width = _resolve_size(pipe, height, width)
    pixels = [images.prepare_image(images.open_image(photo), height, width) for photo in photos]
    encoded = [encode_prompt(pipe, text, strict=strict) for text in prompts]
    null = encode_negative_prompt(pipe, None)
    template = InversionSettings(
        method=chosen.name,
        prompt="",
        height=height,
        width=width,
        # diffusers' bookkeeping keys (``_use_default_values``, ...) say how a config was loaded, not the schedule
        scheduler_config={k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")},
        model_fingerprint=fingerprint(pipe),
        config=config,
    )
    shared = (time.perf_counter() - started) / len(photos)
    results: list[Inversion] = []
    for first in range(0, len(photos), batch_size):
        chunk = range(first, min(first + batch_size, len(photos)))
        chunk_started = time.perf_counter()
        denoiser = Denoiser.for_pipeline(pipe, Schedule.from_config(pipe.scheduler.config, config.num_inference_steps))
        dtype = denoiser.compute_dtype
        problem = InversionProblem(
            denoiser=denoiser,
            source_latents=images.encode(pipe.vae, torch.cat([pixels[i] for i in chunk])).to(denoiser.device, dtype),
            prompts=[encoded[i] for i in chunk],
            prompt_embeds=torch.cat([encoded[i].embeds for i in chunk]).to(dtype),
            null_embeds=null.expand(len(chunk), -1, -1).to(dtype),
            settings=[dataclasses.replace(template, prompt=prompts[i]) for i in chunk],
            progress=progress,
        )
        inversions = chosen.invert(problem)
        seconds = shared + (time.perf_counter() - chunk_started) / len(chunk)
        results += [dataclasses.replace(r, stats=dataclasses.replace(r.stats, seconds=seconds)) for r in inversions]
    return results if batched else results[0]


def _prompt_list(prompt: str | Sequence[str], count: int, noun: str = "images") -> list[str]:
    """One prompt per image (or inversion): a list of ``count`` prompts, or one prompt for all."""
    if isinstance(prompt, str):
        return [prompt] * count
    if not isinstance(prompt, list | tuple):
        raise DiffinvError(f"give one prompt or a list of prompts, got {type(prompt).__name__}")
    if len(prompt) != count:
        raise DiffinvError(f"{count} {noun} but {len(prompt)} prompts; give one prompt each (or one for all)")
    return list(prompt)


def reconstruct(
    pipe: StableDiffusionPipeline,
    inversion: Inversion | Sequence[Inversion],
    *,
    negative_prompt: str | Sequence[str | None] | None = None,
    batch_size: int = 8,
    output_type: str = "pil",
    progress: bool = False,
) -> ImageOutput:
    """Regenerate the inverted photo, or the photos of a list of inversions, optionally with a negative prompt.

    A negative prompt replaces the empty prompt in the unconditional slot; it is refused (:class:`DiffinvError`)
    after methods that occupy that slot (``null-text``, ``negative-prompt``) instead of being silently ignored.
    Inversions of a list are denoised ``batch_size`` at a time (they may come from different methods but must share
    the number of steps, the guidance scale, the scheduler and the size); ``negative_prompt`` is then one for all
    or one per inversion (``None`` for none).

    Returns:
        As diffusers, one image per inversion: ``pil`` → list of PIL images; ``np`` → ``(B, H, W, 3)``; ``pt`` →
        ``(B, 3, H, W)`` in [0, 1]; ``latent`` → ``(B, C, h, w)``.
    """
    inversions = list(inversion) if isinstance(inversion, list | tuple) else [inversion]
    if not inversions:
        raise DiffinvError("no inversions to reconstruct")
    check_integer("batch_size", batch_size, minimum=1)
    images.check_output_type(output_type)
    negatives = _negative_list(negative_prompt, len(inversions))
    first = inversions[0].settings
    shared = ("num_inference_steps", "guidance_scale", "scheduler_config", "height", "width")
    for item, negative in zip(inversions, negatives, strict=True):
        item.check_model(pipe)
        item.check_negative_prompt(negative)
        if any(getattr(item.settings, key) != getattr(first, key) for key in shared):
            raise DiffinvError(
                "inversions reconstructed together must share the number of steps, the guidance scale, the "
                "scheduler and the size; reconstruct the others in a call of their own"
            )
    denoiser = Denoiser.for_pipeline(pipe, Schedule.from_config(first.scheduler_config, first.num_inference_steps))
    latents = []
    for start in range(0, len(inversions), batch_size):
        chunk = range(start, min(start + batch_size, len(inversions)))
        latents.append(
            denoise(
                denoiser,
                torch.cat([inversions[i].latents for i in chunk]),
                _per_step([inversions[i].prompt_embeds for i in chunk], denoiser),
                _per_step([_unconditional(pipe, inversions[i], negatives[i]) for i in chunk], denoiser),
                first.guidance_scale,
                latent_offsets=_offsets([inversions[i] for i in chunk], denoiser),
                progress=progress,
            )
        )
    return images.to_output(pipe.vae, torch.cat(latents), output_type)


def _negative_list(negative_prompt: str | Sequence[str | None] | None, count: int) -> list[str | None]:
    if negative_prompt is None or isinstance(negative_prompt, str):
        return [negative_prompt] * count
    if not isinstance(negative_prompt, list | tuple) or len(negative_prompt) != count:
        raise DiffinvError(f"give one negative prompt, or a list of {count} (one per inversion)")
    for text in negative_prompt:
        if text is not None and not isinstance(text, str):
            raise DiffinvError(f"a negative prompt must be a string, got {type(text).__name__}")
    return list(negative_prompt)


def _unconditional(pipe: StableDiffusionPipeline, inversion: Inversion, negative_prompt: str | None) -> torch.Tensor:
    """The unconditional slot's ``(S, L, D)``: the inversion's own, else the (empty) negative prompt's."""
    if inversion.negative_prompt_embeds is not None:
        return inversion.negative_prompt_embeds
    return encode_negative_prompt(pipe, negative_prompt)


def _per_step(embeds: list[torch.Tensor], denoiser: Denoiser) -> torch.Tensor:
    """Per-image ``(S, L, D)`` (S ∈ {1, T}) → ``(S, B, L, D)`` for the sampling loop (S = T when any is per-step)."""
    steps = max(e.shape[0] for e in embeds)
    return torch.stack([e.to(denoiser.device, denoiser.compute_dtype).expand(steps, -1, -1) for e in embeds], 1)


def _offsets(inversions: list[Inversion], denoiser: Denoiser) -> torch.Tensor | None:
    """DirectInversion's ``(T, C, h, w)`` corrections of each inversion as ``(T, B, C, h, w)`` (zeros for the
    others), or ``None`` when none has any."""
    if all(i.latent_offsets is None for i in inversions):
        return None
    steps = len(denoiser.schedule)
    dtype = denoiser.compute_dtype
    zeros = torch.zeros(steps, *inversions[0].latents.shape[1:], dtype=dtype)
    offsets = [zeros if i.latent_offsets is None else i.latent_offsets.to("cpu", dtype) for i in inversions]
    return torch.stack(offsets, 1)


@dataclasses.dataclass(frozen=True)
class ReconstructionCheck:
    """An inversion's reconstruction beside its photo, all pixels ``(1, 3, H, W)`` in [0, 1] on the CPU.

    Attributes:
        target: the photo as the inversion saw it (cropped and resized to its size).
        vae_round_trip: the photo's VAE latent decoded: the best any inversion can do.
        reconstruction: the reconstruction decoded; ``latents`` is its latent.
    """

    target: torch.Tensor
    vae_round_trip: torch.Tensor
    reconstruction: torch.Tensor
    latents: torch.Tensor


def check_reconstruction(pipe: StableDiffusionPipeline, inversion: Inversion, image: ImageInput) -> ReconstructionCheck:
    """Reconstruct ``inversion`` once and line it up with ``image`` (the photo it inverted) and the VAE ceiling, for
    scores such as :func:`diffinv.metrics.psnr`."""
    settings = inversion.settings
    target = (images.prepare_image(images.open_image(image), settings.height, settings.width) + 1) / 2
    latents = reconstruct(pipe, inversion, output_type="latent")
    return ReconstructionCheck(
        target=target,
        vae_round_trip=images.decode(pipe.vae, inversion.source_latents).cpu(),
        reconstruction=images.decode(pipe.vae, latents).cpu(),
        latents=latents,
    )


def generate(
    pipe: StableDiffusionPipeline,
    prompt: str | None = None,
    *,
    prompt_embeds: torch.Tensor | None = None,
    negative_prompt: str | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    config: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
    height: int | None = None,
    width: int | None = None,
    output_type: str = "pil",
    progress: bool = False,
) -> ImageOutput:
    """Text-to-image with the same deterministic DDIM sampler the inversions use.

    Give ``prompt`` or ``prompt_embeds`` ``(1, L, D)`` (as diffusers). ``num_inference_steps`` and
    ``guidance_scale`` override ``config``'s (default: :class:`~diffinv.config.SamplingConfig`). The initial noise is
    drawn from ``generator`` on its device, as diffusers' ``randn_tensor`` does: a CPU generator gives the same noise
    for a model on any device, a generator on the model's device draws there.
    """
    if (prompt is None) == (prompt_embeds is None):
        raise DiffinvError("give exactly one of prompt and prompt_embeds")
    config = merge(config, SamplingConfig(), num_inference_steps=num_inference_steps, guidance_scale=guidance_scale)
    height, width = _resolve_size(pipe, height, width)
    denoiser = Denoiser.for_pipeline(pipe, Schedule.from_config(pipe.scheduler.config, config.num_inference_steps))
    factor = pipe.vae_scale_factor
    shape = (1, pipe.unet.config.in_channels, height // factor, width // factor)
    noise = randn_tensor(shape, generator=generator, device=denoiser.device, dtype=torch.float32)
    noise = noise.to(denoiser.compute_dtype)
    cond = encode_prompt(pipe, prompt).embeds if prompt_embeds is None else prompt_embeds
    uncond = encode_negative_prompt(pipe, negative_prompt)
    dtype = denoiser.compute_dtype
    latents = denoise(
        denoiser,
        noise,
        cond.to(denoiser.device, dtype),
        uncond.to(denoiser.device, dtype),
        config.guidance_scale,
        progress=progress,
    )
    return images.to_output(pipe.vae, latents, output_type)


@overload
def edit(pipe: StableDiffusionPipeline, inversion: Inversion, target_prompt: str, **kwargs: Any) -> EditResult: ...


@overload
def edit(
    pipe: StableDiffusionPipeline, inversion: Sequence[Inversion], target_prompt: str | Sequence[str], **kwargs: Any
) -> list[EditResult]: ...


def edit(
    pipe: StableDiffusionPipeline,
    inversion: Inversion | Sequence[Inversion],
    target_prompt: str | Sequence[str],
    *,
    mode: str | None = None,
    cross_replace_steps: float | None = None,
    self_replace_steps: float | None = None,
    reweight: Mapping[str, float] | None = None,
    local_blend: Sequence[str] | None = None,
    negative_prompt: str | Sequence[str | None] | None = None,
    config: EditConfig | None = None,
    output_type: str = "pil",
    progress: bool = False,
    **settings: Any,
) -> EditResult | list[EditResult]:
    """Edit an inverted photo with prompt-to-prompt (Hertz et al. 2022), from any inversion method.

    Args:
        inversion: from :func:`invert` (or :meth:`Inversion.load`); its prompt is the source prompt. A list of
            inversions is edited with the same settings in batches, one UNet call per step for every inversion
            that shares its scheduler, steps, guidance and size (each edit keeps its own token mapping, word
            weights and blend mask; batch equals single), and gives a list of results, each timed by its share
            of its batch.
        target_prompt: the edited caption (equal to the source prompt for a reweight- or negative-prompt-only
            edit, which then reproduces the reconstruction apart from those); with a list of inversions, one per
            inversion or one for all.
        mode: ``replace``, ``refine`` or ``reweight``.
        cross_replace_steps / self_replace_steps: fractions of the steps with cross / self-attention injection.
        reweight: ``{"word": scale}``, the target's attention to each word scaled.
        local_blend: words whose attention masks the editable region.
        negative_prompt: the target branch's negative prompt (refused after null-text / negative-prompt
            inversions, whose unconditional slot is taken); with a list, one for all or one per inversion.
        config: all settings at once (default :class:`~diffinv.editing.EditConfig`, which documents each and its
            default; the keyword arguments above override it).
        settings: any other :class:`~diffinv.editing.EditConfig` field by name, overriding ``config``'s
            (``embedding_transfer``, ``latent_offsets``, ``cross_attention_maps``, ``refine_padding``,
            ``local_blend_maps``, ...).
        output_type: as :func:`reconstruct`, for both images.

    Returns:
        :class:`~diffinv.editing.EditResult` with the source reconstruction, the edit and the local-blend mask (a
        list of them for a list of inversions).
    """
    overrides = {
        "mode": mode,
        "cross_replace_steps": cross_replace_steps,
        "self_replace_steps": self_replace_steps,
        "reweight": None if reweight is None else tuple(dict(reweight).items()),
        "local_blend": None if local_blend is None else tuple(local_blend),
        **settings,
    }
    config = merge(config, EditConfig(), "edit", **overrides)
    images.check_output_type(output_type)
    single = not isinstance(inversion, list | tuple)
    inversions = [inversion] if single else list(inversion)
    if not inversions:
        raise DiffinvError("no inversions to edit")
    targets = [target_prompt] if single else _prompt_list(target_prompt, len(inversions), noun="inversions")
    negatives = [negative_prompt] if single else _negative_list(negative_prompt, len(inversions))
    for item, target, negative in zip(inversions, targets, negatives, strict=True):  # refuse before any work
        item.check_model(pipe)
        item.check_negative_prompt(negative)
        if not (isinstance(target, str) and target.strip()):
            raise DiffinvError("every target prompt must be a non-empty string")
    groups: dict[str, list[int]] = {}
    for k, item in enumerate(inversions):
        groups.setdefault(batch_key(item), []).append(k)
    results: list[EditResult | None] = [None] * len(inversions)
    for members in groups.values():  # one batched edit per group of compatible inversions
        started = time.perf_counter()
        latents, masks = prompt_to_prompt(
            pipe,
            [inversions[k] for k in members],
            [targets[k] for k in members],
            config,
            negative_prompts=[negatives[k] for k in members],
            progress=progress,
        )
        sources = images.to_output(pipe.vae, latents[:, 0], output_type)
        edits = images.to_output(pipe.vae, latents[:, 1], output_type)
        seconds = (time.perf_counter() - started) / len(members)
        for row, k in enumerate(members):
            results[k] = EditResult(
                source=sources[row : row + 1], edit=edits[row : row + 1], mask=masks[row], seconds=seconds
            )
    return results[0] if single else results


def sdedit(
    pipe: StableDiffusionPipeline,
    guide: ImageInput,
    prompt: str,
    *,
    strength: float | None = None,
    mask: ImageInput | None = None,
    repeats: int | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    eta: float | None = None,
    posterior: str | None = None,
    negative_prompt: str | None = None,
    config: SDEditConfig | None = None,
    generator: torch.Generator | None = None,
    height: int | None = None,
    width: int | None = None,
    output_type: str = "pil",
    progress: bool = False,
) -> ImageOutput:
    """SDEdit (Meng et al. 2022): turn a guide — a stroke painting, a photo with strokes on it, or a composite
    (:func:`diffinv.editing.sdedit.paste`) — into an image that follows ``prompt``.

    Args:
        guide: path or PIL image; center-cropped and resized to ``height × width`` (default: the model's size).
        strength: t0 in (0, 1]: small keeps the guide, large follows the prompt.
        mask: path or PIL image of the guide's size, white where the image may change (converted to grey levels,
            resized like the guide; a mask with transparent pixels is read from its alpha, painted = may change:
            :func:`diffinv.images.open_mask`); outside it the output keeps the guide's pixels.
        repeats: K ≥ 1 perturb-and-denoise rounds.
        eta: DDIM's η for the reverse process (1: the paper's stochastic sampler).
        posterior: ``mean`` or ``sample``: ``sample`` encodes the guide as diffusers' img2img pipeline does (a
            posterior draw, then the noise, from ``generator``), so a seed gives the image that pipeline gives.
        config: all settings at once (default :class:`~diffinv.editing.config.SDEditConfig`; the keyword arguments
            above override it).
        generator: all randomness (posterior draw, perturbation and reverse-process noise), drawn on its device.

    Returns:
        As :func:`reconstruct`. A ``strength`` so small that no step would run is refused.
    """
    config = merge(
        config,
        SDEditConfig(),
        "sdedit",
        strength=strength,
        repeats=repeats,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        eta=eta,
        posterior=posterior,
    )
    images.check_output_type(output_type)
    if not isinstance(prompt, str):
        raise DiffinvError(f"the prompt must be a string, got {type(prompt).__name__}")
    height, width = _resolve_size(pipe, height, width)
    guide_image = images.open_image(guide)
    pixels = images.prepare_image(guide_image, height, width)
    weights = None
    if mask is not None:
        mask_image = images.open_mask(mask)
        if mask_image.size != guide_image.size:
            raise DiffinvError(
                f"the mask is {mask_image.width}×{mask_image.height} but the guide is "
                f"{guide_image.width}×{guide_image.height}; give a mask of the guide's size"
            )
        weights = ((images.prepare_image(mask_image, height, width).mean(1, keepdim=True) + 1) / 2).clamp(0, 1)
    latents = sdedit_latents(
        pipe,
        pixels,
        prompt,
        config,
        mask=weights,
        negative_prompt=negative_prompt,
        generator=generator,
        progress=progress,
    )
    if weights is None or output_type == "latent":
        return images.to_output(pipe.vae, latents, output_type)
    edited = images.decode(pipe.vae, latents).cpu() * weights + (pixels + 1) / 2 * (1 - weights)
    return images.pixels_to_output(edited, output_type)


def _check_prompt_room(pipe: StableDiffusionPipeline, captions: Sequence[str], num_vectors: int) -> None:
    """Refuse a concept whose ``num_vectors`` tokens do not fit, with the longest training caption's words, in
    the model's prompts (``model_max_length`` positions less BOS and EOS): the tokenizer would cut vectors off."""
    room = pipe.tokenizer.model_max_length - 2
    words = {c: len(pipe.tokenizer(c.replace(PLACEHOLDER, ""), add_special_tokens=False).input_ids) for c in captions}
    longest = max(words, key=words.__getitem__)
    if words[longest] + num_vectors > room:
        raise DiffinvError(
            f"num_vectors={num_vectors} does not fit this model's prompts: they hold {room} tokens and the caption "
            f"{longest!r} takes {words[longest]} of them; use at most {room - words[longest]} vectors"
        )


def learn_concept(
    pipe: StableDiffusionPipeline,
    images: Sequence[ImageInput],
    token: str = "<s*>",
    init_word: str = "object",
    *,
    method: str = personalization_registry.DEFAULT_METHOD,
    property: str = "object",  # noqa: A002 - the paper's word for it
    captions: Sequence[str] | None = None,
    num_vectors: int | None = None,
    steps: int | None = None,
    learning_rate: float | None = None,
    config: LearningConfig | None = None,
    height: int | None = None,
    width: int | None = None,
    generator: torch.Generator | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Concept:
    """Learn a new word for the concept in ``images`` (Gal et al. 2022): a :class:`~diffinv.personalization.Concept`
    whose ``token`` then works in prompts once loaded (:func:`~diffinv.personalization.load_concept`).

    Args:
        pipe: any Stable Diffusion pipeline; left unchanged (the token is added only while learning).
        images: 1 or more images of the concept (3–5 in the paper): paths or PIL images, center-cropped and
            resized to ``height × width`` (default: the model's native size).
        token: the new word; it must not be in the vocabulary yet.
        init_word: a one-token word describing the concept coarsely; its embedding starts the vectors (``e4t``
            starts from its encoder's class word instead).
        method: ``ti`` (textual inversion), ``lora`` (DreamBooth-style LoRA on the UNet's attention) or ``e4t``
            (a pre-trained domain encoder's prediction from the shot(s), then a few tuning steps).
        property: ``object`` or ``style``: picks the paper's prompt templates.
        captions: instead of the templates, one caption per image (or one for all) with ``{}`` for the token, in the
            language the model knows (the built-in model: ``"a large red {} in the center on a white background"``).
        num_vectors / steps / learning_rate: override ``config``'s (default: the method's defaults).
        config: the method's full settings (:class:`~diffinv.personalization.TextualInversionConfig`,
            :class:`~diffinv.personalization.LoRAConfig`, :class:`~diffinv.personalization.E4TConfig`).
        generator: seeds every random draw (batches, templates, flips, timesteps, noise); ``None``: a fresh seed.
        checkpoint_dir: keep resumable checkpoints there; ``resume`` continues from its newest (with the seed of
            the run it continues).
        progress: show a progress bar with the loss.

    Raises:
        DiffinvError: before any work, for no images, an unreadable image, a token already in the vocabulary, an
            init word that is not one token, bad captions or settings.
    """
    personalizer = PERSONALIZERS[method]
    overrides = {"num_vectors": num_vectors, "steps": steps, "learning_rate": learning_rate}
    given = {k: v for k, v in overrides.items() if v is not None}  # num_vectors is textual inversion's alone
    config = merge(config, METHOD_CONFIGS[method](), f"method {method!r}", **given)
    photos = [images] if isinstance(images, str | Path | Image.Image) else list(images)
    if not photos:
        raise DiffinvError("no images of the concept; give at least one")
    check_token(token)
    check_property(property)
    if not isinstance(init_word, str) or not init_word.strip():
        raise DiffinvError("init_word must be a word")
    num_vectors = getattr(config, "num_vectors", 1)
    check_single_text_encoder(pipe)
    check_tokens_free(pipe, extra_tokens(token, num_vectors))
    if resume and checkpoint_dir is None:
        raise DiffinvError("resume needs the checkpoint folder of the run to continue")
    if checkpoint_dir is not None:
        check_folder(checkpoint_dir)
    captions = None if captions is None else check_captions(captions, len(photos))
    _check_prompt_room(pipe, captions or TEMPLATES[property], num_vectors)
    height, width = _resolve_size(pipe, height, width)
    pixels = torch.cat([prepare_image(open_image(photo), height, width) for photo in photos])
    where = generator.device if generator is not None else torch.device("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=where))
    problem = ConceptProblem(
        pipe=pipe,
        pixels=pixels,
        token=token,
        init_word=init_word,
        property=property,
        captions=captions,
        seed=seed,
        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
        resume=resume,
        progress=progress,
    )
    problem.init_vectors(num_vectors)
    return personalizer.learn(problem, config)
