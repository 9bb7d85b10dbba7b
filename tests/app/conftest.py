"""The app served in-process on a free port, and a headless Debian Chromium driven by
Playwright (``make test`` installs ``chromium``; Playwright's own browser download is not
used)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from media import clip
from servers import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@dataclass
class RunningApp:
    url: str
    backend: object


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, synthetic_weights) -> Iterator[RunningApp]:
    from portrait_animate.app import AppBackend, AppLimits, serve
    from portrait_animate.pipeline.options import AnimateOptions

    base = AnimateOptions(source="", driving="", engine="classic",
                          weights_dir=str(synthetic_weights), quiet=True)
    backend = AppBackend(base, AppLimits(max_upload_mb=50, max_video_seconds=20),
                         tmp_path_factory.mktemp("app"))
    port = free_port()
    demo = serve(backend, server_port=port, block=False)
    yield RunningApp(f"http://127.0.0.1:{port}/", backend)
    demo.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (`make test` installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server, request):
    """A fresh page on the app; its screenshot is saved under test-artifacts/ afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(180_000)
    # The Live tab's stream keeps a heartbeat connection open: never network-idle.
    page.goto(app_server.url, wait_until="load")
    page.wait_for_selector("#animate-button")
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture(scope="session")
def short_driving_video(shared, tmp_path_factory) -> Path:
    return clip(shared / "assets/driving/d0.mp4", tmp_path_factory.mktemp("clips") / "d0.mp4",
                1.0)


@pytest.fixture(scope="session")
def short_source_video(shared, tmp_path_factory) -> Path:
    """One second of the source video with audio (720x1080)."""
    return clip(shared / "assets/source/s13.mp4", tmp_path_factory.mktemp("clips") / "s13.mp4",
                1.0)
