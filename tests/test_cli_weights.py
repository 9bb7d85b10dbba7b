"""The ``weights`` and ``debug-stages`` commands, end to end."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hub_standin import HubStandIn
from portrait_animate.cli import debug
from portrait_animate.cli.main import main
from portrait_animate.engines.neural import synthetic
from portrait_animate.engines.neural.config import CHECKPOINTS
from portrait_animate.engines.neural.hub import HUB_REPO_ID
from portrait_animate.errors import InputError
from servers import free_port

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


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "existing folder"])
def test_download_failure_is_one_clear_line_and_leaves_nothing(existing, tmp_path, monkeypatch,
                                                               capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    dest = tmp_path / "dl"
    if existing:
        (dest / "liveportrait").mkdir(parents=True)
        (dest / "liveportrait/notes.txt").write_text("mine")
    with HubStandIn(tmp_path / "empty", HUB_REPO_ID) as hub:
        assert main(["weights", "download", str(dest), "--endpoint", hub.endpoint]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: could not download")
    assert err.endswith("; check that the --endpoint given is reachable")  # not HF_ENDPOINT
    # no lock file, no empty folder: only what was there before
    left = sorted(str(p.relative_to(tmp_path)) for p in dest.rglob("*")) if dest.exists() else []
    assert left == (["dl/liveportrait", "dl/liveportrait/notes.txt"] if existing else [])
    assert dest.exists() == existing


class _DiskFullAtSecondFile(tempfile.TemporaryDirectory):
    """The temporary folder of ``weights synth``, where the second file lands on a full disk."""

    def __enter__(self) -> str:
        tmp = super().__enter__()
        full = Path(tmp, FILES[1])
        full.parent.mkdir(parents=True)
        full.symlink_to("/dev/full")
        return tmp


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("failure, existing", [("disk full", False), ("disk full", True),
                                               ("a file where a folder goes", True)])
def test_synth_failure_is_one_clear_line_and_leaves_only_what_was_there(
        failure, existing, tmp_path, monkeypatch, capsys):
    """The disk fills up while the files are written, or the second folder cannot be made
    once the first files are moved in: what the run made goes, what was there stays."""
    monkeypatch.setattr(synthetic, "synthetic_state_dict",
                        lambda checkpoint: OrderedDict(weight=torch.zeros(4)))
    dest = tmp_path / "new/w"
    before = []
    if existing:
        dest = tmp_path / "w"
        (dest / "liveportrait").mkdir(parents=True)
        (dest / "liveportrait/notes.txt").write_text("mine")
        before = ["w", "w/liveportrait", "w/liveportrait/notes.txt"]
    if failure == "disk full":
        monkeypatch.setattr(synthetic, "tempfile",
                            SimpleNamespace(TemporaryDirectory=_DiskFullAtSecondFile))
    else:
        (dest / "liveportrait/retargeting_models").write_text("a file, not a folder")
        before.append("w/liveportrait/retargeting_models")
    assert main(["weights", "synth", str(dest)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: cannot write synthetic weights under "
                                              f"{dest}: ")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("endpoint, env", [("notaurl", None), ("ftp://mirror", None),
                                           (None, "huggingface.co")])
def test_download_from_a_bad_address_says_which(endpoint, env, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    if env is None:
        monkeypatch.delenv("HF_ENDPOINT", raising=False)
    else:
        monkeypatch.setenv("HF_ENDPOINT", env)
    args = ["--endpoint", endpoint] if endpoint else []
    assert main(["weights", "download", str(tmp_path / "dl"), *args]) == 2
    err = capsys.readouterr().err.strip()
    origin = "--endpoint" if endpoint else "HF_ENDPOINT"
    assert "\n" not in err
    assert err.startswith(f"error: {origin} '{endpoint or env}' is not a hub address; ")
    assert not (tmp_path / "dl").exists()


@pytest.mark.parametrize("action", ["download", "synth"])
@pytest.mark.parametrize("where", ["file", "under a file", "cannot be made"])
def test_weights_into_a_folder_that_cannot_be_one_is_refused(action, where, tmp_path,
                                                             monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    taken = tmp_path / "taken.jpg"
    taken.write_bytes(b"keep me")
    dest = {"file": taken, "under a file": taken / "w", "cannot be made": Path("/proc/w")}[where]
    if action == "synth":
        assert main(["weights", "synth", str(dest)]) == 2
    else:
        with HubStandIn(tmp_path / "empty", HUB_REPO_ID) as hub:
            assert main(["weights", "download", str(dest), "--endpoint", hub.endpoint]) == 2
        assert hub.requests == [], "the folder is checked before the hub is asked"
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and str(dest) in err
    assert "check the network" not in err, "the folder is the problem, not the network"
    assert taken.read_bytes() == b"keep me" and not Path("/proc/w").exists()


def test_check_reports_a_junk_safetensors_file_as_invalid_by_its_name(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "liveportrait/base_models").mkdir(parents=True)
    (tmp_path / "liveportrait/base_models/warping_module.safetensors").write_text("hello\n")
    assert main(["weights", "check", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if "warping_module" in line)
    assert "invalid: weights file is not a valid checkpoint" in row
    assert "warping_module.safetensors" in row, "the file checked is the one named"
    assert captured.err.startswith("error: 7 of 7 networks")


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


@pytest.mark.parametrize("problem", ["--out is a folder", "--save_image is text",
                                     "--save_image is --out", "--save_image in a file"])
def test_debug_stages_bad_outputs_are_refused_before_any_work(problem, tmp_path, monkeypatch,
                                                              capsys):
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(debug, "read_image_rgb", refuse)
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "taken").write_text("")
    out, image = {"--out is a folder": ("folder.npz", None),
                  "--save_image is text": ("b.npz", "img.txt"),
                  "--save_image is --out": ("b.png", "b.png"),
                  "--save_image in a file": ("b.npz", "taken/img.png")}[problem]
    args = ["--out", str(tmp_path / out)]
    if image:
        args += ["--save_image", str(tmp_path / image)]
    assert main(["debug-stages", "-s", "sample:astronaut", "-d", "sample:astronaut",
                 "--synthetic_weights", *args]) == 2
    err = capsys.readouterr().err.strip()
    option = problem.split()[0]
    assert "\n" not in err and err.startswith(f"error: {option} ") and "; " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.npz", "taken"]


def test_debug_stages_writes_both_outputs_or_neither(tmp_path, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise InputError("cannot write image; stands in for a full disk")

    monkeypatch.setattr(debug.LivePortraitNetworks, "from_pretrained",
                        lambda *args, **kwargs: None)
    monkeypatch.setattr(debug, "dump_stages", lambda *args: {
        "G_image_uint8": np.zeros((4, 4, 3), np.uint8)})
    monkeypatch.setattr(debug, "write_image_rgb", fail)
    assert main(["debug-stages", "-s", "sample:astronaut", "-d", "sample:astronaut",
                 "--out", str(tmp_path / "b.npz"),
                 "--save_image", str(tmp_path / "b.png")]) == 2
    assert list(tmp_path.iterdir()) == []


def test_console_script_and_module_entry_point():
    exe = Path(sys.executable).with_name("portrait-animate")
    for cmd in ([str(exe), "--help"], [sys.executable, "-m", "portrait_animate", "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert "debug-stages" in result.stdout and "weights" in result.stdout


def _copied_weights(synthetic_weights: Path, folder: Path, marked: bool) -> Path:
    """The cached synthetic weights copied into ``folder``, with their SYNTHETIC file or, as
    downloaded weights are, without (a copy, not another `weights synth`: 30-50 s each)."""
    for rel in FILES:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes((synthetic_weights.parent / rel).read_bytes())
    if marked:
        (folder / "liveportrait" / synthetic.MARKER).write_text("synthetic\n")
    return folder


def test_synth_does_not_replace_weights_it_did_not_write(synthetic_weights, tmp_path, capsys,
                                                         monkeypatch):
    """Downloaded weights (no SYNTHETIC file) were overwritten without a word: 500 MB that
    cannot be had again offline."""
    real = _copied_weights(synthetic_weights, tmp_path / "real", marked=False)
    state = torch.load(real / FILES[-1], weights_only=True)  # one file off the fill rule
    for network in state.values():
        for value in network.values():
            value.add_(1.0)
    torch.save(state, real / FILES[-1])
    before = {rel: (real / rel).read_bytes() for rel in FILES}
    assert main(["weights", "synth", str(real)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {real} holds LivePortrait weights that are not synthetic "
                   f"({FILES[-1]}, and no {synthetic.MARKER} file): synthetic ones would "
                   "replace them; give another folder\n")
    assert {rel: (real / rel).read_bytes() for rel in FILES} == before
    assert sorted(p.name for p in real.iterdir()) == ["liveportrait"]
    # synthetic weights are written again, of its own or of the fill rule without the marker
    # (written tiny here: what is written again is not the point)
    monkeypatch.setattr(synthetic, "synthetic_state_dict",
                        lambda checkpoint: OrderedDict(weight=torch.zeros(4)))
    for name, marked in (("synth", True), ("unmarked", False)):
        folder = _copied_weights(synthetic_weights, tmp_path / name, marked=marked)
        assert main(["weights", "synth", str(folder)]) == 0
        assert (folder / "liveportrait" / synthetic.MARKER).is_file()
        assert torch.load(folder / FILES[0], weights_only=True)["weight"].numel() == 4


def test_a_download_over_synthetic_weights_drops_their_marker(synthetic_weights, tmp_path,
                                                              monkeypatch, capsys):
    """The marker of `weights synth` left in the folder called the downloaded weights
    synthetic for good."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _copied_weights(synthetic_weights, tmp_path / "dl", marked=True)
    with HubStandIn(synthetic_weights.parent, HUB_REPO_ID) as hub:
        assert main(["weights", "download", str(tmp_path / "dl"), "--endpoint",
                     hub.endpoint]) == 0
    assert not (tmp_path / "dl/liveportrait" / synthetic.MARKER).exists()


def test_a_download_over_synthetic_weights_that_reaches_no_hub_fails_and_keeps_them(
        synthetic_weights, tmp_path, monkeypatch, capsys):
    """The hub client kept the synthetic files when the hub could not be reached: "weights
    ready", exit 0, and their marker removed, so that they passed for real weights."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    dest = _copied_weights(synthetic_weights, tmp_path / "dl", marked=True)
    before = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens on it
    assert main(["weights", "download", str(dest), "--endpoint", endpoint]) == 2
    captured = capsys.readouterr()
    assert "weights ready" not in captured.out
    err = captured.err.strip()
    assert "\n" not in err and err.startswith(f"error: could not download {FILES[0]} from ")
    assert err.endswith("; check that the --endpoint given is reachable")
    assert {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*")
            if p.is_file()} == before  # the marker too, and no lock or partial file


def test_options_are_not_abbreviated(capsys):
    """`--device cuda` was taken as `--device_id cuda` (an invalid int), `--device 1` as
    `--device_id 1` without a word."""
    for value in ("cuda", "1"):
        with pytest.raises(SystemExit) as exit_:
            main(["animate", "-s", "a.jpg", "-d", "b.jpg", "--device", value])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.endswith(f"unrecognized arguments: --device {value}; did you mean "
                            "--device_id?")
