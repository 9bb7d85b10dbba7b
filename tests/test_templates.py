"""Motion templates: reference .pkl files through the restricted unpickler, and our .npz."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from portrait_animate.errors import InputError
from portrait_animate.io.templates import load_template, save_template, template_from_bytes
from portrait_animate.motion.model import Motion
from portrait_animate.motion.template import MotionTemplate
from portrait_animate.motion.transform import rotation_matrix
from portrait_animate.pipeline.inputs import InputKind, classify_input


def test_old_style_reference_template_with_aliases(shared):
    template = load_template(shared / "assets/driving/d1.pkl")
    assert template.n_frames == 16 and template.fps == 30
    assert template.eye_ratios.shape == (16, 2) and template.lip_ratios.shape == (16, 1)
    # SPEC 3.5 lists d1's eye ranges 0.010-0.362 / 0.012-0.372 and lip 0.001-0.004.
    assert template.eye_ratios[:, 0].min() == pytest.approx(0.010, abs=5e-4)
    assert template.eye_ratios[:, 1].max() == pytest.approx(0.372, abs=5e-4)
    assert template.lip_ratios.max() == pytest.approx(0.004, abs=5e-4)
    with open(shared / "assets/driving/d1.pkl", "rb") as fh:
        raw = pickle.load(fh)  # our own fixture file, trusted
    np.testing.assert_array_equal(template.motions[3].R.numpy(), raw["motion"][3]["R_d"])
    assert template.motions[0].kp is None


@pytest.mark.parametrize("name, frames, fps", [("wink", 57, 25), ("talking", 100, 20)])
def test_templates_without_ratio_lists(shared, name, frames, fps):
    template = load_template(shared / f"assets/driving/{name}.pkl")
    assert (template.n_frames, template.fps) == (frames, fps)
    assert template.eye_ratios is None and template.lip_ratios is None


def test_new_style_keys(tmp_path):
    item = {"scale": np.ones((1, 1), np.float32), "R": np.eye(3, dtype=np.float32)[None],
            "exp": np.zeros((1, 21, 3), np.float32), "t": np.zeros((1, 3), np.float32),
            "kp": np.ones((1, 21, 3), np.float32), "x_s": np.ones((1, 21, 3), np.float32)}
    data = {"n_frames": 2, "output_fps": 24, "motion": [item, item],
            "c_eyes_lst": [np.full((1, 2), 0.3, np.float32)] * 2,
            "c_lip_lst": [np.full((1, 1), 0.1, np.float32)] * 2}
    (tmp_path / "new.pkl").write_bytes(pickle.dumps(data))
    template = load_template(tmp_path / "new.pkl")
    assert template.n_frames == 2 and template.fps == 24
    assert torch.equal(template.motions[1].kp, torch.ones(1, 21, 3))


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/portrait-animate-pwned",))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = "/tmp/portrait-animate-pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"motion": [Exploit()]}))
    with pytest.raises(InputError, match=r"refused motion template .*posix\.system|os\.system"):
        load_template(tmp_path / "evil.pkl")
    assert not os.path.exists(marker)


@pytest.mark.parametrize("content, problem", [
    (pickle.dumps([1, 2, 3]), "no 'motion' list"),
    (pickle.dumps({"motion": []}), "empty"),
    (pickle.dumps({"motion": [{"scale": np.ones((1, 1))}]}), "lacks R, exp, t"),
    (pickle.dumps({"motion": [{"scale": np.ones(1), "R": np.eye(2), "exp": np.zeros(63),
                               "t": np.zeros(3)}]}), "R has shape"),
    (b"\x80\x04not really", "cannot be unpickled"),
])
def test_malformed_templates(tmp_path, content, problem):
    (tmp_path / "bad.pkl").write_bytes(content)
    with pytest.raises(InputError, match="malformed motion template") as info:
        load_template(tmp_path / "bad.pkl")
    assert problem in str(info.value)


def test_npz_round_trip_without_pickle(tmp_path):
    g = torch.Generator().manual_seed(0)
    motions = [Motion(scale=torch.rand(1, 1, generator=g),
                      R=rotation_matrix(*(30 * torch.randn(3, 1, generator=g))),
                      exp=torch.rand(1, 21, 3, generator=g), t=torch.rand(1, 3, generator=g),
                      kp=torch.rand(1, 21, 3, generator=g)) for _ in range(3)]
    original = MotionTemplate(motions, 29.97, np.full((3, 2), 0.3, np.float32),
                              np.full((3, 1), 0.05, np.float32))
    path = save_template(tmp_path / "t.npz", original)
    with np.load(path, allow_pickle=False) as data:
        assert "exp" in data.files
    loaded = load_template(path)
    assert loaded.fps == pytest.approx(29.97) and loaded.n_frames == 3
    for a, b in zip(original.motions, loaded.motions, strict=True):
        for name in ("scale", "R", "exp", "t", "kp"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(loaded.eye_ratios, original.eye_ratios)


def test_a_long_template_is_written_frame_by_frame(tmp_path):
    """2,000 frames of the classic engine's 478 points: what ``np.savez`` of the stacked arrays
    wrote (the same arrays read back, as bytes too), while NumPy holds well under one
    stacked array (11 MB) at once; the stacks of ``exp`` and ``kp`` and savez's copies took
    three times that at the end of a 3,000-frame ``animate``."""
    import tracemalloc

    from portrait_animate.io.templates import template_to_bytes

    g = torch.Generator().manual_seed(0)
    kp = torch.rand(1, 478, 3, generator=g)
    motions = [Motion(scale=torch.rand(1, 1, generator=g), R=torch.eye(3)[None],
                      exp=torch.rand(1, 478, 3, generator=g), t=torch.rand(1, 3, generator=g),
                      kp=kp) for _ in range(2000)]
    template = MotionTemplate(motions, 30.0, anchor=7, layout="mediapipe-478")
    tracemalloc.start()
    path = save_template(tmp_path / "long.npz", template)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2e6, peak
    expected = {name: np.stack([getattr(m, name).numpy() for m in motions])
                for name in ("scale", "R", "exp", "t", "kp")}
    for data in (path.read_bytes(), template_to_bytes(template)):
        loaded = template_from_bytes(data)
        assert loaded.n_frames == 2000 and loaded.anchor == 7
        for name, stacked in expected.items():
            np.testing.assert_array_equal(
                np.stack([getattr(m, name).numpy() for m in loaded.motions]), stacked)


def test_a_face_every_frame_shares_is_stored_once(tmp_path):
    """The classic engine's motions share one canonical face (``kp``): a template stores it
    once, a little over half the file, and every frame reads back that one tensor; a row a
    frame, as templates stored it before, still reads, and so do faces of their own."""
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(1, 478, 3, generator=g)
    motions = [Motion(scale=torch.rand(1, 1, generator=g), R=torch.eye(3)[None],
                      exp=torch.rand(1, 478, 3, generator=g), t=torch.rand(1, 3, generator=g),
                      kp=kp) for _ in range(40)]
    path = save_template(tmp_path / "shared.npz", MotionTemplate(motions, 30.0,
                                                                 layout="mediapipe-478"))
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays["kp"].shape == (1, 1, 478, 3)
    loaded = load_template(path).motions
    assert all(m.kp is loaded[0].kp for m in loaded) and torch.equal(loaded[0].kp, kp)
    arrays["kp"] = np.repeat(arrays["kp"], 40, axis=0)  # a row a frame
    np.savez(tmp_path / "rows.npz", **arrays)
    assert path.stat().st_size < 0.55 * (tmp_path / "rows.npz").stat().st_size
    for a, b in zip(load_template(tmp_path / "rows.npz").motions, loaded, strict=True):
        assert torch.equal(a.kp, b.kp) and torch.equal(a.exp, b.exp)
    own = [m.with_(kp=kp + i) for i, m in enumerate(motions)]  # each frame's own face
    path = save_template(tmp_path / "own.npz", MotionTemplate(own, 30.0, layout="mediapipe-478"))
    for a, b in zip(load_template(path).motions, own, strict=True):
        assert torch.equal(a.kp, b.kp)


def test_rows_of_another_shape_or_count_are_refused(tmp_path):
    from portrait_animate.io.files import Rows, save_npz

    good = [np.zeros((1, 3), np.float32)] * 2
    with pytest.raises(ValueError, match="row 1 of exp has shape"):
        save_npz(tmp_path / "a.npz", {"exp": Rows(2, (1, 3), np.float32,
                                                  [good[0], np.zeros((2, 3))])})
    with pytest.raises(ValueError, match="exp has 2 rows, not 3"):
        save_npz(tmp_path / "b.npz", {"exp": Rows(3, (1, 3), np.float32, good)})
    assert not list(tmp_path.iterdir())  # nothing half-written is left


def test_foreign_npz_is_malformed(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="malformed motion template"):
        load_template(tmp_path / "other.npz")


def _template(n: int = 3, k: int = 478, layout: str = "mediapipe-478") -> MotionTemplate:
    """A small valid template: real rotations, finite arrays, ratios and an anchor."""
    g = torch.Generator().manual_seed(1)
    motions = [Motion(scale=torch.full((1, 1), 0.7), R=rotation_matrix(*(10 * torch.randn(
        3, 1, generator=g))), exp=0.01 * torch.randn(1, k, 3, generator=g),
        t=torch.zeros(1, 3), kp=torch.randn(1, k, 3, generator=g)) for _ in range(n)]
    return MotionTemplate(motions, 25.0, np.full((n, 2), 0.3, np.float32),
                          np.full((n, 1), 0.02, np.float32), layout=layout, anchor=1)


@pytest.fixture
def arrays(tmp_path):
    """The arrays of a valid mediapipe-478 .npz template as ``save_template`` writes them."""
    with np.load(save_template(tmp_path / "ok.npz", _template())) as data:
        return {k: data[k] for k in data.files}


def _edit(name, value):
    def edit(arrays):
        arrays[name] = value(arrays[name]) if callable(value) else value
    return edit


def _poke(name, index, value):
    def edit(arrays):
        arrays[name] = arrays[name].copy()
        arrays[name][index] = value
    return edit


@pytest.mark.parametrize("edit, problem", [
    (_edit("fps", np.array(0.0)), "fps is 0, but a frame rate must be at least 0.01"),
    (_edit("fps", np.array(-5.0)), "fps is -5"),
    (_edit("fps", np.array(np.nan)), "fps is nan"),
    (_edit("fps", np.array(np.inf)), "fps is inf"),
    (_edit("fps", np.array(1e9)), "fps is 1e+09, but a frame rate must be at least 0.01 and "
                                  "below 1000"),
    (_edit("fps", np.array(1000.0)), "fps is 1000"),
    (_edit("fps", np.array("fast")), "fps is not numeric"),
    (_edit("fps", np.array([25.0, 30.0])), "fps has shape (2,), expected one number"),
    (lambda a: a.pop("fps"), "it lacks fps"),
    (_poke("exp", (1, 0, 5, 0), np.nan), "exp holds NaN or infinite values"),
    (_poke("scale", 2, np.inf), "scale holds NaN or infinite values"),
    (_poke("t", (0, 0, 1), -np.inf), "t holds NaN or infinite values"),
    (_poke("kp", (2, 0, 7, 2), np.nan), "kp holds NaN or infinite values"),
    (_poke("R", (0, 0, 1, 1), np.nan), "R holds NaN or infinite values"),
    (_poke("eye_ratios", (1, 0), np.nan), "eye_ratios holds NaN or infinite values"),
    (_poke("lip_ratios", (2, 0), -0.2), "lip_ratios of frame 2 is negative (-0.2), but an open "
                                        "ratio is a distance over a width, 0 or more"),
    (_edit("scale", lambda s: s.astype(np.float64) * 1e300), "scale holds NaN or infinite"),
    (_edit("exp", lambda e: e[:, :, :21].copy()),
     "exp has shape (3, 1, 21, 3), expected (3, 1, 478, 3) (mediapipe-478 templates have 478"),
    (_edit("kp", lambda e: e[:, :, :21].copy()), "kp has shape (3, 1, 21, 3)"),
    (_edit("t", lambda t: t[:2].copy()), "t has shape (2, 1, 3), expected (3, 1, 3)"),
    (_edit("R", lambda r: r.astype(bool)), "R is not numeric"),
    (_edit("exp", lambda e: e[:0].copy()), "exp holds no frames"),
    (_edit("layout", np.array("bogus-7")),
     "layout 'bogus-7' is none of the known layouts liveportrait-21, mediapipe-478"),
    (_edit("layout", np.array("liveportrait-21")),
     "exp has shape (3, 1, 478, 3), expected (3, 1, 21, 3)"),
    (lambda a: a.pop("layout"), "it lacks layout"),
    (_edit("R", lambda r: np.zeros_like(r)), "R[0] is not a rotation matrix"),
    (_edit("R", lambda r: 1.1 * r), "R[0] is not a rotation matrix"),
    (_poke("R", (2, 0, 2), -np.eye(3, dtype=np.float32)[2]), "R[2] is not a rotation matrix"),
    (_edit("anchor", np.array(7)), "anchor must be a frame index below 3"),
    (_edit("anchor", np.array(1.5)), "anchor is not a frame number"),
    (_edit("crop_box", np.array([0.0, 0.0, np.nan, 9.0])), "crop_box holds NaN"),
])
def test_malformed_npz_templates_are_refused(tmp_path, arrays, edit, problem):
    edit(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError) as info:
        load_template(tmp_path / "bad.npz")
    message = str(info.value)
    assert message.startswith(f"malformed motion template {tmp_path / 'bad.npz'}: ")
    assert problem in message and "\n" not in message
    assert message.endswith("re-create it with `portrait-animate animate` from the driving video")
    with pytest.raises(InputError, match="malformed motion template template.npz: "):
        template_from_bytes((tmp_path / "bad.npz").read_bytes())  # uploads: the same checks


def test_second_face_track_is_checked_too(tmp_path):
    from portrait_animate.io.templates import save_face_templates

    bad = _template()
    bad.motions[1] = bad.motions[1].with_(exp=torch.full((1, 478, 3), float("nan")))
    path = save_face_templates(tmp_path / "faces.npz", {0: _template(), 2: bad})
    assert load_template(path, 0).n_frames == 3
    with pytest.raises(InputError, match=r"face2/exp holds NaN or infinite values; re-create"):
        load_template(path, 2)


def test_valid_npz_loads_as_float32(tmp_path, arrays):
    arrays["R"] = np.broadcast_to(np.eye(3, dtype=np.int64), arrays["R"].shape).copy()
    arrays["eye_ratios"] = arrays["eye_ratios"].astype(np.float64)
    arrays["fps"] = np.array(24)
    np.savez(tmp_path / "ints.npz", **arrays)
    template = load_template(tmp_path / "ints.npz")
    for motion in template.motions:
        assert all(getattr(motion, k).dtype == torch.float32 for k in ("scale", "R", "exp", "t",
                                                                       "kp"))
        assert torch.equal(motion.R, torch.eye(3)[None])
    assert template.eye_ratios.dtype == np.float32 and template.fps == 24.0
    assert (template.layout, template.anchor, template.n_frames) == ("mediapipe-478", 1, 3)


@pytest.mark.parametrize("fps", [0.01, 29.97, 999.9])
def test_fps_range_edges_are_accepted(tmp_path, arrays, fps):
    arrays["fps"] = np.array(fps)
    np.savez(tmp_path / "t.npz", **arrays)
    assert load_template(tmp_path / "t.npz").fps == fps


def _reference(**changes):
    item = {"scale": np.ones((1, 1), np.float32), "R": np.eye(3, dtype=np.float32)[None],
            "exp": np.zeros((1, 21, 3), np.float32), "t": np.zeros((1, 3), np.float32)}
    data = {"n_frames": 2, "output_fps": 25, "motion": [item, dict(item)]}
    for key, value in changes.items():
        if key in item:
            data["motion"][1][key] = value
        elif value is None:
            data.pop(key)
        else:
            data[key] = value
    return pickle.dumps(data)


@pytest.mark.parametrize("content, problem", [
    (_reference(output_fps=0), "output_fps is 0, but a frame rate must be at least 0.01"),
    (_reference(output_fps=float("nan")), "output_fps is nan"),
    (_reference(output_fps=10**9), "output_fps is 1e+09"),
    (_reference(output_fps="25"), "output_fps is not numeric"),
    (_reference(exp=np.full((1, 21, 3), np.nan, np.float32)), "motion[1] exp holds NaN"),
    (_reference(scale=np.full((1, 1), np.inf)), "motion[1] scale holds NaN or infinite"),
    (_reference(exp=np.zeros((1, 478, 3), np.float32)),
     "motion[1] exp has shape (1, 478, 3), expected (1, 21, 3) (liveportrait-21 templates"),
    (_reference(R=np.zeros((1, 3, 3), np.float32)), "motion[1] R is not a rotation matrix"),
    (_reference(R=np.diag([1.0, 1.0, -1.0])[None]), "motion[1] R is not a rotation matrix"),
    (_reference(n_frames="2"), "n_frames is '2'"),
    (_reference(c_eyes_lst=[np.full((1, 2), np.nan)] * 2), "c_eyes_lst holds NaN"),
    (_reference(c_lip_lst=3), "c_lip_lst is a int, not a list"),
    (_reference(exp=[[1.0, 2.0], [3.0]]), "motion[1] exp is not an array of numbers"),
])
def test_malformed_reference_templates_are_refused(tmp_path, content, problem):
    (tmp_path / "bad.pkl").write_bytes(content)
    with pytest.raises(InputError, match="malformed motion template") as info:
        load_template(tmp_path / "bad.pkl")
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_reference_template_without_fps_plays_at_25(tmp_path):
    (tmp_path / "t.pkl").write_bytes(_reference(output_fps=None, n_frames=None,
                                                R=np.eye(3, dtype=np.int64)[None]))
    template = load_template(tmp_path / "t.pkl")
    assert template.fps == 25 and template.n_frames == 2
    assert template.motions[1].R.dtype == torch.float32


@pytest.mark.parametrize("name", ["T.NPZ", "T.Npz", "R.PKL"])
def test_template_extensions_are_case_insensitive(tmp_path, shared, name):
    path = tmp_path / name
    if name.lower().endswith(".pkl"):
        path.write_bytes((shared / "assets/driving/wink.pkl").read_bytes())
    else:
        save_template(tmp_path / "t.npz", _template(2)).rename(path)
    assert classify_input(str(path), "driving", allow_template=True) is InputKind.TEMPLATE
    assert load_template(path).n_frames in (2, 57)


def _damaged(tmp_path, how: str):
    """A valid template file, damaged: cut in half, a zip header and junk, or one byte of an
    array flipped (its CRC no longer matches)."""
    path = save_template(tmp_path / "t.npz", _template())
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "junk":
        data = b"PK\x03\x04" + bytes(96)
    else:
        at = data.index(b"exp.npy") + 200  # inside the exp array's data
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["truncated", "junk", "flipped byte"])
def test_damaged_npz_is_one_error_line(tmp_path, capsys, how):
    """zipfile.BadZipFile (a cut file, a bad CRC) is refused like any other bad template."""
    from portrait_animate.cli.main import main

    path = _damaged(tmp_path, how)
    with pytest.raises(InputError, match="it is not a readable .npz"):
        load_template(path)
    out = tmp_path / "out"
    assert main(["animate", "-s", "sample:astronaut", "-d", str(path), "--engine", "classic",
                 "-o", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: malformed motion template {path}")
    assert not out.exists()
