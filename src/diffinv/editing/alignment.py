"""Token bookkeeping for prompt-to-prompt: which target token comes from which source token, and where words sit.

Prompt-to-prompt (Hertz et al. 2022, Sec. 3.2) needs, for every position of the target prompt's embedding, the
source position whose attention map it inherits. *Replace* swaps words of equal token length, so position ``j``
inherits position ``j``. *Refine* adds or removes words: a global alignment of the two token sequences
(Needleman & Wunsch 1970; match +1, mismatch −1, gap 0, as the official implementation's ``seq_aligner``) maps
each target token to its source token, and tokens the source lacks inherit nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffinv.errors import DiffinvError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MATCH, MISMATCH, GAP = 1, -1, 0


@dataclass(frozen=True)
class TokenMapping:
    """How the ``L`` positions of a target embedding inherit from the source's (plain tuples of length ``L``; the
    attention controller turns them into tensors on its device).

    Attributes:
        source_index: the source position each target position inherits from.
        inherits: 1.0 where the target position has a source counterpart, 0.0 for new tokens.
        same_token: True where the inherited source token is the very same token (not a replacement): an unchanged
            word, BOS, EOS or padding.
    """

    source_index: tuple[int, ...]
    inherits: tuple[float, ...]
    same_token: tuple[bool, ...]


def token_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """BOS + the prompt's tokens + EOS, truncated to the tokenizer's ``model_max_length``."""
    return tokenizer(prompt, truncation=True, max_length=int(tokenizer.model_max_length)).input_ids


def _pad(ids: Sequence[int], length: int, pad_id: int) -> list[int]:
    return list(ids) + [pad_id] * (length - len(ids))


def global_alignment(source: Sequence[int], target: Sequence[int]) -> list[int]:
    """For each target token, the index of the source token aligned with it, or −1 (Needleman–Wunsch).

    Ties prefer the diagonal (a match or substitution) over gaps, so equal sequences align one to one.
    """
    n, m = len(source), len(target)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]  # 0 diagonal, 1 gap in target (skip source), 2 gap in source
    for i in range(1, n + 1):
        score[i][0], move[i][0] = i * GAP, 1
    for j in range(1, m + 1):
        score[0][j], move[0][j] = j * GAP, 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diagonal = score[i - 1][j - 1] + (MATCH if source[i - 1] == target[j - 1] else MISMATCH)
            options = (diagonal, score[i - 1][j] + GAP, score[i][j - 1] + GAP)
            best = max(options)
            score[i][j], move[i][j] = best, options.index(best)
    aligned = [-1] * m
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and move[i][j] == 0:
            if source[i - 1] == target[j - 1]:
                aligned[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif i > 0 and (j == 0 or move[i][j] == 1):
            i -= 1
        else:
            j -= 1
    return aligned


def replace_mapping(tokenizer: PreTrainedTokenizerBase, source: str, target: str) -> TokenMapping:
    """Position ``j`` inherits position ``j``; the prompts must have equal token counts.

    Raises:
        DiffinvError: the token counts differ (refine mode aligns prompts of different lengths).
    """
    src, tgt = token_ids(tokenizer, source), token_ids(tokenizer, target)
    if len(src) != len(tgt):
        raise DiffinvError(
            f"replace mode needs prompts of equal token length, but the source has {len(src) - 2} tokens and the "
            f"target {len(tgt) - 2}; use mode 'refine' to add or remove words"
        )
    length = int(tokenizer.model_max_length)
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    same = tuple(a == b for a, b in zip(_pad(src, length, pad), _pad(tgt, length, pad), strict=True))
    return TokenMapping(tuple(range(length)), (1.0,) * length, same)


def refine_mapping(
    tokenizer: PreTrainedTokenizerBase, source: str, target: str, padding: str = "padding"
) -> TokenMapping:
    """Target tokens aligned to equal source tokens inherit them; new tokens inherit nothing; padding position
    ``j`` beyond the target prompt inherits source position ``j - len(target) + len(source)`` (``padding``:
    padding from padding) or ``j`` (``position``: the official ``seq_aligner.get_mapper``, where the first padding
    positions of a longer target inherit the source's last words)."""
    src, tgt = token_ids(tokenizer, source), token_ids(tokenizer, target)
    length = int(tokenizer.model_max_length)
    aligned = global_alignment(src, tgt)
    start = len(src) if padding == "padding" else len(tgt)
    index = [max(i, 0) for i in aligned] + [min(start + k, length - 1) for k in range(length - len(tgt))]
    inherits = [float(i >= 0) for i in aligned] + [1.0] * (length - len(tgt))
    return TokenMapping(tuple(index), tuple(inherits), tuple(w > 0 for w in inherits))


def word_positions(tokenizer: PreTrainedTokenizerBase, prompt: str, word: str) -> list[int]:
    """Embedding positions of every occurrence of ``word`` (its whole token sequence) in ``prompt``."""
    ids = token_ids(tokenizer, prompt)
    pattern = tokenizer(word, add_special_tokens=False).input_ids
    if not pattern:
        return []
    k = len(pattern)
    starts = [start for start in range(len(ids) - k + 1) if ids[start : start + k] == pattern]
    return [p for start in starts for p in range(start, start + k)]
