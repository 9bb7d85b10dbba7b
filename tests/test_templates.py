"""Motion templates: reference .pkl files through the restricted unpickler, and our .npz."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from portrait_animate.errors import InputError
from portrait_animate.io.templates import load_template, save_template
from portrait_animate.motion.model import Motion
from portrait_animate.motion.template import MotionTemplate


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
    motions = [Motion(scale=torch.rand(1, 1, generator=g), R=torch.rand(1, 3, 3, generator=g),
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


def test_foreign_npz_is_malformed(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="malformed motion template"):
        load_template(tmp_path / "other.npz")
