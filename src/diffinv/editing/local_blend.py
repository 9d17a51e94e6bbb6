"""Local blending (Hertz et al. 2022, Sec. 3.3): edit only where the edited words attend.

After each step from ``blend_start · T`` on, the cross-attention maps of the blend words — source words in the
source branch, target words in the target branch — accumulated over every layer at one map size and every step so
far, are max-pooled (3×3), resized to the latent, normalised to [0, 1] and thresholded; the target latent
keeps the source's latent outside the union of both masks: ``z*_t ← z_t + m ⊙ (z*_t − z_t)``.

The official implementation divides by the maximum; we subtract the minimum first. The two agree where a word's
attention elsewhere is near zero, as in Stable Diffusion, and only the min-max form finds the region on models whose
words keep a floor of attention everywhere, as the built-in model's do (docs/editing.md, "How an inversion becomes an
edit", gives the floor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class LocalBlend:
    """Accumulates the blend words' attention and applies the mask to ``[source, target]`` latents."""

    def __init__(self, word_masks: Tensor, size: tuple[int, int], threshold: float, start_step: int) -> None:
        """``word_masks`` ``(2, L)``: 1 at the blend words' positions of the source (row 0) and target (row 1);
        ``size``: the attention-map size whose cross-attention layers are read."""
        self.word_masks = word_masks
        self.size = size
        self.threshold = threshold
        self.start_step = start_step
        self.maps: Tensor | None = None
        self.mask: Tensor | None = None

    def store(self, cond_probs: Tensor) -> None:
        """Add one cross-attention layer's ``(2, heads, Q, L)`` conditional maps of ``[source, target]``."""
        words = self.word_masks.to(cond_probs)[:, None, None, :]
        maps = (cond_probs * words).sum(-1).mean(1).float()  # (2, Q)
        self.maps = maps if self.maps is None else self.maps + maps

    def __call__(self, i: int, latents: Tensor) -> Tensor:
        """After step ``i``: ``latents`` ``(2, C, h, w)`` with the target blended into the source."""
        if i < self.start_step or self.maps is None:
            return latents
        maps = self.maps.view(2, 1, *self.size)
        maps = F.max_pool2d(maps, kernel_size=3, stride=1, padding=1)
        maps = F.interpolate(maps, size=latents.shape[-2:])
        low = maps.amin(dim=(-2, -1), keepdim=True)
        maps = (maps - low) / (maps.amax(dim=(-2, -1), keepdim=True) - low).clamp(min=torch.finfo(maps.dtype).tiny)
        mask = (maps > self.threshold).any(dim=0, keepdim=True).to(latents)
        self.mask = mask
        return torch.cat([latents[:1], latents[:1] + mask * (latents[1:] - latents[:1])])
