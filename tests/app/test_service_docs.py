"""``serve``'s /docs in a real browser with every request off loopback refused: its scripts
come from the server itself, so a server off the internet still shows it."""

from __future__ import annotations

import signal
from urllib.parse import urlsplit

from conftest import ARTIFACTS
from servers import Server


def test_the_service_documents_itself_off_the_internet(browser, tmp_path):
    server = Server(tmp_path / "data")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    outside: list[str] = []

    def loopback_only(route) -> None:
        url = urlsplit(route.request.url)
        if url.hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    try:
        context.route("**/*", loopback_only)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{server.url}/docs")
        # Swagger UI drew the operations from the OpenAPI document
        page.locator(".opblock-summary-path", has_text="/v1/jobs").first.wait_for()
        assert page.locator(".opblock").count() >= 5
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "service_docs.png"))
    finally:
        context.close()
        server.kill(signal.SIGTERM)
    assert outside == [], f"the docs reached off loopback: {outside}"
