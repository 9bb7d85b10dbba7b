"""The REST service against ``batch`` on the same jobs, in one run.

20 small jobs (the presets blink, smile, nod, shake and surprise on 4 portraits of
``../shared``, classic engine, 2 workers each way):

- ``batch``: one jobs file, the command timed as a whole process (start-up included);
- the service: a server started for the run, then 4 concurrent clients (threads of
  :class:`portrait_animate.client.Client`) submitting 5 jobs each, every one waited for and
  downloaded. Timed from the server's launch (start-up included, as for batch) and from the
  first submission; time to result per job (submission to download) as p50 and p95.

The overhead is the service's time over batch's. Memory: the server and its workers' RSS
(VmRSS, summed) after 20 and after ``--memory_jobs`` image-driven jobs (a portrait driven by a
still, 1 frame each), and the server's own peak (VmHWM).

    .venv/bin/python bench/service.py [--memory_jobs 100] [--json service.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from portrait_animate.client import Client

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLI = [sys.executable, "-m", "portrait_animate"]
SOURCES = ("s6.jpg", "s0.jpg", "s5.jpg", "s22.jpg")
PRESETS = ("blink", "smile", "nod", "shake", "surprise")
STILLS = ("d12.jpg", "d19.jpg", "d30.jpg")
WORKERS = "2"


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
                frontier.append(int(entry.name))
    return found


def rss_mib(pid: int) -> float:
    """The server's and its workers' resident memory now."""
    return sum(_status_kib(p, "VmRSS") for p in _tree(pid)) / 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen([*CLI, "serve", "--port", str(port), "--data_dir", str(data),
                                "--workers", WORKERS], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)


def run_clients(url: str, jobs: list[tuple[Path, str]], out: Path, clients: int = 4
                ) -> list[float]:
    """Each job submitted, waited for and downloaded; seconds to result per job."""
    def one(index: int) -> list[float]:
        times = []
        with Client(url) as client:
            for source, driving in jobs[index::clients]:
                start = time.perf_counter()
                job = client.submit(source, driving, engine="classic")
                client.wait(job, poll=0.1)
                client.download(job, out / f"{job}.result")
                times.append(time.perf_counter() - start)
        return times

    with ThreadPoolExecutor(clients) as pool:
        return [t for times in pool.map(one, range(clients)) for t in times]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory_jobs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sources = [SHARED / "assets/source" / name for name in SOURCES]
    jobs = [(s, f"preset:{p}") for p in PRESETS for s in sources]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs_file = tmp / "jobs.jsonl"
        jobs_file.write_text("".join(json.dumps({"source": str(s), "driving": d}) + "\n"
                                     for s, d in jobs))
        start = time.perf_counter()
        subprocess.run([*CLI, "batch", str(jobs_file), "-o", str(tmp / "batch"), "--engine",
                        "classic", "--quiet", "--workers", WORKERS], check=True)
        batch_s = time.perf_counter() - start

        launched = time.perf_counter()
        server, url = start_server(tmp / "data")
        try:
            first = time.perf_counter()
            (tmp / "downloads").mkdir()
            times = run_clients(url, jobs, tmp / "downloads")
            end = time.perf_counter()
            service_s, service_warm_s = end - launched, end - first
            rss_20 = rss_mib(server.pid)
            stills = [(sources[i % len(sources)], SHARED / "assets/driving" / STILLS[i % 3])
                      for i in range(args.memory_jobs - len(jobs))]
            (tmp / "stills").mkdir()
            run_clients(url, [(s, str(d)) for s, d in stills], tmp / "stills")
            rss_n = rss_mib(server.pid)
            peak = _status_kib(server.pid, "VmHWM") / 1024
        finally:
            server.terminate()
            server.wait()
    row = {"jobs": len(jobs), "batch_s": round(batch_s, 2),
           "service_s": round(service_s, 2), "service_warm_s": round(service_warm_s, 2),
           "overhead": round(service_s / batch_s - 1, 3),
           "jobs_per_minute_batch": round(60 * len(jobs) / batch_s, 1),
           "jobs_per_minute_service": round(60 * len(jobs) / service_s, 1),
           "time_to_result_p50_s": round(percentile(times, 50), 2),
           "time_to_result_p95_s": round(percentile(times, 95), 2),
           "rss_mib_after_20": round(rss_20, 1),
           f"rss_mib_after_{args.memory_jobs}": round(rss_n, 1),
           "server_peak_rss_mib": round(peak, 1)}
    print(f"{len(jobs)} preset jobs, classic engine, {WORKERS} workers, 4 clients")
    print(f"  batch:   {batch_s:6.1f} s  ({row['jobs_per_minute_batch']} jobs/min)")
    print(f"  service: {service_s:6.1f} s from launch, {service_warm_s:.1f} s from the first "
          f"submission ({row['jobs_per_minute_service']} jobs/min); overhead "
          f"{100 * row['overhead']:+.1f}% (target <= +10%)")
    print(f"  time to result: p50 {row['time_to_result_p50_s']} s, "
          f"p95 {row['time_to_result_p95_s']} s (4 clients share {WORKERS} workers)")
    print(f"  server + workers RSS: {rss_20:.0f} MiB after 20 jobs, {rss_n:.0f} MiB after "
          f"{args.memory_jobs} ({rss_n / rss_20:.2f}x); server peak {peak:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
