"""Resume after interruption, sharding equivalence and the summary layout, on the tiny model."""

import json

import pytest

from diffinv.bench.config import BenchConfig
from diffinv.bench.datasets import load_dataset
from diffinv.bench.reconstruction import run_bench
from diffinv.bench.reconstruction_report import summarize, write_reconstruction_summary
from diffinv.bench.runner import read_records

METHODS = ("ddim:steps=4", "prompt-tokens:steps=4,inner=2", "null-text:steps=4,inner=2")
NUMERIC = ("psnr", "ssim", "latent_mse", "vae_psnr", "params", "steps", "negative_prompt_effect")


@pytest.fixture(scope="module")
def samples():
    return load_dataset("shapes:3")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, pipe, samples):
    out = tmp_path_factory.mktemp("one")
    assert run_bench(pipe, samples, BenchConfig(methods=METHODS), out, progress=False) == 9
    return out


def _by_key(records):
    return {r["key"]: r for r in records}


def test_records_and_summary(one_process):
    records = read_records(one_process)
    assert len(records) == 9 and len(_by_key(records)) == 9
    rows = write_reconstruction_summary(records, one_process)
    assert [r["method"] for r in rows] == list(METHODS)
    expected = {
        "method",
        "params",
        "steps",
        "psnr",
        "ssim",
        "lpips",
        "clip_i",
        "seconds_per_image",
        "vae_ceiling_fraction",
        "negative_prompt_effect",
    }
    assert expected <= set(rows[0])
    assert rows[0]["lpips"].startswith("unavailable: ") and rows[0]["clip_i"].startswith("unavailable: ")
    assert rows[2]["negative_prompt_effect"].startswith("refused") and isinstance(
        rows[1]["negative_prompt_effect"], float
    )
    assert json.loads((one_process / "summary.json").read_text()) == json.loads(json.dumps(rows))
    assert (one_process / "summary.md").read_text().startswith("| method | #params")
    assert (one_process / "quality_vs_time.png").is_file() and (one_process / "per_image.png").is_file()


def test_resume_skips_finished_jobs_and_survives_a_torn_line(tmp_path, pipe, samples, one_process):
    lines = (one_process / "records-0.jsonl").read_text().splitlines()
    (tmp_path / "records-0.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # killed mid-write
    assert run_bench(pipe, samples, BenchConfig(methods=METHODS), tmp_path, progress=False) == 5
    assert run_bench(pipe, samples, BenchConfig(methods=METHODS), tmp_path, progress=False) == 0
    records = read_records(tmp_path)
    assert len(records) == 9 and set(_by_key(records)) == set(_by_key(read_records(one_process)))


def test_two_shards_equal_one_process(tmp_path, pipe, samples, one_process):
    for rank in (0, 1):
        run_bench(pipe, samples, BenchConfig(methods=METHODS), tmp_path, rank=rank, world_size=2, progress=False)
    sharded, single = _by_key(read_records(tmp_path)), _by_key(read_records(one_process))
    assert sharded.keys() == single.keys()
    for key in single:
        for field in NUMERIC:
            assert sharded[key][field] == single[key][field], (key, field)
    strip = [{k: v for k, v in row.items() if k != "seconds_per_image"} for row in summarize(list(single.values()))]
    assert strip == [
        {k: v for k, v in row.items() if k != "seconds_per_image"} for row in summarize([sharded[k] for k in single])
    ]


def _keep(one_process, out, sample_id):
    lines = [json.loads(line) for line in (one_process / "records-0.jsonl").read_text().splitlines()]
    (out / "records-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines if r["sample"] == sample_id))


def test_batched_jobs_equal_single_ones(tmp_path, pipe, samples, one_process):
    config = BenchConfig(methods=METHODS, batch_size=2)  # groups: images (0, 1) and (2)
    _keep(one_process, tmp_path, samples[2].id)  # the second group is recorded
    assert run_bench(pipe, samples, config, tmp_path, progress=False) == 3  # the first group, 3 methods
    batched, single = _by_key(read_records(tmp_path)), _by_key(read_records(one_process))
    assert batched.keys() == single.keys()
    for key, record in single.items():
        assert batched[key]["batch_size"] == (1 if record["sample"] == samples[2].id else 2)
        for field in ("params", "steps", "unet_passes"):
            assert batched[key][field] == record[field], (key, field)
        assert batched[key]["latent_mse"] == pytest.approx(record["latent_mse"], rel=1e-3, abs=1e-7), key
        assert batched[key]["psnr"] == pytest.approx(record["psnr"], abs=0.01), key


def test_a_batched_group_cut_short_reruns_only_its_missing_images(tmp_path, pipe, samples, one_process):
    config = BenchConfig(methods=METHODS, batch_size=2)
    _keep(one_process, tmp_path, samples[1].id)
    assert run_bench(pipe, samples, config, tmp_path, progress=False) == 6
    assert run_bench(pipe, samples, config, tmp_path, progress=False) == 0
    records = read_records(tmp_path)
    assert len(records) == 9 and set(_by_key(records)) == set(_by_key(read_records(one_process)))


def test_jobs_run_at_the_configured_thread_count_and_restore_it(tmp_path, pipe, samples, monkeypatch):
    import torch

    from diffinv.bench import reconstruction

    seen = []
    real_run_group = reconstruction.run_group

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_run_group(*args, **kwargs)

    monkeypatch.setattr(reconstruction, "run_group", spy)
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    config = BenchConfig(methods=("ddim:steps=2",), num_threads=wanted)
    assert run_bench(pipe, samples[:2], config, tmp_path, progress=False) == 2
    assert seen == [wanted, wanted] and torch.get_num_threads() == before


def test_bad_thread_count_is_refused():
    from diffinv.errors import DiffinvError

    with pytest.raises(DiffinvError, match="num_threads"):
        BenchConfig(num_threads=0)


def test_means_leave_out_undefined_scores_and_keep_exact_ones():
    from diffinv.bench.report import mean_or_reason

    assert mean_or_reason([1.0, "nan", 3.0]) == 2.0
    assert mean_or_reason(["inf", "nan", "inf"]) == "inf"  # every defined value exact: still exact
    assert mean_or_reason(["nan", "nan"]) == "nan"
    assert mean_or_reason([1.0, "unavailable: no weights"]) == "unavailable: no weights"


def test_shapes_samples_are_scored_by_the_probe_of_their_world():
    import numpy as np
    import torch

    from diffinv.bench.config import BenchConfig
    from diffinv.bench.datasets import load_dataset
    from diffinv.bench.reconstruction import Scorers

    scorers = Scorers(BenchConfig())
    for spec, shipped in (("shapes:1", True), ("shapes:1@v3", False)):
        sample = load_dataset(spec)[0]
        pixels = torch.from_numpy(np.array(sample.load())).permute(2, 0, 1)[None].float() / 255
        probe = scorers.score(pixels, pixels, sample)["probe"]
        if shipped:
            assert probe["all"] == 1.0  # the v2 probe reads its own render
        else:
            assert probe.startswith("unavailable: no probe is shipped for world v3")
