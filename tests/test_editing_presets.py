"""Editing sliders on both layouts, and the presets built from them."""

from __future__ import annotations

import pytest
import torch

from portrait_animate.cli.main import main
from portrait_animate.engines.classic.anatomy import LOWER_LIDS, UPPER_LIDS
from portrait_animate.engines.classic.motion import classic_layout
from portrait_animate.motion.editing import EditParams, liveportrait_edits
from portrait_animate.motion.model import LIVEPORTRAIT_LAYOUT
from portrait_animate.motion.presets import PRESETS, preset_edits, preset_template

ZERO = torch.zeros(1, 21, 3)


def test_smile_follows_the_reference_table():
    out = liveportrait_edits(ZERO, EditParams(smile=1.0))
    expected = torch.zeros(1, 21, 3)
    for kp, axis, v in [(20, 1, -0.01), (14, 1, -0.02), (17, 1, 0.0065), (17, 2, 0.003),
                        (13, 1, -0.00275), (16, 1, -0.00275), (3, 1, -0.0035), (7, 1, -0.0035)]:
        expected[0, kp, axis] = v
    torch.testing.assert_close(out, expected)


def test_vertical_gaze_nets_half_on_irises_and_eyebrow_sign_branches():
    out = liveportrait_edits(ZERO, EditParams(gaze_y=10.0))
    assert out[0, 11, 1].item() == pytest.approx(-0.005, abs=1e-7)
    assert out[0, 13, 1].item() == pytest.approx(-0.0015, abs=1e-7)
    up = liveportrait_edits(ZERO, EditParams(eyebrow=10.0))
    down = liveportrait_edits(ZERO, EditParams(eyebrow=-10.0))
    assert up[0, 1, 0] == 0 and down[0, 1, 0] != 0


def test_edits_do_not_modify_their_input():
    exp = torch.zeros(1, 21, 3)
    liveportrait_edits(exp, EditParams(smile=1.0, wink=10.0, lip_open=50.0))
    assert exp.abs().sum() == 0


def test_mesh_blink_brings_upper_lids_down():
    delta = classic_layout().edit(torch.zeros(1, 478, 3), EditParams(blink=30.0))[0]
    for eye in range(2):
        assert (delta[list(UPPER_LIDS[eye]), 1] > 0).all()
        assert (delta[list(LOWER_LIDS[eye]), 1] <= 0).all()


def test_mesh_lip_open_drops_the_lower_lip_and_smile_raises_corners():
    layout = classic_layout()
    opened = layout.edit(torch.zeros(1, 478, 3), EditParams(lip_open=60.0))[0]
    assert opened[14, 1] > 0.02 and opened[152, 1] > 0.02 and opened[13, 1] == 0
    smile = layout.edit(torch.zeros(1, 478, 3), EditParams(smile=1.0))[0]
    assert smile[61, 1] < 0 and smile[291, 1] < 0


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_start_neutral_and_move(name):
    edits = preset_edits(name)
    assert edits[0] == EditParams() and len(edits) == int(PRESETS[name][0] * 25)
    for layout in (LIVEPORTRAIT_LAYOUT, classic_layout()):
        template = preset_template(name, layout)
        assert template.fps == 25 and template.layout == layout.name
        first = template.motions[0]
        torch.testing.assert_close(first.R, torch.eye(3)[None])
        assert first.exp.abs().max() == 0
        moves = max(float((m.exp - first.exp).abs().max() + (m.R - first.R).abs().max())
                    for m in template.motions)
        assert moves > 1e-3


def test_presets_command_lists_them(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("blink", "smile", "nod", "shake", "talk", "surprise"):
        assert f"preset:{name}" in out


def test_unknown_preset_is_a_clear_error(tmp_path, capsys):
    assert main(["animate", "-s", "sample:astronaut", "-d", "preset:dance", "-o",
                 str(tmp_path), "--engine", "classic"]) == 2
    assert "unknown preset 'dance'" in capsys.readouterr().err
