"""The `diffinv` command line: happy paths and every refusal (exit 2, one line, no file)."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_invert_reconstructs_only_when_scores_are_asked_for(capsys, tmp_path, model_dir, photo_path, monkeypatch):
    from diffinv import api

    calls = []
    reconstruct = api.reconstruct
    monkeypatch.setattr(api, "reconstruct", lambda *a, **k: calls.append(1) or reconstruct(*a, **k))
    argv = ("invert", photo_path, "--prompt", PROMPT, "--model", model_dir, "--method", "ddim", "--steps", 3)
    code, out, err = run(capsys, *argv, "-o", tmp_path / "a.inv.safetensors")
    assert code == 0 and calls == [] and out.strip() == f"wrote {tmp_path / 'a.inv.safetensors'}", err
    code, out, err = run(capsys, *argv, "-o", tmp_path / "b.inv.safetensors", "--report")
    assert code == 0 and calls == [1], err
    assert "ddim:" in out and "PSNR" in out and "latent MSE" in out


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
        ("photo", ["--prompt", PROMPT, "--steps", "0"], "num_inference_steps must be an integer ≥ 1"),
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


def test_a_value_that_looks_like_an_option_gets_a_hint(capsys, tmp_path):
    guide = tmp_path / "guide.png"
    Image.new("RGB", (64, 64)).save(guide)
    out = tmp_path / "out"
    out.mkdir()
    _refused(capsys, out, "sdedit", guide, "--prompt", "x", "-o", out / "o.png", "--paste", guide, "--at", "-8,-8",
             match="expected one argument (write a value that starts with '-' as --option=VALUE)")  # fmt: skip


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


HEAVY_MODULES = ("torch", "diffusers", "transformers", "numpy", "PIL")


@pytest.mark.parametrize(
    "argv", [["--help"], *([name, "--help"] for name in ("invert", "edit", "sdedit", "edit-bench", "learn-concept"))]
)
def test_help_loads_no_tensor_library(argv):
    """`diffinv [COMMAND] --help` builds every parser and prints help without importing torch & co (it is fast)."""
    code = (
        "import sys\n"
        "from diffinv.cli import main\n"
        f"assert main({argv!r}) == 0\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


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


@pytest.mark.stored_data
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


# --- Outputs never destroy what is on disk (issue 11) ---


def _invert_argv(model_dir, image, *extra):
    return ["invert", image, "--prompt", PROMPT, "--model", model_dir, "--method", "ddim", "--steps", 2, *extra]


def test_output_that_is_an_input_is_refused_and_the_input_kept(capsys, tmp_path, model_dir, photo_path):
    photo = tmp_path / "same.png"
    photo.write_bytes(open(photo_path, "rb").read())
    before = photo.read_bytes()
    for flags in ([], ["--overwrite"]):
        code, _, err = run(capsys, *_invert_argv(model_dir, photo, "-o", photo, *flags))
        assert code == 2 and "is the input" in err.strip().splitlines()[-1], err
    assert photo.read_bytes() == before
    inv = tmp_path / "x.inv.safetensors"
    assert run(capsys, *_invert_argv(model_dir, photo, "-o", inv))[0] == 0
    saved = inv.read_bytes()
    (tmp_path / "link.inv.safetensors").symlink_to(inv)
    for target in (inv, tmp_path / "link.inv.safetensors"):
        code, _, err = run(capsys, "reconstruct", inv, "--model", model_dir, "-o", target, "--overwrite")
        assert code == 2 and "is the input" in err, err
    assert inv.read_bytes() == saved


def test_default_output_names_keep_the_full_stem_and_never_replace(
    capsys, tmp_path, model_dir, photo_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    data = open(photo_path, "rb").read()
    for name in ("my.photo.v2.png", "trip.day1.png", "trip.day2.png"):
        (tmp_path / name).write_bytes(data)
        code, out, err = run(capsys, *_invert_argv(model_dir, tmp_path / name))
        stem = name.rsplit(".", 1)[0]
        assert code == 0 and out.strip() == f"wrote {stem}.inv.safetensors", err
    assert not (tmp_path / "my.inv.safetensors").exists() and not (tmp_path / "trip.inv.safetensors").exists()
    first = (tmp_path / "trip.day1.inv.safetensors").read_bytes()
    code, _, err = run(capsys, *_invert_argv(model_dir, tmp_path / "trip.day1.png", "--steps", 3))
    assert code == 2 and "already exists; pass --overwrite" in err
    assert (tmp_path / "trip.day1.inv.safetensors").read_bytes() == first
    code, _, err = run(capsys, *_invert_argv(model_dir, tmp_path / "trip.day1.png", "--steps", 3, "--overwrite"))
    assert code == 0 and (tmp_path / "trip.day1.inv.safetensors").read_bytes() != first, err


def test_existing_outputs_need_overwrite_in_every_command(capsys, tmp_path, model_dir):
    out = tmp_path / "gen.png"
    gen = ["generate", "--prompt", "a red circle", "--model", model_dir, "--steps", 2, "-o", out]
    assert run(capsys, *gen)[0] == 0
    kept = out.read_bytes()
    code, _, err = run(capsys, *gen[:-2], "--seed", 1, "-o", out)
    assert code == 2 and "already exists" in err and out.read_bytes() == kept
    assert run(capsys, *gen, "--seed", 1, "--overwrite")[0] == 0 and out.read_bytes() != kept
    folder = tmp_path / "influence"
    argv = ["token-influence", "--prompt", "a red circle", "--steps", 2, "--model", model_dir, "--out", folder]
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, *argv)
    assert code == 2 and "token_influence.png already exists" in err


def test_outputs_that_are_not_regular_files_are_refused(capsys, tmp_path, model_dir, photo_path):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    (tmp_path / "link.png").symlink_to(fifo)
    (tmp_path / "folder.png").mkdir()
    for target in (fifo, tmp_path / "link.png"):
        code, _, err = run(capsys, "generate", "--prompt", "x", "--model", model_dir, "-o", target, "--overwrite")
        assert code == 2 and "is not a regular file" in err.strip().splitlines()[-1], err
        assert fifo.is_fifo()
    code, _, err = run(capsys, *_invert_argv(model_dir, photo_path, "-o", tmp_path / "folder.png", "--overwrite"))
    assert code == 2 and "is a folder" in err and (tmp_path / "folder.png").is_dir()


def test_files_in_a_model_folder_and_concepts_in_use_are_inputs(capsys, tmp_path, model_dir, ddim_file):
    import os

    import torch

    from diffinv.personalization import Concept

    index = Path(model_dir) / "model_index.json"
    before = index.read_bytes()
    code, _, err = run(capsys, "edit", ddim_file, "--model", model_dir, "-o", index, "--overwrite")
    assert code == 2 and "is inside the input folder" in err.strip().splitlines()[-1], err
    assert index.read_bytes() == before
    width = json.loads((Path(model_dir) / "text_encoder" / "config.json").read_text())["hidden_size"]
    concept = Concept("<c>", torch.zeros(1, width)).save(tmp_path / "c.safetensors")
    kept = concept.read_bytes()
    gen = ["generate", "--prompt", "a <c>", "--model", model_dir, "--concept", concept, "--steps", 2]
    code, _, err = run(capsys, *gen, "-o", concept, "--overwrite")
    assert code == 2 and "is the input" in err and concept.read_bytes() == kept, err
    twin = Concept("<c>", torch.ones(1, width)).save(tmp_path / "twin.safetensors")
    code, _, err = run(capsys, *gen, "--concept", twin, "-o", tmp_path / "x.png")
    assert code == 2 and f"--concept files {concept} and {twin} both hold the token '<c>'" in err, err
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "sdedit", fifo, "--prompt", "x", "--model", model_dir, "-o", tmp_path / "y.png")
    assert code == 2 and "is not a regular file (a pipe, device or socket)" in err, err


def test_outputs_where_nothing_can_be_written_are_refused_before_any_work(capsys, tmp_path, model_dir, monkeypatch):
    import os

    blocker = tmp_path / "file"
    blocker.write_text("kept")
    gen = ["generate", "--prompt", "x", "--model", model_dir, "--steps", 2, "-o"]
    bench = ["edit-bench", "--dataset", "shapes:1", "--inversions", "ddim:steps=2", "--model", model_dir, "--out"]
    shot = tmp_path / "shot.png"
    Image.new("RGB", (64, 64), "red").save(shot)
    learn = ["learn-concept", shot, "--init-word", "toy", "--steps", 1, "--model", model_dir]
    for argv in (
        [*gen, blocker / "x.png"],
        [*bench, blocker],
        [*learn, "-o", tmp_path / "c.safetensors", "--checkpoint-dir", blocker / "ckpt"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.strip().splitlines()[-1].endswith("is not a folder; give a folder for the outputs")
    assert blocker.read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["file", "shot.png"]
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)  # as a read-only folder (root ignores modes)
    code, _, err = run(capsys, *gen, tmp_path / "x.png")
    assert code == 2 and "cannot write in" in err and not (tmp_path / "x.png").exists()


def test_multiple_outputs_are_written_all_or_nothing(tmp_path):
    from diffinv import io

    kept = tmp_path / "b.txt"
    kept.write_text("old")
    with pytest.raises(RuntimeError), io.all_or_nothing():
        io.atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("new"))
        io.atomic_write(kept, lambda tmp: tmp.write_text("new"))
        raise RuntimeError("the third output failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"] and kept.read_text() == "old"
    with io.all_or_nothing():
        io.atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("new"))
        assert not (tmp_path / "a.txt").exists()  # replaced when the block ends
        io.atomic_write(kept, lambda tmp: tmp.write_text("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"] and kept.read_text() == "new"


def test_output_through_a_link_updates_the_linked_file(capsys, tmp_path, model_dir):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    (tmp_path / "link.png").symlink_to(real)
    code, _, err = run(capsys, "generate", "--prompt", "x", "--model", model_dir, "--steps", 2,
                       "-o", tmp_path / "link.png", "--overwrite")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "link.png").is_symlink() and real.read_bytes()[:4] == b"\x89PNG"


def test_two_bench_runs_on_one_folder(capsys, tmp_path, model_dir):
    import fcntl
    import json as json_module

    from diffinv.bench.runner import read_records

    out = tmp_path / "bench"
    argv = ["bench", "--dataset", "shapes:2", "--methods", "ddim:steps=2", "--model", model_dir, "--out", out]
    out.mkdir()
    with (out / ".records-0.lock").open("a") as held:  # a first run is still writing
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = run(capsys, *argv)
    assert code == 2 and "another diffinv bench is running on" in err.strip().splitlines()[-1], err
    assert not list(out.glob("records-*.jsonl"))
    assert run(capsys, *argv)[0] == 0
    lines = (out / "records-0.jsonl").read_text().splitlines()
    (out / "records-1.jsonl").write_text("\n".join(lines * 2) + "\n")  # what two unlocked runs used to leave
    assert len(read_records(out)) == 2
    assert run(capsys, *argv)[0] == 0  # resumes: nothing to run, summary rewritten
    summary = json_module.loads((out / "summary.json").read_text())
    assert [row["n_images"] for row in summary] == [2]


@pytest.mark.parametrize(
    ("argv", "change", "name"),
    [
        (["edit-bench", "--dataset", "shapes:1", "--inversions", "ddim:steps=2", "--editors", "sdedit"],
         ["--sdedit-strength", "0.9"], "sdedit_strength"),
        (["sdedit-sweep", "--dataset", "shapes:1", "--strengths", "0.5"], ["--seed", "3"], "seed"),
        (["bench", "--dataset", "shapes:1", "--methods", "ddim:steps=2"], ["--negative-prompt", "dark"],
         "negative_prompt"),
    ],
)  # fmt: skip
def test_a_bench_resumed_with_other_settings_or_another_model_is_refused(
    capsys, tmp_path, model_dir, argv, change, name
):
    from diffinv.testing import tiny_pipeline

    out = tmp_path / "out"
    base = [*argv, "--model", model_dir, "--out", out]
    assert run(capsys, *base)[0] == 0
    records = sorted(p.read_bytes() for p in out.glob("records-*.jsonl"))
    code, _, err = run(capsys, *base, *change)
    assert code == 2 and f"holds records made with {name}=" in err.strip().splitlines()[-1], err
    assert sorted(p.read_bytes() for p in out.glob("records-*.jsonl")) == records
    tiny_pipeline(seed=7).save_pretrained(tmp_path / "other")
    code, _, err = run(capsys, *base[:-4], "--model", tmp_path / "other", "--out", out)
    assert code == 2 and "made with another model" in err, err
    assert run(capsys, *base, "--threads", "2")[0] == 0  # what changes no record may change


# --- Editing commands ---


@pytest.fixture(scope="module")
def ddim_file(tmp_path_factory, model_dir, photo_path):
    path = tmp_path_factory.mktemp("ddim") / "d.inv.safetensors"
    argv = ["invert", photo_path, "--prompt", PROMPT, "--model", model_dir, "--method", "ddim", "--steps", "3"]
    assert main([*argv, "-o", str(path)]) == 0
    return path


def test_edit_command(capsys, tmp_path, model_dir, ddim_file):
    out, src = tmp_path / "edit.png", tmp_path / "src.png"
    argv = ["edit", ddim_file, "--target-prompt", "a man in a space suit", "--local-blend", "woman", "man"]
    code, stdout, err = run(capsys, *argv, "--model", model_dir, "-o", out, "--source-output", src, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["output"] == str(out) and out.is_file() and src.is_file()
    assert result["method"] == "ddim" and result["mode"] == "replace" and 0 < result["blend_mask_fraction"] <= 1
    code, _, err = run(capsys, "edit", ddim_file, "--mode", "reweight", "--reweight", "space=2", "--model",
                       model_dir, "-o", tmp_path / "rw.png")  # fmt: skip
    assert code == 0 and (tmp_path / "rw.png").is_file(), err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--target-prompt", "a woman in a very shiny space suit"], "use mode 'refine'"),
        (["--mode", "reweight", "--reweight", "space"], "WORD=SCALE"),
        (["--mode", "reweight", "--reweight", "cat=2"], "not in the target"),
        (["--cross-steps", "2"], "cross_replace_steps must be"),
        (["--local-blend", "dog"], "in neither"),
    ],
)
def test_bad_edit_inputs(capsys, tmp_path, model_dir, ddim_file, extra, match):
    _refused(capsys, tmp_path, "edit", ddim_file, "--model", model_dir, "-o", tmp_path / "x.png", *extra, match=match)


def test_edit_refuses_negative_prompts_after_null_text_and_other_models(capsys, tmp_path, model_dir, null_text_file):
    _refused(capsys, tmp_path, "edit", null_text_file, "--negative-prompt", "blurry", "--model", model_dir,
             "-o", tmp_path / "x.png", match="occupies the unconditional")  # fmt: skip
    _refused(capsys, tmp_path, "edit", null_text_file, "-o", tmp_path / "x.png", match="made with another model")


def test_sdedit_command(capsys, tmp_path, model_dir, photo_path):
    patch = tmp_path / "in" / "patch.png"
    patch.parent.mkdir()
    Image.new("RGB", (200, 120), "red").save(patch)
    out = tmp_path / "sd.png"
    code, _, err = run(capsys, "sdedit", photo_path, "--prompt", "a red ball", "--paste", patch, "--at", "100,100",
                       "--strength", 0.6, "--steps", 5, "--model", model_dir, "-o", out)  # fmt: skip
    assert code == 0 and out.is_file(), err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--strength", "0"], "strength (t0) must be a finite number > 0 and ≤ 1"),
        (["--strength", "1.01"], "strength (t0) must be a finite number > 0 and ≤ 1"),
        (["--repeats", "0"], "repeats must be an integer ≥ 1"),
        (["--mask", "SMALL"], "give a mask of the guide's size"),
        (["--mask", "GARBAGE"], "not a readable image"),
        (["--paste", "SMALL", "--at", "1;2"], "--at takes X,Y"),
    ],
)
def test_bad_sdedit_inputs(capsys, tmp_path, model_dir, photo_path, extra, match):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("L", (8, 8)).save(inputs / "small.png")
    (inputs / "garbage.png").write_bytes(b"garbage")
    extra = [{"SMALL": inputs / "small.png", "GARBAGE": inputs / "garbage.png"}.get(a, a) for a in extra]
    outs = tmp_path / "outs"
    outs.mkdir()
    _refused(capsys, outs, "sdedit", photo_path, "--prompt", "x", "--model", model_dir, "-o", outs / "x.png", *extra,
             match=match)  # fmt: skip


def test_edit_bench_and_sdedit_sweep_commands(capsys, tmp_path, model_dir):
    out = tmp_path / "edits"
    code, stdout, err = run(capsys, "edit-bench", "--dataset", "shapes:1", "--inversions", "ddim:steps=2", "--editors",
                            "p2p,sdedit", "--edits", "recolor", "--model", model_dir, "--out", out)  # fmt: skip
    assert code == 0 and (out / "summary.md").is_file() and "wrote" in stdout, err
    sweep = tmp_path / "sweep"
    code, stdout, err = run(capsys, "sdedit-sweep", "--dataset", "shapes:1", "--strengths", "0.5,1", "--model",
                            model_dir, "--out", sweep)  # fmt: skip
    assert code == 0 and (sweep / "sdedit_tradeoff.png").is_file() and "| 0.50 |" in stdout, err
    (tmp_path / "e").mkdir()
    _refused(
        capsys, tmp_path / "e", "sdedit-sweep", "--strengths", "2", "--out", tmp_path / "e" / "x", match="--strengths"
    )
    _refused(capsys, tmp_path / "e", "edit-bench", "--editors", "magic", "--out", tmp_path / "e" / "x",
             match="unknown editor")  # fmt: skip


@pytest.mark.stored_data
def test_doctor(capsys, tmp_path):
    from diffinv.doctor import folder_sha256
    from diffinv.pipelines import builtin_model_path

    code, out, err = run(capsys, "doctor", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["packages"]["torch"] and data["devices"]["cpu"]["available"]
    mini = data["builtin_models"]["mini"]
    assert len(mini["sha256"]) == 64 and mini["sha256"] == folder_sha256(builtin_model_path("mini"))
    assert set(data["weights"]) == {"hub cache", "LPIPS AlexNet", "CLIP"}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "w.bin").write_bytes(b"1")
    before = folder_sha256(tmp_path)
    (tmp_path / "a" / "w.bin").write_bytes(b"2")
    assert folder_sha256(tmp_path) != before
    code, out, err = run(capsys, "doctor")
    assert code == 0 and out.splitlines()[0].startswith("diffinv ") and "model mini:" in out


def test_learn_concept_writes_both_formats_and_every_command_loads_it(capsys, tmp_path, model_dir):
    shots = []
    (tmp_path / "in").mkdir()
    for i, colour in enumerate(("red", "blue")):
        shots.append(tmp_path / "in" / f"shot{i}.png")
        Image.new("RGB", (64, 64), colour).save(shots[-1])
    concept, a1111 = tmp_path / "toy.safetensors", tmp_path / "toy_a1111.safetensors"
    argv = ["learn-concept", *shots, "--token", "<toy>", "--init-word", "toy", "--caption", "a photo of a {}"]
    argv += ["--steps", 3, "--vectors", 2, "--model", model_dir, "-o", concept, "--a1111", a1111, "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    result = json.loads(out)
    assert result["token"] == "<toy>" and result["vectors"] == 2 and result["steps"] == 3
    assert set(load_file(str(concept))) == {"<toy>"} and set(load_file(str(a1111))) == {"emb_params"}
    image = tmp_path / "gen.png"
    prompt = "a photo of a <toy>"
    gen = ["generate", "--prompt", prompt, "--model", model_dir, "--steps", 2, "--concept", concept, "-o", image]
    code, _, err = run(capsys, *gen)
    assert code == 0 and image.exists(), err
    lora, lora_file = tmp_path / "lora.safetensors", tmp_path / "lora_unet.safetensors"
    argv_lora = ["learn-concept", *shots, "--token", "<l>", "--init-word", "toy", "--method", "lora", "--rank", 2]
    code, _, err = run(capsys, *argv_lora, "--steps", 2, "--model", model_dir, "-o", lora, "--lora-file", lora_file)
    assert code == 0, err
    assert {k for k in load_file(str(lora_file))} == {k for k in load_file(str(lora)) if k.startswith("unet.")}
    code, _, err = run(capsys, *gen[:-1], tmp_path / "both.png", "--concept", lora)  # two concepts, one prompt
    assert code == 0, err
    before = concept.read_bytes()
    code, _, err = run(capsys, *argv[:-1])
    assert code == 2 and "already exists" in err and concept.read_bytes() == before  # kept without --overwrite


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--token", "cat</w>"], "already in the vocabulary"),
        (["--init-word", "red car"], "is 2 tokens"),
        (["--caption", "no placeholder"], "exactly once"),
        (["--flip-probability", "2"], "flip_probability must be a finite number ≥ 0 and ≤ 1"),
        (["--vectors", "0"], "num_vectors must be an integer ≥ 1"),
        (["--resume"], "checkpoint folder"),
        (["--concept", "{wide}"], "768 wide"),
        (["--concept", "{pickle}"], "a Python object"),
        (["-o", "{out}.pt"], "written as .safetensors"),
        (["--rank", "2"], "--rank does not apply to --method ti"),
        (["--lora-file", "{out}_lora.safetensors"], "textual inversion changes no UNet weights"),
        (["--method", "lora", "--vectors", "2"], "--num-vectors does not apply to --method lora"),
    ],
)
def test_bad_learn_concept_inputs(capsys, tmp_path, model_dir, extra, match):
    import torch

    inputs = tmp_path / "in"
    inputs.mkdir()
    shot = inputs / "shot.png"
    Image.new("RGB", (64, 64), "red").save(shot)
    save_file({"<wide>": torch.zeros(1, 768)}, str(inputs / "wide.safetensors"))
    torch.save({"<p>": torch.zeros(1, 32), "f": print}, inputs / "pickle.pt")
    out = tmp_path / "c.safetensors"
    names = {"wide": inputs / "wide.safetensors", "pickle": inputs / "pickle.pt", "out": tmp_path / "c"}
    extra = [str(e).format(**names) for e in extra]
    argv = ["learn-concept", shot, "--init-word", "toy", "--steps", 1, "--model", model_dir, "-o", out, *extra]
    if "-o" in extra:
        argv = argv[: argv.index("-o")] + extra
    _refused(capsys, tmp_path, *argv, match=match)
    assert not out.exists()


def test_ui_refuses_an_address_it_cannot_listen_on_before_loading_a_model(capsys, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        _refused(capsys, tmp_path, "ui", "--port", port, "--model", tmp_path / "none", match="Address already in use")
    _refused(capsys, tmp_path, "ui", "--host", "nonexistent.invalid", match="is not an address of this machine")


def test_sdedit_at_without_paste_is_refused(capsys, tmp_path):
    guide = tmp_path / "guide.png"
    Image.new("RGB", (64, 64)).save(guide)
    out = tmp_path / "out"
    out.mkdir()
    _refused(capsys, out, "sdedit", guide, "--prompt", "x", "-o", out / "o.png", "--at=8,8", match="give --paste")
