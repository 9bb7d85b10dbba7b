"""Image retargeting/editing (SPEC 6.2) and video lip retargeting (SPEC 6.3), below the app."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from media import clip, read_video, streams
from portrait_animate.app.uploads import AppLimits, checked_upload
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.engines.neural.animator import NeuralEngine
from portrait_animate.errors import InputError
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import eye_ratios, lip_ratio
from portrait_animate.io.images import read_image_rgb, write_image_rgb
from portrait_animate.motion.editing import EditParams
from portrait_animate.motion.retargeting import edited_keypoints
from portrait_animate.motion.transform import rotation_angles, rotation_matrix
from portrait_animate.pipeline.inputs import InputKind
from portrait_animate.pipeline.retargeting import (
    VideoRetargetOptions,
    prepare_editable_image,
    render_edit,
    retarget_video,
)


def test_rotation_angles_invert_rotation_matrix():
    angles = torch.tensor([[10.0, -35.0, 5.0], [-20.0, 60.0, -80.0], [0.0, 0.0, 0.0]])
    R = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    recovered = torch.cat(rotation_angles(R), dim=1)
    torch.testing.assert_close(recovered, angles, atol=2e-4, rtol=0)


def test_rotation_angles_check_the_shape():
    with pytest.raises(ValueError, match=r"rotation.*\(None, 3, 3\)|3, 3"):
        rotation_angles(torch.eye(3))


def test_editing_matches_the_reference_keypoints(shared, networks):
    """All ten slider combinations of editing_s0.npz, stitched or not, to float32 rounding."""
    with np.load(shared / "reference/editing_s0.npz") as data:
        ref = {k: data[k] for k in data.files}
    engine = NeuralEngine(networks)
    image = read_image_rgb(shared / "reference/parity_s0_d30_src.png")
    motion = engine.motion(cv2.resize(image, (256, 256)))
    np.testing.assert_allclose(motion.keypoints().numpy(), ref["x_s"], atol=1e-5)
    cases = json.loads(str(ref["sliders"]))
    assert len(cases) == 10
    for name, sliders in cases.items():
        stitching = sliders.pop("stitching")
        x_d = edited_keypoints(engine, motion, engine.layout, EditParams(**sliders),
                               stitching=stitching)
        np.testing.assert_allclose(x_d.numpy(), ref[f"{name}_x_d"], atol=1e-5, err_msg=name)


def test_editing_adds_eye_and_lip_retargeting_only_when_asked(networks):
    engine = NeuralEngine(networks)
    motion = engine.motion(cv2.resize(read_image_rgb("sample:astronaut"), (256, 256)))
    plain = edited_keypoints(engine, motion, engine.layout, EditParams(), stitching=False)
    eyes = edited_keypoints(engine, motion, engine.layout, EditParams(), stitching=False,
                            source_eye_ratios=(0.3, 0.3), eye_target=0.0)
    expected = plain + engine.retarget_eyes(motion.keypoints(), torch.tensor([[0.3, 0.3, 0.0]]))
    torch.testing.assert_close(eyes, expected)
    with pytest.raises(ValueError, match="lip"):
        edited_keypoints(engine, motion, engine.layout, EditParams(), stitching=False,
                         lip_target=0.5)


def _mouth_opening(image: np.ndarray) -> float:
    with FaceMesh() as mesh:
        return lip_ratio(mesh.landmarks(image))


def test_classic_edit_smiles_opens_and_pastes_back(shared):
    engine = ClassicEngine()
    source = prepare_editable_image(str(shared / "assets/source/s0.jpg"), engine)
    assert source.eye_ratio is not None and 0.2 < source.eye_ratio < 0.6
    still = render_edit(engine, source, EditParams())
    opened = render_edit(engine, source, EditParams(lip_open=80))
    assert still.pasted.shape == source.frame.shape
    assert still.crop.shape == (512, 512, 3)
    assert _mouth_opening(opened.crop) > _mouth_opening(still.crop) + 0.1
    # Far from the face, the paste-back leaves the image as it was.
    np.testing.assert_array_equal(opened.pasted[-20:], source.frame[-20:])


def test_classic_edit_closes_the_eyes_by_ratio(shared, tmp_path):
    # A photographed face: MediaPipe reads painted lids (s0) as barely closing.
    photo = tmp_path / "d0.png"
    write_image_rgb(photo, read_video(shared / "assets/driving/d0.mp4")[0][0])
    engine = ClassicEngine()
    source = prepare_editable_image(str(photo), engine)
    with FaceMesh() as mesh:
        before = np.mean(eye_ratios(mesh.landmarks(render_edit(engine, source,
                                                               EditParams()).crop)))
        shut = render_edit(engine, source, EditParams(), eye_ratio=0.01).crop
        after = np.mean(eye_ratios(mesh.landmarks(shut)))
    assert after < 0.6 * before, (before, after)


def test_neural_edit_renders_without_crop(shared, networks):
    engine = NeuralEngine(networks)
    spec = str(shared / "reference/parity_s0_d30_src.png")
    source = prepare_editable_image(spec, engine, do_crop=False)
    a = render_edit(engine, source, EditParams())
    b = render_edit(engine, source, EditParams(yaw=15))
    assert a.crop.shape == a.pasted.shape == (512, 512, 3)
    assert np.abs(a.crop.astype(int) - b.crop).mean() > 0.5


def test_prepare_editable_image_refuses_a_face_less_image(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    with pytest.raises(InputError, match="no face"):
        prepare_editable_image(str(blank), ClassicEngine())


@pytest.fixture(scope="module")
def talking_clip(shared, tmp_path_factory):
    return clip(shared / "assets/driving/d9.mp4", tmp_path_factory.mktemp("v") / "d9.mp4", 1.0)


@pytest.fixture(scope="module")
def speaking_clip(shared, tmp_path_factory):
    """Half a second of d9 while the mouth is open (mean lip ratio 0.09; its first second's is
    0.002, a mouth already closed)."""
    return clip(shared / "assets/driving/d9.mp4", tmp_path_factory.mktemp("v") / "d9.mp4", 0.5,
                start=2.0)


def test_video_lip_silent_keeps_audio_and_closes_the_mouth(speaking_clip, tmp_path):
    result = retarget_video(str(speaking_clip), ClassicEngine(), VideoRetargetOptions(
        lip_silent=True), tmp_path)
    assert result.output.name == "d9_retargeting.mp4"
    assert result.concat.name == "d9_retargeting_concat.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.output.name,
                                                         result.concat.name]
    frames, fps = read_video(result.output)
    source, source_fps = read_video(speaking_clip)
    assert len(frames) == len(source) == result.n_frames and fps == source_fps
    assert frames[0].shape == source[0].shape
    concat, _ = read_video(result.concat)
    assert concat[0].shape == (512, 1024, 3)
    for path in (result.output, result.concat):
        assert "Audio" in streams(path)
    with FaceMesh() as mesh:
        before = np.mean([lip_ratio(mesh.landmarks(f)) for f in source])
        after = np.mean([lip_ratio(mesh.landmarks(f)) for f in frames])
    assert before > 0.05 and after < 0.35 * before, (before, after)


def test_video_lip_ratio_target_opens_the_mouth(talking_clip, tmp_path):
    closed = retarget_video(str(talking_clip), ClassicEngine(),
                            VideoRetargetOptions(lip_ratio=0.0), tmp_path / "closed")
    opened = retarget_video(str(talking_clip), ClassicEngine(),
                            VideoRetargetOptions(lip_ratio=0.5), tmp_path / "open")
    with FaceMesh() as mesh:
        shut = np.mean([lip_ratio(mesh.landmarks(f)) for f in read_video(closed.output)[0]])
        wide = np.mean([lip_ratio(mesh.landmarks(f)) for f in read_video(opened.output)[0]])
    assert wide > shut + 0.15, (shut, wide)


def test_video_retargeting_in_chunks_writes_what_one_frame_at_a_time_does(talking_clip,
                                                                         tmp_path):
    """F, W and G over chunks of the video's frames (a GPU's batch; 3 here, with a short last
    chunk) write the same video as frames taken one at a time."""
    sizes: dict[int, list[int]] = {}
    outputs = {}
    for batch in (1, 3):
        engine = ClassicEngine()
        engine.batch_size = lambda requested=0, batch=batch: batch

        def counting(crops, frames, maps, batch=batch, engine=engine):
            sizes.setdefault(batch, []).append(len(crops))
            return ClassicEngine.appearance_batch(engine, crops, frames, maps)

        engine.appearance_batch = counting
        outputs[batch] = retarget_video(str(talking_clip), engine, VideoRetargetOptions(
            lip_ratio=0.3), tmp_path / str(batch)).output.read_bytes()
    n = sum(sizes[1])
    assert sizes[1] == [1] * n and n > 3
    assert sizes[3] == [3] * (n // 3) + ([n % 3] if n % 3 else [])
    assert outputs[1] == outputs[3]


def test_video_retargeting_refuses_an_image_and_bad_options(shared, tmp_path):
    engine = ClassicEngine()
    with pytest.raises(InputError, match="needs a video"):
        retarget_video(str(shared / "assets/source/s0.jpg"), engine, VideoRetargetOptions(),
                       tmp_path)
    with pytest.raises(InputError, match="lip_ratio 3 is not a finite number from 0 to 1"):
        retarget_video(str(shared / "assets/driving/d0.mp4"), engine,
                       VideoRetargetOptions(lip_ratio=3), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("name", "kind", "limits", "message"), [
    ("d0.mp4", InputKind.IMAGE, AppLimits(), "must be an image"),
    ("d0.mp4", InputKind.VIDEO, AppLimits(max_upload_mb=0.01), "over this app's 0.01 MB limit"),
    ("d0.mp4", InputKind.VIDEO, AppLimits(max_video_seconds=1), "over this app's 1 s limit"),
])
def test_uploads_are_checked(shared, name, kind, limits, message):
    with pytest.raises(InputError, match=message) as info:
        checked_upload(str(shared / "assets/driving" / name), "source", kind, limits)
    assert "--" not in info.value.page, "the page names no command-line option"


def test_a_wrong_kind_is_sent_where_the_page_takes_the_right_one(shared):
    """The animate page's source and driving have a tab per kind; the retargeting sections
    take one kind each, so their message names it instead of a tab they do not have."""
    video = str(shared / "assets/driving/d0.mp4")
    with pytest.raises(InputError, match="is a video; upload it in the video tab$"):
        checked_upload(video, "source", InputKind.IMAGE, AppLimits())
    with pytest.raises(InputError, match="is a video; upload an image here$"):
        checked_upload(video, "image", InputKind.IMAGE, AppLimits())


def test_an_animated_gif_in_an_image_tab_is_sent_to_the_video_tab_as_mp4(shared, tmp_path):
    """The video tabs' file pickers offer video files only: a GIF must become an .mp4."""
    from PIL import Image

    face = Image.open(shared / "assets/source/s0.jpg")
    gif = tmp_path / "nod.gif"
    face.save(gif, save_all=True, append_images=[face.transpose(Image.FLIP_LEFT_RIGHT)])
    with pytest.raises(InputError) as info:
        checked_upload(str(gif), "driving", InputKind.IMAGE, AppLimits())
    assert str(info.value) == ("the driving must be an image, but nod.gif is an animated GIF; "
                               "save it as an .mp4 video and upload it in the video tab")


def test_corrupt_and_pickled_uploads_are_refused(tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(InputError, match="corrupt"):
        checked_upload(str(corrupt), "driving", InputKind.VIDEO, AppLimits())
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo owned'\ntR.")
    with pytest.raises(InputError):
        checked_upload(str(evil), "driving", InputKind.TEMPLATE, AppLimits())
