"""Jobs per minute of ``portrait-animate batch`` against the same jobs run as separate
``animate`` commands, in one run.

The 8 jobs: 4 portraits of ``../shared`` by 2 driving videos (the first ``--frames`` frames of
d0.mp4 and d9.mp4), classic engine. Each way runs from a fresh output folder, as a whole
process timed from outside (start-up included):

- separate commands, one after the other (the baseline), and two at a time;
- ``batch`` with 1 and 2 local workers, and on a local Ray cluster of 2 CPUs.

The ratio is jobs per minute over the baseline's. The batch saves the repeated start-up
(importing torch and MediaPipe, loading the engine) and analyses each driver once instead of
once per job. It prints a table and writes it as JSON (``--json``).

    .venv/bin/python bench/batch.py [--frames 50] [--json batch.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLI = [sys.executable, "-m", "portrait_animate"]
SOURCES = ("s6.jpg", "s0.jpg", "s5.jpg", "s22.jpg")
DRIVINGS = ("d0.mp4", "d9.mp4")


def cut(src: Path, dst: Path, frames: int) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(src),
                    "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(dst)], check=True)
    return dst


def timed(commands: list[list[str]], parallel: int = 1) -> float:
    """Seconds to run ``commands``, ``parallel`` at a time; each must succeed."""
    def run(command: list[str]) -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(run, commands))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50, help="frames of each driving video")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    parser.add_argument("--no_ray", action="store_true", help="skip the Ray cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        drivings = tmp / "drivings"
        drivings.mkdir()
        for name in DRIVINGS:
            cut(SHARED / "assets/driving" / name, drivings / name, args.frames)
        sources = [SHARED / "assets/source" / name for name in SOURCES]
        pairs = [(s, drivings / d) for s in sources for d in DRIVINGS]
        jobs = tmp / "jobs.jsonl"
        jobs.write_text("".join(json.dumps({"source": str(s), "driving": str(d)}) + "\n"
                                for s, d in pairs))
        common = ["--engine", "classic", "--quiet"]

        def separate(tag: str) -> list[list[str]]:
            return [[*CLI, "animate", "-s", str(s), "-d", str(d), "-o", str(tmp / tag), *common]
                    for s, d in pairs]

        def batch(tag: str, *extra: str) -> list[list[str]]:
            return [[*CLI, "batch", str(jobs), "-o", str(tmp / tag), *common, *extra]]

        ways = [("separate animate commands, one at a time", separate("sep1"), 1),
                ("separate animate commands, two at a time", separate("sep2"), 2),
                ("batch, 1 local worker", batch("w1", "--workers", "1"), 1),
                ("batch, 2 local workers", batch("w2", "--workers", "2"), 1)]
        if not args.no_ray:
            ways.append(("batch, Ray local cluster of 2 CPUs",
                         batch("ray", "--ray_address", "local", "--workers", "2"), 1))
        rows = []
        for label, commands, parallel in ways:
            seconds = timed(commands, parallel)
            rows.append({"way": label, "jobs": len(pairs), "seconds": round(seconds, 2),
                         "jobs_per_minute": round(60 * len(pairs) / seconds, 2)})
        base = rows[0]["jobs_per_minute"]
        print(f"{len(pairs)} jobs ({len(SOURCES)} portraits x {len(DRIVINGS)} drivers of "
              f"{args.frames} frames), classic engine")
        print(f"{'way':<44} {'seconds':>8} {'jobs/min':>9} {'ratio':>6}")
        for row in rows:
            row["ratio"] = round(row["jobs_per_minute"] / base, 2)
            print(f"{row['way']:<44} {row['seconds']:>8.1f} {row['jobs_per_minute']:>9.1f} "
                  f"{row['ratio']:>6.2f}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
