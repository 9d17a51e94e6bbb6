"""``diffinv`` command line: a thin layer over :mod:`diffinv.api`.

Every bad input ends with one line ``diffinv: error: ...`` on stderr and exit status 2, and no output file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; one range for every command


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``diffinv: error: ...``, exit 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("diffinv").strip()
        self.exit(EXIT_USAGE, f"diffinv: error: {command + ': ' if command else ''}{message}\n")


def _count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
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


def _number(minimum: float | None = None) -> Callable[[str], float]:
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


SEED = _count(0, MAX_SEED)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
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
        dest="concepts",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="load a learned concept (an embedding file: diffinv, diffusers or A1111 format); repeatable",
    )


def _load_model(args: argparse.Namespace) -> Any:
    """The pipeline of ``--model``/``--device``/``--dtype`` with every ``--concept`` loaded (the concept files are
    read and checked before the model loads)."""
    from diffinv.personalization import load_concept, read_concept
    from diffinv.pipelines import load_pipeline

    concepts = [read_concept(path) for path in args.concepts]
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    for concept in concepts:
        load_concept(pipe, concept)
    return pipe


def _add_dataclass_options(
    parser: argparse.ArgumentParser,
    cls: type,
    title: str,
    skip: type | None = None,
    defaults: Mapping[str, type] | None = None,
) -> None:
    """One ``--option`` per dataclass field (typed, help from the field's metadata; default: the dataclass's, or
    those of the named subclasses in ``defaults``), leaving out the fields of ``skip`` (a base class whose options
    another group already has)."""
    group = parser.add_argument_group(title)
    skipped = {f.name for f in dataclasses.fields(skip)} if skip is not None else set()
    for f in dataclasses.fields(cls):
        if f.name in skipped:
            continue
        default = f.default
        if defaults:
            default = ", ".join(f"{name} {getattr(sub(), f.name)}" for name, sub in defaults.items())
        kind = {"int": _count(0), "float": _number()}.get(str(f.type), str)
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            *f.metadata.get("aliases", ()),
            dest=f.name,
            type=kind,
            default=None,
            help=f"{f.metadata.get('help', '')}" + ("" if default is None else f" (default: {default})"),
        )


def _add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace output files that already exist")


def build_parser() -> argparse.ArgumentParser:
    from diffinv import __version__
    from diffinv.bench.config import (
        DEFAULT_INVERSIONS,
        DEFAULT_METHODS,
        DEFAULT_STRENGTHS,
        EDIT_KINDS,
        EDITORS,
        BenchConfig,
        EditBenchConfig,
    )
    from diffinv.editing.config import EMBEDDING_TRANSFERS, OFFSET_BRANCHES, EditConfig, SDEditConfig
    from diffinv.editing.registry import MODES
    from diffinv.inversion.config import OptimizationConfig
    from diffinv.inversion.registry import method_names
    from diffinv.personalization.config import (
        METHOD_CONFIGS,
        PROPERTIES,
        E4TConfig,
        LearningConfig,
        LoRAConfig,
        TextualInversionConfig,
    )

    parser = _Parser(
        prog="diffinv", description="Invert, reconstruct and edit real photos with Stable Diffusion models."
    )
    parser.add_argument("--version", action="version", version=f"diffinv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inv = sub.add_parser("invert", help="invert a photo into an .inv.safetensors file")
    inv.add_argument("image", type=Path, help="photo to invert (any format Pillow reads)")
    inv.add_argument("--prompt", required=True, help="caption of the photo")
    inv.add_argument(
        "--method",
        default="prompt-tokens",
        choices=method_names(),
        help="default: prompt-tokens; prompt-tokens@paper is the reference paper's setting",
    )
    inv.add_argument(
        "--steps",
        dest="num_inference_steps",
        type=_count(1),
        default=None,
        help="DDIM steps (default: the method's; 25 for prompt-tokens, 50 otherwise)",
    )
    inv.add_argument("--guidance-scale", type=_number(0), default=7.5, help="classifier-free guidance (default: 7.5)")
    inv.add_argument(
        "--tokens",
        default=None,
        help="prompt-tokens: optimise the 'semantic' slice (BOS+prompt+EOS; default), 'all' positions, or the first N",
    )
    inv.add_argument(
        "--pooled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="prompt-tokens on SDXL: optimise the pooled text embedding too (default: yes; @paper: no)",
    )
    inv.add_argument("--height", type=_count(1), default=None, help="pixels (default: the model's native size)")
    inv.add_argument("--width", type=_count(1), default=None, help="pixels (default: the model's native size)")
    inv.add_argument("--strict", action="store_true", help="refuse prompts longer than the text encoder's limit")
    inv.add_argument(
        "-o", "--output", type=Path, default=None, help="default: IMAGE_STEM.inv.safetensors in the current folder"
    )
    _add_overwrite_option(inv)
    inv.add_argument("--json", action="store_true", help="print one JSON object with the results and scores")
    inv.add_argument(
        "--report", action="store_true", help="reconstruct once and print its PSNR against the photo and latent MSE"
    )
    _add_dataclass_options(inv, OptimizationConfig, "optimisation (null-text, prompt-tokens)")
    _add_model_options(inv)

    rec = sub.add_parser("reconstruct", help="regenerate the photo from an inversion file")
    rec.add_argument("inversion", type=Path, help="an .inv.safetensors file written by `diffinv invert`")
    rec.add_argument("-o", "--output", type=Path, required=True, help="output image (.png)")
    rec.add_argument("--negative-prompt", default=None, help="use a negative prompt (free-slot methods only)")
    _add_overwrite_option(rec)
    _add_model_options(rec)

    gen = sub.add_parser("generate", help="text-to-image")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default=None)
    gen.add_argument("--steps", dest="num_inference_steps", type=_count(1), default=50, help="default: 50")
    gen.add_argument("--guidance-scale", type=_number(0), default=7.5, help="default: 7.5")
    gen.add_argument("--height", type=_count(1), default=None)
    gen.add_argument("--width", type=_count(1), default=None)
    gen.add_argument("--seed", type=SEED, default=0, help="default: 0")
    gen.add_argument("-o", "--output", type=Path, required=True, help="output image (.png)")
    _add_overwrite_option(gen)
    _add_model_options(gen)

    bench = sub.add_parser(
        "bench",
        help="reconstruction benchmark: every method on a dataset, resumable; summary.md/json + plots",
        description="Runs (image x method) jobs and appends one JSON line per job to OUT/records-<rank>.jsonl; "
        "re-running skips finished jobs. Shard over processes with `accelerate launch --num_processes N -m "
        "diffinv.cli bench ...`.",
    )
    bench.add_argument(
        "--dataset", default="shapes:100", help="shapes:N | shapes-partial:N[@WORLD] | photos | coco:ROOT | folder:PATH"
    )
    bench.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated METHOD[:key=value,...] variants or presets (prompt-tokens@paper, null-text@paper)",
    )
    bench.add_argument("--out", type=Path, required=True, help="output folder (records, summary, plots)")
    bench.add_argument("--limit", type=_count(1), default=None, help="deterministic sample of N images")
    bench.add_argument("--seed", type=SEED, default=0, help="seed of the --limit sample (default: 0)")
    bench.add_argument("--negative-prompt", default=BenchConfig.negative_prompt, help="for the negative-prompt check")
    bench.add_argument("--clip-model", default=None, help="local CLIP folder for CLIP-I (default: cached ViT-B/32)")
    bench.add_argument("--lpips-weights", default=None, help="folder with AlexNet weights for LPIPS")
    bench.add_argument(
        "--threads",
        type=_count(1),
        default=BenchConfig.num_threads,
        help="torch CPU threads per process (default: 1); results are identical for any process count at a fixed value",
    )
    bench.add_argument(
        "--batch-size",
        type=_count(1),
        default=BenchConfig.batch_size,
        help="images of one method inverted together, one UNet call per step for all (default: 1)",
    )
    _add_model_options(bench)

    edit = sub.add_parser(
        "edit",
        help="edit an inverted photo with prompt-to-prompt (replace / refine / reweight, local blend, negative prompt)",
        description="Denoises the source prompt and the target prompt side by side from the inversion, injecting "
        "the source's attention into the target (Hertz et al. 2022). Works after every inversion method.",
    )
    edit.add_argument("inversion", type=Path, help="an .inv.safetensors file written by `diffinv invert`")
    edit.add_argument(
        "--target-prompt",
        default=None,
        help="the edited caption (default: the source prompt, for reweight or negative-prompt-only edits)",
    )
    edit.add_argument("--mode", default=EditConfig.mode, choices=tuple(MODES), help=f"default: {EditConfig.mode}")
    edit.add_argument(
        "--reweight", action="append", default=None, metavar="WORD=SCALE", help="scale attention to WORD; repeatable"
    )
    edit.add_argument("--local-blend", nargs="+", default=None, metavar="WORD", help="edit only where WORDs attend")
    edit.add_argument(
        "--cross-steps",
        dest="cross_replace_steps",
        type=_number(),
        default=None,
        help=f"fraction of steps with cross-attention injection (default: {EditConfig.cross_replace_steps})",
    )
    edit.add_argument(
        "--self-steps",
        dest="self_replace_steps",
        type=_number(),
        default=None,
        help=f"fraction of steps with self-attention injection (default: {EditConfig.self_replace_steps})",
    )
    edit.add_argument(
        "--embedding-transfer",
        default=None,
        choices=EMBEDDING_TRANSFERS,
        help=f"prompt-token inversions: learned offsets to the target (default: {EditConfig.embedding_transfer})",
    )
    edit.add_argument(
        "--latent-offsets",
        default=None,
        choices=OFFSET_BRANCHES,
        help=f"direct inversions: branches that get the corrections (default: {EditConfig.latent_offsets})",
    )
    edit.add_argument("--negative-prompt", default=None, help="the edit's negative prompt (free-slot methods only)")
    edit.add_argument("-o", "--output", type=Path, required=True, help="the edited image (.png)")
    edit.add_argument("--source-output", type=Path, default=None, help="also write the source reconstruction here")
    edit.add_argument("--json", action="store_true", help="print one JSON object with the results")
    _add_overwrite_option(edit)
    _add_model_options(edit)

    sde = sub.add_parser(
        "sdedit",
        help="SDEdit: a stroke painting, a photo with strokes or a composite → an image that follows the prompt",
        description="Perturbs the guide to t0 (--strength) and denoises it with the prompt (Meng et al. 2022). "
        "With --mask only the white region changes; --paste builds a composite and its mask.",
    )
    sde.add_argument("guide", type=Path, help="the guide image (stroke painting, edited photo, or the base image)")
    sde.add_argument("--prompt", required=True, help="what the result should show")
    sde.add_argument(
        "--strength",
        type=_number(),
        default=SDEditConfig.strength,
        help=f"t0 in (0, 1]: small keeps the guide, large follows the prompt (default: {SDEditConfig.strength})",
    )
    sde.add_argument("--mask", type=Path, default=None, help="image of the guide's size, white where it may change")
    sde.add_argument("--paste", type=Path, default=None, help="image compositing: paste this image onto the guide")
    sde.add_argument("--at", default="0,0", metavar="X,Y", help="--paste position of the patch's top-left corner")
    sde.add_argument("--repeats", type=_count(1), default=SDEditConfig.repeats, help="perturb-and-denoise rounds K")
    sde.add_argument("--steps", dest="num_inference_steps", type=_count(1), default=SDEditConfig.num_inference_steps)
    sde.add_argument("--guidance-scale", type=_number(0), default=SDEditConfig.guidance_scale)
    sde.add_argument("--eta", type=_number(), default=SDEditConfig.eta, help="1: stochastic (the paper), 0: DDIM ODE")
    sde.add_argument("--negative-prompt", default=None)
    sde.add_argument("--seed", type=SEED, default=0, help="default: 0")
    sde.add_argument("-o", "--output", type=Path, required=True, help="output image (.png)")
    _add_overwrite_option(sde)
    _add_model_options(sde)

    ebench = sub.add_parser(
        "edit-bench",
        help="editing benchmark on Shapes: every inversion x editor x edit, scored against exact targets",
        description="Inverts every held-out scene once per inversion method, makes every edit with every editor "
        "from it, and scores each against the exact edited render (resumable and shardable like `diffinv bench`); "
        "writes OUT/records-<rank>.jsonl, summary.md/json, success_vs_preservation.png and examples/.",
    )
    ebench.add_argument("--dataset", default="shapes:100", help="shapes:N (held-out scenes) or pie:ROOT (PIE-Bench)")
    ebench.add_argument("--inversions", default=",".join(DEFAULT_INVERSIONS), help="inversion variants, as bench")
    ebench.add_argument("--editors", default=",".join(EDITORS), help=f"from {', '.join(EDITORS)}")
    ebench.add_argument("--edits", default=",".join(EDIT_KINDS), help=f"from {', '.join(EDIT_KINDS)}")
    ebench.add_argument("--sdedit-strength", type=_number(), default=EditBenchConfig.sdedit_strength)
    ebench.add_argument("--out", type=Path, required=True, help="output folder")
    ebench.add_argument("--limit", type=_count(1), default=None, help="deterministic sample of N scenes")
    ebench.add_argument("--seed", type=SEED, default=0)
    ebench.add_argument(
        "--threads", type=_count(1), default=EditBenchConfig.num_threads, help="torch threads per process"
    )
    ebench.add_argument("--examples", type=_count(0), default=EditBenchConfig.examples, help="save images of N scenes")
    ebench.add_argument("--clip-model", default=None, help="PIE-Bench: local CLIP folder for CLIP similarity")
    ebench.add_argument("--lpips-weights", default=None, help="PIE-Bench: folder with AlexNet weights for LPIPS")
    _add_model_options(ebench)

    sweep = sub.add_parser(
        "sdedit-sweep",
        help="SDEdit's t0 trade-off: stroke paintings of Shapes scenes at every strength; table, plot and strips",
    )
    sweep.add_argument("--dataset", default="shapes:50", help="shapes:N or shapes-partial:N[@WORLD] (held-out scenes)")
    sweep.add_argument("--strengths", default=",".join(f"{t:g}" for t in DEFAULT_STRENGTHS), help="t0 values")
    sweep.add_argument("--out", type=Path, required=True, help="output folder")
    sweep.add_argument("--seed", type=SEED, default=0)
    sweep.add_argument("--threads", type=_count(1), default=1, help="torch threads per process")
    _add_model_options(sweep)

    concept_bench = sub.add_parser(
        "concept-bench",
        help="personalization methods on shapes the model never saw: fidelity, editability, seconds, file size",
        description="One job per (concept, method, shots), appended to OUT/records-<rank>.jsonl; re-running skips "
        "finished jobs; writes summary.md/json, fidelity.png, examples/ and the learned concepts/.",
    )
    concept_bench.add_argument(
        "--concepts",
        dest="concept_names",
        default="moon,novel:4",
        help="moon, novel-<i>, novel:N (default: moon,novel:4)",
    )
    concept_bench.add_argument("--methods", default="ti,lora,e4t", help="comma-separated (default: ti,lora,e4t)")
    concept_bench.add_argument("--shots", default="1,3,5", help="training shots, comma-separated (default: 1,3,5)")
    concept_bench.add_argument("--out", type=Path, required=True, help="output folder")
    concept_bench.add_argument("--seed", type=SEED, default=0)
    concept_bench.add_argument("--threads", type=_count(1), default=1, help="torch threads per process")
    concept_bench.add_argument("--examples", type=_count(0), default=2, help="concepts whose grids are saved")
    concept_bench.add_argument(
        "--steps", dest="num_inference_steps", type=_count(1), default=50, help="DDIM steps per evaluation image"
    )
    concept_bench.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="METHOD:KEY=VALUE",
        help="change a method's default, e.g. ti:steps=1000 or e4t:encoder=DIR; repeatable",
    )
    concept_bench.add_argument("--world", help="the Shapes world of the model: v2 or v3")
    concept_bench.add_argument("--probe", type=Path, help="probe folder for that world (default: the shipped one)")
    _add_model_options(concept_bench)

    ui = sub.add_parser(
        "ui",
        help="start the web app (Gradio) on this machine: invert, edit and SDEdit in the browser",
        description="Serves the app on --host:--port (loopback by default), offline. Needs the ui extra: "
        "pip install 'diffinv[ui]'.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=_count(1, 65535), default=7860, help="default: 7860")
    ui.add_argument("--max-upload-mb", type=_number(0), default=20.0, help="largest upload (default: 20)")
    ui.add_argument("--timeout", type=_number(0), default=600.0, help="seconds before a job is stopped (default: 600)")
    ui.add_argument(
        "--concurrency", type=_count(1), default=None, help="jobs that run at once (default: one per CPU core)"
    )
    _add_model_options(ui)

    doctor = sub.add_parser(
        "doctor", help="versions, devices and dtypes, built-in model checksums, where weights are looked up"
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")

    probe = sub.add_parser("probe", help="read the Shapes scene (background, objects) from images with the probe")
    probe.add_argument("images", nargs="+", help="image files")
    probe.add_argument("--json", dest="as_json", action="store_true", help="print one JSON list")

    learn = sub.add_parser(
        "learn-concept",
        help="learn a new word for a concept from a few images (textual inversion, LoRA, E4T) into a .safetensors file",
        description="Writes a concept file that `--concept FILE` of every command loads, and that diffusers' "
        "load_textual_inversion loads unchanged; --a1111 also exports the AUTOMATIC1111 format.",
    )
    learn.add_argument("images", nargs="+", type=Path, help="images of the concept (3-5 in the paper)")
    learn.add_argument("--token", default="<s*>", help="the new word (default: <s*>)")
    learn.add_argument(
        "--init-word", default=None, help="a one-token word describing the concept coarsely (ti, lora; e4t: unused)"
    )
    learn.add_argument("--method", default="ti", choices=sorted(METHOD_CONFIGS), help="default: ti")
    learn.add_argument("--property", default="object", choices=PROPERTIES, help="template set (default: object)")
    learn.add_argument(
        "--caption",
        dest="captions",
        action="append",
        default=None,
        help="caption with {} for the token, instead of the templates: once for all images or once per image",
    )
    learn.add_argument("--seed", type=SEED, default=0, help="default: 0")
    learn.add_argument("--height", type=_count(1), default=None, help="pixels (default: the model's native size)")
    learn.add_argument("--width", type=_count(1), default=None, help="pixels (default: the model's native size)")
    learn.add_argument("--checkpoint-dir", type=Path, default=None, help="keep resumable checkpoints here")
    learn.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir's newest checkpoint")
    learn.add_argument("-o", "--output", type=Path, required=True, help="the concept file (.safetensors)")
    learn.add_argument("--a1111", type=Path, default=None, help="also export the AUTOMATIC1111 embedding here")
    learn.add_argument(
        "--lora-file", type=Path, default=None, help="also export the UNet offsets (lora) for load_lora_weights here"
    )
    _add_overwrite_option(learn)
    learn.add_argument("--json", action="store_true", help="print one JSON object with the results")
    _add_dataclass_options(learn, LearningConfig, "learning (every method)", defaults=METHOD_CONFIGS)
    _add_dataclass_options(learn, TextualInversionConfig, "textual inversion (ti)", skip=LearningConfig)
    _add_dataclass_options(learn, LoRAConfig, "LoRA (lora)", skip=LearningConfig)
    _add_dataclass_options(learn, E4TConfig, "E4T (e4t)", skip=LearningConfig)
    _add_model_options(learn)

    tokens = sub.add_parser(
        "token-influence",
        help="how much embedding positions ≥ k change the generated image (reference paper, Fig. 1)",
    )
    tokens.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    tokens.add_argument("--mode", default="zero", choices=("zero", "pad", "both"), help="replace by zeros/padding")
    tokens.add_argument("--steps", dest="num_inference_steps", type=_count(1), default=50, help="default: 50")
    tokens.add_argument("--guidance-scale", type=_number(0), default=7.5)
    tokens.add_argument("--seed", type=SEED, default=0)
    tokens.add_argument("--out", type=Path, required=True, help="folder for token_influence.png/.json")
    _add_overwrite_option(tokens)
    _add_model_options(tokens)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def _warn_one_line(
    message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    print(f"diffinv: warning: {message}", file=sys.stderr)


def _check_output(
    args: argparse.Namespace, path: Path, *inputs: Path | str | None, overwrite: bool | None = None
) -> Path:
    """Refuse, before any work, an output that is an input (the model included), not a regular file, or that
    exists without ``--overwrite`` (``overwrite`` overrides the option for files a command always rewrites)."""
    from diffinv.io import check_output

    model = args.model if args.model and Path(args.model).exists() else None
    if overwrite is None:
        overwrite = args.overwrite
    return check_output(path, inputs=(*inputs, model), overwrite=overwrite)


def _cmd_invert(args: argparse.Namespace) -> dict[str, Any]:

    from diffinv import api, images, metrics
    from diffinv.inversion.config import OptimizationConfig
    from diffinv.inversion.registry import resolve_method

    base = resolve_method(args.method)[1]
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(OptimizationConfig)}
    config = dataclasses.replace(
        base,
        num_inference_steps=base.num_inference_steps if args.num_inference_steps is None else args.num_inference_steps,
        guidance_scale=args.guidance_scale,
        optimization=dataclasses.replace(base.optimization, **{k: v for k, v in overrides.items() if v is not None}),
        tokens=args.tokens or base.tokens,
        pooled=base.pooled if args.pooled is None else args.pooled,
    )
    output = _check_output(args, args.output or Path(args.image.stem + ".inv.safetensors"), args.image)
    image = images.open_image(args.image)  # validate the photo before loading any model
    pipe = _load_model(args)
    inversion = api.invert(
        pipe,
        image,
        args.prompt,
        args.method,
        config=config,
        strict=args.strict,
        height=args.height,
        width=args.width,
        progress=not args.json,
    )
    inversion.save(output)
    result: dict[str, Any] = {
        "method": inversion.method,
        "seconds": round(inversion.stats.seconds, 3),
        "optimized_params": inversion.stats.optimized_params,
        "num_inference_steps": inversion.settings.num_inference_steps,
        "unet_passes": inversion.stats.unet_passes,
        "output": str(output),
    }
    if args.json or args.report:  # the reconstruction costs a sampling run: only when its scores are asked for
        check = api.check_reconstruction(pipe, inversion, image)
        result["psnr_vs_input"] = round(metrics.psnr(check.reconstruction, check.target), 3)
        result["latent_mse"] = metrics.latent_mse(check.latents, inversion.source_latents)
    if args.report and not args.json:
        print(
            f"{result['method']}: {result['seconds']} s, {result['unet_passes']} UNet passes; reconstruction "
            f"PSNR {result['psnr_vs_input']} dB vs the photo, latent MSE {result['latent_mse']:.3g}"
        )
    return result


def _cmd_reconstruct(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv import api, io
    from diffinv.inversion.base import Inversion

    _check_output(args, args.output, args.inversion)
    Inversion.load(args.inversion)  # validate the file before loading any model
    pipe = _load_model(args)
    inversion = Inversion.load(args.inversion, pipe)
    image = api.reconstruct(pipe, inversion, negative_prompt=args.negative_prompt, progress=True)[0]
    io.save_image(image, args.output)
    return {"output": str(args.output)}


def _cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from diffinv import api, io

    _check_output(args, args.output)
    pipe = _load_model(args)
    image = api.generate(
        pipe,
        args.prompt,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
        generator=torch.Generator().manual_seed(args.seed),
        height=args.height,
        width=args.width,
        progress=True,
    )[0]
    io.save_image(image, args.output)
    return {"output": str(args.output)}


def _cmd_learn_concept(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from diffinv import api, images
    from diffinv.errors import DiffinvError
    from diffinv.personalization.config import METHOD_CONFIGS

    outputs = [p for p in (args.output, args.a1111, args.lora_file) if p is not None]
    if any(p.suffix != ".safetensors" for p in outputs):
        raise DiffinvError("concept files are written as .safetensors; give output names ending in .safetensors")
    if len({p.resolve() for p in outputs}) < len(outputs):
        raise DiffinvError("two outputs name the same file; give each its own name")
    if args.lora_file is not None and args.method == "ti":
        raise DiffinvError("--lora-file: textual inversion changes no UNet weights")
    for path in outputs:
        _check_output(args, path, *args.images, *args.concepts)
    config_class = METHOD_CONFIGS[args.method]
    fields = {f.name for f in dataclasses.fields(config_class)}
    names = {f.name for cls in METHOD_CONFIGS.values() for f in dataclasses.fields(cls)}
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if given.keys() - fields:
        name = min(given.keys() - fields)
        raise DiffinvError(f"--{name.replace('_', '-')} does not apply to --method {args.method}")
    config = config_class(**given)
    if args.init_word is None and args.method != "e4t":
        raise DiffinvError(f"--init-word is needed for --method {args.method}")
    for path in args.images:  # validate every image before loading any model
        images.open_image(path)
    pipe = _load_model(args)
    concept = api.learn_concept(
        pipe,
        args.images,
        args.token,
        args.init_word or "object",
        method=args.method,
        property=args.property,
        captions=args.captions,
        config=config,
        height=args.height,
        width=args.width,
        generator=torch.Generator().manual_seed(args.seed),
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress=not args.json,
    )
    concept.save(args.output)
    if args.a1111 is not None:
        concept.export_a1111(args.a1111)
    if args.lora_file is not None:
        concept.export_lora(args.lora_file)
    info = concept.info  # a learned concept always carries its description
    return {
        "token": concept.token,
        "vectors": concept.num_vectors,
        "steps": info.steps,
        "seconds": info.seconds,
        "loss": info.loss,
        "output": str(args.output),
    }


def _parse_reweight(items: Sequence[str] | None) -> dict[str, float] | None:
    from diffinv.errors import DiffinvError

    if not items:
        return None
    weights = {}
    for item in items:
        word, eq, scale = item.rpartition("=")
        try:
            weights[word] = float(scale)
        except ValueError:
            eq = ""
        if not (eq and word.strip()):
            raise DiffinvError(f"--reweight takes WORD=SCALE, e.g. red=2.0; got {item!r}")
    return weights


def _cmd_edit(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv import api, io
    from diffinv.inversion.base import Inversion

    _check_output(args, args.output, args.inversion)
    if args.source_output is not None:
        _check_output(args, args.source_output, args.inversion, args.output)
    reweight = _parse_reweight(args.reweight)
    Inversion.load(args.inversion)  # validate the file before loading any model
    pipe = _load_model(args)
    inversion = Inversion.load(args.inversion, pipe)
    result = api.edit(
        pipe,
        inversion,
        inversion.settings.prompt if args.target_prompt is None else args.target_prompt,
        mode=args.mode,
        cross_replace_steps=args.cross_replace_steps,
        self_replace_steps=args.self_replace_steps,
        reweight=reweight,
        local_blend=args.local_blend,
        embedding_transfer=args.embedding_transfer,
        latent_offsets=args.latent_offsets,
        negative_prompt=args.negative_prompt,
        progress=not args.json,
    )
    io.save_image(result.edit[0], args.output)
    if args.source_output is not None:
        io.save_image(result.source[0], args.source_output)
    return {
        "output": str(args.output),
        "source_output": None if args.source_output is None else str(args.source_output),
        "method": inversion.method,
        "source_prompt": inversion.settings.prompt,
        "target_prompt": inversion.settings.prompt if args.target_prompt is None else args.target_prompt,
        "mode": args.mode,
        "seconds": round(result.seconds, 3),
        "blend_mask_fraction": None if result.mask is None else round(float(result.mask.mean()), 4),
    }


def _cmd_sdedit(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from diffinv import api, images, io
    from diffinv.editing.sdedit import paste
    from diffinv.errors import DiffinvError

    _check_output(args, args.output, args.guide, args.mask, args.paste)
    guide, mask = images.open_image(args.guide), None if args.mask is None else images.open_image(args.mask)
    if args.paste is not None:
        try:
            left, top = (int(v) for v in args.at.split(","))
        except ValueError:
            raise DiffinvError(f"--at takes X,Y in pixels, e.g. 16,8; got {args.at!r}") from None
        guide, pasted = paste(guide, images.open_image(args.paste), left, top)
        mask = mask or pasted
    pipe = _load_model(args)
    image = api.sdedit(
        pipe,
        guide,
        args.prompt,
        strength=args.strength,
        mask=mask,
        repeats=args.repeats,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
        eta=args.eta,
        negative_prompt=args.negative_prompt,
        generator=torch.Generator().manual_seed(args.seed),
        progress=True,
    )[0]
    io.save_image(image, args.output)
    return {"output": str(args.output)}


def split_methods(text: str) -> tuple[str, ...]:
    """``"ddim,prompt-tokens:tokens=all,steps=50"`` → ``("ddim", "prompt-tokens:tokens=all,steps=50")``: an item
    with ``=`` but no ``:`` continues the previous variant's options."""
    specs: list[str] = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if "=" in item and ":" not in item and specs:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return tuple(specs)


def _cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.config import BenchConfig
    from diffinv.bench.datasets import load_dataset
    from diffinv.bench.report import write_summary
    from diffinv.bench.runner import run_bench

    config = BenchConfig(
        methods=split_methods(args.methods),
        negative_prompt=args.negative_prompt,
        clip_model=args.clip_model,
        lpips_weights=args.lpips_weights,
        num_threads=args.threads,
        batch_size=args.batch_size,
    )
    samples = load_dataset(args.dataset, limit=args.limit, seed=args.seed)
    return _run_sharded(
        args,
        lambda pipe, rank, world_size: run_bench(pipe, samples, config, args.out, rank=rank, world_size=world_size),
        lambda records: write_summary(records, args.out),
        "summary.md",
    )


def _run_sharded(
    args: argparse.Namespace,
    run: Callable[[Any, int, int], int],
    summarize: Callable[[list[dict[str, Any]]], Any],
    output: str,
) -> dict[str, Any]:
    """What every bench command does once its options are valid: load the model, run this process's share of the
    jobs (``run(pipe, rank, world_size)``), wait for the other processes, and summarise every record on rank 0."""
    from diffinv.bench.runner import read_records

    _check_output(args, args.out / output, overwrite=True)
    pipe = _load_model(args)
    rank, world_size, wait_for_everyone = _process_group()
    ran = run(pipe, rank, world_size)
    wait_for_everyone()
    if rank == 0:
        summarize(read_records(args.out))
    return {"output": str(args.out / output), "jobs_run": ran, "rank": rank}


def _cmd_edit_bench(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.config import EditBenchConfig
    from diffinv.bench.datasets import load_dataset
    from diffinv.bench.edit_bench import run_edit_bench
    from diffinv.bench.edit_report import write_edit_summary
    from diffinv.bench.pie import load_pie

    config = EditBenchConfig(
        inversions=split_methods(args.inversions),
        editors=tuple(filter(None, (e.strip() for e in args.editors.split(",")))),
        edits=tuple(filter(None, (e.strip() for e in args.edits.split(",")))),
        sdedit_strength=args.sdedit_strength,
        seed=args.seed,
        num_threads=args.threads,
        examples=args.examples,
        lpips_weights=args.lpips_weights,
        clip_model=args.clip_model,
    )
    if args.dataset.startswith("pie:"):
        samples = load_pie(args.dataset.removeprefix("pie:"), limit=args.limit, seed=args.seed)
    else:
        samples = load_dataset(args.dataset, limit=args.limit, seed=args.seed)
    return _run_sharded(
        args,
        lambda pipe, rank, world_size: run_edit_bench(
            pipe, samples, config, args.out, rank=rank, world_size=world_size
        ),
        lambda records: write_edit_summary(records, args.out),
        "summary.md",
    )


def _cmd_sdedit_sweep(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.datasets import load_dataset
    from diffinv.bench.sdedit_sweep import parse_strengths, run_sweep, write_sweep_summary

    strengths = parse_strengths(args.strengths)
    samples = load_dataset(args.dataset, seed=args.seed)

    def run(pipe: Any, rank: int, world_size: int) -> int:
        return run_sweep(pipe, samples, strengths, args.out, seed=args.seed, rank=rank, world_size=world_size,
                         num_threads=args.threads)  # fmt: skip

    def summarize(records: list[dict[str, Any]]) -> None:
        write_sweep_summary(records, args.out)
        print((args.out / "sweep.md").read_text(), end="")

    return _run_sharded(args, run, summarize, "sdedit_tradeoff.png")


def _cmd_concept_bench(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.bench.concept_bench import (
        ConceptBenchConfig,
        parse_concepts,
        parse_settings,
        run_concept_bench,
        write_summary,
    )
    from diffinv.errors import DiffinvError

    try:
        shots = tuple(int(k) for k in args.shots.split(",") if k.strip())
    except ValueError:
        raise DiffinvError(f"--shots takes numbers separated by commas, got {args.shots!r}") from None
    config = ConceptBenchConfig(
        concepts=parse_concepts(args.concept_names),
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        shots=shots,
        seed=args.seed,
        num_threads=args.threads,
        examples=args.examples,
        settings=parse_settings(args.setting),
        num_inference_steps=args.num_inference_steps,
        probe=None if args.probe is None else str(args.probe),
        **({} if args.world is None else {"world": args.world}),
    )

    def run(pipe: Any, rank: int, world_size: int) -> int:
        return run_concept_bench(pipe, config, args.out, rank=rank, world_size=world_size)

    def summarize(records: list[dict[str, Any]]) -> None:
        write_summary(records, args.out)
        print((args.out / "summary.md").read_text(), end="")

    return _run_sharded(args, run, summarize, "fidelity.png")


def _cmd_token_influence(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses as dc

    from diffinv.bench.token_influence import plot_token_influence, token_influence
    from diffinv.io import atomic_write

    for name in ("token_influence.png", "token_influence.json"):
        _check_output(args, args.out / name)
    pipe = _load_model(args)
    modes = ("zero", "pad") if args.mode == "both" else (args.mode,)
    results = [
        token_influence(
            pipe,
            prompt,
            mode=mode,
            num_inference_steps=args.num_inference_steps,
            guidance_scale=args.guidance_scale,
            seed=args.seed,
        )
        for prompt in args.prompt
        for mode in modes
    ]
    plot_token_influence(results, args.out / "token_influence.png")
    rows = [dc.asdict(r) | {"vanishes_at": r.vanishes_at} for r in results]
    atomic_write(args.out / "token_influence.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=2) + "\n"))
    for r in results:
        print(f"{r.mode:>4}  prompt tokens {r.n_tokens:2d}  influence vanishes at k = {r.vanishes_at:2d}  {r.prompt}")
    return {"output": str(args.out / "token_influence.png")}


def _cmd_probe(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.shapes.probe import probe_main

    probe_main(args.images, as_json=args.as_json)
    return {}


def _cmd_ui(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.errors import DiffinvError

    try:
        from diffinv.ui.app import launch
        from diffinv.ui.context import ServerLimits, UIContext
    except ImportError as exc:
        raise DiffinvError(f"the web app needs the ui extra (pip install 'diffinv[ui]'): {exc}") from None

    limits = ServerLimits(
        max_upload_mb=args.max_upload_mb, timeout_s=args.timeout, concurrency=args.concurrency or os.cpu_count() or 1
    )
    ctx = UIContext(_load_model(args), limits)
    print(f"diffinv ui: serving on http://{args.host}:{args.port} (Ctrl-C stops it)")
    try:
        launch(ctx, host=args.host, port=args.port)
    finally:
        ctx.cleanup()
    return {}


def _cmd_doctor(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.doctor import format_report, report

    data = report()
    if not args.json:
        print(format_report(data))
    return data


def _process_group() -> tuple[int, int, Callable[[], None]]:
    """``(rank, world_size, barrier)``: from accelerate when launched with several processes, else one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        return state.process_index, state.num_processes, state.wait_for_everyone
    return 0, 1, lambda: None


COMMANDS = {
    "invert": _cmd_invert,
    "reconstruct": _cmd_reconstruct,
    "generate": _cmd_generate,
    "edit": _cmd_edit,
    "sdedit": _cmd_sdedit,
    "bench": _cmd_bench,
    "edit-bench": _cmd_edit_bench,
    "sdedit-sweep": _cmd_sdedit_sweep,
    "token-influence": _cmd_token_influence,
    "learn-concept": _cmd_learn_concept,
    "concept-bench": _cmd_concept_bench,
    "probe": _cmd_probe,
    "doctor": _cmd_doctor,
    "ui": _cmd_ui,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffinv`` console script; returns the exit status."""
    _quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from diffinv.errors import DiffinvError

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()

    warnings.showwarning = _warn_one_line
    try:
        result = COMMANDS[args.command](args)
    except DiffinvError as exc:
        print(f"diffinv: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "json", False):
        print(json.dumps(result))
    elif result.get("output") and result.get("rank", 0) == 0:
        print(f"wrote {result['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
