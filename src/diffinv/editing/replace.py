"""``replace``: swap words of equal token length (Hertz et al. 2022, Sec. 3.2, "Word swap").

The target's cross-attention map of every token is the source's map at the same position:
``Edit(M_t, M*_t, t) = M_t`` for ``t < τ``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from diffinv.editing.alignment import TokenMapping, replace_mapping

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from diffinv.editing.config import EditConfig


@dataclass(frozen=True)
class ReplaceMode:
    summary: ClassVar[str] = "swap words of the same token length (red → blue): each token keeps its source attention"
    requires: ClassVar[Mapping[str, str]] = {}

    def mapping(self, tokenizer: PreTrainedTokenizerBase, source: str, target: str, config: EditConfig) -> TokenMapping:
        return replace_mapping(tokenizer, source, target)


MODE = ReplaceMode()
