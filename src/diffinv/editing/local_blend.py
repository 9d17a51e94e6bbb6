"""Local blending (Hertz et al. 2022, Sec. 3.3): edit only where the edited words attend.

After each step from ``blend_start · T`` on, the cross-attention maps of the blend words — source words in the
source branch, target words in the target branch — accumulated over every layer at one map size and every step so
far, are max-pooled (3×3), resized to the latent, normalised by their maximum and thresholded; the target latent
keeps the source's latent outside the union of both masks: ``z*_t ← z_t + m ⊙ (z*_t − z_t)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class LocalBlend:
    """Accumulates the blend words' attention and applies the mask to ``[source, target]`` latents."""

    def __init__(self, word_masks: Tensor, map_fraction: float, threshold: float, start_step: int) -> None:
        """``word_masks`` ``(2, L)``: 1 at the blend words' positions of the source (row 0) and target (row 1);
        the maps read are those whose sides are nearest to ``map_fraction`` of the latent's."""
        self.word_masks = word_masks
        self.map_fraction = map_fraction
        self.threshold = threshold
        self.start_step = start_step
        self.maps: dict[tuple[int, int], Tensor] = {}
        self.mask: Tensor | None = None

    def store(self, cond_probs: Tensor, size: tuple[int, int]) -> None:
        """Add one cross-attention layer's ``(2, heads, Q, L)`` conditional maps of ``[source, target]``."""
        words = self.word_masks.to(cond_probs)[:, None, None, :]
        maps = (cond_probs * words).sum(-1).mean(1).float()  # (2, Q)
        self.maps[size] = maps + self.maps[size] if size in self.maps else maps

    def __call__(self, i: int, latents: Tensor) -> Tensor:
        """After step ``i``: ``latents`` ``(2, C, h, w)`` with the target blended into the source."""
        if i < self.start_step or not self.maps:
            return latents
        wanted = self.map_fraction**2 * math.prod(latents.shape[-2:])  # a fraction of each side
        size = min(self.maps, key=lambda s: abs(math.log(math.prod(s) / wanted)))
        maps = self.maps[size].view(2, 1, *size)
        maps = F.max_pool2d(maps, kernel_size=3, stride=1, padding=1)
        maps = F.interpolate(maps, size=latents.shape[-2:])
        maps = maps / maps.amax(dim=(-2, -1), keepdim=True).clamp(min=torch.finfo(maps.dtype).tiny)
        mask = (maps > self.threshold).any(dim=0, keepdim=True).to(latents)
        self.mask = mask
        return torch.cat([latents[:1], latents[:1] + mask * (latents[1:] - latents[:1])])
