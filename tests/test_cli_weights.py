"""The ``weights`` and ``debug-stages`` commands, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hub_standin import HubStandIn
from portrait_animate.cli.main import main
from portrait_animate.engines.neural.config import CHECKPOINTS
from portrait_animate.engines.neural.hub import HUB_REPO_ID

FILES = list(dict.fromkeys(c.file for c in CHECKPOINTS))


def test_synth_writes_the_same_tensors_as_the_cache(synthetic_weights, tmp_path, capsys):
    assert main(["weights", "synth", str(tmp_path / "w")]) == 0
    for rel in FILES:
        fresh = torch.load(tmp_path / "w" / rel, weights_only=True)
        cached = torch.load(synthetic_weights.parent / rel, weights_only=True)
        flat_fresh = fresh if "base_models" in rel else {
            f"{s}/{k}": v for s, sd in fresh.items() for k, v in sd.items()}
        flat_cached = cached if "base_models" in rel else {
            f"{s}/{k}": v for s, sd in cached.items() for k, v in sd.items()}
        assert list(flat_fresh) == list(flat_cached)
        for key, value in flat_fresh.items():
            if key.endswith(("weight_u", "weight_v")):  # an SVD's output: not bit-stable
                torch.testing.assert_close(value, flat_cached[key], rtol=0, atol=1e-6)
            else:
                assert torch.equal(value, flat_cached[key]), key
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.startswith(".synth")]
    assert (tmp_path / "w/liveportrait/SYNTHETIC").is_file()
    capsys.readouterr()
    assert main(["weights", "check", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert out.count("synthetic:") == len(CHECKPOINTS)
    assert "synthetic weights: for tests only, output is meaningless" in out


def test_check_reports_missing_files_and_fails(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["weights", "check", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if ".pth" in line]
    assert len(rows) == len(CHECKPOINTS)
    assert all(row.count("missing") == 1 for row in rows), "status and detail differ"
    assert "…" not in captured.out
    for rel in FILES:
        assert Path(rel).name in captured.out, "file names are whole"
    assert captured.err.startswith("error: 7 of 7 networks")


@pytest.mark.parametrize("what", ["does not exist", "is a file"])
def test_check_of_a_folder_that_is_not_there_says_so(what, tmp_path, capsys):
    folder = tmp_path / "nowhere"
    if what == "is a file":
        folder.write_text("")
    assert main(["weights", "check", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: weights folder {folder} {what}")


def test_download_through_the_hub_client_from_a_local_stand_in(synthetic_weights, tmp_path,
                                                               monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubStandIn(synthetic_weights.parent, HUB_REPO_ID) as hub:
        assert main(["weights", "download", str(tmp_path / "dl"), "--endpoint", hub.endpoint]) == 0
    assert "weights ready" in capsys.readouterr().out
    assert sum(r.startswith("GET") for r in hub.requests) == len(FILES)
    for rel in FILES:
        assert (tmp_path / "dl" / rel).read_bytes() == (synthetic_weights.parent / rel).read_bytes()


def test_download_failure_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubStandIn(tmp_path / "empty", HUB_REPO_ID) as hub:
        assert main(["weights", "download", str(tmp_path / "dl"), "--endpoint", hub.endpoint]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: could not download")
    assert not (tmp_path / "dl" / FILES[0]).exists()


@pytest.mark.parametrize("bad", ["missing.png", "notes.txt", "corrupt.png"])
def test_debug_stages_bad_input_exits_2_and_writes_nothing(bad, tmp_path, synthetic_weights,
                                                          capsys):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "stages.npz"
    rc = main(["debug-stages", "--weights_dir", str(synthetic_weights), "-s",
               str(tmp_path / bad), "-d", str(tmp_path / bad), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert not out.exists()


def test_console_script_and_module_entry_point():
    exe = Path(sys.executable).with_name("portrait-animate")
    for cmd in ([str(exe), "--help"], [sys.executable, "-m", "portrait_animate", "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert "debug-stages" in result.stdout and "weights" in result.stdout
