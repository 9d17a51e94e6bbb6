"""The `diffinv` command line: happy paths and every refusal (exit 2, one line, no file)."""

import json
import subprocess
import sys

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import PROMPT
from diffinv.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, pipe):
    folder = tmp_path_factory.mktemp("cli") / "tiny-sd"
    pipe.save_pretrained(folder)
    return str(folder)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_invert_json_reconstruct_and_negative_prompt(capsys, tmp_path, model_dir, photo_path):
    inv = tmp_path / "a.inv.safetensors"
    code, out, err = run(
        capsys,
        "invert",
        photo_path,
        "--prompt",
        PROMPT,
        "--model",
        model_dir,
        "--steps",
        4,
        "--num-inner-steps",
        2,
        "-o",
        inv,
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"method", "seconds", "optimized_params", "psnr_vs_input", "output"}
    assert result["method"] == "prompt-tokens" and result["optimized_params"] == 8 * 32 * 4
    assert result["output"] == str(inv) and inv.is_file()
    code, out, err = run(capsys, "reconstruct", inv, "--model", model_dir, "-o", tmp_path / "rec.png")
    assert code == 0 and (tmp_path / "rec.png").is_file(), err
    code, _, err = run(
        capsys, "reconstruct", inv, "--model", model_dir, "--negative-prompt", "blurry", "-o", tmp_path / "neg.png"
    )
    assert code == 0 and (tmp_path / "neg.png").is_file(), err


def test_generate(capsys, tmp_path, model_dir):
    code, out, err = run(
        capsys, "generate", "--prompt", "a red circle", "--model", model_dir, "--steps", 3, "-o", tmp_path / "gen.png"
    )
    assert code == 0 and (tmp_path / "gen.png").is_file(), err


@pytest.fixture(scope="module")
def null_text_file(tmp_path_factory, model_dir, photo_path):
    path = tmp_path_factory.mktemp("nt") / "nt.inv.safetensors"
    assert (
        main(
            [
                "invert",
                photo_path,
                "--prompt",
                PROMPT,
                "--model",
                model_dir,
                "--method",
                "null-text",
                "--steps",
                "3",
                "--num-inner-steps",
                "1",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    return path


def _refused(capsys, tmp_path, *argv, match: str):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("diffinv: error:") and match in lines[-1], err
    assert not any(p.is_file() for p in tmp_path.iterdir()), "no output may be written"


def test_negative_prompt_after_null_text_is_refused(capsys, tmp_path, model_dir, null_text_file):
    _refused(
        capsys,
        tmp_path,
        "reconstruct",
        null_text_file,
        "--model",
        model_dir,
        "--negative-prompt",
        "blurry",
        "-o",
        tmp_path / "x.png",
        match="occupies the unconditional",
    )


@pytest.mark.parametrize(
    ("setup", "extra", "match"),
    [
        (None, ["--prompt", PROMPT], "no such file"),
        (b"", ["--prompt", PROMPT], "empty"),
        (b"GIF89a garbage", ["--prompt", PROMPT], "not a readable image"),
        ("photo", ["--prompt", " "], "needs a non-empty prompt"),
        ("photo", ["--prompt", "cat " * 90, "--strict"], "tokens are dropped"),
        ("photo", ["--prompt", PROMPT, "--tokens", "all-of-them"], "tokens must be"),
        ("photo", ["--prompt", PROMPT, "--height", "50"], "multiples of 8"),
    ],
)
def test_bad_invert_inputs(capsys, tmp_path, model_dir, photo_path, setup, extra, match):
    (tmp_path / "in").mkdir()
    image = tmp_path / "in" / "in.png"
    if setup == "photo":
        image = photo_path
    elif setup is not None:
        image.write_bytes(setup)
    out = tmp_path / "out.inv.safetensors"
    _refused(capsys, tmp_path, "invert", image, "--model", model_dir, "-o", out, "--steps", 2, *extra, match=match)
    assert not out.exists()


def test_bad_inversion_files(capsys, tmp_path, model_dir, null_text_file):
    nan = tmp_path / "nan.inv.safetensors"
    tensors = load_file(str(null_text_file))
    tensors["latents"][0, 0, 0, 0] = float("inf")
    from safetensors import safe_open

    with safe_open(str(null_text_file), framework="pt") as handle:
        save_file(tensors, str(nan), metadata=handle.metadata())
    _refused_files = tmp_path / "outs"
    _refused_files.mkdir()
    _refused(
        capsys,
        _refused_files,
        "reconstruct",
        nan,
        "--model",
        model_dir,
        "-o",
        _refused_files / "x.png",
        match="NaN or Inf",
    )
    _refused(
        capsys,
        _refused_files,
        "reconstruct",
        tmp_path / "missing.inv.safetensors",
        "--model",
        model_dir,
        "-o",
        _refused_files / "x.png",
        match="no such file",
    )


def test_output_folder_is_refused(capsys, tmp_path):
    _refused(capsys, tmp_path, "generate", "--prompt", "x", "-o", tmp_path, match="is a folder")


def test_generate_defaults_to_the_builtin_model(capsys, tmp_path):
    out = tmp_path / "mini.png"
    code, _, err = run(capsys, "generate", "--prompt", "a large red circle in the center on a white background",
                       "--steps", 10, "--seed", 0, "-o", out)  # fmt: skip
    assert code == 0, err
    with Image.open(out) as image:
        assert image.size == (64, 64)


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "diffinv.cli", "invert", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--num-inner-steps" in result.stdout and "--tokens" in result.stdout
    result = subprocess.run([sys.executable, "-m", "diffinv.cli", "invert"], capture_output=True, text=True)
    assert result.returncode == 2


def test_long_prompt_warns_in_one_line_and_proceeds(capsys, tmp_path, model_dir, photo_path):
    out = tmp_path / "long.inv.safetensors"
    code, _, err = run(
        capsys,
        "invert",
        photo_path,
        "--prompt",
        "cat " * 90,
        "--model",
        model_dir,
        "--method",
        "ddim",
        "--steps",
        2,
        "-o",
        out,
    )
    assert code == 0 and out.is_file()
    assert "diffinv: warning: the prompt is 92 tokens long and the text encoder takes 77: the last 15 tokens" in err


def test_bench_command(capsys, tmp_path, model_dir):
    out = tmp_path / "bench"
    code, stdout, err = run(
        capsys,
        "bench",
        "--dataset",
        "shapes:2",
        "--methods",
        "ddim:steps=3,direct:steps=3",
        "--model",
        model_dir,
        "--out",
        out,
    )
    assert code == 0, err
    assert (out / "summary.md").is_file() and "wrote" in stdout
    assert len((out / "records-0.jsonl").read_text().splitlines()) == 4
    (tmp_path / "empty").mkdir()
    bad = ["bench", "--dataset", "nothing:1", "--model", model_dir, "--out", tmp_path / "empty" / "x"]
    _refused(capsys, tmp_path / "empty", *bad, match="unknown dataset")
    assert not (tmp_path / "empty" / "x").exists()


def test_probe_command(capsys, tmp_path):
    from PIL import Image

    from diffinv import shapes

    scene = shapes.parse_caption("a large red circle in the center, on a blue background")
    path = tmp_path / "scene.png"
    Image.fromarray(shapes.render(scene, 64)).save(path)
    code, out, err = run(capsys, "probe", path, "--json")
    assert code == 0, err
    read = json.loads(out)[0]
    assert read["background"] == "blue" and read["objects"] == [
        {"shape": "circle", "color": "red", "size": "large", "position": "center"}
    ]
    (tmp_path / "none").mkdir()
    _refused(capsys, tmp_path / "none", "probe", tmp_path / "missing.png", match="no such file")
