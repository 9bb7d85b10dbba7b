"""A new user's first hour (issue 11): a bad -o, bad numbers, slow start-up, unreadable help,
MediaPipe's noise, and the ``doctor`` self-check."""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rich.console import Console

from portrait_animate.cli.main import COMMANDS, build_parser, main
from portrait_animate.motion.transform import rotation_matrix
from portrait_animate.pipeline import animate as animate_module
from portrait_animate.pipeline.animate import MAX_SHIFT, FrameAnimator
from portrait_animate.pipeline.options import RANGES, AnimateOptions
from portrait_animate.pipeline.progress import Reporter

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "portrait_animate"]
QUICK = ["animate", "-s", "sample:astronaut", "-d", "sample:astronaut", "--engine", "classic",
         "--quiet"]


def _run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env}, timeout=300)


@pytest.fixture
def no_face_analysis(monkeypatch):
    """Bad input must be refused before the face mesh is even created."""
    def refuse(*args, **kwargs):
        raise AssertionError("face analysis started before the input was checked")

    monkeypatch.setattr(animate_module, "FaceMesh", refuse)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "; " in lines[0], "the message names a fix after the problem"
    return lines[0]


# 1. -o naming a file


@pytest.mark.parametrize("under", [False, True], ids=["file", "path under a file"])
def test_output_folder_that_is_a_file(under, tmp_path, capsys, no_face_analysis):
    existing = tmp_path / "taken.mp4"
    existing.write_bytes(b"keep me")
    out = existing / "sub" if under else existing
    assert main([*QUICK, "-o", str(out)]) == 2
    message = _one_error_line(capsys)
    assert str(existing) in message and "-o" in message
    assert existing.read_bytes() == b"keep me" and sorted(tmp_path.iterdir()) == [existing]


# 2. numeric options


def test_every_float_option_has_a_range():
    floats = {f.name for f in fields(AnimateOptions) if isinstance(f.default, float)}
    assert floats == set(RANGES)
    for name, allowed in RANGES.items():
        assert getattr(AnimateOptions, name) in allowed, f"the default of {name} is refused"


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(name, value):
    problems = AnimateOptions("s.jpg", "d.mp4", **{name: value}).invalid_values()
    assert len(problems) == 1 and problems[0].startswith(f"--{name} ")
    assert "finite number" in problems[0] and "; " in problems[0]


@pytest.mark.parametrize(("values", "problem"), [
    ({"flag_relative_motion": "false"}, "option 'flag_relative_motion' is 'false'; give it "
                                        "true or false"),
    ({"flag_stitching": None}, "option 'flag_stitching' is None; give it true or false"),
    ({"batch_size": True}, "option 'batch_size' is True; give it a whole number"),
    ({"source_max_dim": "512"}, "option 'source_max_dim' is '512'; give it a whole number"),
    ({"source_max_dim": 3}, "--source_max_dim 3 is not 0 (no limit) or at least 64"),
    ({"source_division": -1}, "--source_division -1 is not from 0 to 64"),
    ({"device_id": -1}, "--device_id -1 is not a GPU number"),
])
def test_python_api_options_of_the_wrong_type_or_range_are_refused(values, problem):
    """The command line parses types; the Python API takes what it is given, so animate
    checks the types before it reads the values."""
    assert AnimateOptions("s.jpg", "d.mp4", **values).invalid_values()[0].startswith(problem)


def test_python_api_paths_may_be_paths(tmp_path):
    options = AnimateOptions(tmp_path / "s.jpg", tmp_path / "d.mp4", output_dir=tmp_path,
                             weights_dir=tmp_path)
    assert options.source == str(tmp_path / "s.jpg") and options.weights_dir == str(tmp_path)
    assert options.invalid_values() == [] and AnimateOptions("s", "d", driving_face=1) \
        .invalid_values() == []


@pytest.mark.parametrize("value", ["nan", "inf", "1000", "-1"])
def test_bad_multiplier_is_one_line_before_any_work(value, tmp_path, capsys, no_face_analysis):
    out = tmp_path / "out"
    assert main([*QUICK, "-o", str(out), "--driving_multiplier", value]) == 2
    message = _one_error_line(capsys)
    assert "--driving_multiplier" in message and "from 0 to 10" in message
    assert not out.exists(), "nothing is written for refused options (no template either)"


def test_app_refuses_non_finite_limits(capsys):
    assert main(["app", "--max_upload_mb", "nan"]) == 2
    assert "--max_upload_mb nan" in _one_error_line(capsys)


@pytest.fixture
def no_app_launch(monkeypatch):
    """Bad launch options must be refused before the app is built."""
    import portrait_animate.app as app_package

    def refuse(*args, **kwargs):
        raise AssertionError("the app was launched before its options were checked")

    monkeypatch.setattr(app_package, "serve", refuse)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)


@pytest.mark.parametrize("under", [False, True], ids=["file", "path under a file"])
def test_app_refuses_a_temp_dir_that_is_a_file(under, tmp_path, capsys, no_app_launch):
    taken = tmp_path / "taken.jpg"
    taken.write_bytes(b"keep me")
    assert main(["app", "--gradio_temp_dir", str(taken / "tmp" if under else taken)]) == 2
    assert f"--gradio_temp_dir {taken}" in _one_error_line(capsys)
    assert taken.read_bytes() == b"keep me" and "GRADIO_TEMP_DIR" not in os.environ


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_app_refuses_a_port_in_use(host, capsys, no_app_launch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["app", "-p", str(port), "--server_name", host]) == 2
    message = _one_error_line(capsys)
    assert message.startswith(f"error: -p {port}: ") and "pick another port" in message


def test_app_run_folder_of_a_failed_job_is_removed(tmp_path, monkeypatch):
    from portrait_animate.app import backend as app_backend
    from portrait_animate.errors import InputError

    def fail(job, **kwargs):
        (Path(job.output_dir) / "partial.mp4").write_bytes(b"")
        raise InputError("no face in the source; stands in for any failure")

    monkeypatch.setattr(app_backend, "FaceMesh", lambda det_thresh: None)
    monkeypatch.setattr(app_backend, "animate", fail)
    backend = app_backend.AppBackend(AnimateOptions("", ""), app_backend.AppLimits(), tmp_path)
    monkeypatch.setattr(backend.engines, "get", lambda name: None)
    with pytest.raises(InputError):
        backend.animate("s.jpg", "d.mp4", "classic", Reporter(quiet=True))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(app_backend, "animate", lambda job, **kwargs: job.output_dir)
    done = Path(backend.animate("s.jpg", "d.mp4", "classic", Reporter(quiet=True)))
    assert done.is_dir() and done.parent == tmp_path, "a finished job's folder is kept"


class _Notes(Reporter):
    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def _shift_check(shifts: list[float], multiplier: float) -> list[str]:
    """The notes of the per-frame check when frame i moves every keypoint by shifts[i] face
    sizes."""
    x_s = torch.tensor([[[-0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]])  # size 1
    reporter = _Notes()
    animator = SimpleNamespace(
        options=AnimateOptions("s.jpg", "d.mp4", driving_multiplier=multiplier),
        engine=SimpleNamespace(name="classic"), reporter=reporter, _warned_shift=False,
        _of_face="")
    for i, shift in enumerate(shifts):
        FrameAnimator._check_shift(animator, i, x_s, x_s + torch.tensor([shift, 0.0, 0.0]))
    return reporter.notes


def test_motion_beyond_what_the_engine_renders_is_said_once():
    assert _shift_check([0.1, MAX_SHIFT * 0.99, 0.3], multiplier=1.0) == []
    notes = _shift_check([0.1, MAX_SHIFT * 2, MAX_SHIFT * 3], multiplier=4.0)
    assert len(notes) == 1 and notes[0].startswith("warning: frame 1 ")
    assert "classic engine" in notes[0] and "lower --driving_multiplier (4)" in notes[0]


def _turn_check(angles: list[tuple[float, float, float]], max_turn: float | None,
                relative: bool = True) -> list[str]:
    """The notes of the per-frame check when frame i turns the head by angles[i] (pitch,
    yaw, roll, degrees) from a source that looks 10 degrees aside."""
    def motion(pitch: float, yaw: float, roll: float) -> SimpleNamespace:
        return SimpleNamespace(R=rotation_matrix(*(torch.tensor([[a]]) for a in
                                                   (pitch, yaw, roll))))
    reporter = _Notes()
    animator = SimpleNamespace(
        options=AnimateOptions("s.jpg", "d.mp4", flag_relative_motion=relative),
        engine=SimpleNamespace(name="classic", max_turn=max_turn), reporter=reporter,
        _warned_turn=False, _of_face="")
    for i, (pitch, yaw, roll) in enumerate(angles):
        FrameAnimator._check_turn(animator, i, motion(0, 10, 0),
                                  motion(pitch, 10 + yaw, roll))
    return reporter.notes


def test_a_turn_beyond_what_the_engine_draws_is_said_once():
    # a roll is in the picture's plane; yaw and pitch each within the bound
    assert _turn_check([(0, 29, 0), (0, 0, 60), (29, 0, 0), (0, -29, 0)], 30) == []
    notes = _turn_check([(0, 20, 0), (25, 25, 0), (0, 50, 0)], 30)  # 34 degrees together
    assert len(notes) == 1 and notes[0].startswith("warning: frame 1 turns the head 34 ")
    assert "--animation_region exp" in notes[0]
    absolute = _turn_check([(0, -40, 0)], 30, relative=False)
    assert len(absolute) == 1 and "drop --no_flag_relative_motion" in absolute[0]
    assert _turn_check([(0, 80, 0)], None) == [], "an engine that draws any turn"


# 6. start-up


@pytest.mark.parametrize("args", [["--help"], ["presets"], ["animate", "--help"],
                                  ["app", "--help"]])
def test_start_up_loads_neither_torch_nor_gradio(args):
    """``app --help`` imported Gradio (5.9 s, 370 MB), and so ``app`` fixed Gradio's temporary
    folder before --gradio_temp_dir could set it: /tmp/gradio was made whatever it said."""
    code = ("import sys\nfrom portrait_animate.cli.main import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "heavy = sorted({'torch', 'gradio', 'mediapipe', 'cv2'} & set(sys.modules))\n"
            "print('heavy:', heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert "heavy: []" in result.stderr, result.stderr


@pytest.mark.parametrize("args", [["--help"], ["presets"]])
def test_start_up_within_target(args):
    # Importing gradio alone takes about 3 s here, torch about 2 s: either fails this.
    start = time.perf_counter()
    result = _run_cli(*args)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and result.stdout and not result.stderr
    assert elapsed <= 1.5, f"portrait-animate {' '.join(args)} took {elapsed:.2f} s"


def test_presets_lists_every_preset():
    from portrait_animate.motion.presets import PRESETS

    result = _run_cli("presets")
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        f"preset:{name}" for name in PRESETS]


# 7. help


def _help_texts(monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("COLUMNS", "80")
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    return {"": parser.format_help(), **{name: p.format_help() for name, p in commands.items()}}


def test_help_fits_80_columns(monkeypatch):
    texts = _help_texts(monkeypatch)
    assert set(texts) == {"", *COMMANDS}
    for command, text in texts.items():
        wide = [line for line in text.splitlines() if len(line) > 80]
        assert not wide, f"{command or 'top-level'} --help: {wide}"


def test_help_shows_defaults(monkeypatch):
    text = " ".join(_help_texts(monkeypatch)["animate"].split())
    for option, default in [("-o PATH, --output_dir PATH", "animations/"),
                            ("--driving_multiplier FLOAT", "1.0"), ("--scale FLOAT", "2.3"),
                            ("--det_thresh FLOAT", "0.15"), ("--animation_region", "all"),
                            ("--audio_priority", "driving")]:
        assert re.search(re.escape(option) + r" [^-]*\(default: " + re.escape(default) + r"\)",
                         text), option
    assert "(default: None)" not in text


def test_readme_does_not_call_examples_defaults():
    readme = " ".join((REPO / "README.md").read_text().split())
    defaults = AnimateOptions("s", "d")
    assert (f"the defaults are `--driving_multiplier {defaults.driving_multiplier}` and "
            f"`--scale {defaults.scale}`") in readme
    assert not re.search(r"defaults? \([^)]*--driving_multiplier 1\.2", readme)


# 8. noise


def test_quiet_success_prints_nothing(tmp_path):
    result = _run_cli(*QUICK, "-o", str(tmp_path / "out"))
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("", "")
    assert (tmp_path / "out/astronaut--astronaut.jpg").is_file()


# doctor


def test_doctor_reports_what_a_bug_report_needs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PORTRAIT_ANIMATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PORTRAIT_ANIMATE_WEIGHTS", raising=False)
    assert main(["doctor"]) == 0
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1)
                for line in capsys.readouterr().out.splitlines())
    for name in ("python", "portrait-animate", "torch", "mediapipe", "cpu", "cpu flags",
                 "torch threads", "opencv threads", "OMP_NUM_THREADS", "weights", "ffmpeg",
                 "chromium"):
        assert rows.get(name), f"doctor prints no {name!r}"
    assert rows["torch"] == torch.__version__
    assert rows["weights"].startswith("not found")
    assert "version" in rows["ffmpeg"]


def test_readme_troubleshooting_names_doctor():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    assert "portrait-animate doctor" in section


# the second bug hunt (bughunt_cli)


@pytest.mark.parametrize("output", ["/proc/foo", "x" * 300], ids=["proc", "name too long"])
def test_output_folder_that_cannot_be_made(output, tmp_path, capsys, no_face_analysis):
    """Not a permission problem: /proc takes no new folder (as root too), and a name longer
    than the filesystem's 255 bytes cannot be made."""
    out = output if output.startswith("/") else str(tmp_path / output)
    assert main([*QUICK, "-o", out]) == 2
    assert _one_error_line(capsys).startswith(f"error: -o {out}")
    assert list(tmp_path.iterdir()) == []


def test_long_input_names_are_shortened_to_fit(tmp_path):
    """{src}--{drv}_concat.jpg and its temporary name would pass 255 bytes: the names keep
    their start and end with a hash of the whole (the same for the same inputs)."""
    from portrait_animate.io.images import read_image_rgb, write_image_rgb

    source = write_image_rgb(tmp_path / f"{'M' * 240}.jpg", read_image_rgb("sample:astronaut"))
    out = tmp_path / "out"
    for _ in range(2):  # the second run writes the same names again
        assert main([*QUICK, "-s", str(source), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and names[-1] == "astronaut_template.npz"
    result, concat = names[0], names[1]
    assert re.fullmatch(r"M{200,}~[0-9a-f]{8}\.jpg", result)
    assert concat == result.replace(".jpg", "_concat.jpg") and len(concat.encode()) <= 255 - 20


def test_interrupted_run_leaves_no_output_folder(tmp_path, capsys, monkeypatch):
    from portrait_animate.pipeline.outputs import OutputWriter

    def interrupt(self, *frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(OutputWriter, "add", interrupt)
    assert main([*QUICK, "-o", str(tmp_path / "new/out")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "the folders the run made are removed"


def test_a_folder_as_input_is_called_a_folder(tmp_path, capsys, no_face_analysis):
    assert main(["animate", "-s", str(tmp_path), "-d", "sample:astronaut", "-o",
                 str(tmp_path / "out")]) == 2
    assert _one_error_line(capsys).startswith(f"error: the source {tmp_path} is a folder; ")


def _truncated_video(path: Path) -> Path:
    """30 frames of the astronaut, its header first, cut after 60%: the header announces
    1.2 s."""
    import cv2

    from media import FFMPEG, write_video
    from portrait_animate.io.images import read_image_rgb

    face = cv2.resize(read_image_rgb("sample:astronaut"), (256, 256))
    noise = np.random.default_rng(0).integers(0, 8, (30, 256, 256, 3), np.uint8)
    whole = write_video(list(face // 2 + noise), path.with_name("whole.mp4"))
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(whole), "-c:v", "libx264", "-g", "5",
                    "-movflags", "+faststart", str(path)], check=True)  # a keyframe in 5
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])
    return path


def test_quiet_still_prints_warnings(tmp_path):
    """--quiet drops the progress and the notes, not a warning that the result is
    incomplete."""
    driving = _truncated_video(tmp_path / "cut.mp4")
    result = _run_cli("animate", "-s", "sample:astronaut", "-d", str(driving), "--engine",
                      "classic", "--quiet", "-o", str(tmp_path / "out"))
    assert result.returncode == 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: decoding {driving} stopped after")


def test_doctor_names_whose_thread_pool_each_is(capsys):
    """Two packages may each load an OpenBLAS: each pool is named by its package."""
    assert main(["doctor"]) == 0
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1)
                for line in capsys.readouterr().out.splitlines())
    pools = rows["native thread pools"].split(", ")
    assert all(re.fullmatch(r"\w+ \d+ \([\w.-]+\)", pool) for pool in pools), pools
    assert len(set(pools)) == len(pools)


@pytest.mark.parametrize("estimate", [587, 589])
def test_a_bar_that_ran_to_the_end_shows_the_count_there_was(estimate):
    """A video's frame total is duration x fps, one off on d9 (587 of 588 frames)."""
    reporter = Reporter()
    reporter.console = Console(record=True, width=80, force_terminal=False)
    assert list(reporter.track(range(588), "animating", estimate)) == list(range(588))
    shown = reporter.console.export_text()
    assert "588/588" in shown and str(estimate) not in shown


def test_a_video_sources_lip_normalization_is_each_frames_own_and_not_kept():
    """--flag_normalize_lip on a video source: each frame's delta is its own, and only the
    last is kept (every frame's was, growing with the video); an image's one is taken once."""
    import weakref

    calls = []
    animator = SimpleNamespace(
        options=AnimateOptions("s.mp4", "d.mp4", flag_normalize_lip=True), _lip_normalize=None,
        engine=SimpleNamespace(retarget_lip=lambda x, ratios: calls.append(1) or x + 1))
    frames = [SimpleNamespace(x_s=torch.full((1, 3, 3), float(i)), lip_ratio=0.2)
              for i in range(30)]
    alive = []
    for i, info in enumerate(frames):
        delta = FrameAnimator._lip_normalize_delta(animator, i, info)
        assert torch.equal(delta, info.x_s + 1)
        alive.append(weakref.ref(delta))
        del delta
    assert sum(ref() is not None for ref in alive) == 1 and len(calls) == 30
    calls.clear()
    for _ in range(5):  # an image source asks for its one frame's every time
        FrameAnimator._lip_normalize_delta(animator, 0, frames[0])
    assert len(calls) == 1
