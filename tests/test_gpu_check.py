"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end on the CPU with the tiny pipeline, so a session
with a GPU only has to run it."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_on_cpu_with_the_tiny_pipeline(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "rows.json"
    rows = module.main(["--tiny", "--device", "cpu", "--dtype", "fp32", "--steps", "2", "--batch-sizes", "1,2",
                        "--out", str(out)])  # fmt: skip
    assert [(r["method"], r["batch_size"]) for r in rows] == [(m, b) for m in module.METHODS for b in (1, 2)]
    assert all(r["seconds_per_image"] > 0 and r["unet_passes_per_image"] >= 2 for r in rows)
    assert [r["speedup"] for r in rows[::2]] == [1.0] * len(module.METHODS)
    assert json.loads(out.read_text()) == rows
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(rows))
