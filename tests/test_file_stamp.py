"""One identity stamp for an input file (``io.files.file_stamp``: its size and modification
time) keys the video readings cached, a batch job's spec and a batch driver's saved analysis;
the spec and the analysis key are those batch folders already hold."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from media import write_video
from portrait_animate.batch.jobs import Job
from portrait_animate.batch.run import _driving_key
from portrait_animate.batch.worker import ANALYSIS_OPTIONS, ENGINE_OPTIONS
from portrait_animate.io.files import FileStamp, file_stamp
from portrait_animate.io.video import probe_video


def _frames(count: int, side: int = 32) -> list[np.ndarray]:
    return [np.full((side, side, 3), 20 * j, np.uint8) for j in range(count)]


def test_a_file_stamp_is_its_size_and_time_and_changes_with_it(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"12345")
    os.utime(path, ns=(1_000_000_123, 2_000_000_456))
    stamp = file_stamp(path)
    assert isinstance(stamp, FileStamp) and stamp == FileStamp(size=5, mtime_ns=2_000_000_456)
    assert file_stamp(str(path)) == stamp and json.dumps(stamp) == "[5, 2000000456]"
    assert hash(stamp) == hash(file_stamp(path))  # a cache key
    os.utime(path, ns=(1_000_000_123, 2_000_000_457))
    assert file_stamp(path).mtime_ns == 2_000_000_457
    path.write_bytes(b"123456")
    assert file_stamp(path).size == 6
    with pytest.raises(FileNotFoundError):
        file_stamp(tmp_path / "missing.bin")


def test_the_io_package_imports_no_batch_or_pipeline():
    code = ("import sys, portrait_animate.io.files, portrait_animate.io.video; "
            "print(sorted(m for m in sys.modules if m.startswith(('portrait_animate.batch', "
            "'portrait_animate.pipeline'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_job_spec_stores_its_inputs_stamps_as_batch_folders_hold_them(tmp_path):
    """``[size, mtime_ns]`` for a file, null for a preset or a missing file: a batch folder
    made before still finds its jobs done."""
    source = tmp_path / "s.jpg"
    source.write_bytes(b"not read")
    os.utime(source, ns=(5, 7_000_000_001))
    values = {"source": str(source), "driving": "preset:talk", "engine": "classic"}
    job = Job("a", 1, dict(values))
    assert job.spec() == json.dumps({"options": values, "inputs": {
        "source": [8, 7_000_000_001], "driving": None}}, sort_keys=True)
    missing = Job("b", 2, {**values, "source": str(tmp_path / "gone.jpg")})
    assert json.loads(missing.spec())["inputs"] == {"source": None, "driving": None}
    source.write_bytes(b"replaced!")
    assert job.spec() != json.dumps({"options": values, "inputs": {
        "source": [8, 7_000_000_001], "driving": None}}, sort_keys=True)


def test_a_drivers_analysis_key_is_the_one_saved_before_and_follows_its_file(tmp_path):
    driving = write_video(_frames(3), tmp_path / "d.mp4")
    job = Job("a", 1, {"source": "s.jpg", "driving": str(driving), "engine": "classic"})
    stat = driving.resolve().stat()
    options = job.options(".")
    parts = [str(driving.resolve()), stat.st_size, stat.st_mtime_ns,
             *(getattr(options, name) for name in (*ENGINE_OPTIONS, *ANALYSIS_OPTIONS))]
    before = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]
    assert _driving_key(job) == before
    os.utime(driving, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert _driving_key(job) != before


def test_a_video_replaced_under_its_name_is_probed_again(tmp_path):
    path = write_video(_frames(3), tmp_path / "v.mp4")
    assert probe_video(path).frames == 3
    write_video(_frames(5, side=48), tmp_path / "v2.mp4").replace(path)
    info = probe_video(path)
    assert info.frames == 5 and info.size == (48, 48)


def test_the_same_jobs_given_from_another_folder_have_the_same_spec(tmp_path, monkeypatch):
    """A re-run from another working folder (``batch bt/jobs.jsonl`` then, in ``bt``,
    ``batch jobs.jsonl``) redid every job: the spec held the paths as typed."""
    (tmp_path / "bt").mkdir()
    (tmp_path / "bt/s.jpg").write_bytes(b"not read")
    monkeypatch.chdir(tmp_path)
    outside = Job("a", 1, {"source": "bt/s.jpg", "driving": "preset:talk"}).spec()
    monkeypatch.chdir(tmp_path / "bt")
    inside = Job("a", 1, {"source": "s.jpg", "driving": "preset:talk"}).spec()
    assert inside == outside
    assert json.loads(inside)["options"]["driving"] == "preset:talk"
    (tmp_path / "t.jpg").write_bytes(b"not read")
    assert Job("a", 1, {"source": "../t.jpg", "driving": "preset:talk"}).spec() != inside
