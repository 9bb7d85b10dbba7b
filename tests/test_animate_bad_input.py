"""Bad input: one line naming the problem and the fix, exit code 2, no output left behind."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from media import FFMPEG
from portrait_animate.cli.main import main
from portrait_animate.engines.neural.animator import NeuralEngine
from portrait_animate.errors import InputError
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.io.video import VideoWriter
from portrait_animate.pipeline.faces import CropSettings
from portrait_animate.pipeline.inputs import InputKind
from portrait_animate.pipeline.progress import Reporter
from portrait_animate.pipeline.source import prepare_source


@pytest.fixture(scope="module")
def bad(tmp_path_factory, shared) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (d / "notes.txt").write_text("not media")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(400))
    (d / "corrupt.mp4").write_bytes(rng.bytes(5000))
    (d / "zero-bytes.mp4").write_bytes(b"")
    import subprocess

    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=black:s=64x64:r=25", "-frames:v", "0", "-c:v", "libx264",
                    str(d / "empty.mp4")], check=True)
    import cv2

    cv2.imwrite(str(d / "noface.png"), (rng.random((300, 300, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(d / "hdr.tif"), rng.random((64, 64, 3)).astype(np.float32))
    with VideoWriter(d / "noface.mp4", 25) as writer:
        for _ in range(3):
            writer.write((rng.random((128, 128, 3)) * 255).astype(np.uint8))
    (d / "malformed.pkl").write_bytes(pickle.dumps({"motion": [{"exp": np.zeros(3)}]}))

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {d / 'pwned'}",))

    (d / "evil.pkl").write_bytes(pickle.dumps({"motion": [Exploit()]}))
    return d


S0 = "assets/source/s0.jpg"
D12 = "assets/driving/d12.jpg"

CASES = {
    "missing source": (["-s", "{d}/nope.jpg", "-d", "{shared}/" + D12], "source not found"),
    "missing driving": (["-s", "{shared}/" + S0, "-d", "{d}/nope.mp4"], "driving not found"),
    "unsupported extension": (["-s", "{d}/notes.txt", "-d", "{shared}/" + D12],
                              "unsupported source extension"),
    "corrupt image": (["-s", "{d}/corrupt.png", "-d", "{shared}/" + D12], "cannot decode image"),
    "floating-point TIFF": (["-s", "{d}/hdr.tif", "-d", "{shared}/" + D12],
                            "32-bit floating-point samples (HDR); re-export it as an 8- or "
                            "16-bit TIFF"),
    "corrupt video": (["-s", "{shared}/" + S0, "-d", "{d}/corrupt.mp4"], "corrupt"),
    "zero frames": (["-s", "{shared}/" + S0, "-d", "{d}/empty.mp4"], "zero frames"),
    "zero bytes": (["-s", "{shared}/" + S0, "-d", "{d}/zero-bytes.mp4"],
                   "zero-bytes.mp4 is empty (0 bytes); copy or download it again"),
    "no face in source": (["-s", "{d}/noface.png", "-d", "{shared}/" + D12],
                          "no face found in the source"),
    "no face in driving": (["-s", "{shared}/" + S0, "-d", "{d}/noface.mp4"],
                           "no face found in any frame of the driving"),
    "malformed template": (["-s", "{shared}/" + S0, "-d", "{d}/malformed.pkl"],
                           "malformed motion template"),
    "unsafe template": (["-s", "{shared}/" + S0, "-d", "{d}/evil.pkl"],
                        "refused motion template"),
    "template as source": (["-s", "{shared}/assets/driving/d1.pkl", "-d", "{shared}/" + D12],
                           "unsupported source extension"),
    "eye retargeting on an image": (["-s", "{shared}/" + S0, "-d", "{shared}/" + D12,
                                     "--flag_source_video_eye_retargeting"],
                                    "conflicting options"),
    "normalize lip with absolute motion": (["-s", "{shared}/" + S0, "-d", "{shared}/" + D12,
                                            "--flag_normalize_lip",
                                            "--no_flag_relative_motion"],
                                           "conflicting options"),
    "retargeting with a template without ratios": (
        ["-s", "{shared}/" + S0, "-d", "{shared}/assets/driving/wink.pkl",
         "--flag_eye_retargeting"], "needs eye ratios"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, bad, shared, synthetic_weights, tmp_path, capsys):
    argv, expected = CASES[case]
    argv = [a.format(d=bad, shared=shared) for a in argv]
    out = tmp_path / "out"
    rc = main(["animate", *argv, "-o", str(out), "--weights_dir", str(synthetic_weights),
               "--flag_force_cpu", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    message = [line for line in err if line.startswith("error: ")]
    assert len(message) == 1 and expected in message[0], err
    assert "; " in message[0], "the message names a fix after the problem"
    leftovers = [p.name for p in out.rglob("*")] if out.exists() else []
    assert leftovers == [], leftovers
    assert not (bad / "pwned").exists()


def test_missing_weights_is_one_clear_line(shared, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PORTRAIT_ANIMATE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("PORTRAIT_ANIMATE_WEIGHTS", raising=False)
    out = tmp_path / "out"
    rc = main(["animate", "-s", str(shared / S0), "-d", str(shared / D12), "-o", str(out),
               "--engine", "neural", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: LivePortrait weights not found")
    assert "portrait-animate weights download" in err
    assert not out.exists() or not list(out.iterdir())


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["animate", "-s", "a.jpg", "-d", "b.jpg", "--animation_region", "nose"])
    assert info.value.code == 2


def test_a_mistyped_option_is_told_with_the_one_meant_and_the_commands_usage(capsys):
    """`--driving_faces` (by analogy with --source_faces) got the top-level usage alone."""
    with pytest.raises(SystemExit) as info:
        main(["animate", "-s", "a.jpg", "-d", "b.jpg", "--driving_faces", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: portrait-animate animate ")
    assert err.strip().endswith("unrecognized arguments: --driving_faces 0; did you mean "
                                "--driving_face?")
    with pytest.raises(SystemExit):
        main(["animate", "-s", "a.jpg", "-d", "b.jpg", "--nothing_like_it"])
    assert capsys.readouterr().err.strip().endswith("unrecognized arguments: --nothing_like_it")


def test_no_face_advice_on_the_classic_engine_is_only_what_works(bad, shared, tmp_path, capsys):
    """The classic engine animates landmarks: without a face, not cropping cannot help, so it
    is not suggested, and following the old advice gives the same message."""
    for extra in ([], ["--no_flag_do_crop"]):
        rc = main(["animate", "-s", str(bad / "noface.png"), "-d", str(shared / D12), "-o",
                   str(tmp_path), "--engine", "classic", "--quiet", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.startswith("error: no face found in the source image"), err
        assert "--det_thresh" in err and "--no_flag_do_crop" not in err


def test_no_face_advice_on_the_neural_engine_works(bad, networks):
    """The neural engine animates a whole face-less frame uncropped, so that is suggested and
    works; the app's wording names its checkbox and the file, not the server's path. A task
    that needs the face (lip retargeting of a video) is not told to uncrop."""
    engine, settings = NeuralEngine(networks), CropSettings(2.3, 0.0, -0.125)
    spec = str(bad / "noface.png")

    def prepare(do_crop: bool, face_required: bool = False):
        with FaceMesh() as mesh:
            return prepare_source(spec, InputKind.IMAGE, engine, mesh, settings, do_crop, 1280,
                                  2, None, Reporter(quiet=True), face_required=face_required)

    with pytest.raises(InputError, match="pass --no_flag_do_crop") as info:
        prepare(do_crop=True)
    assert info.value.page == ("no face found in the source image noface.png; upload a "
                               'portrait with a clearly visible face or untick "do crop '
                               '(source)" to animate the whole frame')
    assert len(prepare(do_crop=False).frames_info) == 1  # the advice, followed
    with pytest.raises(InputError) as info:
        prepare(do_crop=False, face_required=True)
    assert "do_crop" not in str(info.value) and "do crop" not in info.value.page
