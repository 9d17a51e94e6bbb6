"""How long the command line takes to answer ``--help``, beside what loading the model libraries costs.

Each command runs as a fresh process (``python -m diffinv.cli ...``), like a user's shell would start it; the
reference rows start a process that imports torch + diffusers + transformers (what every command that touches a
model pays once) and one that does nothing. Commands are measured in interleaved rounds and each figure is the
median, so a slow spell of a shared machine hits every row alike. Target (issue 15): ``--help`` < 0.5 s. Prints a
table and, as its last line, one JSON object.

    python benchmarks/cli_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

ROWS = {
    "diffinv --help": ["-m", "diffinv.cli", "--help"],
    "diffinv invert --help": ["-m", "diffinv.cli", "invert", "--help"],
    "diffinv edit-bench --help": ["-m", "diffinv.cli", "edit-bench", "--help"],
    "import torch, diffusers, transformers": ["-c", "import torch, diffusers, transformers"],
    "python (empty)": ["-c", "pass"],
}


def seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    times: dict[str, list[float]] = {name: [] for name in ROWS}
    for _ in range(rounds):
        for name, args in ROWS.items():
            times[name].append(seconds(args))
    median = {name: statistics.median(values) for name, values in times.items()}
    libraries = median["import torch, diffusers, transformers"]
    print(f"{'command':40s} {'seconds':>8s} {'÷ libraries':>12s}")
    for name, value in median.items():
        print(f"{name:40s} {value:8.3f} {value / libraries:12.3f}")
    print(json.dumps({"rounds": rounds, "seconds": {k: round(v, 4) for k, v in median.items()}}))


if __name__ == "__main__":
    main()
