"""``portrait-animate batch`` (issue 15): statuses and exit codes of a mixed jobs file, a re-run
that does no work, a SIGKILLed batch resumed, one analysis per driver, a dead worker replaced,
and a real local Ray cluster writing what local workers write."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from media import loop_video
from portrait_animate.batch.executors import LocalExecutor
from portrait_animate.batch.jobs import Job, cross_jobs, read_jobs, validate
from portrait_animate.batch.run import BatchOptions, _Progress, _Run
from portrait_animate.batch.state import MARKER, BatchState
from portrait_animate.batch.worker import Outcome, Worker
from portrait_animate.cli.main import main
from portrait_animate.engines.neural.device import CPU_CORES, all_cores, set_core_share
from portrait_animate.engines.neural.precision import choice_key
from portrait_animate.pipeline.driving import analysis_workers
from processes import children, spawned_workers, wait_gone
from servers import free_port

ENGINE = ["--engine", "classic"]


@pytest.fixture(scope="module")
def driving8(shared, tmp_path_factory) -> Path:
    """The first 8 frames of d0.mp4."""
    return loop_video(shared / "assets/driving/d0.mp4",
                      tmp_path_factory.mktemp("drv") / "d0_8.mp4", 8)


def _jobs(path: Path, jobs: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(job) for job in jobs) + "\n")
    return path


def _db(out: Path, query: str) -> list[tuple]:
    db = sqlite3.connect(out / "batch.sqlite")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def _statuses(out: Path) -> dict[str, tuple]:
    return {name: (status, error) for name, status, error in
            _db(out, "SELECT name, status, error FROM jobs")}


def _last_run(out: Path) -> dict:
    row = _db(out, "SELECT jobs_run, engines_loaded, drivings_analysed, sources_analysed "
                   "FROM runs ORDER BY id DESC LIMIT 1")[0]
    return dict(zip(("jobs_run", "engines_loaded", "drivings_analysed", "sources_analysed"),
                    row, strict=True))


def _files(out: Path) -> dict[str, bytes]:
    """Every job output under ``out`` (not the state, nor the batch's markers), by relative
    path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.parent != out and not p.parts[len(out.parts)].startswith(".")
            and p.name != MARKER}


def test_a_mixed_jobs_file_gives_each_job_its_status_and_the_right_exit_code(
        shared, driving8, tmp_path, capsys):
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((256, 256, 3), 128, np.uint8))
    src = shared / "assets/source"
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(src / "s6.jpg"), "driving": str(driving8), "name": "s6"},
        {"source": str(src / "s0.jpg"), "driving": str(shared / "assets/driving/d12.jpg"),
         "animation_region": "lip", "flag_relative_motion": False},
        {"source": str(tmp_path / "missing.jpg"), "driving": str(driving8)},
        {"source": str(blank), "driving": str(driving8), "name": "faceless"},
        {"source": str(src / "s5.jpg"), "driving": str(driving8), "animation_regio": "lip"},
        {"source": str(src / "s5.jpg"), "driving": str(driving8), "driving_multiplier": "x"},
        {"source": str(src / "s5.jpg"), "driving": str(driving8), "flag_normalize_lip": True,
         "flag_relative_motion": False},
        {"source": str(src / "s5.jpg"), "driving": str(shared / "assets/driving/wink.pkl")},
    ])
    out = tmp_path / "out"
    # invalid lines: every one reported with its line number, and nothing runs
    assert main(["batch", str(jobs), "-o", str(out), *ENGINE]) == 2
    err = capsys.readouterr().err
    assert "5 jobs cannot run" in err
    assert "line 3: source not found" in err and "missing.jpg" in err
    assert "line 5: unknown option 'animation_regio'" in err
    assert 'line 6: option \'driving_multiplier\' is "x"; give it a number, without quotes' in err
    assert "line 7: conflicting options: --flag_normalize_lip needs relative motion" in err
    assert "line 8: the motion template" in err and "run with --engine neural" in err
    assert not out.exists()

    assert main(["batch", str(jobs), "-o", str(out), "--skip_invalid", "--quiet",
                 *ENGINE]) == 1
    err = capsys.readouterr().err
    assert "failed: faceless: no face found in the source image" in err
    statuses = _statuses(out)
    assert statuses["s6"] == ("done", None) and statuses["2"] == ("done", None)
    assert statuses["faceless"][0] == "failed" and "no face" in statuses["faceless"][1]
    assert {statuses[n][0] for n in ("3", "5", "6", "7", "8")} == {"invalid"}
    assert sorted(p.name for p in (out / "s6").iterdir()) == [
        MARKER, "d0_8_template.npz", "s6--d0_8.mp4", "s6--d0_8_concat.mp4"]
    assert sorted(p.name for p in (out / "2").iterdir()) == [
        MARKER, "d12_template.npz", "s0--d12.jpg", "s0--d12_concat.jpg"]
    assert not (out / "faceless").exists() and not (out / ".staging").exists()
    recorded = dict(_db(out, "SELECT name, outputs FROM jobs WHERE status = 'done'"))
    assert json.loads(recorded["s6"]) == ["d0_8_template.npz", "s6--d0_8.mp4",
                                          "s6--d0_8_concat.mp4"]


def test_a_rerun_does_no_work_for_done_jobs(shared, tmp_path, capsys):
    """...but runs again a job whose options changed, or whose input file was replaced."""
    drv = shared / "assets/driving/d12.jpg"
    for name in ("s6.jpg", "s0.jpg"):
        shutil.copy(shared / "assets/source" / name, tmp_path)
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(tmp_path / name), "driving": str(drv), "name": name.split(".")[0]}
        for name in ("s6.jpg", "s0.jpg")])
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "-o", str(out), "--quiet", *ENGINE]) == 0
    assert _last_run(out) == {"jobs_run": 2, "engines_loaded": 1, "drivings_analysed": 1,
                              "sources_analysed": 2}
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    assert main(["batch", str(jobs), "-o", str(out), *ENGINE]) == 0
    assert "0 done, 2 skipped (done before)" in capsys.readouterr().err
    assert _last_run(out) == {"jobs_run": 0, "engines_loaded": 0, "drivings_analysed": 0,
                              "sources_analysed": 0}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == before
    # a job whose options changed is run again, alone, with the saved analysis of its driver
    changed = ["batch", str(jobs), "-o", str(out), "--quiet", "--driving_multiplier", "1.5",
               *ENGINE]
    assert main(changed) == 0
    assert _last_run(out)["jobs_run"] == 2
    # a source replaced under its name: its job runs again, alone
    result = (out / "s0/s0--d12.jpg").read_bytes()
    shutil.copy(shared / "assets/source/s5.jpg", tmp_path / "s0.jpg")
    assert main(changed) == 0
    assert _last_run(out)["jobs_run"] == 1
    assert (out / "s0/s0--d12.jpg").read_bytes() != result


def test_two_batches_on_one_folder_refuse(shared, tmp_path, capsys):
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(shared / "assets/source/s6.jpg"),
         "driving": str(shared / "assets/driving/d12.jpg")}])
    out = tmp_path / "out"
    with BatchState(out):
        assert main(["batch", str(jobs), "-o", str(out), "--quiet", *ENGINE]) == 2
    assert f"another batch (pid {os.getpid()}) is running on {out}" in capsys.readouterr().err


def _batch_process(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "portrait_animate", "batch", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(out: Path, query: str, process: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert process.poll() is None, process.stderr.read()
        if (out / "batch.sqlite").exists():
            try:
                if _db(out, query)[0][0]:
                    return
            except sqlite3.OperationalError:  # tables not made yet
                pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {query}")


def test_a_sigkilled_batch_resumes_with_every_job_done_once_and_no_partial_file(
        shared, driving8, tmp_path):
    src = shared / "assets/source"
    names = ["s6.jpg", "s0.jpg", "s5.jpg", "s22.jpg"]
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(src / name), "driving": str(driving8)} for name in names])
    out = tmp_path / "out"
    process = _batch_process([str(jobs), "-o", str(out), "--quiet", *ENGINE])
    _wait_for(out, "SELECT count(*) FROM jobs WHERE status = 'done'", process)
    workers = children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = _db(out, "SELECT count(*) FROM jobs WHERE status = 'done'")[0][0]
    assert done_before < len(names)  # killed mid-way
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]]
    assert main(["batch", str(jobs), "-o", str(out), "--quiet", *ENGINE]) == 0
    assert _last_run(out)["jobs_run"] == len(names) - done_before
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        ".drivings", "1", "2", "3", "4"]
    for i, name in enumerate(names, start=1):
        stem = name.split(".")[0]
        assert sorted(p.name for p in (out / str(i)).iterdir()) == [
            MARKER, "d0_8_template.npz", f"{stem}--d0_8.mp4", f"{stem}--d0_8_concat.mp4"]
    assert not (out / ".staging").exists()


def test_a_signal_to_the_batch_alone_stops_its_running_job_at_once(shared, tmp_path):
    """``kill -INT`` (or a plain ``kill``) to the batch process alone, not to its process
    group as Ctrl-C in a terminal: the batch waited for its running job to end and threw it
    away (19 s for this 600-frame job); it kills its workers and queues the job again."""
    long = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "long.mp4", 600)
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(shared / "assets/source/s6.jpg"), "driving": str(long)}])
    out = tmp_path / "out"
    process = _batch_process([str(jobs), "-o", str(out), "--quiet", *ENGINE])
    _wait_for(out, "SELECT count(*) FROM jobs WHERE status = 'running'", process)
    workers = spawned_workers(process.pid)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert time.monotonic() - sent < 5
    assert "error: interrupted" in process.stderr.read()
    for worker in workers:
        wait_gone(worker, timeout=5)
    assert _statuses(out) == {"1": ("queued", "the batch was stopped while the job ran")}
    assert sorted(p.name for p in out.iterdir()) == [".drivings", "batch.lock",
                                                     "batch.sqlite"]


def test_sigterm_stops_a_batch_on_ray_as_it_stops_local_workers(shared, tmp_path):
    """``kill`` (systemd's or docker's stop) to a batch on a local Ray cluster: Ray's handler
    made it exit 15 (1 when it came during ``ray.wait``), its native one printed a stack trace
    on the terminal, and each killed task printed "... will be retried". Now: 143 and quiet,
    as with local workers, and the job queued again."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    long = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "long.mp4", 600)
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(shared / "assets/source/s6.jpg"), "driving": str(long)}])
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "portrait_animate", "batch", str(jobs), "-o", str(out),
         "--quiet", "--ray_address", "local", "--workers", "1", *ENGINE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"RAY_USAGE_STATS_ENABLED": "0"})
    _wait_for(out, "SELECT count(*) FROM jobs WHERE status = 'running'", process, 180)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert time.monotonic() - sent < 15
    assert "SIGTERM received" not in stderr and "retried" not in stdout + stderr, stdout + stderr
    assert _statuses(out) == {"1": ("queued", "the batch was stopped while the job ran")}


def test_a_dead_worker_is_replaced_and_its_job_retried(shared, driving8, tmp_path):
    src = shared / "assets/source"
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(src / name), "driving": str(driving8)} for name in ("s6.jpg", "s0.jpg")])
    out = tmp_path / "out"
    process = _batch_process([str(jobs), "-o", str(out), "--quiet", *ENGINE])
    _wait_for(out, "SELECT count(*) FROM drivings", process)
    worker = max(children(process.pid))  # the worker, started after the resource tracker
    os.kill(worker, signal.SIGKILL)
    assert process.wait(timeout=180) == 0, process.stderr.read()
    assert _statuses(out) == {"1": ("done", None), "2": ("done", None)}
    # the job the worker was running when it died was tried again
    assert sorted(n for (n,) in _db(out, "SELECT attempts FROM jobs")) == [1, 2]


def test_the_driver_is_analysed_once_and_ray_writes_what_local_workers_write(
        shared, driving8, tmp_path):
    sources, drivings = tmp_path / "sources", tmp_path / "drivings"
    sources.mkdir()
    drivings.mkdir()
    for name in ("s6.jpg", "s0.jpg", "s5.jpg"):
        shutil.copy(shared / "assets/source" / name, sources)
    shutil.copy(shared / "assets/driving/d12.jpg", drivings)
    shutil.copy(driving8, drivings)
    cross = ["--sources", str(sources), "--drivings", str(drivings), "--quiet", *ENGINE]
    local = tmp_path / "local"
    assert main(["batch", *cross, "-o", str(local), "--workers", "2"]) == 0
    counts = _last_run(local)
    assert counts["jobs_run"] == 6
    assert counts["drivings_analysed"] == 2  # one per driver, for 3 sources each
    assert len(list((local / ".drivings").glob("*.npz"))) == 2
    assert counts["engines_loaded"] == 2  # one per worker
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    on_ray = tmp_path / "ray"
    process = subprocess.run(
        [sys.executable, "-m", "portrait_animate", "batch", *cross, "-o", str(on_ray),
         "--ray_address", "local", "--workers", "2", "--ray_upload"],
        capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert _last_run(on_ray)["drivings_analysed"] == 2
    a, b = _files(local), _files(on_ray)
    assert sorted(a) == sorted(b) and len(a) == 6 * 3
    images = [name for name in a if name.endswith(".jpg")]
    assert len(images) == 6 and all(a[name] == b[name] for name in images)
    for name in a:  # the videos too, frame for frame
        if name.endswith(".mp4"):
            assert a[name] == b[name], name


def test_a_killed_workers_temporary_folder_is_removed_by_the_next_worker(tmp_path, monkeypatch):
    """A worker's folder of uploads was removed only by Worker.close, which neither a local
    worker (its process ends without it, or is killed when the batch stops) nor a Ray actor
    (killed at the batch's end) ever ran: every batch left one a worker in /tmp, with the
    uploaded inputs in it. Now the process's end removes it, and a killed one's is removed by
    the next worker to start; a live worker's, and a folder without its lock, stay."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    hold = ("import sys, time; from portrait_animate.batch.worker import Worker; "
            "w = Worker(1); print(w._inputs, flush=True); "
            "time.sleep(60) if sys.argv[1] == 'wait' else w._local('a.jpg', b'uploaded')")
    env = os.environ | {"TMPDIR": str(tmp_path)}
    ended = subprocess.run([sys.executable, "-c", hold, "end"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert ended.returncode == 0, ended.stderr
    assert not Path(ended.stdout.strip()).exists()  # removed as its process ended
    killed, alive = (subprocess.Popen([sys.executable, "-c", hold, "wait"], env=env,
                                      stdout=subprocess.PIPE, text=True) for _ in range(2))
    try:
        killed_folder = Path(killed.stdout.readline().strip())
        alive_folder = Path(alive.stdout.readline().strip())
        (killed_folder / "uploaded.mp4").write_bytes(b"an upload")
        killed.kill()
        killed.wait()
        assert killed_folder.is_dir()
        (tmp_path / "portrait-animate-batch-old").mkdir()  # an older version's: no lock
        worker = Worker(1)
        try:
            assert not killed_folder.exists()
            assert alive_folder.is_dir() and (tmp_path / "portrait-animate-batch-old").is_dir()
            assert worker._inputs.parent == tmp_path and worker._inputs.is_dir()
        finally:
            worker.close()
        assert not worker._inputs.exists()
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait()


def test_a_drivers_analysis_needs_no_source_on_the_worker(driving8, tmp_path):
    """A worker of a cluster that does not share this machine's files analysed an uploaded
    driver after checking the job's source, which it did not have: "source not found"."""
    worker = Worker(1)
    try:
        outcome = worker.analyse({"source": str(tmp_path / "not-on-this-node.jpg"),
                                  "driving": str(tmp_path / "uploaded.mp4"),
                                  "engine": "classic"}, driving8.read_bytes())
    finally:
        worker.close()
    assert outcome.error is None and outcome.frames == 8


def test_relative_paths_run_on_a_cluster_started_in_another_folder(shared, driving8, tmp_path):
    """Ray's workers run where their cluster was started, not where the batch is: a jobs file,
    --sources or -o given relatively failed every job with "source not found"."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    env = _ray_env() | {"RAY_AUTH_MODE": "disabled"}
    (tmp_path / "head").mkdir()
    with _ray_head(tmp_path / "head", env) as (gcs, client):
        work = tmp_path / "work"
        for folder, name, copied in (("faces", "s6.jpg", shared / "assets/source/s6.jpg"),
                                     ("clips", "d8.mp4", driving8)):
            (work / folder).mkdir(parents=True)
            shutil.copy(copied, work / folder / name)
        _jobs(work / "jobs.jsonl", [{"source": "faces/s6.jpg", "driving": "clips/d8.mp4"}])
        runs = {"out": ["jobs.jsonl", "--ray_address", f"127.0.0.1:{gcs}"],
                "up": ["--sources", "faces", "--drivings", "clips", "--ray_address",
                       f"ray://127.0.0.1:{client}", "--ray_upload"]}
        for out, args in runs.items():
            process = subprocess.run(
                [sys.executable, "-m", "portrait_animate", "batch", *args, "-o", out,
                 "--quiet", *ENGINE], cwd=work, env=env, capture_output=True, text=True,
                timeout=300)
            assert process.returncode == 0, process.stderr
        # a driver that asks for a token calls back actors that have none: they died
        asking = subprocess.run(
            [sys.executable, "-m", "portrait_animate", "batch", "jobs.jsonl", "-o", "asking",
             "--ray_address", f"127.0.0.1:{gcs}", *ENGINE], cwd=work,
            env=env | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "a" * 32},
            capture_output=True, text=True, timeout=300)
    assert (work / "out/1/s6--d8.mp4").read_bytes() == (work / "up/s6--d8/s6--d8.mp4").read_bytes()
    assert asking.returncode == 2 and asking.stderr.splitlines()[-1] == (
        f"error: --ray_address 127.0.0.1:{gcs}: the Ray cluster there takes no token, and its "
        "workers cannot call back a driver that asks for one (RAY_AUTH_MODE=token here); unset "
        "RAY_AUTH_MODE"), asking.stderr


def _ray_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    return env | {"RAY_USAGE_STATS_ENABLED": "0"}


@contextlib.contextmanager
def _ray_head(cwd: Path, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """A Ray head of one CPU started in ``cwd`` with ``env``: its GCS and Ray Client ports."""
    gcs, client = free_port(), free_port()
    ray_tmp = tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp")  # Ray's socket paths are short
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
         "--node-ip-address", "127.0.0.1", "--port", str(gcs), "--ray-client-server-port",
         str(client), "--include-dashboard", "false", "--num-cpus", "1", "--temp-dir", ray_tmp,
         "--disable-usage-stats"], cwd=cwd, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", client), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and head.poll() is None, "no Ray head"
                time.sleep(0.5)
        yield gcs, client
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head and every process of its cluster
        head.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_a_token_the_cluster_does_not_take_is_one_line_at_once(shared, tmp_path):
    """A cluster that asks for a token (Ray 2.59+'s `ray start --head`), given none or another:
    the batch waited 34 s (ray://) or 23 s (HOST:PORT, printing Ray's retries), then said no
    cluster was reached. Now its probe asks the port and names the fix; the right token runs."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    token = "0123456789abcdef" * 2
    env = _ray_env() | {"HOME": str(tmp_path)}  # Ray keeps no token file of the user's
    jobs = _jobs(tmp_path / "jobs.jsonl", [{"source": str(shared / "assets/source/s6.jpg"),
                                            "driving": "preset:smile"}])
    with _ray_head(tmp_path, env | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}) as ports:
        def batch(address: str, out: str, **given: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "portrait_animate", "batch", str(jobs), "-o",
                 str(tmp_path / out), "--ray_address", address, "--quiet", *ENGINE],
                env=env | given, capture_output=True, text=True, timeout=300)

        for address in (f"ray://127.0.0.1:{ports[1]}", f"127.0.0.1:{ports[0]}"):
            for given, said in (({}, "asks for a token; set RAY_AUTH_MODE=token here"),
                                ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "f" * 32},
                                 "refused this machine's token")):
                started = time.monotonic()
                refused = batch(address, "refused", **given)
                assert refused.returncode == 2, refused.stderr
                assert refused.stderr.startswith(
                    f"error: --ray_address {address}: the Ray cluster there {said}"), \
                    refused.stderr
                assert time.monotonic() - started < 20  # 34 s and 23 s before
        taken = batch(f"ray://127.0.0.1:{ports[1]}", "taken", RAY_AUTH_MODE="token",
                      RAY_AUTH_TOKEN=token)
    assert taken.returncode == 0, taken.stderr
    assert not (tmp_path / "refused").exists()


def test_gpus_no_node_has_are_a_warning_not_a_silent_wait(shared, tmp_path):
    """Actors that ask for GPUs the cluster lacks never start: the batch sat at 0 jobs."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    jobs = _jobs(tmp_path / "jobs.jsonl", [{"source": str(shared / "assets/source/s6.jpg"),
                                            "driving": "preset:smile"}])
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    batch = subprocess.Popen(
        [sys.executable, "-m", "portrait_animate", "batch", str(jobs), "-o",
         str(tmp_path / "out"), "--ray_address", "local", "--workers", "1", "--ray_num_gpus",
         "1", "--quiet", *ENGINE], env=env | {"CUDA_VISIBLE_DEVICES": ""},
        stderr=subprocess.PIPE, text=True)
    stop = threading.Timer(120, batch.send_signal, (signal.SIGINT,))  # no warning: no hang
    stop.start()
    try:
        warned = next((line for line in batch.stderr if line.startswith("warning: ")), "")
    finally:
        stop.cancel()
        batch.send_signal(signal.SIGINT)
        batch.communicate(timeout=120)
    assert warned == ("warning: each Ray actor asks for 1 GPU(s) (--ray_num_gpus) and no node "
                      "of the cluster has as many (the most: 0); the jobs wait until such a "
                      "node joins\n")


def test_ray_missing_is_one_line(shared, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as when not installed
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(shared / "assets/source/s6.jpg"),
         "driving": str(shared / "assets/driving/d12.jpg")}])
    assert main(["batch", str(jobs), "-o", str(tmp_path / "out"), "--ray_address", "local",
                 *ENGINE]) == 2
    err = capsys.readouterr().err
    assert err == "error: --ray_address needs Ray: pip install 'portrait-animate[ray]'\n"


@pytest.mark.skipif(CPU_CORES < 2, reason="a share of the cores needs a machine of 2 or more")
def test_a_worker_keeps_to_its_share_of_the_cores_in_the_networks_and_the_analysis():
    torch_threads = torch.get_num_threads()
    worker = Worker(1)
    try:
        with all_cores():  # how the neural engine runs its networks
            assert torch.get_num_threads() == 1
        assert analysis_workers(1000) == 1
        assert "; 1 threads;" in choice_key()
    finally:
        worker.close()
        set_core_share(CPU_CORES)
        torch.set_num_threads(torch_threads)
    with all_cores():
        assert torch.get_num_threads() == CPU_CORES
    assert analysis_workers(1000) == min(4, CPU_CORES)


def test_a_job_without_weights_fails_as_the_users_to_fix_and_is_not_retried(shared, tmp_path):
    """Missing weights are the set-up's to fix: running the job again cannot help (the batch
    and the service retry only other failures)."""
    worker = Worker(1)
    try:
        outcome = worker.run({"source": str(shared / "assets/source/s0.jpg"),
                              "driving": "preset:talk", "engine": "neural",
                              "weights_dir": str(tmp_path / "none")}, str(tmp_path / "out"))
    finally:
        worker.close()
        set_core_share(CPU_CORES)
    assert outcome.error is not None and "weights" in outcome.error
    assert outcome.bad_input


def test_the_frames_bar_ends_at_its_total_whatever_the_jobs_make():
    """The total counts each job's driver; a job that makes more (a template's length), fewer
    or none (it failed) moves the total with it, so the bar never runs past it."""
    progress = _Progress(False, 3)
    progress.frames_total(16)
    progress.job_ended(10, 8)
    progress.job_ended(0, 8)
    progress.job_ended(5, 0)
    jobs, frames = progress._bars.tasks
    progress.stop()
    assert (jobs.completed, jobs.total) == (3, 3)
    assert (frames.completed, frames.total) == (15, 15)


def test_lines_that_are_not_one_json_object_are_each_one_problem(tmp_path):
    from portrait_animate.batch.jobs import read_jobs

    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(['{"source": "a.jpg", "driving": "talk"}', "{source",
                               "[" * 100_000 + "]" * 100_000, "[1]"]))
    jobs, problems = read_jobs(path, {})
    assert [job.line for job in jobs] == [1]
    assert [str(p) for p in problems] == [
        "line 2: not JSON (Expecting property name enclosed in double quotes); write one "
        "JSON object a line",
        "line 3: JSON nested too deeply; write one flat JSON object a line",
        "line 4: not a JSON object; write {\"source\": ..., \"driving\": ...}"]


def test_bad_lines_are_listed_in_the_files_order_and_quoted_values_say_so(shared, tmp_path,
                                                                          capsys):
    """Lines that are no JSON were listed before every other bad line (line 7, then 2 to 6),
    and "flag_stitching": "false" was told to be true or false, which it looked like."""
    source = str(shared / "assets/source/s0.jpg")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"source": source, "driving": "preset:smile",
                                "flag_stitching": "false"}) + "\nnot json\n"
                    + json.dumps({"source": source, "driving": "preset:smile", "scale": "2"})
                    + "\n")
    assert main(["batch", str(jobs), "-o", str(tmp_path / "out"), *ENGINE]) == 2
    assert [line.strip() for line in capsys.readouterr().err.splitlines()[1:]] == [
        'line 1: option \'flag_stitching\' is "false"; give it true or false, without quotes',
        "line 2: not JSON (Expecting value); write one JSON object a line",
        'line 3: option \'scale\' is "2"; give it a number, without quotes']


def test_a_jobs_line_names_every_bad_value_on_its_one_line(shared, tmp_path, capsys):
    source, driving = shared / "assets/source/s0.jpg", shared / "assets/driving/d0.mp4"
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(source), "driving": str(driving), "name": "a b", "quiet": True,
         "scale": "big", "animation_regio": "lip", "driving_multiplier": 99, "engine": "fast"},
        {"source": str(source), "driving": str(driving), "scale": 99}])
    assert main(["batch", str(jobs), "-o", str(tmp_path / "out"), *ENGINE]) == 2
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(lines) == 2 and "2 jobs cannot run" in err
    several = lines[0].removeprefix("line 1: ").split(" | ")
    assert [problem.split(";")[0] for problem in several] == [
        "name 'a b' is not a folder name", 'option \'scale\' is "big"',
        "option 'quiet' is the batch's to decide", "unknown option 'animation_regio'",
        "--engine 'fast' is not one of auto, neural, classic",
        "--driving_multiplier 99 is not a finite number from 0 to 10 (it scales the driving "
        "motion: 0 freezes the face, and past 10 even a slight expression moves it further "
        "than the engines can render)"]
    assert lines[1].startswith("line 2: --scale 99 is not a finite number") and "|" not in lines[1]
    assert not (tmp_path / "out").exists()


def test_a_job_may_give_face_and_frame_numbers_as_json_numbers(shared, tmp_path):
    source, driving = shared / "assets/source/s0.jpg", shared / "assets/driving/d0.mp4"
    jobs = [Job("a", 1, {"source": str(source), "driving": str(driving), "driving_face": 0,
                         "source_faces": 0, "driving_anchor": 3}),
            Job("b", 2, {"source": str(source), "driving": str(driving), "driving_face": True})]
    problems = validate(jobs, tmp_path)
    assert [p.name for p in problems] == ["b"]  # true is no face number
    assert {k: jobs[0].values[k] for k in ("driving_face", "source_faces", "driving_anchor")} \
        == {"driving_face": "0", "source_faces": "0", "driving_anchor": "3"}


def test_a_one_frame_driving_video_ends_as_with_animate(shared, tmp_path):
    """A 1-frame driving video drives as its picture, in the batch as in animate (an image
    source gives a still): the job ends (it ran for ever, the template of one frame taken for
    an image's) with animate's bytes."""
    one = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "d0_1.mp4", 1)
    source = shared / "assets/source/s0.jpg"
    jobs = _jobs(tmp_path / "jobs.jsonl", [{"source": str(source), "driving": str(one),
                                            "name": "one"}])
    subprocess.run([sys.executable, "-m", "portrait_animate", "batch", str(jobs), "-o",
                    str(tmp_path / "batch"), "--quiet", *ENGINE], check=True, timeout=120)
    assert main(["animate", "-s", str(source), "-d", str(one), "-o", str(tmp_path / "one"),
                 "--quiet", *ENGINE]) == 0
    name = "s0--d0_1.jpg"
    assert (tmp_path / "batch/one" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_names_that_are_not_strings_or_are_the_batchs_own_files_are_invalid_lines(
        shared, tmp_path, capsys):
    source, still = str(shared / "assets/source/s6.jpg"), str(shared / "assets/driving/d12.jpg")
    names = ["ok", [1], {"a": 1}, "batch.sqlite", "batch.lock", "batch.sqlite-wal", "Élodie"]
    jobs = _jobs(tmp_path / "jobs.jsonl", [{"source": source, "driving": still, "name": name}
                                           for name in names])
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "-o", str(out), *ENGINE]) == 2
    err = capsys.readouterr().err
    assert "line 2: name [1] is not a folder name" in err
    assert "line 3: name {'a': 1} is not a folder name" in err
    assert "line 7: name 'Élodie' is not a folder name; use ASCII letters (A-Z, a-z)" in err
    for line, name in ((4, "batch.sqlite"), (5, "batch.lock"), (6, "batch.sqlite-wal")):
        assert f"line {line}: name {name!r} is one of the batch's own files in its output " \
               "folder" in err and "give the job another name" in err
    assert not out.exists()
    assert main(["batch", str(jobs), "-o", str(out), "--skip_invalid", "--quiet",
                 *ENGINE]) == 1
    assert "5 invalid" not in capsys.readouterr().err  # quiet: no summary, only the lines
    assert _statuses(out)["ok"] == ("done", None)
    assert sorted(p.name for p in out.iterdir()) == [".drivings", "batch.lock", "batch.sqlite",
                                                     "ok"]


def test_a_cross_product_name_taken_twice_names_both_files_and_the_first_pair_runs(
        shared, tmp_path, capsys):
    sources = tmp_path / "sources"
    sources.mkdir()
    jpg = shutil.copy(shared / "assets/source/s0.jpg", sources / "s0.jpg")
    png = sources / "s0.png"
    cv2.imwrite(str(png), cv2.imread(str(jpg)))
    still = shared / "assets/driving/d12.jpg"
    cross = ["--sources", str(sources), "--drivings", str(still), "-o", str(tmp_path / "out"),
             "--quiet", *ENGINE]
    assert main(["batch", *cross]) == 2
    err = capsys.readouterr().err
    assert f"job s0--d12: {png} with {still} would be named 's0--d12', as {jpg} with {still} " \
           "is, after their file names; rename one of the files, or use a jobs file with a " \
           "\"name\" for each job" in err
    assert main(["batch", *cross, "--skip_invalid"]) == 1
    assert _statuses(tmp_path / "out") == {"s0--d12": ("done", None)}
    assert (tmp_path / "out/s0--d12/s0--d12.jpg").is_file()


def test_the_batch_saves_the_template_animate_saves_for_a_driving_anchor(
        shared, driving8, tmp_path):
    """The driver is analysed once, under auto; a job's template holds its own anchor."""
    source = shared / "assets/source/s0.jpg"
    jobs = _jobs(tmp_path / "jobs.jsonl", [{"source": str(source), "driving": str(driving8),
                                            "driving_anchor": 5, "name": "five"}])
    assert main(["batch", str(jobs), "-o", str(tmp_path / "batch"), "--quiet", *ENGINE]) == 0
    assert main(["animate", "-s", str(source), "-d", str(driving8), "-o",
                 str(tmp_path / "animate"), "--driving_anchor", "5", "--quiet", *ENGINE]) == 0
    for name in ("d0_8_template.npz", "s0--d0_8.mp4"):
        batch = (tmp_path / "batch/five" / name).read_bytes()
        assert batch == (tmp_path / "animate" / name).read_bytes(), name
    with np.load(tmp_path / "batch/five/d0_8_template.npz") as saved:
        assert "5" in {str(saved[key]) for key in saved.files if "anchor" in key}


def test_a_local_worker_that_died_while_idle_is_replaced_at_the_next_task():
    executor = LocalExecutor(1)
    try:
        missing = {"source": "s.jpg", "driving": "d.mp4"}  # fails at once: quick
        executor.submit("first", "analyse", missing)
        assert executor.next_done(timeout=120)[0] == "first"
        (worker,) = executor._pool._processes
        os.kill(worker, signal.SIGKILL)
        wait_gone(worker)
        time.sleep(0.5)
        executor.submit("second", "analyse", missing)
        tag, outcome = executor.next_done(timeout=120)
        assert tag == "second" and outcome.error == "driving not found: d.mp4; check the path"
    finally:
        executor.close()


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:  # not on the test's stderr
        pass


def test_bad_set_ups_are_one_line_and_exit_2(shared, tmp_path, capsys, monkeypatch):
    job = {"source": str(shared / "assets/source/s6.jpg"),
           "driving": str(shared / "assets/driving/d12.jpg")}
    jobs = _jobs(tmp_path / "jobs.jsonl", [job])
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'\xff\xfe{"source": 1}\n')
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "batch.sqlite").write_text("garbage\n")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))  # no cluster of this machine's
    out = ["-o", str(tmp_path / "out")]
    two = _jobs(tmp_path / "two.jsonl", [job, job | {"name": "again"}])
    cases = [([str(latin), *out], f"the jobs file {latin} is not UTF-8 text (byte 0 is 0xff); "
                                  "save it as UTF-8"),
             ([str(two), "-o", str(jobs)], f"-o {jobs} is a file; give -o a folder"),  # once
             ([str(jobs), "-o", str(damaged)], f"{damaged}/batch.sqlite cannot be used as the "
                                               "state database (file is not a database); move "
                                               "it away to run every job again, or give "
                                               "another -o")]
    # an address of another form is refused before the batch starts, Ray or not (a bare
    # "bogus" was Ray's ValueError traceback, with the state database left in -o)
    for address in ("bogus://x", "bogus", "ray://host", "host:99999", "[::1:6379"):
        assert main(["batch", str(jobs), *out, "--ray_address", address, *ENGINE]) == 2
        assert capsys.readouterr().err == (f"error: --ray_address {address} is not local, "
                                           "auto, ray://HOST:PORT or HOST:PORT; pass one of "
                                           "those\n")
        assert not (tmp_path / "out").exists()
    web = None
    if importlib.util.find_spec("ray") is not None:
        cases += [([str(jobs), *out, "--ray_address", "auto"],
                   "--ray_address auto: no Ray cluster reached (Could not find any running Ray "
                   "instance); start one with `ray start --head`, or pass --ray_address local")]
        port = free_port()  # nothing listens on it: Ray retried for minutes
        cases += [([str(jobs), *out, "--ray_address", f"{scheme}127.0.0.1:{port}"],
                   f"--ray_address {scheme}127.0.0.1:{port}: no Ray cluster reached "
                   "(Connection refused); start one with `ray start --head`, or pass "
                   "--ray_address local") for scheme in ("", "ray://")]
        # a web server's port: Ray waited for ever (HOST:PORT) or 30 s (ray://)
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        cases += [([str(jobs), *out, "--ray_address", f"{scheme}127.0.0.1:{web.server_port}"],
                   f"--ray_address {scheme}127.0.0.1:{web.server_port}: no Ray cluster reached "
                   "(the port answers, but not as Ray's do; Ray's are the head's GCS port (6379 "
                   "unless set) for HOST:PORT and Ray Client's (10001) for ray://); start one "
                   "with `ray start --head`, or pass --ray_address local")
                  for scheme in ("ray://", "")]  # the old ray:// failed in 30 s, HOST:PORT hung
    started = time.monotonic()
    for args, message in cases:
        assert main(["batch", *args, "--quiet", *ENGINE]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert time.monotonic() - started < 60
    if web is not None:
        web.shutdown()
        web.server_close()
    # no cluster: the -o this batch made is not left behind with only its state in it
    assert not (tmp_path / "out").exists()
    if importlib.util.find_spec("ray") is not None:  # a folder that was there keeps its state
        (tmp_path / "there").mkdir()
        assert main(["batch", str(jobs), "-o", str(tmp_path / "there"), "--ray_address", "auto",
                     "--quiet", *ENGINE]) == 2
        capsys.readouterr()
        assert (tmp_path / "there" / "batch.sqlite").is_file()
    # lock released: the damaged folder may be used again once its state is moved away
    (damaged / "batch.sqlite").unlink()
    with BatchState(damaged):
        pass


def test_a_local_cluster_under_a_deep_tmpdir_is_one_line(shared, tmp_path):
    """On Linux Ray puts its sockets under TMPDIR (RAY_TMPDIR first); one deeper than a
    socket's path may be (107 bytes) was Ray's OSError traceback and exit 1."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "RAY_TMPDIR"}
    process = subprocess.run(
        [sys.executable, "-m", "portrait_animate", "batch", "--sources",
         str(shared / "assets/source/s6.jpg"), "--drivings", str(shared / "assets/driving/d12.jpg"),
         "-o", str(tmp_path / "out"), "--ray_address", "local", "--quiet", *ENGINE],
        env=env | {"TMPDIR": str(deep), "RAY_USAGE_STATS_ENABLED": "0"}, capture_output=True,
        text=True, timeout=120)
    assert process.returncode == 2, process.stderr
    error = process.stderr.splitlines()[-1]
    assert error.startswith(f"error: --ray_address local: Ray's socket {deep}/ray/session_")
    assert error.endswith("would be longer than the 107 bytes a socket's path may have; set "
                          "RAY_TMPDIR to a short folder, such as RAY_TMPDIR=/tmp")
    assert "Traceback" not in process.stderr and not (tmp_path / "out").exists()


def test_a_ray_client_server_that_fails_is_tried_again_then_names_its_reason(monkeypatch):
    """A Ray Client server that failed to set up the session (on a busy head, the process it
    starts for it may die: CI saw it) sends "Initialization failure from server:" and its
    traceback. The batch failed at once, and its one line said no more than that."""
    from portrait_animate.batch import executors
    from portrait_animate.batch.executors import _connect
    from portrait_animate.errors import InputError

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    server_said = ("Initialization failure from server:\nTraceback (most recent call last):\n"
                   '  File "proxier.py", line 773, in Datapath\n    raise RuntimeError(\n'
                   "RuntimeError: Proxy failed to Connect to backend! Check `ray_client_server"
                   ".err` on the head node. By default these are located at /tmp/ray\n")

    class Refusing:
        def __init__(self, refusals: int, said: str = server_said) -> None:
            self.refusals, self.said, self.calls = refusals, said, 0

        def init(self, **_: object) -> None:
            self.calls += 1
            if self.calls <= self.refusals:
                raise ConnectionAbortedError(self.said)

    monkeypatch.setattr(executors, "_grpc_answer", lambda *_: None)  # a Ray port
    with socket.create_server(("127.0.0.1", 0)) as listening:  # the probe passes
        address = f"ray://127.0.0.1:{listening.getsockname()[1]}"
        once = Refusing(1)
        _connect(once, address, {})
        assert once.calls == 2
        always = Refusing(9)
        with pytest.raises(InputError) as raised:
            _connect(always, address, {})
        timing_out = Refusing(9, "ray client connection timeout")  # not asked again
        with pytest.raises(InputError, match=r"\(ray client connection timeout\)") as timed:
            _connect(timing_out, address, {})
        assert "RAY_AUTH_MODE" not in str(timed.value)  # the probe asked for no token
        monkeypatch.setattr(executors, "_can_probe", lambda: False)  # a TLS cluster's
        with pytest.raises(InputError, match=r"\(ray client connection timeout\).*RAY_AUTH_MODE"):
            _connect(timing_out, address, {})
    assert always.calls == 2 and timing_out.calls == 2
    assert str(raised.value) == (
        f"--ray_address {address}: the Ray cluster there could not start this batch's session "
        "(the server failed: RuntimeError: Proxy failed to Connect to backend! Check "
        "`ray_client_server.err` on the head node); try again, or pass --ray_address local")


@pytest.mark.skipif(importlib.util.find_spec("grpc") is None, reason="needs grpc (Ray Client)")
def test_a_port_that_takes_the_connection_and_says_nothing_is_no_ray_port(monkeypatch):
    """A listener that takes the connection and never speaks (a hung server, a tarpit) is
    asked for no longer than the probe's time: Ray waited on a web server's port for ever."""
    from portrait_animate.batch import executors

    monkeypatch.setattr(executors, "PROBE_SECONDS", 1.0)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        started = time.monotonic()
        port = silent.getsockname()[1]
        answer = executors._grpc_answer(f"127.0.0.1:{port}", f"127.0.0.1:{port}")
    assert answer == "the port took the connection but said nothing for 1 s"
    assert time.monotonic() - started < 5


def test_a_jobs_file_may_start_with_a_bom(tmp_path):
    from portrait_animate.batch.jobs import read_jobs

    path = tmp_path / "jobs.jsonl"
    path.write_bytes('{"source": "a.jpg", "driving": "talk"}\n'.encode("utf-8-sig"))
    jobs, problems = read_jobs(path, {})
    assert problems == [] and [job.values for job in jobs] == [
        {"source": str(tmp_path / "a.jpg"), "driving": str(tmp_path / "talk")}]


def test_what_the_batch_did_not_make_in_its_output_folder_is_refused_and_left_as_it_is(
        shared, tmp_path, capsys):
    """A job whose folder in -o is there but is not the batch's (a folder of the user's, its
    inputs in it; a file) is an invalid line: nothing is removed or replaced. The batch's own
    folders, marked or made before it marked them (recorded done), are replaced by a re-run."""
    out = tmp_path / "project"
    faces = out / "faces"
    faces.mkdir(parents=True)
    source = str(shutil.copy(shared / "assets/source/s6.jpg", faces))
    (out / "taken").write_text("my data\n")
    still = str(shared / "assets/driving/d12.jpg")
    jobs = _jobs(tmp_path / "jobs.jsonl", [{"source": source, "driving": still, "name": name}
                                           for name in ("faces", "taken", "ok")])
    users = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["batch", str(jobs), "-o", str(out), *ENGINE]) == 2
    err = capsys.readouterr().err
    assert "2 jobs cannot run" in err
    assert f"line 1: {faces} is a folder the batch did not make, and the job's outputs would " \
           "replace it; give the job another \"name\", or another -o" in err
    assert f"line 2: {out / 'taken'} is a file the batch did not make" in err
    assert sorted(p.name for p in out.iterdir()) == ["faces", "taken"]  # nothing written
    assert main(["batch", str(jobs), "-o", str(out), "--skip_invalid", "--quiet",
                 *ENGINE]) == 1
    statuses = _statuses(out)
    assert statuses["ok"] == ("done", None)
    assert statuses["faces"][0] == statuses["taken"][0] == "invalid"
    (out / "ok" / MARKER).unlink()  # as a batch made it before it marked its folders
    assert main(["batch", str(jobs), "-o", str(out), "--skip_invalid", "--quiet",
                 "--driving_multiplier", "1.5", *ENGINE]) == 1
    assert _last_run(out)["jobs_run"] == 1 and _statuses(out)["ok"] == ("done", None)
    assert (out / "ok" / MARKER).is_file()
    assert {p: p.read_bytes() for p in users} == users


def test_a_job_folder_made_by_another_while_the_batch_ran_fails_the_job_and_is_kept(tmp_path):
    run = _Run([], None, None, BatchOptions(), tmp_path, _Progress(True, 0))
    (tmp_path / ".staging/a").mkdir(parents=True)
    (tmp_path / "a").write_text("my data\n")
    assert run._place("a", Outcome()) == (
        f"{tmp_path / 'a'} was made while the batch ran, not by it, and is left as it is; move "
        "it away and run the batch again")
    assert (tmp_path / "a").read_text() == "my data\n"


def test_sources_and_drivings_of_any_file_name_make_jobs_with_folder_names(shared, tmp_path):
    """Spaces, accents, other scripts and long names: each pair gets a folder name of its
    own, as readable as it can be (its outputs keep animate's names)."""
    sources, drivings = tmp_path / "my faces", tmp_path / "clips"
    sources.mkdir()
    drivings.mkdir()
    names = ["IMG 0001.jpg", "IMG_0001.jpg", "Émilie.jpg", "张伟.jpg", f"{'x' * 130}.jpg"]
    for name in names:
        shutil.copy(shared / "assets/source/s0.jpg", sources / name)
    shutil.copy(shared / "assets/driving/d12.jpg", drivings / "talk clip.jpg")
    jobs = cross_jobs(str(sources), str(drivings), {"engine": "classic"})
    assert validate(jobs, tmp_path / "out") == []
    named = {Path(job.values["source"]).name: job.name for job in jobs}
    assert len(set(named.values())) == len(names)
    assert all(len(name) <= 128 for name in named.values())
    for source, start in (("IMG 0001.jpg", "IMG_0001--talk_clip-"),
                          ("IMG_0001.jpg", "IMG_0001--talk_clip-"),
                          ("Émilie.jpg", "Emilie--talk_clip-"), ("张伟.jpg", "talk_clip-"),
                          (names[-1], "x" * 100)):
        assert named[source].startswith(start), named[source]


def test_unnamed_jobs_are_numbered_by_job_line_so_comments_rename_none(tmp_path):
    path = tmp_path / "jobs.jsonl"
    lines = ['{"source": "a.jpg", "driving": "d.mp4"}', "{bad",
             '{"source": "b.jpg", "driving": "d.mp4", "name": "b"}',
             '{"source": "c.jpg", "driving": "d.mp4"}']
    path.write_text("\n".join(lines))
    jobs, _ = read_jobs(path, {})
    path.write_text("\n".join(["# my jobs", "", lines[0], "# the next one is bad", *lines[1:]]))
    commented, problems = read_jobs(path, {})
    assert [job.name for job in jobs] == [job.name for job in commented] == ["1", "b", "4"]
    assert [job.line for job in commented] == [3, 6, 7]  # problems still say the file's line
    assert [p.where for p in problems] == ["line 5"]


def test_relative_paths_in_a_jobs_file_are_relative_to_its_folder(tmp_path):
    folder = tmp_path / "uni"
    folder.mkdir()
    path = _jobs(folder / "jobs.jsonl", [
        {"source": "faces/a.jpg", "driving": "preset:talk", "weights_dir": "weights"},
        {"source": "/data/b.jpg", "driving": "clips/d.mp4"},
        {"source": "sample:s0", "driving": "d.mp4"}])
    jobs, _ = read_jobs(path, {"weights_dir": "cli/weights"})
    cli = os.path.abspath("cli/weights")  # every path absolute: a Ray worker runs elsewhere
    assert [{key: job.values[key] for key in ("source", "driving", "weights_dir")}
            for job in jobs] == [
        {"source": str(folder / "faces/a.jpg"), "driving": "preset:talk",
         "weights_dir": str(folder / "weights")},
        {"source": "/data/b.jpg", "driving": str(folder / "clips/d.mp4"),
         "weights_dir": cli},  # the command line's, relative to the current folder
        {"source": "sample:s0", "driving": str(folder / "d.mp4"), "weights_dir": cli}]


def test_an_uploaded_inputs_error_names_the_users_file_not_the_workers_copy(shared):
    worker = Worker(1)
    try:
        outcome = worker.run({"source": "faces/broken.jpg", "engine": "classic",
                              "driving": str(shared / "assets/driving/d12.jpg")}, None,
                             source_data=b"not an image")
    finally:
        worker.close()
        set_core_share(CPU_CORES)
    assert outcome.error is not None and "faces/broken.jpg" in outcome.error, outcome.error
    assert "portrait-animate-batch-" not in outcome.error


def test_a_worker_keeps_its_last_uploads_not_every_one(shared, tmp_path, monkeypatch):
    """Every input uploaded to a worker (``--ray_upload``) stayed on its disk until the batch
    ended: a thousand sources, a thousand files. Now it keeps the last few, and a job whose
    input it let go is sent it again and runs as before."""
    monkeypatch.setattr("portrait_animate.batch.worker.UPLOADS_KEPT", 2)
    assets = shared / "assets"
    driving = (assets / "driving/d12.jpg").read_bytes()
    worker = Worker(1)
    try:
        def job(name: str) -> bytes:
            outcome = worker.run({"source": name, "driving": "d12.jpg", "engine": "classic"},
                                 None, source_data=(assets / "source" / name).read_bytes(),
                                 driving_data=driving)
            assert outcome.error is None, outcome.error
            kept = sorted(p for p in worker._inputs.iterdir() if p.is_dir())
            assert len(kept) == 2, kept  # this job's source and driver
            assert {f.name for p in kept for f in p.iterdir()} == {name, "d12.jpg"}
            return next(v for k, v in outcome.blobs.items() if k.endswith(".jpg"))

        first = job("s0.jpg")
        job("s5.jpg")  # s0.jpg let go
        assert job("s0.jpg") == first
    finally:
        worker.close()
        set_core_share(CPU_CORES)


def test_the_runs_counts_are_saved_when_the_batch_is_interrupted(shared, tmp_path, monkeypatch):
    next_done, calls = LocalExecutor.next_done, []

    def interrupted(self: LocalExecutor, timeout: float | None = None) -> tuple | None:
        calls.append(timeout)
        if len(calls) == 3:  # the driver analysed and the first job done: Ctrl-C
            raise KeyboardInterrupt
        return next_done(self, timeout)

    monkeypatch.setattr(LocalExecutor, "next_done", interrupted)
    jobs = _jobs(tmp_path / "jobs.jsonl", [
        {"source": str(shared / "assets/source" / name),
         "driving": str(shared / "assets/driving/d12.jpg")} for name in ("s6.jpg", "s0.jpg")])
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "-o", str(out), "--quiet", *ENGINE]) == 130
    assert _db(out, "SELECT count(*) FROM jobs WHERE status = 'done'") == [(1,)]
    assert _last_run(out)["jobs_run"] == 1


def test_a_staging_folder_the_batch_did_not_make_is_refused_and_kept(shared, tmp_path,
                                                                      capsys):
    """``-o``'s ``.staging``, which the batch empties, is used only when it is the batch's (it
    holds the batch's marker): a user's is refused in one line (exit 2) and kept with what is
    in it, nothing written; the batch's own, a killed run's, is removed by the next run."""
    out = tmp_path / "out"
    (out / ".staging").mkdir(parents=True)
    (out / ".staging" / "notes.txt").write_text("mine\n")
    jobs = _jobs(tmp_path / "jobs.jsonl", [{"source": str(shared / "assets/source/s6.jpg"),
                                            "driving": str(shared / "assets/driving/d12.jpg"),
                                            "name": "ok"}])
    for extra in ([], ["--skip_invalid"]):
        assert main(["batch", str(jobs), "-o", str(out), "--quiet", *extra, *ENGINE]) == 2
        assert capsys.readouterr().err == (
            f"error: {out / '.staging'} is not the batch's (it holds no {MARKER} file), and "
            "the batch would replace it with its unfinished jobs; move it away (an older "
            "batch, killed, may have left it: then delete it), or give another -o\n")
        assert (out / ".staging" / "notes.txt").read_text() == "mine\n"
        assert sorted(p.name for p in out.rglob("*")) == [".staging", "notes.txt"]

    (out / ".staging").rename(tmp_path / "notes")
    assert main(["batch", str(jobs), "-o", str(out), "--quiet", *ENGINE]) == 0
    assert (out / "ok" / MARKER).is_file() and not (out / ".staging").exists()
    left = out / ".staging" / "ok"  # as a killed run leaves it
    left.mkdir(parents=True)
    (out / ".staging" / MARKER).write_text("made by portrait-animate batch\n")
    (left / "partial.mp4").write_bytes(b"cut")
    assert main(["batch", str(jobs), "-o", str(out), "--quiet", *ENGINE]) == 0
    assert not (out / ".staging").exists() and _statuses(out) == {"ok": ("done", None)}
