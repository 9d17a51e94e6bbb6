"""The corpus of bad inputs: every numeric option of every command, and every field of an inversion file.

Each case must end in exactly one line ``diffinv: error: ...`` on stderr, exit status 2, and nothing written. The
option corpus is keyed by option name and walks the parser, so a new command inherits the checks of the options it
shares, and a new numeric option without bad values here fails :func:`test_every_numeric_option_has_bad_values`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import PROMPT
from diffinv.cli import build_parser, main

BAD_VALUES = {
    "--steps": ["0", "-1", "abc", "1.5", "100000"],  # 100000 > the scheduler's 1000 training steps
    "--guidance-scale": ["nan", "inf", "-1", "abc", "1e30"],
    "--height": ["0", "-64", "63", "100000"],
    "--width": ["0", "63", "100000"],
    "--seed": ["-1", str(2**64), "abc"],
    "--num-inner-steps": ["0", "100000", "2.5"],
    "--learning-rate": ["inf", "nan", "0", "-1"],
    "--lr-decay": ["nan", "-1"],
    "--early-stop-epsilon": ["inf", "-1"],
    "--early-stop-growth": ["nan", "-1"],
    "--strength": ["0", "1.5", "nan", "0.001"],
    "--sdedit-strength": ["0", "nan", "2", "0.001"],
    "--repeats": ["0", "1000"],
    "--eta": ["nan", "2", "-1"],
    "--posterior": ["mode", ""],
    "--cross-steps": ["nan", "1.5", "-0.1"],
    "--self-steps": ["inf", "2"],
    "--threads": ["0", "x"],
    "--batch-size": ["0", "-2", "1.5"],
    "--limit": ["0", "-3"],
    "--examples": ["-1"],
    "--port": ["0", "70000", "x"],
    "--max-upload-mb": ["nan", "-1"],
    "--concurrency": ["0"],
    "--timeout": ["0", "inf"],
    "--weight-decay": ["nan", "-1"],
    "--flip-probability": ["-0.1", "1.5", "nan"],
    "--warmup-steps": ["-1", "x"],
    "--checkpoint-every": ["0", "-5"],
    "--num-vectors": ["0", "76", "x"],
    "--rank": ["0", "2000"],
    "--caption-dropout": ["2", "-1", "nan"],
    "--vectors": ["0", "76", "x"],
    "--blend-threshold": ["0", "1.5", "nan"],
    "--blend-start": ["-0.1", "2"],
    "--attention-level": ["-1", "x"],
    "--threshold": ["-1", "nan"],
    "--methods": ["nope", "ddim,ddim"],
    "--inversions": ["nope", "ddim:steps=2,ddim:steps=2"],
    "--editors": ["nope", "", "p2p,p2p"],
    "--edits": ["nope", "", "recolor,recolor"],
    "--strengths": ["0", "1.5", "x", "0.001", "0.5,0.5"],
    "--concepts": ["nope", "", "moon,moon", "novel:2,novel-1", "novel:100000000"],
    "--shots": ["0", "x", "1,1"],
}


CHEAP_COMMANDS = ("invert", "reconstruct", "generate", "edit", "sdedit", "probe", "doctor")


def _commands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.fixture(scope="module")
def files(tmp_path_factory, pipe, photo):
    root = tmp_path_factory.mktemp("corpus")
    pipe.save_pretrained(root / "tiny-sd")
    photo.save(root / "photo.png")
    inversion = root / "ddim.inv.safetensors"
    argv = ["invert", root / "photo.png", "--prompt", PROMPT, "--model", root / "tiny-sd", "--method", "ddim"]
    assert main([str(a) for a in [*argv, "--steps", 2, "-o", inversion]]) == 0
    return root


def _valid_argv(command: str, root: Path, out: Path) -> list[str]:
    """A working invocation of ``command`` on the tiny model, writing under ``out``."""
    model = ["--model", root / "tiny-sd"]
    argv = {
        "invert": [
            "invert",
            root / "photo.png",
            "--prompt",
            PROMPT,
            "--method",
            "ddim",
            "-o",
            out / "x.inv.safetensors",
        ],
        "reconstruct": ["reconstruct", root / "ddim.inv.safetensors", "-o", out / "x.png"],
        "generate": ["generate", "--prompt", PROMPT, "-o", out / "x.png"],
        "edit": [
            "edit",
            root / "ddim.inv.safetensors",
            "--target-prompt",
            "a man in a space suit",
            "-o",
            out / "x.png",
        ],
        "sdedit": ["sdedit", root / "photo.png", "--prompt", PROMPT, "-o", out / "x.png"],
        "bench": ["bench", "--dataset", "shapes:2", "--methods", "ddim:steps=2", "--out", out / "b"],
        "edit-bench": ["edit-bench", "--dataset", "shapes:1", "--inversions", "ddim:steps=2", "--out", out / "e"],
        "sdedit-sweep": ["sdedit-sweep", "--dataset", "shapes:1", "--strengths", "0.5", "--out", out / "s"],
        "token-influence": ["token-influence", "--prompt", PROMPT, "--out", out / "t"],
        "probe": ["probe", root / "photo.png"],
        "doctor": ["doctor"],
        "ui": ["ui"],  # never started here: every bad value is refused before the server starts
        "learn-concept": ["learn-concept", root / "photo.png", "--init-word", "toy", "-o", out / "c.safetensors"],
        "concept-bench": [
            "concept-bench",
            "--concepts",
            "novel:1",
            "--methods",
            "ti",
            "--shots",
            "1",
            "--setting",
            "ti:steps=1",
            "--out",
            out / "c",
        ],  # fmt: skip
    }[command]
    takes_model = any(a.dest == "model" for a in _commands()[command]._actions)
    return [str(a) for a in argv + (model if takes_model else [])]


def _refused(capsys, out: Path, argv: list[str]) -> str:
    code = main(argv)
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("diffinv: error: "), err
    assert not any(out.iterdir()), f"{argv} left {list(out.iterdir())}"
    return lines[0]


def test_every_command_has_a_valid_invocation(capsys, files, tmp_path):
    for command, parser in _commands().items():
        out = tmp_path / command
        out.mkdir()
        argv = _valid_argv(command, files, out)  # a new command must be added to the corpus
        if command in CHEAP_COMMANDS:  # the positive control: the base invocations work
            quick = ["--steps", "2"] if any("--steps" in a.option_strings for a in parser._actions) else []
            assert main(argv + quick) == 0, capsys.readouterr().err


def test_every_numeric_option_has_bad_values():
    for command, parser in _commands().items():
        for action in parser._actions:
            if action.type not in (None, str, Path) and action.option_strings:
                assert action.option_strings[0] in BAD_VALUES, f"{command} {action.option_strings[0]}"


SAMPLING_COMMANDS = ("invert", "generate", "sdedit")
"""Where ``--steps`` counts denoising steps: 1000 of SD's 1000 (leading spacing, steps_offset 1) reach timestep 1000."""
CASES = [
    (command, option, value)
    for command, parser in _commands().items()
    for action in parser._actions
    for option in action.option_strings
    if option in BAD_VALUES
    for value in BAD_VALUES[option]
] + [(command, "--steps", "1000") for command in SAMPLING_COMMANDS]


@pytest.mark.parametrize(("command", "option", "value"), CASES, ids=[f"{c} {o} {v}" for c, o, v in CASES])
def test_bad_option_values_are_refused(capsys, files, tmp_path, command, option, value):
    out = tmp_path / "out"
    out.mkdir()
    line = _refused(capsys, out, [*_valid_argv(command, files, out), f"{option}={value}"])
    dest = next(a.dest for a in _commands()[command]._actions if option in a.option_strings)
    names = (option, dest, dest.replace("_", " "), option.removeprefix("--sdedit-"), "pixel budget", repr(value))
    names += (value,) if value.isalpha() else ()  # an unknown name, quoted or not
    assert any(name in line for name in names), line  # the message names what was wrong


def _rewrite(source: Path, target: Path, *, settings=None, stats=None, tensors=None, metadata=None) -> Path:
    """A copy of inversion file ``source`` with its header or tensors changed by the given functions."""
    with safe_open(str(source), framework="pt") as handle:
        header = json.loads(handle.metadata()["diffinv"])
        data = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    if settings:
        settings(header["settings"])
    if stats:
        stats(header["stats"])
    if tensors:
        tensors(data)
    save_file(data, str(target), metadata=metadata if metadata is not None else {"diffinv": json.dumps(header)})
    return target


FILE_CASES = {
    "no metadata": ({"metadata": {}}, "not a diffinv inversion file"),
    "guidance is text": ({"settings": lambda s: s["config"].update(guidance_scale="high")}, "guidance_scale must be"),
    "guidance is infinite": (
        {"settings": lambda s: s["config"].update(guidance_scale=math.inf)},
        "guidance_scale must be",
    ),
    "steps is a boolean": (
        {"settings": lambda s: s["config"].update(num_inference_steps=True)},
        "num_inference_steps must",
    ),
    "steps beyond training": (
        {"settings": lambda s: s["scheduler_config"].update(num_train_timesteps=1)},
        "exceeds the scheduler's 1 training steps",
    ),
    "unknown beta schedule": (
        {"settings": lambda s: s["scheduler_config"].update(beta_schedule="cubic")},
        "scheduler config: cubic is not implemented",
    ),
    "unknown timestep spacing": (
        {"settings": lambda s: s["scheduler_config"].update(timestep_spacing="random")},
        "scheduler config: random is not supported",
    ),
    "offset beyond training": (
        {"settings": lambda s: s["scheduler_config"].update(steps_offset=5000)},
        "outside its 1000 training steps",
    ),
    "unknown prediction type": (
        {"settings": lambda s: s["scheduler_config"].update(prediction_type="noise")},
        "prediction_type 'noise' is none of",
    ),
    "NaN beta": (
        {"settings": lambda s: s["scheduler_config"].update(beta_end=math.nan)},
        "noise levels are not finite",
    ),
    "deeply nested header": (
        {"metadata": {"diffinv": "[" * 100_000 + "]" * 100_000}},
        "nested too deeply",
    ),
    "unknown method": ({"settings": lambda s: s.update(method="magic")}, "unknown inversion method"),
    "huge height": ({"settings": lambda s: s.update(height=100000)}, "pixel budget"),
    "missing prompt": ({"settings": lambda s: s.pop("prompt")}, "lacks the setting(s) prompt"),
    "extra field": ({"settings": lambda s: s.update(colour="red")}, "unknown setting(s) colour"),
    "bad optimiser": (  # the file is a ddim inversion's: made a null-text one to carry an optimiser
        {
            "settings": lambda s: s.update(
                method="null-text", config={**s["config"], "optimization": {"learning_rate": math.nan}}
            )
        },
        "learning_rate must be",
    ),
    "config not a mapping": ({"settings": lambda s: s.update(config=[1, 2])}, "config must be a mapping"),
    "negative seconds": ({"stats": lambda s: s.update(seconds=-1)}, "seconds must be"),
    "inner steps not a list": ({"stats": lambda s: s.update(inner_steps="many")}, "inner_steps must be a list"),
    "integer latents": ({"tensors": lambda t: t.update(latents=t["latents"].round().to(torch.int32))}, "dtype"),
    "boolean embeddings": (
        {"tensors": lambda t: t.update(prompt_embeds=t["prompt_embeds"] > 0)},
        "expected floating point",
    ),
    "huge latents": ({"tensors": lambda t: t.update(latents=t["latents"] * 1e6)}, "values beyond"),
    "latents of two images": (
        {"tensors": lambda t: t.update(latents=torch.cat([t["latents"]] * 2))},
        "an inversion holds one image's latents",
    ),
    "NaN latents": ({"tensors": lambda t: t["latents"].view(-1).__setitem__(0, math.nan)}, "NaN or Inf"),
    "embeddings of another width": (
        {"tensors": lambda t: t.update(prompt_embeds=torch.cat([t["prompt_embeds"]] * 2, dim=-1))},
        "text embeddings are (rows, D)",
    ),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
@pytest.mark.parametrize("command", ["reconstruct", "edit"])
def test_bad_inversion_file_fields_are_refused(capsys, files, tmp_path, case, command):
    changes, match = FILE_CASES[case]
    bad = _rewrite(files / "ddim.inv.safetensors", tmp_path / "bad.inv.safetensors", **changes)
    out = tmp_path / "out"
    out.mkdir()
    argv = _valid_argv(command, files, out)
    argv[1] = str(bad)
    assert match in _refused(capsys, out, argv)
