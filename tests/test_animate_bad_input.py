"""Bad input: one line naming the problem and the fix, exit code 2, no output left behind."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from media import FFMPEG
from portrait_animate.cli.main import main
from portrait_animate.io.video import VideoWriter


@pytest.fixture(scope="module")
def bad(tmp_path_factory, shared) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (d / "notes.txt").write_text("not media")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(400))
    (d / "corrupt.mp4").write_bytes(rng.bytes(5000))
    import subprocess

    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=black:s=64x64:r=25", "-frames:v", "0", "-c:v", "libx264",
                    str(d / "empty.mp4")], check=True)
    import cv2

    cv2.imwrite(str(d / "noface.png"), (rng.random((300, 300, 3)) * 255).astype(np.uint8))
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
    "corrupt video": (["-s", "{shared}/" + S0, "-d", "{d}/corrupt.mp4"], "corrupt"),
    "zero frames": (["-s", "{shared}/" + S0, "-d", "{d}/empty.mp4"], "zero frames"),
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
