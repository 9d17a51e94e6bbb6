"""Token influence (the reference paper's Fig. 1): how much do embedding positions ≥ k matter?

For a prompt and a seed, generate with the full conditional embedding, then with positions ``k .. L−1`` replaced —
by zeros (``replacement="zero"``, the paper's Fig. 1) or by the empty prompt's embedding at those positions
(``replacement="pad"``) — for every k, and measure how far each image moves from the full one (mean absolute pixel
difference in [0, 1], and PSNR). Influence "vanishes" at the smallest k from which every later truncation stays
within ``threshold`` of the full image. The settings are :class:`~diffinv.bench.config.TokenInfluenceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from diffinv import api, metrics
from diffinv.bench.config import TokenInfluenceConfig
from diffinv.config import merge
from diffinv.io import atomic_write
from diffinv.text import encode_prompt


@dataclass(frozen=True)
class TokenInfluence:
    """``changes[k]`` and ``psnrs[k]``: the image made with positions ≥ k replaced vs the full image."""

    prompt: str
    replacement: str
    n_tokens: int
    changes: tuple[float, ...]
    psnrs: tuple[float, ...]
    threshold: float

    @property
    def vanishes_at(self) -> int:
        """Smallest k with ``changes[j] < threshold`` for every j ≥ k."""
        k = len(self.changes)
        while k > 0 and self.changes[k - 1] < self.threshold:
            k -= 1
        return k


def token_influence(
    pipe: StableDiffusionPipeline,
    prompt: str,
    *,
    replacement: str | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int | None = None,
    threshold: float | None = None,
    config: TokenInfluenceConfig | None = None,
) -> TokenInfluence:
    """Measure the change for every k = 0 .. L (L = the tokenizer's length; k = L is the full embedding); the
    keyword arguments override ``config``'s (default :class:`~diffinv.bench.config.TokenInfluenceConfig`)."""
    config = merge(config, TokenInfluenceConfig(), "token influence", replacement=replacement,
                   num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                   threshold=threshold)  # fmt: skip
    encoded = encode_prompt(pipe, prompt)
    full = encoded.embeds
    filler = torch.zeros_like(full) if config.replacement == "zero" else encode_prompt(pipe, "").embeds

    def render(embeds: torch.Tensor) -> torch.Tensor:
        return api.generate(
            pipe,
            prompt_embeds=embeds,
            num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale,
            generator=torch.Generator().manual_seed(config.seed),
            output_type="pt",
        ).cpu()

    reference = render(full)
    changes, psnrs = [], []
    positions = encoded.max_length  # token positions; rows after them (SDXL's pooled embedding) are kept
    for k in range(positions + 1):
        embeds = torch.cat([full[:, :k], filler[:, k:positions], full[:, positions:]], dim=1)
        image = reference if k == positions else render(embeds)
        changes.append(float((image - reference).abs().mean()))
        psnrs.append(metrics.psnr(image, reference))
    return TokenInfluence(prompt, config.replacement, encoded.n_tokens, tuple(changes), tuple(psnrs), config.threshold)


def plot_token_influence(results: list[TokenInfluence], path: Path) -> Path:
    """One curve per result: mean absolute change vs k, the prompt's length marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for result in results:
        line = ax.plot(result.changes, label=f"{result.replacement}: {result.prompt[:40]}")[0]
        ax.axvline(result.n_tokens, color=line.get_color(), ls=":", lw=0.8)
    if results:
        ax.axhline(results[0].threshold, color="gray", ls="--", lw=0.8, label="threshold")
    ax.set_xlabel("k: positions k..L−1 replaced (dotted: end of the prompt's tokens)")
    ax.set_ylabel("mean |Δ pixel| vs full embedding")
    ax.set_title("Token influence (reference paper, Fig. 1)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return written
