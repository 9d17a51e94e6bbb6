"""What every editor shares: the result (:class:`EditResult`) and the protocol of a prompt-to-prompt attention
mode (:class:`EditMode`); the settings are in :mod:`diffinv.editing.config`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedTokenizerBase

    from diffinv.editing.alignment import TokenMapping


@dataclass
class EditResult:
    """What :func:`diffinv.edit` returns.

    Attributes:
        source: the source branch: the inversion's reconstruction (as ``output_type``).
        edit: the target branch: the edited image (as ``output_type``).
        mask: ``(1, 1, h, w)`` latent-resolution local-blend mask of the last step, or ``None`` without blending.
        seconds: wall-clock time of the edit.
    """

    source: Any
    edit: Any
    mask: Tensor | None
    seconds: float


class EditMode(Protocol):
    """One prompt-to-prompt mode (a file exposing ``MODE``, listed in :data:`diffinv.editing.registry.MODES`): how
    target tokens inherit the source's cross-attention, and which settings it cannot run without."""

    summary: str
    """One line for menus and ``--help``: what the mode is for, with an example."""

    @property
    def requires(self) -> Mapping[str, str]:
        """:class:`~diffinv.editing.config.EditConfig` fields the mode needs set (non-empty), each with the message
        that refuses a config leaving it empty."""
        ...

    def mapping(self, tokenizer: PreTrainedTokenizerBase, source: str, target: str, config: Any) -> TokenMapping:
        """Which source position each target position inherits (refusing prompts the mode cannot pair), with
        ``config``'s alignment settings (an :class:`~diffinv.editing.config.EditConfig`, whose module imports the
        mode registry: typed loosely to keep imports one way)."""
        ...
