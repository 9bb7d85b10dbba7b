"""Start-up time of the commands a new user runs first, against Python's own start-up.

``portrait-animate faces`` of the sample portrait is the shortest command that loads the face
mesh (MediaPipe), as every animation does.

Each command runs in a fresh process, ``--repeats`` times, interleaved with the baselines
(``python -c pass`` and ``python -c "import torch"``) so that a busy machine slows them alike;
it prints the medians, their ratios to the baselines and whether ``--help`` and ``presets``
meet the 1.5 s target.

    .venv/bin/python bench/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from portrait_animate.engines.neural.precision import cpu_description

TARGET_S = 1.5
SCRIPT = Path(sys.executable).with_name("portrait-animate")
CLI = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "portrait_animate"]
BASELINES = {"python -c pass": [sys.executable, "-c", "pass"],
             "python -c 'import torch'": [sys.executable, "-c", "import torch"]}
COMMANDS = {"portrait-animate --help": [*CLI, "--help"],
            "portrait-animate presets": [*CLI, "presets"],
            "portrait-animate animate --help": [*CLI, "animate", "--help"]}
#: The commands held to TARGET_S.
TARGETED = ("portrait-animate --help", "portrait-animate presets")


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    preview = Path(tempfile.mkdtemp()) / "faces.jpg"
    faces = [*CLI, "faces", "sample:astronaut", "--preview", str(preview)]
    runs = {**BASELINES, **COMMANDS, "portrait-animate faces sample:astronaut": faces}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, argv in runs.items():
            times[name].append(_seconds(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    python, torch = (medians[name] for name in BASELINES)
    print(f"CPU: {cpu_description()[0]}; median of {args.repeats} runs each, interleaved")
    print(f"{'command':<40} {'seconds':>8} {'x python':>9} {'x torch':>8}")
    for name, seconds in medians.items():
        print(f"{name:<40} {seconds:8.3f} {seconds / python:9.1f} {seconds / torch:8.2f}")
    for name in TARGETED:
        verdict = "meets" if medians[name] <= TARGET_S else "MISSES"
        print(f"{name} {verdict} the {TARGET_S:g} s target")
    preview.unlink(missing_ok=True)
    preview.parent.rmdir()


if __name__ == "__main__":
    main()
