"""What every bench's summary shares: averaging record values that may be reasons instead of numbers, and writing
the summary's table and figures atomically. Each bench's summary is its ``*_report`` module
(:mod:`~diffinv.bench.reconstruction_report`, :mod:`~diffinv.bench.edit_report`, :mod:`~diffinv.bench.sweep_report`,
:mod:`~diffinv.bench.concept_report`), whose ``write_<bench>_summary`` reads the records alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from diffinv.io import atomic_write


def mean_or_reason(values: list[Any]) -> float | str:
    """Mean of the finite numbers; if any value is a string (unavailable/refused), that string. NaN values (a score
    undefined for that item, e.g. PSNR over an empty region) are left out; "inf" when every defined value is
    infinite (e.g. pixels kept exactly), "nan" when none is defined."""
    for value in values:
        if isinstance(value, str) and value not in ("inf", "nan"):
            return value
    numbers = [math.inf if v == "inf" else math.nan if v == "nan" else float(v) for v in values]
    defined = [v for v in numbers if not math.isnan(v)]
    finite = [v for v in defined if math.isfinite(v)]
    if not finite:
        return "inf" if defined and all(v == math.inf for v in defined) else "nan"
    return sum(finite) / len(finite)


def save_figure(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))


def write_tables(rows: list[dict[str, Any]], markdown: str, out: Path, name: str = "summary") -> None:
    """``OUT/<name>.json`` (the rows) and ``OUT/<name>.md`` (``markdown``), each written atomically."""
    atomic_write(out / f"{name}.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=2) + "\n"))
    atomic_write(out / f"{name}.md", lambda tmp: tmp.write_text(markdown))
