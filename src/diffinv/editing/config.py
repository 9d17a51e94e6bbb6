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

import typing
from dataclasses import dataclass
from typing import Literal

from diffinv.config import Config, SamplingConfig, setting
from diffinv.editing.registry import MODES
from diffinv.errors import DiffinvError, check_integer, check_number

MAX_REPEATS = 100  # SDEdit's perturb-and-denoise rounds; the paper uses a handful

EmbeddingTransfer = Literal["delta", "prefix", "plain"]
OffsetBranches = Literal["source", "both"]
MapSource = Literal["source", "prompt"]
MAP_SOURCES: tuple[str, ...] = typing.get_args(MapSource)
RefinePadding = Literal["padding", "position"]
REFINE_PADDINGS: tuple[str, ...] = typing.get_args(RefinePadding)
BlendMaps = Literal["own", "injected"]
BLEND_MAPS: tuple[str, ...] = typing.get_args(BlendMaps)
EMBEDDING_TRANSFERS: tuple[str, ...] = typing.get_args(EmbeddingTransfer)
MAX_REWEIGHT_SCALE = 100.0
"""Attention re-weighting beyond this only saturates the softmax (Hertz et al. use scales up to about 5)."""
Posterior = Literal["mean", "sample"]
POSTERIORS: tuple[str, ...] = typing.get_args(Posterior)
OFFSET_BRANCHES: tuple[str, ...] = typing.get_args(OffsetBranches)


@dataclass(frozen=True)
class EditConfig(Config):
    """Prompt-to-prompt settings. Defaults: Hertz et al. 2022's official notebooks (cross 0.8, self 0.4, local-blend
    threshold 0.3 from step 0.2·T, their 16×16 maps of SD's 64×64 latents: the second-coarsest attention level).

    ``attention_level`` counts the UNet's cross-attention map sizes from the coarsest (0); they are found by one UNet
    pass, never assumed: 1 is the official 16×16 of SD (levels 8, 16, 32, 64); the built-in model's levels are 4 and
    8. ``embedding_transfer``: ``delta`` adds each source token's learned offset (learned − encoder output) to the
    same token of the target prompt; ``prefix`` does so only for the tokens before the first changed one (the text
    encoder is causal, so only those encode alike in both prompts); ``plain`` uses the target prompt's encoder output
    alone (the default: the best edits on the editing bench, docs/editing.md). Under every recipe an unchanged prompt
    keeps the learned embedding, so an identity edit reproduces the reconstruction; methods that learn no
    conditional embedding have zero offsets, so all three agree for them. ``latent_offsets``: ``source`` is Ju et
    al.'s DirectInversion + P2P (the target branch is uncorrected); ``both`` gives the target the same corrections,
    as null-text's per-step null embeddings serve both branches (only then does an identity edit reproduce the
    reconstruction). ``cross_attention_maps``: where the injected cross-attention maps come from when the inversion
    learned its conditional embedding (prompt-token inversion): ``source``, the source branch itself (the official
    implementation, which conditions it on the learned embedding), or ``prompt``, a third branch that runs the source
    prompt's own encoder output on the source branch's latents, so the maps belong to the words the target's
    alignment maps (one more conditional and unconditional row per step); for other inversions the two are the same
    maps and no branch is added.
    """

    mode: str = setting(
        "replace",
        "prompt-to-prompt mode: replace swaps words of equal token length, refine adds or removes words (tokens "
        "aligned), reweight scales the attention of the reweight words (prompts aligned as refine)",
        choices=MODES,
    )
    cross_replace_steps: float = setting(
        0.8, "fraction of the steps, from the first, with cross-attention injection", aliases=("--cross-steps",)
    )
    self_replace_steps: float = setting(
        0.4,
        "fraction of the steps with self-attention injection (at attention_level and coarser)",
        aliases=("--self-steps",),
    )
    reweight: tuple[tuple[str, float], ...] = setting(
        (),
        "(word, scale) pairs: the target's attention to each word's tokens is multiplied by scale; applied on top "
        "of any mode (reweight mode requires it)",
    )
    local_blend: tuple[str, ...] = setting(
        (),
        "words whose cross-attention maps (source words in the source, target words in the target) make the mask of "
        "the editable region; outside it the edit keeps the source's latent",
    )
    blend_threshold: float = setting(0.3, "the local-blend mask is where the normalised map exceeds this")
    blend_start: float = setting(0.2, "fraction of the steps after which local blending starts")
    attention_level: int = setting(
        1,
        "the attention-map size self-attention injection stops at and local blend reads, counted from the coarsest (0)",
    )
    embedding_transfer: EmbeddingTransfer = setting(
        "plain", "prompt-token inversions: how the learned conditional embedding reaches the target branch"
    )
    latent_offsets: OffsetBranches = setting(
        "source", "direct inversions: the branches that get the per-step latent corrections"
    )
    cross_attention_maps: MapSource = setting(
        "prompt",
        "prompt-token inversions: inject the source branch's cross-attention maps (source) or those of the source "
        "prompt's own embedding on the source latents (prompt, a third branch)",
    )
    refine_padding: RefinePadding = setting(
        "padding",
        "refine mode: target padding after the prompt inherits the source's padding after its prompt (padding) or "
        "the source position of the same index (position, the official seq_aligner)",
    )
    local_blend_maps: BlendMaps = setting(
        "own",
        "local blend: the target's own cross-attention maps make its mask (own) or its maps after injection "
        "(injected, the official code, which edits the stored maps in place)",
    )

    def __post_init__(self) -> None:
        mode = MODES[self.mode]
        for name in ("cross_replace_steps", "self_replace_steps", "blend_start"):
            check_number(name, getattr(self, name), minimum=0, maximum=1)
        check_number("blend_threshold", self.blend_threshold, minimum=0, maximum=1, above=True)
        check_integer("attention_level", self.attention_level, minimum=0)
        if self.embedding_transfer not in EMBEDDING_TRANSFERS:
            raise DiffinvError(
                f"embedding_transfer must be one of {', '.join(EMBEDDING_TRANSFERS)}, got {self.embedding_transfer!r}"
            )
        for name, allowed in (("refine_padding", REFINE_PADDINGS), ("local_blend_maps", BLEND_MAPS)):
            if getattr(self, name) not in allowed:
                raise DiffinvError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.cross_attention_maps not in MAP_SOURCES:
            raise DiffinvError(
                f"cross_attention_maps must be one of {', '.join(MAP_SOURCES)}, got {self.cross_attention_maps!r}"
            )
        if self.latent_offsets not in OFFSET_BRANCHES:
            raise DiffinvError(
                f"latent_offsets must be one of {', '.join(OFFSET_BRANCHES)}, got {self.latent_offsets!r}"
            )
        for word, scale in self.reweight:
            if not (isinstance(word, str) and word.strip()):
                raise DiffinvError(f"reweight words must be non-empty strings, got {word!r}")
            check_number(f"the reweight scale of {word!r}", scale, minimum=0, maximum=MAX_REWEIGHT_SCALE)
        if any(not (isinstance(w, str) and w.strip()) for w in self.local_blend):
            raise DiffinvError("local_blend words must be non-empty strings")
        for name, refusal in mode.requires.items():
            if not getattr(self, name):
                raise DiffinvError(refusal)


@dataclass(frozen=True)
class SDEditConfig(SamplingConfig):
    """SDEdit settings. Defaults: Meng et al. 2022's Alg. 1 (one perturb-and-denoise round; the stochastic reverse
    process, η = 1) at t0 = 0.5; steps and guidance are the shared sampler's (:class:`~diffinv.config.SamplingConfig`).
    """

    strength: float = setting(
        0.5,
        "t0 as a fraction of the schedule, in (0, 1]: small keeps the guide, large follows the prompt; "
        "round-down(strength · T) steps run",
    )
    repeats: int = setting(1, "K, how many times to perturb and denoise (the paper's Alg. 2)")
    eta: float = setting(1.0, "DDIM's η for the reverse process: 1 the paper's stochastic sampler, 0 the DDIM ODE")
    posterior: Posterior = setting(
        "mean",
        "how the guide is encoded: mean (the VAE posterior mean) or sample (a posterior draw from the seed, then the "
        "noise, as diffusers' img2img does: the same seed and eta give its image)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("strength (t0)", self.strength, minimum=0, maximum=1, above=True)
        check_integer("repeats", self.repeats, minimum=1, maximum=MAX_REPEATS)
        check_number("eta", self.eta, minimum=0, maximum=1)
        if self.start_step == self.num_inference_steps:
            raise DiffinvError(
                f"strength {self.strength:g} of {self.num_inference_steps} steps runs no step "
                f"(round-down(strength · steps) = 0): raise the strength or the steps"
            )
        if self.posterior not in POSTERIORS:
            raise DiffinvError(f"posterior must be one of {', '.join(POSTERIORS)}, got {self.posterior!r}")

    @property
    def start_step(self) -> int:
        """The first of the ``T`` steps that runs (diffusers' img2img ``get_timesteps``)."""
        steps = self.num_inference_steps
        return steps - min(int(steps * self.strength), steps)
