"""What every command shares: one-line usage errors, typed option values, options generated from config dataclasses,
and the option groups written once (model / device / dtype / concepts, output / overwrite, bench jobs).

No torch at import: ``diffinv --help`` loads no model library.
"""

from __future__ import annotations

import argparse
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from diffinv.config import MAX_SEED, Config, init_fields, type_hints
from diffinv.errors import DiffinvError, check_items

EXIT_USAGE = 2


@dataclass(frozen=True)
class Command:
    """A ``diffinv`` command: one file under ``cli/commands/`` exposing ``COMMAND``, plus one registry line (which
    names it).

    Attributes:
        help: one line for ``diffinv --help``.
        build: adds the command's options to its parser.
        run: does the work for parsed options; returns the JSON result (``output`` is announced as "wrote ...").
        description: the longer text of ``diffinv NAME --help``.
    """

    help: str
    build: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]
    description: str | None = None


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``diffinv: error: ...``, exit 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("diffinv").strip()
        if message.endswith("expected one argument"):  # e.g. --at -8,-8: argparse took the value for an option
            message += " (write a value that starts with '-' as --option=VALUE)"
        self.exit(EXIT_USAGE, f"diffinv: error: {command + ': ' if command else ''}{message}\n")


def count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            bound = f"in [{minimum}, {maximum}]" if maximum is not None else f"≥ {minimum}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {text!r}")
        return value

    return parse


def number(minimum: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number (≥ ``minimum``); NaN and infinities never reach the numeric core."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            bound = f" ≥ {minimum:g}" if minimum is not None else ""
            raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
        return value

    return parse


def integer(text: str) -> int:
    """An argparse type: any integer (the config checks its range)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


SEED = count(0, MAX_SEED)


def comma_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` → ``("a", "b", "c")``."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _items(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    """A list option's type: at least one item, none twice (an empty list would do nothing and exit 0, a repeated
    one the same work twice)."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            items = check_items("the list", list(comma_list(text)))
        except DiffinvError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return tuple(kind(item) for item in items)

    return parse


def _argument_type(hint: Any) -> tuple[Callable[[str], Any] | None, dict[str, Any]]:
    """The argparse ``type`` (and extra keywords) of a field typed ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        return str, {"choices": args}
    if origin is tuple:
        return _items(_argument_type(args[0])[0] or str), {"metavar": "A,B,..."}
    return {int: integer, float: number()}.get(hint, str), {}


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type[Config],
    title: str,
    *,
    skip: Sequence[str] | type[Config] = (),
    defaults: Mapping[str, Config] | None = None,
    types: Mapping[str, Callable[[str], Any]] | None = None,
) -> None:
    """One option per field of ``cls`` (``--field-name`` plus the field's ``aliases``), typed from its annotation,
    its help text and default read from the field: the command line never restates a default. Fields with
    ``option=False`` and those of ``skip`` (names, or a config class whose options another group already has) are
    left out. ``defaults`` (``{label: config}``) shows several defaults, e.g. per method. Every option's value is
    ``None`` unless given: :func:`config_values` collects the given ones. ``types`` replaces the parser of a field
    whose text form is not a plain comma list (e.g. method variants, which hold commas)."""
    skipped = set(init_fields(skip)) if isinstance(skip, type) else set(skip)
    group = parser.add_argument_group(title)
    hints = type_hints(cls)
    for name, f in init_fields(cls).items():
        if name in skipped or not f.metadata.get("option", True):
            continue
        if defaults:
            values = {label: _shown(getattr(c, name)) for label, c in defaults.items() if hasattr(c, name)}
            same = len(set(values.values())) == 1
            shown = next(iter(values.values())) if same else ", ".join(f"{k} {v}" for k, v in values.items())
        else:
            shown = _shown(cls.default(name))
        kind, extra = _argument_type(hints[name])
        if "choices" in f.metadata:
            extra["choices"] = tuple(f.metadata["choices"])
        if types and name in types:
            kind, extra = types[name], {"metavar": extra.get("metavar")}
        if name == "seed":  # every seed has the torch generators' range
            kind = SEED
        if kind is not None:
            extra["type"] = kind
        group.add_argument(  # an alias (the older, shorter name) comes first: errors and the corpus name it
            *f.metadata.get("aliases", ()),
            option_name(name),
            dest=name,
            default=None,
            help=f.metadata.get("help", "") + ("" if shown in ("", "None") else f" (default: {shown})"),
            **extra,
        )


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return "" if isinstance(value, Config) else str(value)


def config_values(args: argparse.Namespace, cls: type[Config], *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (options left out are ``None`` and not returned)."""
    return {
        name: getattr(args, name)
        for name in init_fields(cls)
        if name not in skip and getattr(args, name, None) is not None
    }


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device``, ``--dtype`` and ``--concept``: which pipeline a command runs."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        help="built-in name, diffusers folder, .safetensors checkpoint or hub id (default: the built-in model)",
    )
    group.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"), help="default: cpu")
    group.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="default: fp32")
    group.add_argument(
        "--concept",
        dest="concept_files",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="load a learned concept (an embedding file: diffinv, diffusers or A1111 format; one with UNet offsets, "
        "LoRA or E4T, changes every prompt while loaded); repeatable",
    )


def load_model(args: argparse.Namespace) -> Any:
    """The pipeline of ``--model``/``--device``/``--dtype`` with every ``--concept`` loaded (the concept files are
    read and checked before the model loads)."""
    from diffinv.errors import DiffinvError
    from diffinv.personalization import load_concept, read_concept
    from diffinv.pipelines import load_pipeline

    concepts = [read_concept(path) for path in args.concept_files]
    owners: dict[str, Any] = {}
    for path, concept in zip(args.concept_files, concepts, strict=True):
        for token in concept.tokens:
            if token in owners:
                raise DiffinvError(f"--concept files {owners[token]} and {path} both hold the token {token!r}")
            owners[token] = path
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    for concept in concepts:
        load_concept(pipe, concept)
    return pipe


def add_output_options(
    parser: argparse.ArgumentParser,
    help: str = "output image (.png)",
    *,
    required: bool = True,  # noqa: A002
) -> None:
    """``-o/--output`` and ``--overwrite``."""
    parser.add_argument("-o", "--output", type=Path, required=required, default=None, help=help)
    add_overwrite_option(parser)


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace output files that already exist")


def add_json_option(parser: argparse.ArgumentParser, help: str = "print one JSON object with the results") -> None:  # noqa: A002
    parser.add_argument("--json", action="store_true", help=help)


def check_output(
    args: argparse.Namespace, path: Path, *inputs: Path | str | None, overwrite: bool | None = None
) -> Path:
    """Refuse, before any work, an output that is an input (the model, every file in a model folder and every
    ``--concept`` file included), not a regular file, not writable, or that exists without ``--overwrite``
    (``overwrite`` overrides the option for files a command always rewrites)."""
    from diffinv.io import check_output as check

    model = args.model if args.model and Path(args.model).exists() else None
    if overwrite is None:
        overwrite = args.overwrite
    return check(path, inputs=(*inputs, model, *args.concept_files), overwrite=overwrite)


def add_job_options(
    parser: argparse.ArgumentParser,
    cls: type[Config],
    *,
    skip: Sequence[str] = (),
    types: Mapping[str, Any] | None = None,
) -> None:
    """What every bench command shares: ``--out``, the options of its config ``cls`` (dataset, seed, threads, ...),
    then the model options."""
    parser.add_argument("--out", type=Path, required=True, help="output folder (records, summary, plots)")
    add_config_options(parser, cls, "bench", skip=skip, types=types)
    add_model_options(parser)


def run_sharded(
    args: argparse.Namespace,
    run: Callable[[Any, int, int], int],
    summarize: Callable[[list[dict[str, Any]]], Any],
    output: str,
) -> dict[str, Any]:
    """What every bench command does once its options are valid: load the model, run this process's share of the
    jobs (``run(pipe, rank, world_size)``), wait for the other processes, and summarise every record on rank 0."""
    from diffinv.bench.runner import read_records

    check_output(args, args.out / output, overwrite=True)
    pipe = load_model(args)
    rank, world_size, wait_for_everyone = process_group()
    ran = run(pipe, rank, world_size)
    wait_for_everyone()
    if rank == 0:
        summarize(read_records(args.out))
    return {"output": str(args.out / output), "jobs_run": ran, "rank": rank}


def process_group() -> tuple[int, int, Callable[[], None]]:
    """``(rank, world_size, barrier)``: from accelerate when launched with several processes, else one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        return state.process_index, state.num_processes, state.wait_for_everyone
    return 0, 1, lambda: None
