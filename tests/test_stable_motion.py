"""Stable motion (issue 12): smoothing of the driving motion and of a source video's crops,
the neutral anchor, and classic video-to-video that costs about what image-to-video does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from media import clip, read_video, write_video
from portrait_animate.cli.main import main
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.engines.classic.anatomy import LIPS
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.io.templates import load_template
from portrait_animate.motion.anchor import choose_anchor
from portrait_animate.motion.model import Motion
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.driving import _FaceAnalysis, prepare_driving
from portrait_animate.pipeline.engines import load_engine
from portrait_animate.pipeline.faces import CROP_SIZE, CropSettings, lag_weight
from portrait_animate.pipeline.inputs import InputKind
from portrait_animate.pipeline.options import AnimateOptions
from portrait_animate.pipeline.progress import Reporter
from portrait_animate.pipeline.source import PreparedSource, SourceFrame, prepare_source

SIZE = 256
#: d0's frame 28 is a broad smile with teeth; its frames 0-9 are neutral.
SMILE, NEUTRAL = 28, range(10)


def _d0_frames(shared: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    frames, _ = read_video(shared / "assets/driving/d0.mp4")
    return {i: cv2.resize(frames[i], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            for i in set(wanted)}


def _noisy_still(frame: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


def _mouth(mesh: FaceMesh, image: np.ndarray) -> np.ndarray:
    """The lips' landmarks around their centre, in inter-pupil distances."""
    points = mesh.landmarks(image)
    assert points is not None
    lips = points[list(LIPS)]
    return (lips - lips.mean(axis=0)) / np.linalg.norm(points[468] - points[473])


def test_auto_anchor_skips_a_smiling_first_frame(shared, tmp_path):
    d0 = _d0_frames(shared, [SMILE, *NEUTRAL])
    driving = write_video([d0[SMILE]] * 2 + [d0[i] for i in NEUTRAL], tmp_path / "smile.mp4")
    source = tmp_path / "source.png"
    cv2.imwrite(str(source), cv2.cvtColor(d0[0], cv2.COLOR_RGB2BGR))
    results = {}
    for anchor in ("auto", "first"):
        results[anchor] = animate(AnimateOptions(
            source=str(source), driving=str(driving), output_dir=str(tmp_path / anchor),
            engine="classic", quiet=True, save_frames=True, driving_anchor=anchor))
    chosen = load_template(results["auto"].template).anchor
    assert chosen >= 2, f"auto kept the smiling frame {chosen} as the anchor"
    assert load_template(results["first"].template).anchor == 0
    with FaceMesh() as mesh:
        rest = _mouth(mesh, d0[0])
        errors = {}
        for anchor, result in results.items():
            pngs = sorted(result.frames_dir.glob("*.png"))[2:]  # the driver is neutral here
            errors[anchor] = np.mean([
                np.linalg.norm(_mouth(mesh, cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))
                               - rest, axis=1).mean() for p in pngs])
    # auto: the neutral driver leaves the mouth at rest; first: the smile is taken away
    assert errors["auto"] < 0.03, errors
    assert errors["first"] > 2 * errors["auto"], errors


def test_anchor_index_and_bad_anchors(shared, tmp_path, capsys):
    d0 = _d0_frames(shared, list(NEUTRAL))
    driving = write_video([d0[i] for i in NEUTRAL], tmp_path / "d.mp4")
    source = tmp_path / "s.png"
    cv2.imwrite(str(source), cv2.cvtColor(d0[0], cv2.COLOR_RGB2BGR))
    base = ["animate", "--engine", "classic", "-s", str(source), "-d", str(driving)]
    assert main([*base, "-o", str(tmp_path / "ok"), "--driving_anchor", "4"]) == 0
    assert "driving anchor: frame 4 (--driving_anchor 4)" in capsys.readouterr().err
    assert load_template(tmp_path / "ok/d_template.npz").anchor == 4
    # classic absolute driving takes the source to the anchor's expression first: it is
    # the one asked for, not the first frame whatever the option says
    assert main([*base, "-o", str(tmp_path / "abs"), "--driving_anchor", "4",
                 "--no_flag_relative_motion"]) == 0
    assert "driving anchor: frame 4 (--driving_anchor 4)" in capsys.readouterr().err
    # the template keeps its anchor: auto takes it, and says so
    template = tmp_path / "ok/d_template.npz"
    assert main([*base[:-2], "-d", str(template), "-o", str(tmp_path / "tpl")]) == 0
    assert "driving anchor: frame 4 (saved in the template)" in capsys.readouterr().err
    image = ["-d", str(source)]  # a driving image has one frame
    for value, words, drive in (("40", "past the last frame", []),
                                ("middle", "not first, auto", []),
                                ("2", "past the last frame of the driving image", image)):
        out = tmp_path / f"bad{value}"
        assert main([*base, *drive, "-o", str(out), "--driving_anchor", value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and "Traceback" not in err[0], err
        assert not out.exists() or not any(out.iterdir())


def _rendered_motion(template: Path) -> float:
    motions = load_template(template).motions
    x = np.stack([m.keypoints()[0].numpy() for m in motions])
    iod = np.linalg.norm(x[:, 468, :2] - x[:, 473, :2], axis=1).mean()
    return float(np.linalg.norm(np.diff(x[:, :468, :2], axis=0), axis=-1).mean() / iod)


def test_driving_smooth_steadies_a_still_driver(shared, tmp_path):
    frame = _d0_frames(shared, [0])[0]
    driving = write_video(_noisy_still(frame, 24), tmp_path / "still.mp4")
    source = tmp_path / "s.png"
    cv2.imwrite(str(source), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    motion = {}
    for smooth in (0.0, AnimateOptions.driving_smooth):
        result = animate(AnimateOptions(source=str(source), driving=str(driving),
                                        output_dir=str(tmp_path / str(smooth)), quiet=True,
                                        engine="classic", driving_smooth=smooth))
        motion[smooth] = _rendered_motion(result.template)
    assert motion[AnimateOptions.driving_smooth] < 0.4 * motion[0.0], motion


def test_source_video_crops_keep_still(shared, tmp_path):
    frame = _d0_frames(shared, [0])[0]
    video = write_video(_noisy_still(frame, 16, seed=1), tmp_path / "src.mp4")
    centres = {}
    with FaceMesh() as mesh:
        for smooth in (0.0, 2.5):
            engine = load_engine(AnimateOptions(source="", driving="", engine="classic"),
                                 Reporter(quiet=True))
            source = prepare_source(str(video), InputKind.VIDEO, engine, mesh,
                                    CropSettings(2.3, 0.0, -0.125), True, 1280, 2, None,
                                    Reporter(quiet=True), smooth=smooth)
            centres[smooth] = np.stack([b.center for b in source._track.boxes])
            shifts = [info.shift for info in source.frames_info]
    jitter = {k: np.linalg.norm(np.diff(c, axis=0), axis=1).mean() for k, c in centres.items()}
    assert jitter[2.5] < 0.5 * jitter[0.0], jitter
    assert shifts == [None] * len(shifts)  # a still head's warp starts from its smoothed face


def test_absolute_driving_warps_a_video_source_from_where_its_frames_show_the_face(shared,
                                                                                  tmp_path):
    """Absolute driving puts the face where the driver's is, so the warp must start from where
    each frame shows it: from landmarks smoothed to where the face had been (2.3 px behind at
    the end of this bending head's clip), the upper lip slid into the nose over 16 frames (the
    gap fell from 0.047 to 0.021 face sizes). The crops stay the smoothed, still ones."""
    video = clip(shared / "assets/source/s13.mp4", tmp_path / "s.mp4", 0.64)  # 16 frames
    sources = {}
    with FaceMesh() as mesh:
        engine = load_engine(AnimateOptions(source="", driving="", engine="classic"),
                             Reporter(quiet=True))
        for smooth, landmarks in ((0.0, True), (2.5, True), (2.5, False)):
            sources[smooth, landmarks] = prepare_source(
                str(video), InputKind.VIDEO, engine, mesh, CropSettings(2.3, 0.0, -0.125), True,
                1280, 2, None, Reporter(quiet=True), smooth=smooth, smooth_landmarks=landmarks)

    raw, smoothed, absolute = (_in_frame(sources[key])
                               for key in ((0.0, True), (2.5, True), (2.5, False)))
    mouth = [0, 2, 13, 14, 17]
    assert np.linalg.norm(smoothed - raw, axis=-1)[-2:, mouth].mean() > 1.0
    assert np.abs(absolute - raw).max() < 0.01  # float32 keypoints: the same landmarks
    assert [b.center.tolist() for b in sources[2.5, False]._track.boxes] == \
        [b.center.tolist() for b in sources[2.5, True]._track.boxes]


def _in_frame(source: PreparedSource, warped: bool = False) -> np.ndarray:
    """(T, 478, 2) the landmarks each frame's motion was taken from (or, ``warped``, those its
    warp starts from), in frame pixels: the classic motion's keypoints are its landmarks in
    the crop's [-1, 1] frame."""
    points = [(info.warp(info.x_s)[0] if warped else info.x_s)[0, :, :2].numpy()
              for info in source.frames_info]
    return np.stack([((p + 1) * CROP_SIZE / 2) @ info.M_c2o[:2, :2].T + info.M_c2o[:2, 2]
                     for p, info in zip(points, source.frames_info, strict=True)])


def test_relative_driving_warps_a_moving_video_source_from_where_its_frames_show_the_face(
        shared, tmp_path, monkeypatch):
    """Relative driving moves a video source by its smoothed motion, but its warp must start
    where each frame shows the face: a dancer's head steps every other frame (a doubled frame
    rate), the smoothed landmarks lag it by 0.07 eye spans on average, and the mouth was
    painted a lip's width above hers. Where they lag, the warp starts from the frame's own
    landmarks (from the smoothed ones while they differ by the mesh's tremble alone)."""
    video = clip(shared / "assets/source/s13.mp4", tmp_path / "s.mp4", 1.2)  # 30 frames
    sources = {}
    with FaceMesh() as mesh:
        engine = load_engine(AnimateOptions(source="", driving="", engine="classic"),
                             Reporter(quiet=True))
        for smooth in (0.0, 2.5):
            sources[smooth] = prepare_source(
                str(video), InputKind.VIDEO, engine, mesh, CropSettings(2.3, 0.0, -0.125), True,
                1280, 2, None, Reporter(quiet=True), smooth=smooth)
    raw, smoothed, warped = (_in_frame(sources[0.0]), _in_frame(sources[2.5]),
                             _in_frame(sources[2.5], warped=True))
    weights = np.array([lag_weight(r, s) for r, s in zip(raw, smoothed, strict=True)])
    shifted = [info.shift is not None for info in sources[2.5].frames_info]
    assert shifted == (weights > 0).tolist() and (weights == 1).sum() >= 10, weights
    lag, left = (np.linalg.norm(p - raw, axis=-1).mean(axis=1) for p in (smoothed, warped))
    assert (lag[weights == 1] > 1.0).all() and (left[weights == 1] < 0.01).all(), (lag, left)
    partly = (weights > 0) & (weights < 1)
    assert np.allclose(left[partly], (1 - weights[partly]) * lag[partly], atol=0.01)
    assert (left[weights == 0] == lag[weights == 0]).all()

    # animate hands the renderer those keypoints, moved by the same displacement as before
    rendered: dict[str, list] = {"warped": [], "smoothed": []}
    render = ClassicEngine.render_faces
    for name in rendered:
        def spy(self, items, into=rendered[name]):
            into.append((items[0].x_s.clone(), items[0].x_d.clone()))
            return render(self, items)

        with monkeypatch.context() as patch:
            patch.setattr(ClassicEngine, "render_faces", spy)
            if name == "smoothed":
                patch.setattr(SourceFrame, "warp", lambda self, x_d: (self.x_s, x_d))
            animate(AnimateOptions(source=str(video), driving=str(video), engine="classic",
                                   output_dir=str(tmp_path / name), quiet=True))
    frames = sources[2.5].frames_info
    for info, (x_s, x_d), (x_s_0, x_d_0) in zip(frames, *rendered.values(), strict=True):
        assert torch.allclose(x_s, info.warp(info.x_s)[0]) and torch.equal(x_s_0, info.x_s)
        assert torch.allclose(x_d - x_s, x_d_0 - x_s_0, atol=1e-6)


# Peak RSS from VmHWM: ru_maxrss would carry the parent's (pytest's) peak across exec.
# The cost is CPU seconds (the process's and its ffmpeg children's), not wall time, which
# tests running beside this one would stretch for one measurement and not the other.
_MEASURE = """
import json, resource, sys
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.driving import _FaceAnalysis, prepare_driving
from portrait_animate.pipeline.options import AnimateOptions
result = animate(AnimateOptions(source=sys.argv[1], driving=sys.argv[2], output_dir=sys.argv[3],
                                engine="classic", quiet=True))
used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
status = open("/proc/self/status").read()
peak_kb = int(status.split("VmHWM:")[1].split()[0])
print(json.dumps({"seconds": sum(u.ru_utime + u.ru_stime for u in used),
                  "frames": result.n_frames, "rss_mb": peak_kb / 1024}))
"""


def _measure(source: Path, driving: Path, out: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(source), str(driving), str(out)],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_classic_video_to_video_scales(shared, tmp_path):
    """300 frames of video driving video: flat memory, and about the cost of an image source
    per frame (the O(D^3) Kalman smoother took minutes and GBs here)."""
    d0 = _d0_frames(shared, list(NEUTRAL))
    frames = [d0[i] for i in NEUTRAL]
    video = write_video([frames[(i // 10) % 2 * 9 + (-1) ** ((i // 10) % 2) * (i % 10)]
                         for i in range(300)], tmp_path / "v300.mp4")
    image = tmp_path / "first.png"
    cv2.imwrite(str(image), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    v2v = _measure(video, video, tmp_path / "v2v")
    i2v = _measure(image, video, tmp_path / "i2v")
    assert v2v["frames"] == i2v["frames"] == 300
    assert v2v["rss_mb"] < 1500, v2v
    per_frame = {k: m["seconds"] / m["frames"] for k, m in (("v2v", v2v), ("i2v", i2v))}
    assert per_frame["v2v"] <= 2 * per_frame["i2v"], per_frame


def test_frames_without_the_driving_face_are_told_and_never_the_auto_anchor(shared, tmp_path,
                                                                            capsys):
    """A driver whose face comes in at frame 2: frames 0-1 borrow its face, are named in a
    note, and are not the auto anchor."""
    d0 = _d0_frames(shared, list(NEUTRAL))
    black = np.zeros_like(d0[0])
    driving = write_video([black, black, *(d0[i] for i in range(6))], tmp_path / "late.mp4")
    source = tmp_path / "s.png"
    cv2.imwrite(str(source), cv2.cvtColor(d0[0], cv2.COLOR_RGB2BGR))
    base = ["animate", "--engine", "classic", "-s", str(source), "-d", str(driving)]
    assert main([*base, "-o", str(tmp_path / "auto")]) == 0
    err = capsys.readouterr().err
    assert "the driving face is not found in 2 of 8 frames (0-1)" in err, err
    assert load_template(tmp_path / "auto/late_template.npz").anchor >= 2
    assert main([*base, "-o", str(tmp_path / "first"), "--driving_anchor", "0",
                 "--flag_crop_driving_video"]) == 0
    assert "warning: the driving face is not found in the anchor frame 0" in \
        capsys.readouterr().err


def test_the_auto_anchor_pass_smooths_the_driver_once(shared, tmp_path, monkeypatch):
    """The auto anchor's pass smooths and keeps every driving frame's motion; rendering takes
    them as kept (and lets the raw motions go) instead of smoothing the whole driver again:
    one smoothing pass, the video and template those of the same anchor given by index."""
    import portrait_animate.pipeline.driving as driving_module

    d0 = _d0_frames(shared, list(NEUTRAL))
    driving = write_video([d0[i] for i in NEUTRAL], tmp_path / "d.mp4")
    source = tmp_path / "s.png"
    cv2.imwrite(str(source), cv2.cvtColor(d0[0], cv2.COLOR_RGB2BGR))
    passes = []
    smooth = driving_module.smooth_motion_stream
    monkeypatch.setattr(driving_module, "smooth_motion_stream",
                        lambda *args: passes.append(1) or smooth(*args))

    def run(anchor: str) -> tuple[np.ndarray, object]:
        assert main(["animate", "--engine", "classic", "-s", str(source), "-d", str(driving),
                     "-o", str(tmp_path / anchor), "--driving_anchor", anchor]) == 0
        frames, _ = read_video(tmp_path / anchor / "s--d.mp4")
        return np.stack(frames), load_template(tmp_path / anchor / "d_template.npz")

    video, template = run("auto")
    assert len(passes) == 1  # rendering smoothed nothing again (it did: 2 passes)
    same_video, same_template = run(str(template.anchor))
    np.testing.assert_array_equal(video, same_video)
    for a, b in zip(template.motions, same_template.motions, strict=True):
        assert torch.equal(a.exp, b.exp) and torch.equal(a.R, b.R)


def test_a_driver_lets_each_frames_landmarks_go_once_its_motion_is_taken(shared, tmp_path,
                                                                          monkeypatch):
    """The driving frames' landmarks (a frame's largest share of what a long driver holds)
    are let go as their motion is taken, but for the face that frames without one borrow:
    the same motions as when every frame's are kept, faceless frames included."""
    d0 = _d0_frames(shared, list(NEUTRAL))
    black = np.zeros_like(d0[0])
    frames = [black, d0[0], d0[1], black, black, d0[2], d0[3], black, d0[4], d0[5]]
    video = write_video(frames, tmp_path / "gaps.mp4")
    engine = load_engine(AnimateOptions(source="", driving="", engine="classic"),
                         Reporter(quiet=True))

    def motions() -> tuple[list[Motion], int]:
        with FaceMesh() as mesh, prepare_driving(
                str(video), InputKind.VIDEO, engine, mesh, CropSettings(2.2, 0.0, -0.1),
                False, None, Reporter(quiet=True), smooth=2.5, batch=3) as driving:
            taken = driving.motions(len(frames))
            faces = driving._analysis.faces()
            return taken, len({id(f) for f in faces if f.points is not None})

    taken, holding = motions()
    assert holding == 1  # the last face found, which a faceless last frame would borrow
    monkeypatch.setattr(_FaceAnalysis, "let_go_points", lambda self, n: None)
    kept, holding = motions()
    assert holding == 6  # every frame with a face of its own
    for a, b in zip(taken, kept, strict=True):
        assert torch.equal(a.exp, b.exp) and torch.equal(a.R, b.R) and torch.equal(a.t, b.t)


def test_a_pass_begun_before_the_whole_driver_is_taken_reads_on(shared, tmp_path):
    """Rendering begins a smoothing pass; absolute driving then chooses the auto anchor at
    frame 0, whose pass takes the whole driver: the first pass reads on to the end (it lost
    the raw motions it smooths when the second let them go), with the same motions."""
    d0 = _d0_frames(shared, list(NEUTRAL))
    video = write_video([d0[i] for i in NEUTRAL], tmp_path / "d.mp4")
    engine = load_engine(AnimateOptions(source="", driving="", engine="classic"),
                         Reporter(quiet=True))
    with FaceMesh() as mesh, prepare_driving(
            str(video), InputKind.VIDEO, engine, mesh, CropSettings(2.2, 0.0, -0.1), False,
            None, Reporter(quiet=True), smooth=2.5, anchor="auto", batch=2) as driving:
        rendering = driving.frames(len(NEUTRAL))
        first = next(rendering)
        whole = driving.template.motions
        shown = [first, *rendering]
    assert len(shown) == len(whole) == len(NEUTRAL)
    for (_, motion), kept in zip(shown, whole, strict=True):
        assert motion is kept


def test_the_auto_anchor_is_the_most_neutral_usable_frame():
    motions = [Motion(scale=torch.ones(1, 1), R=torch.eye(3)[None], exp=torch.zeros(1, 478, 3),
                      t=torch.zeros(1, 3), kp=torch.zeros(1, 478, 3)) for _ in range(3)]
    lips = np.array([[0.0], [0.01], [0.3]])  # frame 0 the most neutral, then frame 1
    assert choose_anchor(motions, None, lips) == 0
    assert choose_anchor(motions, None, lips, np.array([False, True, True])) == 1
    assert choose_anchor(motions, None, lips, np.zeros(3, bool)) == 0  # none usable: all are


def test_neutral_scores_are_the_whole_float64_figures_in_bounded_memory():
    """The expression distances of 700 frames of 478 points (slices widened to float64 in
    turn) are those of the whole (T, K, 3) in float64, bit for bit, and NumPy holds at most
    3 MB at once for them, where the whole took 24 MB."""
    import tracemalloc

    from portrait_animate.motion.anchor import neutral_scores

    rng = np.random.default_rng(0)
    exp = torch.from_numpy(rng.normal(0, 0.05, (700, 1, 478, 3)).astype(np.float32))
    motions = [Motion(scale=torch.ones(1, 1), R=torch.eye(3)[None], exp=e,
                      t=torch.zeros(1, 3)) for e in exp]
    whole = np.stack([m.exp[0].double().numpy() for m in motions])
    distance = np.linalg.norm((whole - np.median(whole, axis=0)).reshape(700, -1), axis=1)
    expected = distance / np.median(distance)
    tracemalloc.start()
    scores = neutral_scores(motions)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(scores, expected)
    assert peak < 3e6, peak


def test_anchors_and_smoothing_of_every_driver_are_told_plainly(shared, tmp_path, capsys,
                                                               monkeypatch):
    """An anchor past a template's end is refused before the source is analysed (it was
    after), and on a template of one frame (it was accepted, silently); a video source's
    anchor past the frames it uses names them (it counted them as the driver's); the
    template of those frames says it holds them; a preset is not called a template, and
    --driving_smooth says why it does nothing to a preset or an image."""
    from portrait_animate.pipeline import animate as animate_module

    d0 = _d0_frames(shared, list(NEUTRAL))
    driving = write_video([d0[i] for i in NEUTRAL], tmp_path / "d.mp4")  # 10 frames
    source = write_video([d0[i] for i in range(4)], tmp_path / "s.mp4")  # 4 frames
    still = tmp_path / "s.png"
    cv2.imwrite(str(still), cv2.cvtColor(d0[0], cv2.COLOR_RGB2BGR))
    base = ["animate", "--engine", "classic", "--quiet"]
    assert main([*base[:-1], "-s", str(source), "-d", str(driving), "-o",
                 str(tmp_path / "v")]) == 0
    assert ("note: d_template.npz holds the first 4 frames of " + str(driving)
            + ", those the source video uses") in capsys.readouterr().err
    assert load_template(tmp_path / "v/d_template.npz").n_frames == 4
    assert main([*base, "-s", str(source), "-d", str(driving), "-o", str(tmp_path / "va"),
                 "--driving_anchor", "6"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --driving_anchor 6 is past the frames of the driving video {driving} that "
        "the source video uses (its first 4); pass an index below 4 or auto")
    assert main([*base, "-s", str(still), "-d", str(still), "-o", str(tmp_path / "one")]) == 0
    monkeypatch.setattr(animate_module, "FaceMesh", None)  # no face analysis from here on
    for template, anchor, frames in ((tmp_path / "v/d_template.npz", "4", "4 frames); pass an "
                                      "index below 4"),
                                     (tmp_path / "one/s_template.npz", "1", "1 frame); pass 0")):
        out = tmp_path / f"t{anchor}"
        assert main([*base, "-s", str(still), "-d", str(template), "-o", str(out),
                     "--driving_anchor", anchor]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: --driving_anchor {anchor} is past the last frame of the motion template "
            f"{template} ({frames} or auto")
        assert not out.exists()
    monkeypatch.undo()
    assert main([*base, "-s", str(still), "-d", "preset:blink", "-o", str(tmp_path / "p"),
                 "--driving_anchor", "999"]) == 2
    assert "past the last frame of the preset preset:blink (" in capsys.readouterr().err
    for drive, words in (("preset:blink", "the preset: its motion is smooth as it is made"),
                         (str(still), "the driving image: one frame has no jitter")):
        assert main([*base[:-1], "-s", str(still), "-d", drive, "-o", str(tmp_path / "sm"),
                     "--driving_smooth", "5"]) == 0
        assert f"note: --driving_smooth has no effect on {words}" in capsys.readouterr().err
    # a square driver is used whole: its crop's options change nothing without the flag
    assert main([*base[:-1], "-s", str(still), "-d", str(driving), "-o", str(tmp_path / "c"),
                 "--scale_crop_driving_video", "3"]) == 0
    assert ("note: --scale_crop_driving_video changes nothing: the square driver "
            f"{driving} is used whole; pass --flag_crop_driving_video") in capsys.readouterr().err
    # the reference's retargeting in relative motion moves nothing else: said, not a surprise
    assert main([*base[:-1], "-s", str(still), "-d", str(still), "-o", str(tmp_path / "r"),
                 "--flag_lip_retargeting"]) == 0
    assert ("note: with --flag_lip_retargeting, as in the reference, the driver opens and "
            "closes the lips only: the head and the rest of the face keep the source's pose "
            "and expression") in capsys.readouterr().err
