"""Several faces: numbering, ``portrait-animate faces``, animating all faces or chosen ones on
both engines, driving faces, and tracking through a two-face video; on group pictures made
from the ``../shared`` portraits and driving videos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import face_tile, group_canvas, read_video, write_video
from portrait_animate.cli.main import main
from portrait_animate.engines.classic.warp import ROI_MARGIN
from portrait_animate.errors import InputError
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import lip_ratio
from portrait_animate.face.tracking import FaceTracker
from portrait_animate.io.images import read_image_rgb, write_image_rgb
from portrait_animate.io.templates import load_template
from portrait_animate.pipeline.compositing import still_mask

OPEN_MOUTH = "assets/driving/d19.jpg"  # lip ratio 0.76


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh() as mesh:
        yield mesh


@pytest.fixture(scope="module")
def group(group_picture: Path) -> Path:
    return group_picture


def _faces_json(path: Path, order: str, capsys, tmp_path: Path) -> dict:
    preview = tmp_path / f"preview-{order}.png"
    assert main(["faces", str(path), "--face_order", order, "--preview", str(preview),
                 "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert read_image_rgb(preview).shape == read_image_rgb(path).shape \
        if path.suffix == ".png" else preview.is_file()
    return listing


@pytest.mark.parametrize("order", ["large-small", "left-right", "right-left", "top-bottom",
                                   "distance-from-center"])
def test_face_order_numbers_as_documented(group: Path, order: str, capsys, tmp_path: Path):
    listing = _faces_json(group, order, capsys, tmp_path)
    faces = listing["faces"]
    assert [f["number"] for f in faces] == [0, 1, 2]
    boxes = np.array([f["box"] for f in faces])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    keys = {"large-small": -np.array([f["size"] for f in faces]),
            "left-right": centres[:, 0], "right-left": -centres[:, 0],
            "top-bottom": centres[:, 1],
            "distance-from-center": np.hypot(centres[:, 0] - 520, centres[:, 1] - 240)}
    assert np.all(np.diff(keys[order]) > 0), (order, boxes)
    assert all(f["score"] > 0.5 for f in faces)


def test_faces_preview_shows_the_numbers(group: Path, capsys, tmp_path: Path):
    listing = _faces_json(group, "left-right", capsys, tmp_path)
    preview = read_image_rgb(listing["preview"])
    source = read_image_rgb(group)
    for face in listing["faces"]:  # a box is drawn around each face
        x0, y0, x1, y1 = (round(v) for v in face["box"])
        assert np.abs(preview[y0:y1, x0].astype(int) - source[y0:y1, x0]).max() > 50


def test_boxes_of_a_large_photo_are_in_its_own_pixels(shared: Path, capsys, tmp_path: Path):
    """A 4000x3000 photo is looked at shrunk to 1280 pixels, as animate shrinks it, but its
    faces' boxes are in its own pixels: a script crops the photo at them."""
    portrait = read_image_rgb(shared / "assets/source/s0.jpg")  # 600x704
    photo = np.full((3000, 4000, 3), 128, np.uint8)
    photo[92:92 + 4 * 704, 800:800 + 4 * 600] = cv2.resize(portrait, (4 * 600, 4 * 704),
                                                            interpolation=cv2.INTER_CUBIC)
    large = write_image_rgb(tmp_path / "large.jpg", photo)
    small, = _faces_json(shared / "assets/source/s0.jpg", "large-small", capsys,
                         tmp_path)["faces"]
    listing = _faces_json(large, "large-small", capsys, tmp_path)
    face, = listing["faces"]
    expected = 4 * np.array(small["box"]) + [800, 92, 800, 92]
    assert np.abs(np.array(face["box"]) - expected).max() < 0.03 * 4 * small["size"], \
        (face["box"], expected)
    assert face["size"] == pytest.approx(4 * small["size"], rel=0.03)
    assert read_image_rgb(listing["preview"]).shape == (960, 1280, 3)


def _lips(image: np.ndarray, mesh: FaceMesh, boxes: np.ndarray) -> list[float]:
    """The lip ratio of the face found nearest each box's centre."""
    found = mesh.faces(image)
    ratios = []
    for box in boxes:
        centre = (box[:2] + box[2:]) / 2
        face = min(found, key=lambda f: np.linalg.norm(f.center - centre))
        assert np.linalg.norm(face.center - centre) < 0.3 * (box[2] - box[0])
        ratios.append(lip_ratio(face.points[:, :2]))
    return ratios


def _animate(tmp_path: Path, source: Path, driving: Path, *options: str,
             frame: int = 0, quiet: bool = True) -> np.ndarray:
    """Result frame ``frame`` (PNG) of ``animate``."""
    out = tmp_path / "out"
    assert main(["animate", "-s", str(source), "-d", str(driving), "-o", str(out),
                 *(["--quiet"] if quiet else []), "--save_frames", *options]) == 0
    frames = sorted(out.glob("*_frames/*.png"))
    return read_image_rgb(frames[frame])


def test_all_opens_every_mouth(group: Path, shared: Path, mesh: FaceMesh, tmp_path: Path):
    boxes = np.array([f.box for f in mesh.faces(read_image_rgb(group))])
    before = _lips(read_image_rgb(group), mesh, boxes)
    result = _animate(tmp_path, group, shared / OPEN_MOUTH, "--engine", "classic",
                      "--source_faces", "all")
    after = _lips(result, mesh, boxes)
    assert all(a > b + 0.02 for a, b in zip(after, before, strict=True)), (before, after)
    # the concat shows the driver, then the whole group before and after
    concat = read_image_rgb(tmp_path / "out" / "group--d19_concat.jpg")
    assert concat.shape == (512, 512 + 2 * 1110, 3)
    # the default still animates only the largest face, as the reference does
    largest = _animate(tmp_path / "largest", group, shared / OPEN_MOUTH, "--engine", "classic")
    after = _lips(largest, mesh, boxes)
    assert after[0] > before[0] + 0.02 and after[1:] == pytest.approx(before[1:], abs=0.01)


def _hulls(mesh: FaceMesh, image: np.ndarray) -> list[np.ndarray]:
    return [f.points for f in mesh.faces(image, "large-small")]


@pytest.mark.parametrize("engine", ["classic", "neural"])
def test_one_face_changes_only_that_face(group: Path, shared: Path, mesh: FaceMesh,
                                         tmp_path: Path, engine: str,
                                         synthetic_weights: Path):
    source = read_image_rgb(group)
    faces = mesh.faces(source, "large-small")
    result = _animate(tmp_path, group, shared / OPEN_MOUTH, "--engine", engine,
                      "--weights_dir", str(synthetic_weights), "--precision", "fp32-exact",
                      "--source_faces", "1")
    changed = np.abs(result.astype(int) - source).max(axis=2) > 0
    # the other faces are the source's, pixel for pixel, inside their landmark hulls
    for number in (0, 2):
        inside = still_mask([faces[number].points], source.shape[:2]) == 1
        assert not changed[inside].any(), number
    # face 1 changed; nothing changed beyond its blend margin: the classic warp's region
    # (ROI_MARGIN face sizes around the face), the neural crop (2.3 face sizes wide)
    box = faces[1].box
    assert changed[round(box[1]):round(box[3]), round(box[0]):round(box[2])].mean() > 0.2
    ys, xs = np.nonzero(changed)
    if engine == "classic":
        margin = ROI_MARGIN * faces[1].size
        assert xs.min() >= box[0] - margin and xs.max() <= box[2] + margin
        assert ys.min() >= box[1] - margin and ys.max() <= box[3] + margin
    else:
        reach = 2.3 / 2 * faces[1].size
        assert np.abs(xs - faces[1].center[0]).max() <= reach
        assert np.abs(ys - faces[1].center[1]).max() <= reach
    if engine == "classic":
        lips = _lips(result, mesh, np.array([f.box for f in faces]))
        assert lips[1] > 0.2 and lips[0] < 0.05 and lips[2] < 0.05


def test_bad_face_options_fail_in_one_line(group: Path, shared: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    rc = main(["animate", "-s", str(group), "-d", str(shared / OPEN_MOUTH), "-o", str(out),
               "--engine", "classic", "--source_faces", "5"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "has no face 5: 3 faces, numbered 0-2" in err and "\n" not in err
    assert not out.exists()
    for options, message in ((["--source_faces", "one"], "is not a face number"),
                             (["--face_map", "0:1"], "--face_map maps numbered source faces"),
                             (["--source_faces", "all", "--face_map", "0-1"], "SOURCE:DRIVING"),
                             (["-d", "preset:smile", "--driving_face", "1"],
                              "a preset moves one face"),
                             (["--source_faces", "0", "--face_map", "2:0"],
                              "names source face 2, which is not animated"),
                             (["--driving_face", "1"], "d19.jpg has no face 1; run "
                                                       "`portrait-animate faces")):
        argv = ["animate", "-s", str(group), "-d", str(shared / OPEN_MOUTH), "-o", str(out),
                "--engine", "classic", *options]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


@pytest.fixture(scope="module")
def two_faces(shared: Path, mesh: FaceMesh, tmp_path_factory) -> Path:
    """8 frames of d0 (left) and d9 (right) side by side; the left face shrinks and the right
    one grows, so that by size their order swaps halfway."""
    folder = tmp_path_factory.mktemp("two")
    first = {}
    frames = []
    left, _ = read_video(shared / "assets/driving/d0.mp4")
    right, _ = read_video(shared / "assets/driving/d9.mp4")
    for i in range(8):
        sides = (300 - 10 * i, 230 + 10 * i)
        tiles = []
        for k, (video, side, x) in enumerate(((left, sides[0], 20), (right, sides[1], 340))):
            # the crop stays where frame 0's face is, so the face moves as in the video
            first.setdefault(k, face_tile(video[0], 512, mesh))
            tile = face_tile(video[0], side, mesh) if i == 0 else None
            image = cv2.resize(_crop_like(video[i], video[0], mesh), (side, side),
                               interpolation=cv2.INTER_AREA)
            tiles.append((image if tile is None else tile, x, 30))
        frames.append(group_canvas(tiles, (360, 640)))
    return write_video(frames, folder / "two.mp4")


def _crop_like(frame: np.ndarray, reference: np.ndarray, mesh: FaceMesh) -> np.ndarray:
    """The square of ``frame`` that :func:`face_tile` cuts from ``reference`` at 512."""
    points = mesh.landmarks(reference)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    half = 1.25 * np.ptp(points, axis=0).max()
    s = 256 / half
    M = np.array([[s, 0, 256 - s * centre[0]], [0, s, 256 - s * centre[1]]])
    return cv2.warpAffine(frame, M, (512, 512), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def test_numbers_stay_with_people_through_a_video(two_faces: Path, mesh: FaceMesh,
                                                  shared: Path, tmp_path: Path, capsys):
    frames, _ = read_video(two_faces)
    tracker = FaceTracker(mesh, "large-small")
    sides = []
    for frame in frames:
        faces = tracker.update(frame)
        assert sorted(faces) == [0, 1]
        # face 0, the larger in frame 0, is the left one throughout, though it ends smaller
        assert faces[0].center[0] < 320 < faces[1].center[0]
        sides.append(faces[0].size - faces[1].size)
    assert sides[0] > 0 > sides[-1]
    listing = _faces_json(two_faces, "large-small", capsys, tmp_path)
    assert [(f["number"], f["frames"], f["first_frame"]) for f in listing["faces"]] == \
        [(0, 8, 0), (1, 8, 0)]
    # animating face 1 of the video changes the right half only, in every frame
    out = tmp_path / "out"
    assert main(["animate", "-s", str(two_faces), "-d", str(shared / OPEN_MOUTH), "-o",
                 str(out), "--quiet", "--engine", "classic", "--source_faces", "1",
                 "--save_frames"]) == 0
    results = [read_image_rgb(p) for p in sorted(out.glob("*_frames/*.png"))]
    assert len(results) == 8
    for frame, result in zip(frames, results, strict=True):
        changed = np.abs(result.astype(int) - frame).max(axis=2) > 0
        left = min(mesh.faces(frame), key=lambda f: f.center[0])
        assert changed[:, 340:].mean() > 0.01
        assert not changed[still_mask([left.points], frame.shape[:2]) == 1].any()


def test_driving_faces_pick_and_map(group: Path, two_faces: Path, tmp_path: Path):
    """A two-face driver: --driving_face and --face_map choose which face drives which."""
    runs = {}
    for name, options in (("left", ["--driving_face", "0"]), ("right", ["--driving_face", "1"]),
                          ("mapped", ["--face_map", "0:1,1:0"])):
        runs[name] = _animate(tmp_path / name, group, two_faces, "--engine", "classic",
                              "--source_faces", "0,1", "--face_order", "left-right", *options,
                              frame=-1).astype(int)
    s6, s0 = slice(20, 420), slice(440, 760)  # the two animated faces' tiles

    def diff(a: str, b: str, tile: slice) -> float:
        return float(np.abs(runs[a][:, tile] - runs[b][:, tile]).mean())

    # face 0 is driven by the left driver in "left" and by the right one in "mapped"; face 1
    # the other way round
    assert diff("left", "right", s6) > 0.5 and diff("left", "right", s0) > 0.5
    assert diff("mapped", "right", s6) < 0.1 * diff("left", "right", s6)
    assert diff("mapped", "left", s0) < 0.1 * diff("left", "right", s0)
    # the template written records one motion track per driving face, and drives as the video
    template = tmp_path / "mapped" / "out" / "two_template.npz"
    with np.load(template) as arrays:
        assert list(arrays["face_numbers"]) == [1, 0]
    tracks = [load_template(template, face) for face in (0, 1)]
    assert [t.n_frames for t in tracks] == [8, 8]
    assert not np.allclose(tracks[0].motions[-1].exp, tracks[1].motions[-1].exp)
    runs["template"] = _animate(tmp_path / "template", group, template, "--engine", "classic",
                                "--source_faces", "0,1", "--face_order", "left-right",
                                "--face_map", "0:1,1:0", frame=-1).astype(int)
    assert diff("template", "mapped", s6) < 0.25 * diff("left", "right", s6)
    assert diff("template", "mapped", s0) < 0.25 * diff("left", "right", s0)
    with pytest.raises(InputError, match="holds the driving faces 1, 0, not face 2"):
        load_template(template, 2)


def test_a_face_left_out_of_the_map_keeps_the_largest_face_in_the_template(
        group: Path, two_faces: Path, tmp_path: Path, capsys):
    """The README's example: three source faces, two of them mapped; the third takes each
    frame's largest driving face. That track was written as face "None" in an object array,
    and the template could not be read again. Its anchor is told as the largest face's (a
    bare "driving anchor" read as a repeat of face 0's)."""
    options = ["--engine", "classic", "--source_faces", "all", "--face_map", "0:1,1:0"]
    video = _animate(tmp_path / "video", group, two_faces, *options, frame=-1).astype(int)
    template = tmp_path / "video" / "out" / "two_template.npz"
    with np.load(template) as arrays:  # allow_pickle=False: no object array
        assert list(arrays["face_numbers"]) == [-1, 1, 0]
    tracks = [load_template(template, face) for face in (None, 0, 1)]
    assert [t.n_frames for t in tracks] == [8, 8, 8]
    capsys.readouterr()
    replay = _animate(tmp_path / "replay", group, template, *options, frame=-1,
                      quiet=False).astype(int)
    assert np.abs(replay - video).mean() < 0.5  # 0.0 here: the same motion, face for face
    anchors = [line.split(":")[0] for line in capsys.readouterr().err.splitlines()
               if line.startswith("driving anchor")]
    assert sorted(anchors) == ["driving anchor of driving face 0",
                               "driving anchor of driving face 1",
                               "driving anchor of the largest driving face"]
    with pytest.raises(InputError, match="holds the driving faces 1, 0 and the largest face "
                                         "of each frame, not face 2"):
        load_template(template, 2)


def test_a_template_keeps_the_face_order_that_numbered_its_faces(group: Path, two_faces: Path,
                                                                tmp_path: Path, capsys):
    """Its numbers are those of the order it was made with: under another order the same
    number is another person, which drove silently; it is refused naming the order. A
    template of the largest face alone is face 0 of the default order."""
    base = ["animate", "-s", str(group), "--engine", "classic", "--source_faces", "0,1"]
    assert main([*base, "-d", str(two_faces), "-o", str(tmp_path / "a"), "--quiet",
                 "--face_order", "left-right", "--face_map", "0:1,1:0"]) == 0
    template = tmp_path / "a/two_template.npz"
    with np.load(template) as arrays:
        assert str(arrays["face_order"]) == "left-right"
    assert main([*base, "-d", str(template), "-o", str(tmp_path / "b"), "--driving_smooth",
                 "0", "--face_order", "left-right", "--face_map", "0:1,1:0"]) == 0
    err = capsys.readouterr().err
    assert "source faces animated: 0, 1 (--source_faces 0,1;" in err
    assert "--driving_smooth has no effect on the motion template" in err
    # no note on an option not given; each anchor says whose it is
    assert "flag_crop_driving_video" not in err
    assert "driving anchor of driving face 1: frame" in err
    assert "driving anchor of driving face 0: frame" in err
    assert main([*base, "-d", str(template), "-o", str(tmp_path / "c"), "--face_map",
                 "0:1,1:0"]) == 2
    assert ("numbers its driving faces by --face_order left-right, not large-small; pass "
            "--face_order left-right") in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    plain = tmp_path / "plain"
    assert main(["animate", "-s", str(group), "-d", str(two_faces), "-o", str(plain),
                 "--engine", "classic", "--quiet"]) == 0
    assert load_template(plain / "two_template.npz", 0, "large-small").n_frames == 8
    with pytest.raises(InputError, match="holds the largest driving face's motion alone, not "
                                         "face 0 by --face_order left-right"):
        load_template(plain / "two_template.npz", 0, "left-right")


def test_one_picked_face_without_paste_back_names_the_flag_given(group: Path, shared: Path,
                                                                 tmp_path: Path, capsys):
    """It was refused as 'several source faces', naming three flags of which one was given."""
    assert main(["animate", "-s", str(group), "-d", str(shared / OPEN_MOUTH), "-o",
                 str(tmp_path), "--engine", "classic", "--source_faces", "1",
                 "--no_flag_pasteback"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: conflicting options: faces picked by --source_faces 1 are animated in the "
        "whole source frame, pasted back; drop --no_flag_pasteback")


class _Scripted:
    """Stands in for the face mesh: each call gives the next frame's faces (boxes only)."""

    def __init__(self, frames: list[list[tuple[float, float, float]]]) -> None:
        self.frames = iter(frames)

    def faces(self, image: np.ndarray, order: str) -> list:
        from portrait_animate.face.mesh import DetectedFace, order_faces

        found = [DetectedFace(np.zeros((478, 3)), np.array([x - s / 2, y - s / 2, x + s / 2,
                                                            y + s / 2]), 0.9)
                 for x, y, s in next(self.frames)]
        return order_faces(found, order, image.shape)


def test_a_face_that_leaves_and_returns_keeps_its_number():
    a, b = (100, 100, 80), (400, 120, 100)
    frames = [[a, b], [(110, 100, 80)], [], [(125, 100, 80), (420, 125, 100)],
              [(130, 100, 80), (700, 100, 60), (425, 125, 100)]]
    tracker = FaceTracker(_Scripted(frames), "left-right")
    image = np.zeros((300, 900, 3), np.uint8)
    seen = [{n: tuple(f.center.round()) for n, f in tracker.update(image).items()}
            for _ in frames]
    assert seen[0] == {0: (100, 100), 1: (400, 120)}
    assert seen[1] == {0: (110, 100)}                    # b left the picture
    assert seen[2] == {}
    assert seen[3] == {0: (125, 100), 1: (420, 125)}     # and came back: still 1
    assert seen[4] == {0: (130, 100), 1: (425, 125), 2: (700, 100)}  # a newcomer takes 2


def test_a_batch_job_picks_faces_as_animate_does(group: Path, shared: Path, tmp_path: Path):
    """The face options go through a batch job (and so the service) unchanged."""
    driving = shared / OPEN_MOUTH
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"source": str(group), "driving": str(driving), "name": "g",
                                "source_faces": "0,2", "face_order": "large-small"}) + "\n")
    assert main(["batch", str(jobs), "-o", str(tmp_path / "batch"), "--engine", "classic",
                 "--quiet"]) == 0
    assert main(["animate", "-s", str(group), "-d", str(driving), "-o", str(tmp_path / "one"),
                 "--engine", "classic", "--source_faces", "0,2", "--quiet"]) == 0
    name = "group--d19.jpg"
    assert (tmp_path / "batch/g" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_a_batch_job_maps_driving_faces_as_animate_does(group: Path, two_faces: Path,
                                                       tmp_path: Path):
    """A face map that drives with another face than --driving_face: the batch's shared
    analysis of the driver (its --driving_face) must not stand in for the mapped face."""
    faces = {"source_faces": "0", "face_order": "left-right", "face_map": "0:1"}
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"source": str(group), "driving": str(two_faces), "name": "g",
                                **faces}) + "\n")
    assert main(["batch", str(jobs), "-o", str(tmp_path / "batch"), "--engine", "classic",
                 "--quiet"]) == 0
    assert main(["animate", "-s", str(group), "-d", str(two_faces), "-o", str(tmp_path / "one"),
                 "--engine", "classic", "--quiet",
                 *(arg for key, value in faces.items() for arg in (f"--{key}", value))]) == 0
    name = "group--two.mp4"
    assert (tmp_path / "batch/g" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


@pytest.fixture
def no_detection(monkeypatch):
    """A refused preview must be refused before the face mesh is even created."""
    import portrait_animate.face.mesh as mesh_module

    def refuse(*args, **kwargs):
        raise AssertionError("face detection started before the preview was checked")

    monkeypatch.setattr(mesh_module, "FaceMesh", refuse)


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    """A small picture without a face."""
    return write_image_rgb(tmp_path / "noise.png",
                           np.random.default_rng(0).integers(0, 256, (96, 128, 3), np.uint8))


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --preview "), lines
    return lines[0]


def test_preview_that_is_the_input_is_refused(picture: Path, capsys, no_detection):
    before = picture.read_bytes()
    assert main(["faces", str(picture), "--preview", str(picture)]) == 2
    assert "is the input" in _one_error_line(capsys)
    assert picture.read_bytes() == before


@pytest.mark.parametrize("where", ["--preview", "current folder"])
def test_unwritable_preview_is_refused_before_detection(where: str, picture: Path, capsys,
                                                        monkeypatch, no_detection):
    """/proc takes no new file, as root too (file permissions would not stop root)."""
    if where == "--preview":
        args = ["--preview", "/proc/nope.png"]
    else:
        monkeypatch.chdir("/proc")
        args = ["--json"]  # a preview is written with --json too, into the current folder
    assert main(["faces", str(picture), *args]) == 2
    assert "cannot be written" in _one_error_line(capsys)


def test_no_face_is_said(picture: Path, capsys, tmp_path: Path):
    assert main(["faces", str(picture), "--preview", str(tmp_path / "p.jpg"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["faces"] == []
    assert captured.err.startswith(f"note: no face found in {picture}; try a lower "
                                   "--det_thresh")
