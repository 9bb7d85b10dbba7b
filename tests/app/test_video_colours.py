"""A written video's colours as a browser shows them: untagged, Chromium took a video of HD
size for BT.709 while its YUV came from BT.601's matrix, and showed red (220, 30, 40) as
(238, 50, 40) and green (30, 200, 90) as (16, 177, 90)."""

from __future__ import annotations

import cv2
import numpy as np

from conftest import ARTIFACTS
from portrait_animate.io.video import VideoWriter

RED, GREEN = (220, 30, 40), (30, 200, 90)


def test_a_browser_shows_the_colours_written(browser, tmp_path):
    w, h = 1280, 720
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2], frame[:, w // 2:] = RED, GREEN
    with VideoWriter(tmp_path / "colours.mp4", 25.0) as writer:
        for _ in range(5):
            writer.write(frame)
    (tmp_path / "page.html").write_text(
        "<body style='margin:0;background:#000'><video id=v src='colours.mp4' muted "
        f"style='width:{w}px;height:{h}px;display:block'></video></body>")
    page = browser.new_page(viewport={"width": w, "height": h})
    try:
        page.goto((tmp_path / "page.html").as_uri())
        page.wait_for_function("document.getElementById('v').readyState >= 2", timeout=30_000)
        page.evaluate("document.getElementById('v').currentTime = 0.1")
        page.wait_for_function("!document.getElementById('v').seeking", timeout=30_000)
        page.wait_for_timeout(300)  # the seeked frame painted
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "video_colours.png"
        page.screenshot(path=str(shot))
    finally:
        page.close()
    shown = cv2.imread(str(shot))[..., ::-1].astype(int)
    for colour, x in ((RED, w // 4), (GREEN, 3 * w // 4)):
        seen = shown[h // 4: 3 * h // 4, x - 50: x + 50].reshape(-1, 3).mean(0)
        assert np.abs(seen - colour).max() < 4, (colour, seen)
