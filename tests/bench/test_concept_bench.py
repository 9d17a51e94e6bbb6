"""The concept bench on a tiny in-code model: every method and the baseline run, resume skips finished jobs, the
summary has the keys the docs promise, and bad options are refused in one line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from diffinv.bench.concept_bench import ConceptBenchConfig, parse_concepts, parse_settings
from diffinv.cli import main
from diffinv.errors import DiffinvError
from diffinv.personalization.e4t_encoder import E4TEncoder, EncoderConfig, offset_layers
from diffinv.pipelines import fingerprint
from diffinv.shapes.probe import DEFAULT_PATH

SUMMARY_KEYS = {"method", "shots", "fidelity", "fidelity_gain", "editability", "seconds", "file_kb", "n"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, pipe):
    folder = tmp_path_factory.mktemp("concept-bench")
    pipe.save_pretrained(folder / "model")
    encoder = E4TEncoder(EncoderConfig(channels=(8,), rank=2, class_word="circle"), offset_layers(pipe.unet), 32)
    encoder.save(folder / "encoder", fingerprint(pipe, base_model=True), {})
    return folder


def test_bench_runs_every_method_resumes_and_summarises(capsys, tmp_path, model_dir):
    out = tmp_path / "out"
    settings = ["ti:steps=2", "lora:steps=2", f"e4t:encoder={model_dir / 'encoder'}", "e4t:steps=1"]
    argv = ["concept-bench", "--concepts", "novel:1", "--methods", "ti,lora,e4t", "--shots", "1", "--steps", 2,
            "--model", model_dir / "model", "--out", out, "--examples", "1"]  # fmt: skip
    argv += [part for setting in settings for part in ("--setting", setting)]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "records-0.jsonl").read_text().splitlines()]
    assert len(records) == 1 + 3  # the baseline, then each method
    rows = json.loads((out / "summary.json").read_text())
    assert {(r["method"], r["shots"]) for r in rows} == {("class-word", 0), ("ti", 1), ("lora", 1), ("e4t", 1)}
    assert all(SUMMARY_KEYS <= row.keys() and 0 <= row["fidelity"] <= 1 for row in rows)
    assert (out / "fidelity.png").is_file() and (out / "examples" / "novel-0-lora-1.png").is_file()
    assert (out / "concepts" / "novel-0-ti-1.safetensors").is_file()
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    assert len((out / "records-0.jsonl").read_text().splitlines()) == len(records)  # nothing ran twice


def test_options_are_checked():
    assert parse_concepts("moon,novel:2") == ("moon", "novel-0", "novel-1")
    assert parse_settings(["ti:steps=5", "ti:learning_rate=0.01", "e4t:encoder=x"]) == {
        "ti": {"steps": 5, "learning_rate": 0.01}, "e4t": {"encoder": "x"}}  # fmt: skip
    for make, message in [
        (lambda: parse_concepts("star:3"), "novel:N"),
        (lambda: ConceptBenchConfig(concepts=("hexagon",)), "unknown concept shape"),
        (lambda: ConceptBenchConfig(methods=("dreambooth",)), "--methods takes"),
        (lambda: ConceptBenchConfig(shots=(9,)), "--shots takes"),
        (lambda: ConceptBenchConfig(settings={"ti": {"rank": 2}}), "ti has no setting 'rank'"),
        (lambda: ConceptBenchConfig(methods=("ti",), settings={"lora": {"steps": 2}}), "not among --methods"),
        (lambda: ConceptBenchConfig(settings={"ti": {"steps": 0}}), "steps must be"),
        (lambda: parse_settings(["steps=3"]), "METHOD:KEY=VALUE"),
    ]:
        with pytest.raises(DiffinvError, match=message):
            make()


def test_v3_concepts_are_its_held_out_shapes_drawn_in_its_layout(tmp_path, pipe) -> None:
    from diffinv.bench.concept_bench import run_concept_bench
    from diffinv.bench.concept_tasks import eval_prompts, training_shots
    from diffinv.shapes.novel import concept_shape
    from diffinv.shapes.world import V3

    config = ConceptBenchConfig(concepts=("cloud", "hexagon", "novel-0"), world="v3")
    assert set(V3.heldout_shapes) >= {"cloud", "hexagon"}
    cloud = concept_shape("cloud", "v3")
    image, mask = cloud.render("red", "center", "white")
    assert mask.mean() > concept_shape("moon").render("red", "center", "white")[1].mean()  # v3's larger objects
    shots = training_shots(cloud, 2)
    assert shots.captions[0] == "a large red {} in the center on a white background"
    assert "<c>" in eval_prompts("<c>", "v3")[0]
    with pytest.raises(DiffinvError, match="unknown concept shape 'cloud' in world v2"):
        ConceptBenchConfig(concepts=("cloud",))
    with pytest.raises(DiffinvError, match="no probe is shipped for world v3 yet"):
        run_concept_bench(pipe, config, tmp_path)
    with pytest.raises(DiffinvError, match="reads world v2's scenes; scoring world v3 needs a probe"):
        run_concept_bench(pipe, dataclasses.replace(config, probe=str(DEFAULT_PATH)), tmp_path)
