"""``reweight``: strengthen or weaken words (Hertz et al. 2022, Sec. 3.2, "Attention re-weighting").

For the tokens ``j*`` of each chosen word with scale ``c``: ``(Edit(M_t, M*_t, t))_{i,j} = c · (M_t)_{i,j}`` if
``j = j*`` else ``(M_t)_{i,j}``. The prompts are aligned as in ``refine`` (equal prompts align one to one), so a
word can also be added and reweighted at once. The scales are ``EditConfig.reweight``, which every mode applies on
top of its own edit; this mode is the one that cannot run without them.
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
class ReweightMode:
    summary: ClassVar[str] = "scale the attention of words (red=2): the same prompt, one word stronger or weaker"
    requires: ClassVar[Mapping[str, str]] = {
        "reweight": "reweight mode needs words to reweight, e.g. reweight={'red': 2.0}"
    }

    def mapping(self, tokenizer: PreTrainedTokenizerBase, source: str, target: str, config: EditConfig) -> TokenMapping:
        return refine_mapping(tokenizer, source, target, config.refine_padding)


MODE = ReweightMode()
