"""SDEdit's t0 sweep: records per strength, resume, table and plot; bad strengths."""

from __future__ import annotations

import json
import math

import pytest

from diffinv.bench.config import SDEditSweepConfig
from diffinv.bench.datasets import load_dataset
from diffinv.bench.runner import read_records
from diffinv.bench.sdedit_sweep import parse_strengths, render_distance, run_sweep
from diffinv.bench.sweep_report import write_sweep_summary
from diffinv.errors import DiffinvError


def test_sweep_records_resume_and_summary(pipe, tmp_path):
    samples = load_dataset("shapes:2")
    config = SDEditSweepConfig(strengths=(0.3, 1.0))
    assert run_sweep(pipe, samples, config, tmp_path, progress=False) == 2
    assert run_sweep(pipe, samples, config, tmp_path, progress=False) == 0
    records = read_records(tmp_path)
    assert sorted(r["strength"] for r in records) == [0.3, 0.3, 1.0, 1.0]
    assert all(r["faithfulness"] > 0 and r["render_distance"] > 0 and 0 < r["realism"] <= 1 for r in records)
    assert all(len(r["features"]) == len(r["render_features"]) == 256 for r in records)
    rows = write_sweep_summary(records, tmp_path)
    assert json.loads((tmp_path / "sweep.json").read_text()) == rows
    assert (
        all(r["fid"] > 0 and math.isfinite(r["kid"]) for r in rows)
        and "FID (probe)" in (tmp_path / "sweep.md").read_text()
    )
    old = [{k: v for k, v in r.items() if "features" not in k} for r in records]  # records from before features
    assert all(r["fid"] is None and r["kid"] is None for r in write_sweep_summary(old, tmp_path))
    assert (tmp_path / "sdedit_tradeoff.png").is_file() and (tmp_path / "strips" / "shapes-00000.png").is_file()


@pytest.mark.parametrize("text", ["0", "0.5,1.5", "a,b", ""])
def test_bad_strengths(text):
    with pytest.raises(DiffinvError, match="--strengths"):
        parse_strengths(text)


def test_render_distance_is_zero_for_the_clean_scene_and_not_for_strokes():
    from PIL import Image

    from diffinv import shapes

    sample = load_dataset("shapes:1")[0]
    clean = sample.load()
    assert render_distance(clean, sample.scene) == 0.0
    strokes = Image.fromarray(shapes.stroke_painting(sample.scene, clean.width, 0))
    assert render_distance(strokes, sample.scene) > 0.05
