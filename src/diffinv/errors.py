"""The one exception type diffinv raises for bad input.

A :class:`DiffinvError` always carries a one-line message meant for a person. The CLI prints it as
``diffinv: error: <message>`` and exits with status 2; library users can catch it (it is a ``ValueError``).
"""

from __future__ import annotations


class DiffinvError(ValueError):
    """Bad user input or an unusable file, explained in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
