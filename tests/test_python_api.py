"""portrait-animate from Python: what a script that calls it many times, or with its own
values, meets."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from portrait_animate.errors import InputError
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.options import AnimateOptions

# A script's loop: animate() ten times with the engine it loads itself; the process's memory
# after the 3rd and the 10th call, and its thread settings before and after.
_LOOP = """
import json, sys, cv2, torch
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.options import AnimateOptions
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
threads = lambda: (torch.get_num_threads(), cv2.getNumThreads())
before, memory = threads(), {}
for i in range(1, 11):
    animate(AnimateOptions(source=sys.argv[1], driving=sys.argv[2], output_dir=sys.argv[3],
                           engine="classic", quiet=True))
    memory[i] = rss()
per_call = (memory[10] - memory[3]) / 7
print(json.dumps({"before": before, "after": threads(), "mb_per_call": per_call}))
"""


def test_animate_in_a_loop_keeps_memory_and_gives_the_threads_back(shared, tmp_path):
    """Each call's classic engine held a MediaPipe graph that was never closed (about 45 MB a
    call) and left torch and OpenCV on one thread for the rest of the script."""
    run = subprocess.run([sys.executable, "-c", _LOOP, str(shared / "assets/source/s0.jpg"),
                          str(shared / "assets/driving/d30.jpg"), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["mb_per_call"] < 12, figures
    assert figures["after"] == figures["before"], figures


@pytest.mark.parametrize("source", [None, b"s0.jpg", 3], ids=["None", "bytes", "int"])
def test_a_source_of_the_wrong_type_is_an_input_error(source, shared, tmp_path):
    """It crashed in the input's classification (AttributeError, TypeError) before the
    options' types were checked."""
    with pytest.raises(InputError, match="option 'source' is .*; give it a string"):
        animate(AnimateOptions(source, str(shared / "assets/driving/d30.jpg"),
                               output_dir=str(tmp_path / "out"), engine="classic"))
    assert not (tmp_path / "out").exists()


def test_numpy_numbers_are_taken_as_the_numbers_they_are():
    """A value computed with NumPy (np.float32, np.int64) was refused as '1.2; give it a
    number'."""
    options = AnimateOptions("a.jpg", "b.mp4", driving_multiplier=np.float32(0.5),
                             source_max_dim=np.int64(640), scale=np.int32(2))
    assert options.invalid_values() == []
    assert (options.driving_multiplier, options.source_max_dim, options.scale) == (0.5, 640, 2)
    assert [type(v) for v in (options.driving_multiplier, options.source_max_dim,
                              options.scale)] == [float, int, float]
    assert AnimateOptions("a.jpg", "b.mp4", source_max_dim=np.float32(640)).invalid_values() \
        == ["option 'source_max_dim' is 640.0; give it a whole number"]


def test_numpy_bools_and_face_numbers_are_taken_and_an_array_is_named_by_its_shape():
    """np.bool_(False) was refused as "is False; give it true or false", np.int64(0) as a
    frame number as "is 0; give it a string", and an image array given as a path filled
    the one-line error with its 40-line repr."""
    options = AnimateOptions("a.jpg", "b.mp4", flag_stitching=np.bool_(False),
                             driving_anchor=np.int64(0), source_faces=2)
    assert options.invalid_values() == []
    assert (options.flag_stitching, options.driving_anchor, options.source_faces) == (
        False, "0", "2")
    assert type(options.flag_stitching) is bool
    wrong = AnimateOptions(np.zeros((64, 64, 3), np.uint8), "b.mp4").invalid_values()
    assert wrong == ["option 'source' is a numpy.ndarray of shape (64, 64, 3); give it a "
                     "string"]


def test_image_editing_takes_a_path_and_refuses_edits_out_of_range(shared):
    """AnimateOptions takes paths as Path; so do the editing functions (they crashed:
    'PosixPath' object has no attribute 'startswith'). An edit out of the app's range drew a
    torn face (yaw 400) or streaks for eyes (eye ratio 5): it is refused as the app refuses
    it, and so is a value that is not a number."""
    from portrait_animate.engines.classic import ClassicEngine
    from portrait_animate.motion.editing import EditParams
    from portrait_animate.pipeline.retargeting import prepare_editable_image, render_edit

    engine = ClassicEngine()
    try:
        edit = prepare_editable_image(shared / "assets/source/s0.jpg", engine)
        assert render_edit(engine, edit, EditParams(yaw=25, smile=1.3)).pasted.shape == \
            edit.frame.shape
        for params, ratios, message in (
                (EditParams(yaw=400), {}, "edit yaw 400 is not a finite number from -25 to 25 "
                                          "(the app's slider reaches that far); pass one in that "
                                          "range"),
                (EditParams(smile=float("nan")), {}, "edit smile nan is not a finite number"),
                (EditParams(smile="0.5"), {}, "edit smile '0.5' is not a finite number"),
                (EditParams(), {"eye_ratio": 5.0}, "eye_ratio 5 is not a finite number from 0 "
                                                   "to 0.8"),
                (EditParams(), {"lip_ratio": -1.0}, "lip_ratio -1 is not a finite number from "
                                                    "0 to 0.8")):
            with pytest.raises(InputError, match=re.escape(message)):
                render_edit(engine, edit, params, **ratios)
    finally:
        engine.close()


@pytest.mark.parametrize("values, message", [
    ({"lip_ratio": "0.3"}, "lip_ratio '0.3' is not a finite number from 0 to 1 (a lip-open "
                           "ratio); pass one in that range, e.g. the default 0"),
    ({"scale": float("nan")}, "scale nan is not a finite number from 1 to 10"),
    ({"scale": 0.5}, "scale 0.5 is not a finite number from 1 to 10"),
    ({"smooth_observation_variance": float("nan")}, "smooth_observation_variance nan is not a "
                                                    "finite number above 0")])
def test_video_retargeting_options_that_are_no_numbers_are_refused(values, message):
    """They failed later: a TypeError, or the landmarks blamed for a NaN crop scale."""
    from portrait_animate.pipeline.retargeting import VideoRetargetOptions

    with pytest.raises(InputError, match=re.escape(message)):
        VideoRetargetOptions(**values).check()


def test_the_package_exports_the_api_and_imports_it_when_used():
    """``from portrait_animate import animate`` failed (the package exported nothing); the
    names are the pipeline's own, and ``import portrait_animate`` alone loads no torch."""
    import portrait_animate
    from portrait_animate import errors
    from portrait_animate.pipeline import animate as pipeline

    for name, where in (("animate", pipeline), ("AnimateResult", pipeline),
                        ("AnimateOptions", sys.modules[AnimateOptions.__module__]),
                        ("InputError", errors), ("WeightsError", errors)):
        assert getattr(portrait_animate, name) is getattr(where, name), name
    from portrait_animate import animate as run  # the README's import

    assert run is animate
    assert set(portrait_animate.__all__) <= set(dir(portrait_animate))
    with pytest.raises(AttributeError, match="has no attribute 'animat'"):
        portrait_animate.animat  # noqa: B018
    code = ("import sys, portrait_animate\n"
            "print(sorted({'torch', 'mediapipe', 'cv2'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True).stdout
    assert loaded.strip() == "[]"
