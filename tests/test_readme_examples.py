"""The README's editing examples do what they say, on the built-in model: the commands are read from the README's
Editing block (so an edited README is what is tested), run in order on a rendered scene of its caption, and each
output image is read back with the Shapes probe."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from PIL import Image

from diffinv import shapes
from diffinv.cli import main
from diffinv.shapes.captions import parse_caption
from diffinv.shapes.probe import read_scenes

README = Path(__file__).resolve().parents[1] / "README.md"


def _editing_commands() -> tuple[str, list[list[str]]]:
    """The caption ``P`` and the ``diffinv invert`` / ``diffinv edit`` commands of the README's Editing block."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Editing\n.*?```bash\n(.*?)```", text, re.S).group(1)
    block = block.replace("\\\n", " ")
    caption = re.search(r'^P="([^"]+)"$', block, re.M).group(1)
    commands = []
    for line in block.splitlines():
        words = shlex.split(line.replace('"$P"', shlex.quote(caption)), comments=True)
        if words[:2] in (["diffinv", "invert"], ["diffinv", "edit"]):
            commands.append(words[1:])
    return caption, commands


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_the_readme_editing_examples_do_what_they_say(tmp_path, monkeypatch):
    caption, commands = _editing_commands()
    assert len(commands) >= 4 and commands[0][0] == "invert", commands
    monkeypatch.chdir(tmp_path)
    scene = parse_caption(caption)
    Image.fromarray(shapes.render(scene, 64)).save("scene.png")
    expected: dict[str, tuple[str, str | None]] = {}  # output → (caption it should read as, colour it must not be)
    for argv in commands:
        assert main(argv) == 0, argv
        if argv[0] != "edit":
            continue
        target = _option(argv, "--target-prompt") or caption
        expected[_option(argv, "-o")] = (target, _option(argv, "--negative-prompt"))
        if "--source-output" in argv:
            expected[_option(argv, "--source-output")] = (caption, None)
    read = dict(zip(expected, read_scenes([Image.open(path) for path in expected]), strict=True))
    for path, (target, avoided) in expected.items():
        truth = parse_caption(target)
        if avoided is None:
            assert shapes.caption(read[path]) == shapes.caption(truth), (path, target)
        else:  # a negative-prompt edit: the named colour is gone, everything else kept
            (obj,) = read[path].objects
            assert obj.color != avoided and read[path].background == truth.background, (path, read[path])
