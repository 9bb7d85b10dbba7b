"""The Python client's errors: every failure of a call is a one-line ``ServiceError`` that names
the address or the file and the fix (never httpx's, json's or the OS's own exceptions), mistakes
in the arguments are ``ValueError``/``TypeError`` before any request, and a failed download
leaves nothing behind. Most tests need no server: a refused port, a small stdlib HTTP server in
a thread, tmp paths; one real ``portrait-animate serve`` (module-scoped) checks its refusals."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from portrait_animate.client import Client, ServiceError
from servers import free_port

JOB = "0123456789abcdef0123456789abcdef"


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def _nothing_left(folder: Path, *expected: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


# -- a stand-in server: routes of (status, headers, body), or a callable on the handler ------

Route = tuple[int, dict[str, str], bytes] | Callable[[http.server.BaseHTTPRequestHandler], None]


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, Route] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        route = self.routes.get(self.path.split("?")[0])
        if callable(route):
            route(self)
            return
        status, headers, body = route or (404, {"Content-Type": "text/html"},
                                          b"<html><head><title>Error response</title></head>"
                                          b"<body><h1>Error response</h1>\n<p>Error code: 404"
                                          b"</p>\n<p>Message: File not found.</p></body></html>")
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _cut_off(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Promises 100,000 bytes of video, sends 10, and hangs up."""
    handler.send_response(200)
    handler.send_header("Content-Type", "video/mp4")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b"0123456789")
    handler.wfile.flush()
    handler.close_connection = True


def _slow(handler: http.server.BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)
    handler.send_response(200)
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"{}")


ROUTES: dict[str, Route] = {
    "/v1/health": (200, {"Content-Type": "text/html"}, b"<html><body>Directory listing for /"
                                                       b"</body></html>"),
    "/v1/jobs": (200, {"Content-Type": "application/json"}, b'{"jobs": {"not": "a list"}}'),
    f"/v1/jobs/{JOB}": (200, {"Content-Type": "application/json"}, b'["a", "list"]'),
    f"/v1/jobs/{JOB}/result": (200, {"Content-Type": "video/mp4"}, b"a video's bytes"),
    f"/v1/jobs/{JOB}/concat": _cut_off,
    "/v1/jobs/html/result": (200, {"Content-Type": "text/html"}, b"<p>not a video</p>"),
    "/v1/jobs/photo/result": (200, {"Content-Type": "image/jpeg"}, b"a picture's bytes"),
    "/v1/jobs/moved": (301, {"Location": "https://elsewhere.example/v1/jobs/moved"}, b""),
    "/v1/jobs/listed": (422, {"Content-Type": "application/json"}, json.dumps({"detail": [
        {"loc": ["query", "status"], "msg": "Input should be a string"}]}).encode()),
    "/v1/jobs/slow": _slow,
}


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    _Handler.routes = ROUTES
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- the constructor ---------------------------------------------------------------------------

@pytest.mark.parametrize("url, error, words", [
    ("127.0.0.1:8893", ValueError, ["'127.0.0.1:8893'", "http://", "'http://127.0.0.1:8893'"]),
    ("localhost:8893", ValueError, ["'localhost:8893'", "'http://localhost:8893'"]),
    ("ftp://host", ValueError, ["'ftp://host'", "http://"]),
    ("", ValueError, ["empty"]),
    ("http://", ValueError, ["names no host"]),
    ("http://host:99999", ValueError, ["port 99999"]),
    ("http://host:8891/?x=1", ValueError, ["query"]),
    ("http://my host", ValueError, ["space"]),
    (None, TypeError, ["str", "NoneType"]),
    (Path("http://127.0.0.1:8891"), TypeError, ["str", "not a path"]),
    (b"http://127.0.0.1:8891", TypeError, ["str", "bytes"]),
    (8891, TypeError, ["str", "int"]),
])
def test_a_bad_url_is_refused_by_the_constructor(url, error, words):
    with pytest.raises(error) as refused:
        Client(url)
    message = _one_line(refused.value)
    assert all(word in message for word in words), message


def test_the_url_is_tidied_and_a_base_path_kept():
    assert Client(" http://127.0.0.1:8891/ ").url == "http://127.0.0.1:8891"
    assert Client("https://example.org/animate/").url == "https://example.org/animate"


@pytest.mark.parametrize("key, error", [
    ("abc\ndef", ValueError), ("abc\r\nX-Injected: 1", ValueError), ("abc\x00", ValueError),
    ("clé", ValueError), (b"key", TypeError), (123, TypeError)])
def test_a_key_that_no_header_can_carry_is_refused_by_the_constructor(key, error):
    with pytest.raises(error, match="api_key") as refused:
        Client("http://127.0.0.1:8891", api_key=key)
    _one_line(refused.value)


def test_a_key_read_from_a_file_keeps_working(standin):
    client = Client(standin, api_key="key-from-a-file\n")  # the line break of the file's line
    assert client._http.headers["authorization"] == "Bearer key-from-a-file"
    assert "authorization" not in Client(standin, api_key="")._http.headers


@pytest.mark.parametrize("timeout, error", [(0, ValueError), (-1, ValueError),
                                            (float("nan"), ValueError), ("5", TypeError)])
def test_a_bad_timeout_is_refused_by_the_constructor(timeout, error):
    with pytest.raises(error, match="timeout"):
        Client("http://127.0.0.1:8891", timeout=timeout)


# -- no service, or not the service ----------------------------------------------------------

def test_no_server_is_a_service_error_that_says_to_start_it(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    client = Client(url)
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"\xff\xd8\xff")
    for call in (client.health, lambda: client.status(JOB), client.jobs,
                 lambda: client.cancel(JOB), lambda: client.submit(source, "preset:talk"),
                 lambda: client.download(JOB, tmp_path / "out.mp4")):
        with pytest.raises(ServiceError) as refused:
            call()
        message = _one_line(refused.value)
        assert message.startswith(f"cannot reach the service at {url} (")
        assert "is it running?" in message and "portrait-animate serve" in message
        assert refused.value.status is None
    _nothing_left(tmp_path, "photo.jpg")


def test_a_body_that_is_not_json_is_a_service_error_with_its_status_and_an_excerpt(standin):
    client = Client(standin)
    with pytest.raises(ServiceError) as refused:
        client.status("nope")  # the stand-in's HTML 404
    message = _one_line(refused.value)
    assert refused.value.status == 404
    assert message.startswith(f"404 from GET {standin}/v1/jobs/nope")
    assert "'Error response Error code: 404 Message: File not found.'" in message
    assert "<" not in message and "portrait-animate serve" in message
    with pytest.raises(ServiceError) as refused:
        client.health()  # 200, but HTML
    message = _one_line(refused.value)
    assert f"GET {standin}/v1/health answered 200 with 'Directory listing for /'" in message
    assert refused.value.status is None


def test_json_of_another_shape_is_a_service_error(standin):
    client = Client(standin)
    with pytest.raises(ServiceError, match=r"answered 200 with '\[\"a\", \"list\"\]'"):
        client.status(JOB)
    with pytest.raises(ServiceError, match="'jobs' that is not a list"):
        client.jobs()


def test_redirects_validation_lists_and_slow_answers_are_one_line(standin):
    client = Client(standin)
    with pytest.raises(ServiceError) as refused:
        client.status("moved")
    assert refused.value.status == 301
    assert "redirects to https://elsewhere.example/v1/jobs/moved" in _one_line(refused.value)
    with pytest.raises(ServiceError) as refused:
        client.status("listed")
    assert refused.value.status == 422
    assert _one_line(refused.value).startswith("422: status: Input should be a string (GET ")
    with pytest.raises(ServiceError) as refused:
        Client(standin, timeout=0.3).status("slow")  # the answer takes 1 s
    message = _one_line(refused.value)
    assert f"the service at {standin} did not answer GET /v1/jobs/slow within 0.3 s" in message
    assert "timeout=" in message


def test_a_job_id_that_is_not_one_is_refused_before_any_request():
    client = Client(f"http://127.0.0.1:{free_port()}")
    for job in (None, 42, {"id": JOB}):
        with pytest.raises(TypeError, match="job id must be the str that submit returned"):
            client.status(job)
    for job in ("", " ", "..", "."):
        with pytest.raises(ValueError, match="give the id that submit returned"):
            client.download(job, "x.mp4")


# -- downloads ---------------------------------------------------------------------------------

def test_a_download_writes_the_file_and_leaves_no_part(standin, tmp_path):
    target = Client(standin).download(JOB, str(tmp_path / "out.mp4"))
    assert target == tmp_path / "out.mp4" and target.read_bytes() == b"a video's bytes"
    _nothing_left(tmp_path, "out.mp4")


def test_a_download_takes_the_extension_of_its_type(standin, tmp_path):
    """An image driven by an image gives a JPEG: asked for as .mp4 (the README's example
    name), it was written as a JPEG named .mp4, which players refuse."""
    client = Client(standin)
    assert client.download("photo", tmp_path / "out.mp4") == tmp_path / "out.jpg"
    assert (tmp_path / "out.jpg").read_bytes() == b"a picture's bytes"
    assert client.download("photo", tmp_path / "kept.JPEG") == tmp_path / "kept.JPEG"
    assert client.download(JOB, tmp_path / "clip.jpg") == tmp_path / "clip.mp4"
    _nothing_left(tmp_path, "out.jpg", "kept.JPEG", "clip.mp4")


def test_a_download_cut_off_leaves_nothing_behind(standin, tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(ServiceError) as broke:
        Client(standin).download(JOB, target, concat=True)
    message = _one_line(broke.value)
    assert f"the connection to the service at {standin} failed during GET " \
           f"/v1/jobs/{JOB}/concat" in message
    _nothing_left(tmp_path)


def test_an_existing_file_is_kept_when_a_download_fails(standin, tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the last result")
    for job, concat in ((JOB, True), ("nope", False), ("html", False)):
        with pytest.raises(ServiceError):
            Client(standin).download(job, target, concat=concat)
    assert target.read_bytes() == b"the last result"
    _nothing_left(tmp_path, "out.mp4")


def test_a_download_of_a_page_is_not_written_as_a_video(standin, tmp_path):
    with pytest.raises(ServiceError, match="answered text/html .*not a video or an image"):
        Client(standin).download("html", tmp_path / "out.mp4")
    _nothing_left(tmp_path)


def test_a_target_that_cannot_be_written_is_refused_before_the_request(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = Client(f"http://127.0.0.1:{free_port()}")  # reached, it would say so instead
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "afile").write_text("x")
    for target, words in (
            ("existing_dir", ["existing_dir: it is a folder", f"existing_dir/{JOB}.mp4"]),
            (tmp_path / "existing_dir", ["is a folder"]),
            ("", ["is a folder"]),
            ("new_dir/", ["new_dir/: it names a folder"]),
            ("missing/out.mp4", ["the folder missing does not exist", "create it first"]),
            ("afile/out.mp4", ["afile is a file, not a folder"])):
        with pytest.raises(ServiceError) as refused:
            client.download(JOB, target)
        message = _one_line(refused.value)
        assert all(word in message for word in words), (target, message)
    for target in (None, 3, b"out.mp4"):
        with pytest.raises(TypeError, match="path must be a path"):
            client.download(JOB, target)
    _nothing_left(tmp_path, "existing_dir", "afile")
    _nothing_left(tmp_path / "existing_dir")


# -- submissions -------------------------------------------------------------------------------

def test_a_submission_with_bad_files_or_options_is_refused_before_any_request(tmp_path):
    client = Client(f"http://127.0.0.1:{free_port()}")  # reached, it would say so instead
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    for source, driving, words in (
            (tmp_path, "preset:talk", [f"source {tmp_path} is a folder"]),
            (tmp_path / "none.jpg", "preset:talk", ["source", "none.jpg does not exist"]),
            (photo, tmp_path, [f"driving {tmp_path} is a folder"]),
            (photo, "talk", ["driving talk does not exist", "'preset:talk'"])):
        with pytest.raises(ServiceError) as refused:
            client.submit(source, driving)
        message = _one_line(refused.value)
        assert all(word in message for word in words), message
    with pytest.raises(TypeError, match=r"option 'frames' holds a set, which JSON cannot"):
        client.submit(photo, "preset:talk", frames={1, 2})
    with pytest.raises(TypeError, match=r"option 'region' holds a object, which JSON cannot"):
        client.submit(photo, "preset:talk", region=[object()])
    with pytest.raises(TypeError, match=r"option 'crop' cannot be sent as JSON \(keys must"):
        client.submit(photo, "preset:talk", crop={(1, 2): 3})
    with pytest.raises(ValueError, match=r"option 'det_thresh' holds nan, not a finite number"):
        client.submit(photo, "preset:talk", det_thresh=float("nan"))
    with pytest.raises(TypeError, match="source must be a path"):
        client.submit(None, "preset:talk")
    with pytest.raises(TypeError, match="driving must be a path"):
        client.submit(photo, None)


def test_path_and_numpy_options_are_sent_as_json(standin, tmp_path, monkeypatch):
    sent = {}

    def fake(self, method, path, key, **kwargs):
        sent.update(kwargs["data"])
        return {"id": JOB}

    monkeypatch.setattr(Client, "_json", fake)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    assert Client(standin).submit(photo, "preset:talk", mask=tmp_path / "m.png",
                                  crops=[tmp_path], det_thresh=np.float32(0.5),
                                  frames=np.int64(3)) == JOB
    assert json.loads(sent["options"]) == {"mask": str(tmp_path / "m.png"),
                                           "crops": [str(tmp_path)], "det_thresh": 0.5,
                                           "frames": 3}


# -- the real service --------------------------------------------------------------------------

KEY = "client-errors-key"


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("client-errors") / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data.parent / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "portrait_animate", "serve", "--port", str(port),
             "--data_dir", str(data), "--api_key", KEY, "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < end, "the server did not start: " + log.read_text()
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_real_services_refusals_name_the_request_and_the_fix(service, tmp_path):
    assert Client(service).health()["status"] == "ok"  # health needs no key
    with pytest.raises(ServiceError) as refused:
        Client(service).jobs()
    message = _one_line(refused.value)
    assert refused.value.status == 401
    assert message.startswith("401: missing or wrong API key")
    assert f"(GET {service}/v1/jobs)" in message and "Client(url, api_key=...)" in message
    with pytest.raises(ServiceError, match="check Client's api_key"):
        Client(service, api_key="wrong").jobs()

    with Client(service, api_key=KEY) as client:
        assert isinstance(client.jobs(), list)
        with pytest.raises(ServiceError) as gone:
            client.status("f" * 32)
        assert gone.value.status == 404
        assert _one_line(gone.value) == (f'404: no job "{"f" * 32}" '
                                         f"(GET {service}/v1/jobs/{'f' * 32})")
        target = tmp_path / "out.mp4"
        with pytest.raises(ServiceError) as gone:
            client.download("f" * 32, target)
        assert gone.value.status == 404
        with pytest.raises(ServiceError) as gone:
            client.status("../health")  # a job id, not a way out of /v1/jobs/
        assert gone.value.status == 404
        photo = tmp_path / "photo.png"
        Image.fromarray(np.full((64, 64, 3), 140, np.uint8)).save(photo)
        with pytest.raises(ServiceError) as bad:
            client.submit(photo, "preset:talk", regio="lip")
        assert bad.value.status == 422
        assert 'unknown option "regio"' in _one_line(bad.value)
        assert f"(POST {service}/v1/jobs)" in str(bad.value)
    _nothing_left(tmp_path, "photo.png")
