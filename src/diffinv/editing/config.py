"""How edits are configured: prompt-to-prompt's settings (:class:`EditConfig`) and SDEdit's (:class:`SDEditConfig`).

Prompt-to-prompt (Hertz et al. 2022, "Prompt-to-Prompt Image Editing with Cross Attention Control") denoises the
source and the target prompt side by side from the same inverted latent. During the first
``cross_replace_steps · T`` steps the target's cross-attention maps are taken from the source (Sec. 3.2,
``Edit(M_t, M*_t, t) = M*_t if t < τ else M_t``; replace, refine or reweight, Sec. 3.2), during the first
``self_replace_steps · T`` steps its self-attention maps too (the official implementation's self-attention
injection), and an optional local blend keeps the latent outside the edited words' attention mask (Sec. 3.3).

SDEdit (Meng et al. 2022) perturbs a guide image to t0 and denoises it with the prompt (see
:mod:`diffinv.editing.sdedit`). Plain dataclasses (no torch), so the command line can describe every option without
loading a model library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from diffinv.errors import DiffinvError, check_integer, check_number

MAX_REPEATS = 100  # SDEdit's perturb-and-denoise rounds; the paper uses a handful

EMBEDDING_TRANSFERS = ("delta", "prefix", "plain")
OFFSET_BRANCHES = ("source", "both")


@dataclass(frozen=True)
class EditConfig:
    """Prompt-to-prompt settings. Defaults: Hertz et al.'s official notebooks (cross 0.8, self 0.4, local-blend
    threshold 0.3 from step 0.2·T, their 16×16 maps of SD's 64×64 latents: the second-coarsest attention level).

    Attributes:
        mode: ``replace`` (words swapped, equal token count), ``refine`` (words added or removed; tokens aligned)
            or ``reweight`` (attention of ``reweight`` words scaled; prompts aligned as refine).
        cross_replace_steps: fraction of the steps, from the first, in which cross-attention is injected.
        self_replace_steps: fraction of the steps in which self-attention maps (at ``attention_level`` and
            coarser) are injected.
        reweight: ``((word, scale), ...)``: the target's attention to each word's tokens is multiplied by scale;
            applied on top of any mode (reweight mode requires it).
        local_blend: words whose cross-attention maps (source words in the source, target words in the target)
            make the mask of the editable region; outside it the edit keeps the source's latent.
        blend_threshold: the mask is where the normalised map exceeds this.
        blend_start: fraction of the steps after which local blending starts.
        attention_level: which map size self-attention injection stops at and local blend reads, counted over the
            UNet's cross-attention map sizes from the coarsest (0); found by one UNet pass, never assumed. 1 is the
            official 16×16 of SD (levels 8, 16, 32, 64); the built-in model's levels are 4 and 8.
        embedding_transfer: how a learned conditional embedding (prompt-token inversion) reaches the target
            branch: ``delta`` adds each source token's learned offset (learned − encoder output) to the same
            token of the target prompt; ``prefix`` does so only for the tokens before the first changed one (the
            text encoder is causal, so only those encode alike in both prompts); ``plain`` uses the target prompt's
            encoder output alone (the default: the best edits on the editing bench, docs/editing.md). Under every
            recipe an unchanged prompt keeps the learned embedding, so an identity edit reproduces the
            reconstruction. Methods that learn no conditional embedding have zero offsets: all three agree for them.
        latent_offsets: which branches get an inversion's per-step latent corrections (DirectInversion):
            ``source`` (Ju et al.'s DirectInversion + P2P: the target branch is uncorrected) or ``both`` (the target
            gets the same corrections, as null-text's per-step null embeddings serve both branches; only then does
            an identity edit reproduce the reconstruction).
    """

    mode: str = "replace"
    cross_replace_steps: float = 0.8
    self_replace_steps: float = 0.4
    reweight: tuple[tuple[str, float], ...] = ()
    local_blend: tuple[str, ...] = ()
    blend_threshold: float = 0.3
    blend_start: float = 0.2
    attention_level: int = 1
    embedding_transfer: str = "plain"
    latent_offsets: str = "source"

    def __post_init__(self) -> None:
        from diffinv.editing.registry import MODES

        if self.mode not in MODES:
            raise DiffinvError(f"unknown edit mode {self.mode!r}; choose one of {', '.join(MODES)}")
        for name in ("cross_replace_steps", "self_replace_steps", "blend_start"):
            check_number(name, getattr(self, name), minimum=0, maximum=1)
        check_number("blend_threshold", self.blend_threshold, minimum=0, maximum=1, above=True)
        check_integer("attention_level", self.attention_level, minimum=0)
        if self.embedding_transfer not in EMBEDDING_TRANSFERS:
            raise DiffinvError(
                f"embedding_transfer must be one of {', '.join(EMBEDDING_TRANSFERS)}, got {self.embedding_transfer!r}"
            )
        if self.latent_offsets not in OFFSET_BRANCHES:
            raise DiffinvError(
                f"latent_offsets must be one of {', '.join(OFFSET_BRANCHES)}, got {self.latent_offsets!r}"
            )
        for word, scale in self.reweight:
            if not (isinstance(word, str) and word.strip()):
                raise DiffinvError(f"reweight words must be non-empty strings, got {word!r}")
            check_number(f"the reweight scale of {word!r}", scale, minimum=0)
        if self.mode == "reweight" and not self.reweight:
            raise DiffinvError("reweight mode needs words to reweight, e.g. reweight={'red': 2.0}")
        if any(not (isinstance(w, str) and w.strip()) for w in self.local_blend):
            raise DiffinvError("local_blend words must be non-empty strings")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SDEditConfig:
    """SDEdit settings.

    Attributes:
        strength: t0 as a fraction of the schedule, in (0, 1]; ``round-down(strength · T)`` steps run.
        repeats: K, how many times to perturb and denoise (the paper's Alg. 2); ≥ 1.
        num_inference_steps: T, the steps of the full schedule.
        guidance_scale: classifier-free guidance weight.
        eta: DDIM's η for the reverse process (1: the paper's stochastic sampler; 0: deterministic).
    """

    strength: float = 0.5
    repeats: int = 1
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    eta: float = 1.0

    def __post_init__(self) -> None:
        check_number("strength (t0)", self.strength, minimum=0, maximum=1, above=True)
        check_integer("repeats", self.repeats, minimum=1, maximum=MAX_REPEATS)
        check_integer("num_inference_steps", self.num_inference_steps, minimum=1)
        check_number("guidance_scale", self.guidance_scale, minimum=0)
        check_number("eta", self.eta, minimum=0, maximum=1)

    @property
    def start_step(self) -> int:
        """The first of the ``T`` steps that runs (diffusers' img2img ``get_timesteps``)."""
        steps = self.num_inference_steps
        return steps - min(int(steps * self.strength), steps)
