r"""The job loop every bench runs through: resumable, shardable, locked, durable.

A bench is a list of :class:`Job`\ s, each writing one or more records (JSON objects with a unique ``key``). Every
finished job is appended to ``OUT/records-<rank>.jsonl`` (flushed and fsynced) as soon as it is done; a re-run skips
every job already recorded in any ``records-*.jsonl`` of the folder, so a run killed at any moment loses nothing
written. A re-run must use the settings the folder's records were made with (``OUT/settings.json``: the bench
config's :meth:`~diffinv.bench.config.JobConfig.record_settings` and the model's fingerprint); it may change only
what chooses the jobs. Under ``accelerate launch --num_processes N`` each process takes the jobs of every N-th shard;
after all have finished, the main process writes the bench's summary, which depends only on the records. Every process
computes with the same number of torch CPU threads (:class:`~diffinv.bench.config.JobConfig`), so the records of an
N-process run are bitwise those of a one-process run (wall-clock times aside).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from diffinv.errors import DiffinvError
from diffinv.io import atomic_write

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

    from diffinv.bench.config import JobConfig

RECORDS_GLOB = "records-*.jsonl"
SETTINGS_FILE = "settings.json"


def read_records(out: Path) -> list[dict[str, Any]]:
    """One record per job key from the ``records-*.jsonl`` in ``out``: the first complete line written for it (a
    torn last line is ignored, and so are duplicates, e.g. from two runs that once shared the folder)."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob(RECORDS_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                records.setdefault(record["key"], record)
    return list(records.values())


@contextlib.contextmanager
def folder_lock(out: Path, rank: int) -> Iterator[None]:
    """Hold ``OUT/.records-<rank>.lock`` while process ``rank`` of a run writes its records.

    Every run has a rank 0, so a second run on the same folder (of any process count) finds at least one lock held
    and stops with :class:`DiffinvError` instead of recording every job twice. The lock is released when the
    process ends, even if it is killed.
    """
    out.mkdir(parents=True, exist_ok=True)
    with (out / f".records-{rank}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DiffinvError(
                f"another diffinv bench is running on {out} (process {rank}); wait for it to finish or give "
                "another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RecordWriter:
    """Appends one JSON object per line, durably (flush + fsync), repairing a torn last line first."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with path.open("ab") as handle:
                handle.write(b"\n")
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def json_float(value: float) -> float | str:
    """``value``, or ``"inf"``/``"nan"`` (JSON has no infinities)."""
    return value if math.isfinite(value) else ("inf" if value > 0 else "nan")


def _eta(remaining: dict[str, int], spent: dict[str, list[float]]) -> str:
    parts = []
    for label, count in remaining.items():
        if count and spent[label]:
            seconds = count * sum(spent[label]) / len(spent[label])
            parts.append(f"{label} {tqdm.format_interval(seconds)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Job:
    """One unit of bench work.

    Attributes:
        keys: the record keys it writes (it is skipped when every one is recorded).
        shard: which process takes it: the one with ``rank == shard % world_size`` (the image's index, so one
            image's jobs stay in one process).
        label: groups jobs for the ETA.
        run: ``run(done)`` computes the records of the job's keys not in ``done`` (the keys already recorded;
            dicts with ``key`` and ``seconds``), so a bench that gains an editor or a metric runs only what is new.
    """

    keys: tuple[str, ...]
    shard: int
    label: str
    run: Callable[[set[str]], list[dict[str, Any]]]


def check_settings(out: Path, config: JobConfig, pipe: StableDiffusionPipeline) -> None:
    """Record in ``OUT/settings.json`` what every record of ``out`` is made with, or, when the folder has them
    already, refuse (:class:`DiffinvError`, naming the first difference) a run whose settings or model differ:
    its records would silently mix with the old ones, and a re-run that finds every job done would rewrite the
    summary as if nothing had changed."""
    from diffinv.pipelines import ModelFingerprint, fingerprint

    path = out / SETTINGS_FILE
    settings = json.loads(json.dumps(config.record_settings()))  # tuples as lists, as read back
    model = fingerprint(pipe)
    if not path.is_file():
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps({**settings, "model": model.to_dict()}, indent=1)))
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        saved_model = ModelFingerprint.from_dict(saved.pop("model"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise DiffinvError(f"{path} is not a bench's settings file; give another --out") from None
    for key in sorted(saved.keys() | settings.keys()):
        if saved.get(key) != settings.get(key):
            raise DiffinvError(
                f"{out} holds records made with {key}={saved.get(key)!r}, not {settings.get(key)!r}; "
                "give the same setting to resume, or another --out"
            )
    if not saved_model.matches(model):
        raise DiffinvError(f"{out} holds records made with another model; give that model to resume, or another --out")


def run_jobs(
    jobs: Iterable[Job],
    out: Path,
    config: JobConfig,
    pipe: StableDiffusionPipeline,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> int:
    """Run this process's share of ``jobs`` not yet recorded in ``out`` with ``config.num_threads`` torch threads,
    appending each record as soon as its job is done; returns the number of jobs run. Every bench
    (reconstruction, editing, SDEdit, concepts) runs through here.

    Raises:
        DiffinvError: another run holds this process's lock on ``out`` (see :func:`folder_lock`); the folder holds
            records made with other settings or another model (see :func:`check_settings`).
    """
    num_threads = config.num_threads
    with folder_lock(out, rank):
        check_settings(out, config, pipe)
        done = {r["key"] for r in read_records(out)}
        todo = [j for j in jobs if j.shard % world_size == rank and not set(j.keys) <= done]
        writer = RecordWriter(out / f"records-{rank}.jsonl")
        remaining: dict[str, int] = defaultdict(int)
        for job in todo:
            remaining[job.label] += 1
        spent: dict[str, list[float]] = defaultdict(list)
        bar = tqdm(total=len(todo), disable=not progress, desc=f"bench[{rank}/{world_size}]", unit="job")
        threads = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            for job in todo:
                records = job.run(done)
                for record in records:
                    if record["key"] not in done:
                        writer.write(record)
                remaining[job.label] -= 1
                spent[job.label].append(sum(r["seconds"] for r in records))
                bar.update()
                bar.set_postfix_str(f"ETA {_eta(remaining, spent)}")
        finally:
            torch.set_num_threads(threads)
            bar.close()
    return len(todo)
