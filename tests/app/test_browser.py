"""The app in a real browser: upload, click, wait for what a user would see."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import cv2
import numpy as np

from media import loop_video
from portrait_animate.io.images import read_image_rgb

PLAYABLE = """v => new Promise(resolve => {
    const done = () => resolve([v.duration, v.videoWidth, v.videoHeight, v.error === null]);
    if (v.readyState >= 1) done(); else v.addEventListener('loadedmetadata', done);
    setTimeout(() => resolve([0, 0, 0, v.error === null]), 60000);
})"""


def _upload(page, elem_id: str, path) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))


def _image_at(page, selector: str) -> np.ndarray:
    src = page.locator(selector).get_attribute("src")
    data = page.request.get(src).body()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _wait_for_new_image(page, selector: str, old_src: str | None) -> None:
    """Until the image shows a new picture (scrolled to, since Gradio loads images lazily)."""
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel);"
        " if (!i || i.getAttribute('src') === old) return false;"
        " i.scrollIntoView(); return i.complete && i.naturalWidth > 0; }",
        arg=[selector, old_src])


def test_animate_a_portrait_by_a_driving_image(page, shared):
    _upload(page, "source-image", shared / "assets/source/s0.jpg")
    page.get_by_role("tab", name="Driving Image").click()
    _upload(page, "driving-image", shared / "assets/driving/d12.jpg")
    page.locator("#animate-button").click()
    _wait_for_new_image(page, "#result-image img", None)
    size = page.locator("#result-image img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    height, width = read_image_rgb(shared / "assets/source/s0.jpg").shape[:2]
    assert size == [width, height]
    concat = page.locator("#concat-image img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert concat == [3 * 512, 512]
    assert not page.locator("#result-video").is_visible()


def test_animate_by_a_driving_video_gives_a_playable_video(page, shared, short_driving_video):
    _upload(page, "source-image", shared / "assets/source/s0.jpg")
    _upload(page, "driving-video", short_driving_video)
    page.locator("#animate-button").click()
    video = page.locator("#result-video video")
    video.wait_for()
    duration, width, height, ok = video.evaluate(PLAYABLE)
    assert ok and 0.8 < duration < 1.3, duration
    assert (width, height) == (600, 704)


def test_sliders_re_render_the_edit(page, shared, app_server):
    _upload(page, "edit-image", shared / "assets/source/s0.jpg")
    page.wait_for_function("document.querySelector('#edit-status')?.innerText.includes('ms')")
    _wait_for_new_image(page, "#edit-crop img", None)
    eye_start = float(page.locator("#eye-ratio input[type=number]").input_value())
    assert 0.2 < eye_start < 0.6, "the eye slider starts at the uploaded face's ratio"
    before = _image_at(page, "#edit-crop img")
    for elem_id, value in (("smile", "1"), ("eye-ratio", "0.01")):
        old = page.locator("#edit-crop img").get_attribute("src")
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(value)
        box.press("Enter")
        _wait_for_new_image(page, "#edit-crop img", old)
        after = _image_at(page, "#edit-crop img")
        assert np.abs(after.astype(int) - before).mean() > 0.3, elem_id
        before = after
    status = page.locator("#edit-status").inner_text()
    assert "classic engine: render" in status and "face analysis cached" in status
    assert len(app_server.backend.tick_ms["classic"]) >= 3


def test_video_retargeting_keeps_the_lip_silent(page, short_source_video):
    page.locator("#retarget-video-input").scroll_into_view_if_needed()
    _upload(page, "retarget-video-input", short_source_video)
    page.locator("#lip-silent input[type=checkbox]").check()
    page.locator("#retarget-video-button").click()
    video = page.locator("#retarget-video-result video")
    video.wait_for()
    duration, width, height, ok = video.evaluate(PLAYABLE)
    assert ok and 0.8 < duration < 1.3 and (width, height) == (720, 1080)
    concat = page.locator("#retarget-video-concat video")
    assert concat.evaluate(PLAYABLE)[1:3] == [1024, 512]


def test_a_failure_is_a_message_in_the_page(page):
    page.locator("#animate-button").click()
    message = page.get_by_text("no source: upload an image or a video first")
    message.first.wait_for()
    assert "Traceback" not in page.content()


def test_the_faces_of_a_group_photo_are_shown_and_picked(page, shared, group_picture):
    page.get_by_text("Faces (group photos and videos)").click()
    _upload(page, "source-image", group_picture)
    _wait_for_new_image(page, "#faces-preview img", None)
    preview = _image_at(page, "#faces-preview img")
    source = read_image_rgb(group_picture)
    assert preview.shape == source.shape
    assert np.abs(preview[..., ::-1].astype(int) - source).max() > 100  # the numbers drawn
    page.locator("#source-faces input").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    assert options.all_inner_texts() == ["all", "0", "1", "2"]
    options.filter(has_text="1").click()
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Driving Image").click()
    _upload(page, "driving-image", shared / "assets/driving/d19.jpg")
    page.locator("#animate-button").click()
    _wait_for_new_image(page, "#result-image img", None)
    result = _image_at(page, "#result-image img")[..., ::-1]
    diff = np.abs(result.astype(int) - source).mean(axis=2)
    # face 1 (s0, the middle one) opened its mouth; the largest (s6) did not
    assert diff[195:324, 547:653].mean() > 2 * diff[161:325, 155:285].mean()


def _toasts_saying(page, text: str) -> int:
    """How many times the page's toasts show ``text`` (a repeated message is listed again in
    its toast, under a count)."""
    return sum(body.count(text) for body in page.locator(".toast-body").all_inner_texts())


def test_the_animation_examples_fill_the_inputs_and_animate(page):
    examples = page.locator("#animation-examples")
    examples.scroll_into_view_if_needed()
    for name in ("talk", "smile", "nod"):
        assert examples.get_by_text(f"{name}: ").is_visible(), name
    examples.get_by_text("smile: ").click()
    page.locator("#source-image img").wait_for()
    # the Preset tab is drawn when the example selects it, after the inputs are filled
    page.wait_for_function(
        "document.querySelector('#driving-preset input')?.value.startsWith('smile:')")
    assert page.get_by_role("tab", name="Preset").get_attribute("aria-selected") == "true"
    page.locator("#animate-button").click()
    page.locator("#result-video video").wait_for()


def test_an_out_of_range_number_is_one_message_naming_the_range(page, caplog, capsys):
    message = "'relative yaw' takes -25 to 25; 999 is out of range"
    with caplog.at_level(logging.INFO, logger="portrait_animate"):
        box = page.locator("#yaw input[type=number]")
        box.fill("999")
        box.press("Enter")
        page.get_by_text(message).first.wait_for()
    [record] = [r for r in caplog.records if "relative yaw" in r.getMessage()]
    assert record.getMessage() == message and record.levelno == logging.INFO
    assert "Traceback" not in capsys.readouterr().err


def test_a_failed_upload_clears_the_last_edit_and_says_so_once(page, shared, tmp_path):
    _upload(page, "edit-image", shared / "assets/source/s0.jpg")
    _wait_for_new_image(page, "#edit-crop img", None)
    page.wait_for_function("document.querySelector('#edit-status')?.innerText.includes('ms')")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    _upload(page, "edit-image", text)
    message = "the source image upload notes.png cannot be read as an image"
    page.get_by_text(message).first.wait_for()
    page.wait_for_timeout(2000)  # a second check of the same upload would have shown by now
    assert _toasts_saying(page, message) == 1
    assert page.locator("#edit-crop img").count() == 0
    assert page.locator("#edit-pasted img").count() == 0
    assert page.locator("#edit-status").inner_text().strip() == ""
    assert float(page.locator("#eye-ratio input[type=number]").input_value()) == 0


def test_the_neural_engine_without_weights_names_the_pages_controls(page, shared, app_server,
                                                                    monkeypatch, tmp_path):
    from portrait_animate.app.backend import NO_WEIGHTS, _EngineCache

    monkeypatch.setenv("PORTRAIT_ANIMATE_CACHE", str(tmp_path))
    monkeypatch.setattr(app_server.backend, "engines", _EngineCache(
        replace(app_server.backend.base, weights_dir=str(tmp_path))))
    page.locator("#edit-engine").get_by_text("neural", exact=True).click()
    _upload(page, "edit-image", shared / "assets/source/s0.jpg")
    page.get_by_text("no usable LivePortrait weights").first.wait_for()
    shown = " ".join(page.locator(".toast-body").all_inner_texts())
    assert NO_WEIGHTS in shown and "--" not in shown and str(tmp_path) not in shown


def test_a_reloaded_page_stops_its_job(page, shared, short_driving_video, tmp_path, caplog):
    """A page reloaded (or closed) mid-job: the job ran to its end, and the page's next job
    waited behind it (9 s instead of 1.5 for a short one, minutes behind a long video)."""
    long = loop_video(short_driving_video, tmp_path / "long.mp4", 450)  # 18 s
    _upload(page, "source-image", shared / "assets/source/s0.jpg")
    _upload(page, "driving-video", long)
    with caplog.at_level(logging.INFO, logger="portrait_animate"):
        page.locator("#animate-button").click()
        page.get_by_text("animating (classic)").first.wait_for(timeout=120_000)
        page.reload(wait_until="load")
        page.wait_for_selector("#animate-button")
        reloaded = time.monotonic()
        while not any("so its job stopped" in r.getMessage() for r in caplog.records):
            assert time.monotonic() - reloaded < 20, "the job went on after its page was closed"
            time.sleep(0.2)
    # the reloaded page's own job runs at once
    _upload(page, "source-image", shared / "assets/source/s0.jpg")
    _upload(page, "driving-video", short_driving_video)
    page.locator("#animate-button").click()
    page.locator("#result-video video").wait_for(timeout=60_000)


def test_a_warning_of_the_job_is_shown_in_the_page(page, shared):
    """A job's warnings say that the result may not be what the user wanted; the page showed
    none of them (only the server's log had them). Here s0 is turned 33 degrees by d12 in
    absolute motion, past what the classic engine draws (30), and the fix names the page's
    checkbox, not the command line's flag."""
    _upload(page, "source-image", shared / "assets/source/s0.jpg")
    page.get_by_role("tab", name="Driving Image").click()
    _upload(page, "driving-image", shared / "assets/driving/d12.jpg")
    page.get_by_label("relative motion", exact=True).uncheck()
    page.locator("#animate-button").click()
    _wait_for_new_image(page, "#result-image img", None)
    page.get_by_text("turns the head 33 degrees").first.wait_for()
    assert _toasts_saying(page, "turns the head") == 1
    shown = " ".join(page.locator(".toast-body").all_inner_texts())
    assert "tick 'relative motion' to turn the head" in shown and "--" not in shown


def test_a_reference_template_on_the_classic_engine_says_what_it_takes(page, shared):
    """d1.pkl (LivePortrait's keypoints) animates on the classic engine by its pose and its
    eye and lip ratios; the page says that the rest of its expression needs the neural
    engine, naming the page's control."""
    _upload(page, "source-image", shared / "assets/source/s0.jpg")
    page.get_by_role("tab", name="Driving Template").click()
    _upload(page, "driving-template", shared / "assets/driving/d1.pkl")
    page.locator("#animate-button").click()
    page.locator("#result-video video").wait_for()
    page.get_by_text("takes only the head pose").first.wait_for()
    shown = " ".join(page.locator(".toast-body").all_inner_texts())
    assert "the classic engine takes only the head pose and the eyes' and lips' opening of " \
        "d1.pkl" in shown
    assert "which the neural engine takes ('engine' neural)" in shown and "--" not in shown
