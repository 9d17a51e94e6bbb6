"""``refine``: add or remove words (Hertz et al. 2022, Sec. 3.2, "Adding a new phrase").

With ``A(j)`` the source token aligned to target token ``j`` (or none):
``(Edit(M_t, M*_t, t))_{i,j} = (M*_t)_{i,j}`` if ``A(j) = None`` else ``(M_t)_{i,A(j)}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from diffinv.editing.alignment import TokenMapping, refine_mapping

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from diffinv.editing.config import EditConfig


@dataclass(frozen=True)
class RefineMode:
    summary: ClassVar[str] = "add or remove words (a red circle → a big red circle): tokens aligned, new ones free"
    requires: ClassVar[Mapping[str, str]] = {}

    def mapping(self, tokenizer: PreTrainedTokenizerBase, source: str, target: str, config: EditConfig) -> TokenMapping:
        return refine_mapping(tokenizer, source, target, config.refine_padding)


MODE = RefineMode()
