"""The editing bench: exact edit tasks, records, resume, summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffinv import shapes
from diffinv.bench.config import EDIT_KINDS, EditBenchConfig
from diffinv.bench.datasets import load_dataset
from diffinv.bench.edit_bench import run_edit_bench
from diffinv.bench.edit_report import write_edit_summary
from diffinv.bench.edit_tasks import ATTRIBUTE, make_task
from diffinv.bench.runner import read_records
from diffinv.errors import DiffinvError


@pytest.mark.parametrize("kind", ["recolor", "reshape", "resize", "background"])
def test_edit_tasks_change_one_attribute_exactly(kind):
    for index, sample in enumerate(load_dataset("shapes:6")):
        task = make_task(sample.scene, kind, (0, index))
        assert task.source == sample.scene and task.target != task.source
        pairs = list(zip(task.source_prompt.split(), task.target_prompt.split(), strict=True))
        changed = [(a, b) for a, b in pairs if a != b]
        assert changed == [(task.old_words[0], task.new_words[0])]  # captions differ in the edited word alone
        source, target = task.source_image, task.target_image
        assert (source != target).any(axis=-1)[~task.region].sum() == 0  # every changed pixel is in the region
        assert task.region.mean() < (1.0 if kind == "background" else 0.5)
        assert make_task(sample.scene, kind, (0, index)).target == task.target  # seeded


@pytest.mark.parametrize("kind", ["recolor", "reshape", "resize", "background"])
def test_edits_of_partial_captions_change_only_mentioned_things(kind):
    made = 0
    for index, sample in enumerate(load_dataset("shapes-partial:30@v3")):
        mentions = sample.description.mentions
        mentioned = mentions.background if kind == "background" else any(ATTRIBUTE[kind] in m for m in mentions.objects)
        try:
            task = make_task(sample.scene, kind, (0, index), sample.description)
        except DiffinvError as exc:
            assert not mentioned or "fits" in str(exc)  # nothing of that kind mentioned, or no value fits
            continue
        made += 1
        assert mentioned and task.source_prompt == sample.caption and task.mentions == mentions
        if kind != "background":
            assert task.attribute in mentions.objects[task.index]
        pairs = list(zip(task.source_prompt.split(), task.target_prompt.split(), strict=True))
        changed = [(a.rstrip(","), b.rstrip(",")) for a, b in pairs if a != b and {a, b} != {"a", "an"}]
        assert changed == [(task.old_words[0], task.new_words[0])]  # the edited word alone (and its article)
    assert made >= 3


def test_strokes_task_and_bad_kind():
    scene = load_dataset("shapes:1")[0].scene
    task = make_task(scene, "strokes", 0)
    assert task.target == scene and not task.region.any()
    with pytest.raises(DiffinvError, match="unknown edit"):
        make_task(scene, "rotate", 0)
    with pytest.raises(DiffinvError, match="unknown editor"):
        EditBenchConfig(editors=("p2p", "magic"))


def test_edit_bench_records_resume_and_summary(pipe, tmp_path):
    samples = load_dataset("shapes:1")
    config = EditBenchConfig(
        methods=("ddim:steps=3", "null-text:steps=3,inner=1"),
        editors=("p2p", "negative", "sdedit"),
        edits=("recolor", "strokes"),
        examples=1,
    )
    assert run_edit_bench(pipe, samples, config, tmp_path, progress=False) == 3
    records = read_records(tmp_path)
    assert len(records) == 3 * 2 * 2 - 2  # strokes has only SDEdit; p2p/negative have no "none" inversion
    by_key = {r["key"]: r for r in records}
    assert "skipped" in by_key["shapes-00000|null-text:steps=3,inner=1|negative|recolor"]  # slot occupied
    done = by_key["shapes-00000|ddim:steps=3|p2p|recolor"]
    assert 0 <= done["success"] <= 1 and done["bg_psnr"] is not None and done["target_psnr"] is not None
    assert by_key["shapes-00000|ddim:steps=3|negative|recolor"]["target_psnr"] is None
    assert by_key["shapes-00000|none|sdedit|strokes"]["preservation"] is None
    assert (tmp_path / "examples").is_dir()
    assert run_edit_bench(pipe, samples, config, tmp_path, progress=False) == 0  # resumed: nothing left
    more = EditBenchConfig(methods=config.methods, editors=("p2p", "prompt"), edits=config.edits, examples=0)
    assert run_edit_bench(pipe, samples, more, tmp_path, progress=False) == 2  # a new editor: only its records
    added = read_records(tmp_path)
    assert len(added) == len(records) + 4 and added[: len(records)] == records
    rows = write_edit_summary(records, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(rows))
    keys = {"inversion", "editor", "edit", "success", "preservation", "bg_psnr", "target_psnr", "seconds_per_edit"}
    assert all(keys <= set(row) for row in summary)
    assert {(r["inversion"], r["editor"], r["edit"]) for r in summary} >= {("ddim:steps=3", "p2p", "objects")}
    assert (tmp_path / "summary.md").read_text().startswith("| inversion | editor |")
    assert (tmp_path / "success_vs_preservation.png").is_file()
    assert set(EDIT_KINDS) >= {r["edit"] for r in records}


def test_sdedit_editor_keeps_everything_outside_the_region(pipe, tmp_path):
    sample = load_dataset("shapes:1")[0]
    config = EditBenchConfig(methods=(), editors=("sdedit",), edits=("recolor",), examples=1)
    run_edit_bench(pipe, [sample], config, tmp_path, progress=False)
    record = read_records(tmp_path)[0]
    assert record["bg_psnr"] == "inf"
    task = make_task(sample.scene, "recolor", (0, 0, 0))
    image = np.asarray(shapes.render(task.source, 64))
    assert image.shape == (64, 64, 3)


def test_edit_bench_on_a_pie_folder(pipe, tmp_path):
    from bench.test_pie import _entries, _write
    from diffinv.bench.pie import load_pie

    samples = load_pie(_write(tmp_path / "pie", _entries()))
    config = EditBenchConfig(methods=("ddim:steps=2",), editors=("p2p", "p2p-blend", "sdedit"), examples=1)
    out = tmp_path / "out"
    assert run_edit_bench(pipe, samples, config, out, progress=False) == 3
    records = {r["key"]: r for r in read_records(out)}
    assert len(records) == 3 * 2  # sdedit does not apply to PIE (no strokes)
    cat = records["000000000002|ddim:steps=2|p2p|pie"]
    assert cat["bg_psnr"] != "nan" and 0 <= cat["bg_ssim"] <= 1 and cat["bg_lpips"].startswith("unavailable")
    assert cat["structure_distance"].startswith("unavailable") and cat["clip_similarity"].startswith("unavailable")
    assert "skipped" in records["000000000001|ddim:steps=2|p2p-blend|pie"]  # no blended word
    rows = write_edit_summary(list(records.values()), out)
    assert {r["edit"] for r in rows} == {"pie"}
    assert (out / "summary.md").read_text().startswith("| inversion | editor | bg PSNR")


def test_kept_content_is_scored_apart_for_mentioned_and_unmentioned(pipe, tmp_path):
    from diffinv.bench.edit_bench import _kept
    from diffinv.shapes.descriptions import Description, ObjectPlan, Plan, tell

    objects = (
        shapes.ShapeObject("circle", "red", "large", "top left"),
        shapes.ShapeObject("star", "blue", "small", "center"),
        shapes.ShapeObject("heart", "green", "small", "bottom right"),
    )
    scene = shapes.Scene("white", objects, "v3")
    plan = Plan("partial", (ObjectPlan(0, frozenset({"color", "shape"}), 0.0, 0.0, 0.0),), 3, True, 0, 0)
    description = Description(tell(scene, plan), "partial", plan.mentions, plan)
    task = make_task(scene, "recolor", 0, description)
    assert task.index == 0 and task.source_prompt == "a red circle on a white background"
    assert _kept(task.target, task) == {"kept_mentioned": 1.0, "kept_unmentioned": 1.0}
    lost_heart = task.target.remove_object(2)
    assert _kept(lost_heart, task) == {"kept_mentioned": 1.0, "kept_unmentioned": 0.5}
    assert _kept(task.target.replace(background="black"), task) == {"kept_mentioned": 0.0, "kept_unmentioned": 1.0}
    full = make_task(scene, "recolor", 0)
    assert _kept(full.target, full) == {"kept_mentioned": 1.0, "kept_unmentioned": None}

    samples = load_dataset("shapes-partial:3")
    config = EditBenchConfig(methods=("ddim:steps=2",), editors=("p2p",), edits=("recolor",), examples=0)
    run_edit_bench(pipe, samples, config, tmp_path, progress=False)
    records = [r for r in read_records(tmp_path) if "skipped" not in r]
    assert records and all({"kept_mentioned", "kept_unmentioned"} <= set(r) for r in records)
    write_edit_summary(records, tmp_path)
    if any(r["kept_unmentioned"] is not None for r in records):
        assert "kept, unmentioned" in (tmp_path / "summary.md").read_text()
