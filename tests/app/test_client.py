"""The named API endpoints through gradio_client, as the README shows them."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gradio_client import Client, handle_file

from portrait_animate.io.images import read_image_rgb, write_image_rgb


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


def test_named_endpoints_are_listed(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/animate", "/retarget_image", "/retarget_video"} <= set(endpoints)
    outputs = [r["label"] for r in endpoints["/retarget_image"]["returns"]]
    assert outputs == ["Retargeting Result", "Paste-back Result", "status"]


def test_animate_endpoint(client, shared):
    result_video, concat_video, result_image, concat_image = client.predict(
        source_image=handle_file(shared / "assets/source/s0.jpg"),
        driving_image=handle_file(shared / "assets/driving/d12.jpg"),
        driving_tab="Image", engine="classic", api_name="/animate")
    assert result_video is None and concat_video is None
    assert read_image_rgb(result_image).shape == (704, 600, 3)
    assert read_image_rgb(concat_image).shape == (512, 1536, 3)


@pytest.mark.parametrize("engine", ["classic", "neural"])
def test_retarget_image_endpoint(client, shared, engine):
    crop, pasted, status = client.predict(
        image=handle_file(shared / "assets/source/s0.jpg"), smile=1.0, yaw=10,
        engine=engine, api_name="/retarget_image")
    assert read_image_rgb(crop).shape == (512, 512, 3)
    assert read_image_rgb(pasted).shape == (704, 600, 3)
    assert status.startswith(f"{engine} engine: render")


def test_retarget_video_endpoint(client, short_source_video):
    concat, result = client.predict(video=handle_file(short_source_video), lip_ratio=0.3,
                                    engine="classic", api_name="/retarget_video")
    for video in (concat, result):
        path = video["video"] if isinstance(video, dict) else video
        assert str(path).endswith(".mp4")


def test_api_errors_are_messages(client, tmp_path, caplog, capsys):
    """A face-less upload: the page's words (no server path, no command-line option), one
    INFO line in the server's log and no traceback."""
    wall = tmp_path / "wall.png"
    write_image_rgb(wall, np.full((300, 300, 3), 128, np.uint8))
    with caplog.at_level(logging.INFO, logger="portrait_animate"), \
            pytest.raises(Exception) as info:
        client.predict(image=handle_file(wall), engine="classic", api_name="/retarget_image")
    assert str(info.value) == ("no face found in the source image wall.png; upload a portrait "
                               "with a clearly visible face")
    logged = [r for r in caplog.records if "no face found" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO and not logged[0].exc_info
    assert "Traceback" not in capsys.readouterr().err


def test_an_upload_that_is_no_image_is_one_message(client, shared, tmp_path, capsys):
    """Gradio reads an image input before the app's checks: a text file there is the page's
    message, not Gradio's (which listed the event's components and the server's path)."""
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    calls = ({"source_image": handle_file(text), "api_name": "/animate",
              "driving_image": handle_file(shared / "assets/driving/d12.jpg"),
              "driving_tab": "Image"},
             {"image": handle_file(text), "api_name": "/retarget_image"})
    for call in calls:
        with pytest.raises(Exception) as info:
            client.predict(engine="classic", **call)
        assert str(info.value) == ("the source image upload notes.png cannot be read as an "
                                   "image; upload a .jpg, .png or .webp picture")
    assert "Traceback" not in capsys.readouterr().err


def test_animate_endpoint_takes_the_stable_motion_options(client, shared):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = {p["parameter_name"] for p in endpoints["/animate"]["parameters"]}
    assert {"driving_smooth", "driving_anchor"} <= names
    with pytest.raises(Exception) as info:
        client.predict(source_image=handle_file(shared / "assets/source/s0.jpg"),
                       driving_image=handle_file(shared / "assets/driving/d12.jpg"),
                       driving_tab="Image", engine="classic", driving_anchor="middle",
                       api_name="/animate")
    assert "'driving anchor' 'middle' is not first, auto or a frame index" in str(info.value)


#: Boxes of the group picture's faces (tests/conftest.py), numbered by size.
GROUP_FACES = ((155, 161, 285, 325), (547, 195, 653, 324), (855, 231, 945, 328))


def _changed_faces(result: np.ndarray, source: np.ndarray) -> list[bool]:
    """Which of the group picture's faces changed: by more than twice the least changed
    (the page's images are JPEG or WebP, whose noise alone changes every face a little)."""
    diff = np.abs(result.astype(int) - source).mean(axis=2)
    faces = [diff[y0:y1, x0:x1].mean() for x0, y0, x1, y1 in GROUP_FACES]
    return [bool(face > 2 * min(faces)) for face in faces]


def test_animate_endpoint_animates_the_faces_picked(client, shared, group_picture):
    source = read_image_rgb(group_picture)
    result = client.predict(source_image=handle_file(group_picture),
                            driving_image=handle_file(shared / "assets/driving/d19.jpg"),
                            driving_tab="Image", engine="classic", source_faces=["0", "2"],
                            api_name="/animate")[2]
    assert _changed_faces(read_image_rgb(result), source) == [True, False, True]


def test_retarget_image_endpoint_edits_the_face_picked(client, group_picture):
    source = read_image_rgb(group_picture)
    _, pasted, _ = client.predict(image=handle_file(group_picture), lip_ratio=0.6, face="1",
                                  engine="classic", api_name="/retarget_image")
    assert _changed_faces(read_image_rgb(pasted), source) == [False, True, False]
