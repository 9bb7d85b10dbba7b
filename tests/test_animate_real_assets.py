"""``animate`` on real portraits and videos with cropping and paste-back on (neural engine,
synthetic weights): frame counts, fps, sizes, layouts and audio, read back from the files."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from media import clip, read_video, streams
from portrait_animate.cli.main import main


@pytest.fixture(scope="module")
def image_by_video(shared, synthetic_weights, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("img_vid")
    driving = clip(shared / "assets/driving/d9.mp4", tmp / "d9clip.mp4", 0.05)  # 2 frames
    out = tmp / "out"
    assert main(["animate", "-s", str(shared / "assets/source/s0.jpg"), "-d", str(driving),
                 "-o", str(out), "--weights_dir", str(synthetic_weights), "--flag_force_cpu",
                 "--quiet"]) == 0
    return out, driving


def test_image_by_video_frames_fps_size(image_by_video, shared):
    out, driving = image_by_video
    frames, fps = read_video(out / "s0--d9clip.mp4")
    drv_frames, drv_fps = read_video(driving)
    assert len(frames) == len(drv_frames) == 2
    assert fps == pytest.approx(drv_fps) == pytest.approx(30)
    source = cv2.imread(str(shared / "assets/source/s0.jpg"))
    assert frames[0].shape == source.shape  # 704x600, within the 1280 limit, even sides


def test_image_by_video_concat_layout(image_by_video, shared):
    out, _ = image_by_video
    concat, _ = read_video(out / "s0--d9clip_concat.mp4")
    # d9's pixels are 15:16 (SAR): its panel is shown as players show it, 480 wide
    assert len(concat) == 2 and concat[0].shape == (512, 480 + 1024, 3)
    # Middle panel: the source crop, identical in every frame.
    np.testing.assert_allclose(concat[0][:, 480:992].astype(float),
                               concat[-1][:, 480:992].astype(float), atol=12)


def test_image_by_video_pastes_into_the_source_and_keeps_audio(image_by_video, shared):
    out, _ = image_by_video
    frames, _ = read_video(out / "s0--d9clip.mp4")
    source = cv2.cvtColor(cv2.imread(str(shared / "assets/source/s0.jpg")), cv2.COLOR_BGR2RGB)
    # Corners are far from the face: paste-back leaves them as they were (up to H.264).
    assert np.abs(frames[0][:40, :40].astype(int) - source[:40, :40]).mean() < 4
    for name in ("s0--d9clip.mp4", "s0--d9clip_concat.mp4"):
        assert "Audio:" in streams(out / name)
    assert (out / "d9clip_template.npz").is_file()
    assert sorted(p.name for p in out.iterdir()) == [
        "d9clip_template.npz", "s0--d9clip.mp4", "s0--d9clip_concat.mp4"]


def test_video_source_by_driving_image(shared, synthetic_weights, tmp_path):
    source = clip(shared / "assets/source/s13.mp4", tmp_path / "s13clip.mp4", 0.07)  # 2 frames
    out = tmp_path / "out"
    assert main(["animate", "-s", str(source), "-d", str(shared / "assets/driving/d12.jpg"),
                 "-o", str(out), "--weights_dir", str(synthetic_weights), "--flag_force_cpu",
                 "--quiet", "--save_frames", "--flag_source_video_eye_retargeting",
                 "--flag_normalize_lip"]) == 0
    frames, fps = read_video(out / "s13clip--d12.mp4")
    assert len(frames) == 2 and fps == pytest.approx(25)
    assert frames[0].shape == (1080, 720, 3)
    assert "Audio:" in streams(out / "s13clip--d12.mp4")  # from the source
    concat, _ = read_video(out / "s13clip--d12_concat.mp4")
    assert concat[0].shape == (512, 1536, 3)
    pngs = sorted((out / "s13clip--d12_frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(2)]
    lossless = cv2.cvtColor(cv2.imread(str(pngs[1])), cv2.COLOR_BGR2RGB)
    assert lossless.shape == (1080, 720, 3)
    assert np.abs(lossless.astype(int) - frames[1]).mean() < 3


def test_reference_pkl_template_drives_an_image(shared, synthetic_weights, tmp_path):
    with open(shared / "assets/driving/d1.pkl", "rb") as fh:
        data = pickle.load(fh)  # our own fixture file, trusted; shortened to keep the test fast
    for key in ("motion", "c_d_eyes_lst", "c_d_lip_lst"):
        data[key] = data[key][:2]
    data["n_frames"] = 2
    (tmp_path / "d1short.pkl").write_bytes(pickle.dumps(data))
    out = tmp_path / "out"
    assert main(["animate", "-s", str(shared / "assets/source/s6.jpg"),
                 "-d", str(tmp_path / "d1short.pkl"), "-o", str(out),
                 "--weights_dir", str(synthetic_weights), "--flag_force_cpu", "--quiet",
                 "--flag_eye_retargeting"]) == 0
    frames, fps = read_video(out / "s6--d1short.mp4")
    assert len(frames) == 2 and fps == pytest.approx(30)
    concat, _ = read_video(out / "s6--d1short_concat.mp4")
    assert concat[0].shape == (512, 1024, 3)  # no driving pixels: source | result
    assert "Audio:" not in streams(out / "s6--d1short.mp4")
    assert not list(out.glob("*template*")), "a template driver is not written again"
