"""The one exception type diffinv raises for bad input, and the checks of typed fields that raise it.

A :class:`DiffinvError` always carries a one-line message meant for a person. The CLI prints it as
``diffinv: error: <message>`` and exits with status 2; library users can catch it (it is a ``ValueError``).
"""

from __future__ import annotations

import math


class DiffinvError(ValueError):
    """Bad user input or an unusable file, explained in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (for a one-line error), or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_number(
    name: str, value: object, *, minimum: float | None = None, maximum: float | None = None, above: bool = False
) -> float:
    """``value`` as a finite real number in range (``minimum < value`` with ``above``), else :class:`DiffinvError`.

    Booleans and strings are refused: configuration read back from a file is checked as strictly as an option.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if above else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        low = "" if minimum is None else f"{'>' if above else '≥'} {minimum:g}"
        high = "" if maximum is None else f"≤ {maximum:g}"
        bound = f" {' and '.join(b for b in (low, high) if b)}" if (low or high) else ""
        raise DiffinvError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def check_integer(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an integer in ``[minimum, maximum]`` (booleans refused), else :class:`DiffinvError`."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        bound = [f"≥ {minimum}"] * (minimum is not None) + [f"≤ {maximum}"] * (maximum is not None)
        raise DiffinvError(f"{name} must be an integer{' ' + ' and '.join(bound) if bound else ''}, got {value!r}")
    return int(value)


def check_items(name: str, values: object) -> tuple:
    """``values`` as a non-empty tuple without repeated items, else :class:`DiffinvError`: an empty list would run
    nothing and report success, a repeated item would do the same work twice."""
    items = tuple(values) if isinstance(values, list | tuple) else ()
    if not items:
        raise DiffinvError(f"{name} must name at least one item, got {values!r}")
    repeated = sorted({str(v) for i, v in enumerate(items) if v in items[:i]})
    if repeated:
        raise DiffinvError(f"{name} names {', '.join(repeated)} more than once")
    return items
