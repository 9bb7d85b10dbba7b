"""``portrait-animate serve`` (issue 16), as a real server process on loopback with real HTTP:
keys, limits, bad uploads, path traversal, cancelling, results, the Python client, and a
server SIGKILLed mid-job that loses nothing."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from media import frame_count, loop_video, read_video
from portrait_animate.client import Client, ServiceError
from portrait_animate.io.video import ffmpeg_exe
from portrait_animate.service.runner import Runner
from portrait_animate.service.store import JobStore
from processes import spawned_workers, wait_gone
from servers import Server, free_port

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("service") / "data"
    server = Server(data, "--api_key", KEY, "--max_upload_mb", "1", "--max_video_seconds", "1.5")
    yield server
    server.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def client(server) -> Iterator[Client]:
    with Client(server.url, KEY) as client:
        yield client


def _healthy(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/health", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_with_a_key_every_route_but_health_needs_it(server):
    assert httpx.get(f"{server.url}/v1/health").status_code == 200
    for method, path in (("GET", "/v1/jobs"), ("GET", "/v1/jobs/" + "0" * 32),
                         ("POST", "/v1/jobs"), ("DELETE", "/v1/jobs/" + "0" * 32)):
        response = httpx.request(method, f"{server.url}{path}")
        assert response.status_code == 401, (method, path)
        assert "API key" in response.json()["detail"]
        wrong = httpx.request(method, f"{server.url}{path}",
                              headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert httpx.get(f"{server.url}/v1/jobs", headers=AUTH).status_code == 200
    lower = {"Authorization": f"bearer {KEY}"}  # the scheme is case-insensitive (RFC 7235)
    assert httpx.get(f"{server.url}/v1/jobs", headers=lower).status_code == 200
    assert httpx.get(f"{server.url}/docs").status_code == 200
    # /docs can send the key: the routes name a bearer scheme, health does not
    api = httpx.get(f"{server.url}/openapi.json").json()
    (scheme,) = api["components"]["securitySchemes"].values()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert api["paths"]["/v1/jobs"]["get"]["security"]
    assert "security" not in api["paths"]["/v1/health"]["get"]
    ids = [operation["operationId"] for path in api["paths"].values()
           for operation in path.values()]
    assert len(ids) == len(set(ids)), f"operation ids twice: {sorted(ids)}"


def test_an_oversize_upload_gets_413(server, shared):
    big = os.urandom(int(1.5 * 2**20))
    response = httpx.post(f"{server.url}/v1/jobs", headers=AUTH,
                          files={"source": ("big.jpg", big)}, data={"driving": "talk"})
    assert response.status_code == 413
    assert "over 1 MB" in response.json()["detail"]
    # over twice the limit: refused from the Content-Length, before the body is read
    huge = httpx.post(f"{server.url}/v1/jobs", headers=AUTH,
                      files={"source": ("huge.jpg", os.urandom(3 * 2**20))})
    assert huge.status_code == 413
    assert not any((Path(p) / "source.jpg").exists() for p in _job_dirs(server))
    _healthy(server)


def test_a_video_over_the_length_limit_gets_422(server, client, shared, tmp_path):
    long = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "long.mp4", 60)  # 2.4 s
    assert long.stat().st_size < 2**20
    with pytest.raises(ServiceError) as refused:
        client.submit(shared / "assets/source/s6.jpg", long)
    assert refused.value.status == 422
    assert "lasts 2.4 s, over the limit of 1.5 s" in str(refused.value)
    # a bare H.264 stream has no duration to hold to the limit before it is all decoded
    stream = tmp_path / "talk.h264"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(long), "-an", "-c:v", "libx264",
                    "-f", "h264", str(stream)], check=True)
    with pytest.raises(ServiceError) as refused:
        client.submit(shared / "assets/source/s6.jpg", stream)
    assert refused.value.status == 422
    assert "the driving upload is a video with no duration (a bare stream such as .h264, in no " \
           "container)" in str(refused.value)
    assert "re-encode it as an MP4" in str(refused.value)


def test_tiff_gif_and_phone_photo_uploads_are_read_as_animate_reads_them(server, client, shared,
                                                                        tmp_path):
    """A TIFF, a still GIF, a phone's JPEG (an MPO: a JPEG with a second picture) and an
    iPhone's HEIC are images, an animated GIF or WebP is a driving video, held to the length
    limit like any video."""
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    face = Image.open(shared / "assets/source/s6.jpg")
    tiff, still, mpo = tmp_path / "s6.tif", tmp_path / "s6.gif", tmp_path / "s6.jpg"
    heic = tmp_path / "s6.heic"  # an iPhone's photo
    face.save(heic, quality=80)
    face.save(tiff, compression="tiff_deflate")  # under the server's 1 MB
    face.save(still)
    face.save(mpo, "MPO", save_all=True, append_images=[face.resize((160, 120))])
    assert Image.open(mpo).format == "MPO"
    frames = [Image.fromarray(f) for f in read_video(shared / "assets/driving/d0.mp4")[0][:8]]

    def gif(name: str, milliseconds: int) -> Path:
        path = tmp_path / name
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=milliseconds)
        return path

    talk, sticker = gif("talk.gif", 100), tmp_path / "talk.webp"  # an animated WebP too
    frames[0].save(sticker, save_all=True, append_images=frames[1:], duration=100, quality=60)
    for source, driving in ((tiff, talk), (still, talk), (mpo, sticker), (heic, talk)):
        job = client.submit(source, driving)
        assert client.wait(job, timeout=120)["progress"] == {"frames": 8, "total": 8}
        assert frame_count(client.download(job, tmp_path / f"{source.suffix}.mp4")) == 8
    with pytest.raises(ServiceError) as refused:
        client.submit(tiff, gif("long.gif", 250))
    assert refused.value.status == 422
    assert "lasts 2.0 s, over the limit of 1.5 s" in str(refused.value)


def test_serve_refuses_bad_settings_before_it_starts(tmp_path, capsys):
    from portrait_animate.cli.main import main

    afile = tmp_path / "afile"
    afile.write_text("x")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args, message in (
                (["--max_upload_mb", "inf"], "--max_upload_mb inf is not a finite number"),
                (["--data_dir", str(afile)], f"--data_dir {afile} is a file"),
                (["--api_key", " "], "--api_key is empty"),
                (["--api_key_file", str(tmp_path / "none")], "is not a file"),
                (["--port", port], f"cannot listen on 127.0.0.1:{port}")):
            data = ["--data_dir", str(tmp_path / "data")] if "--data_dir" not in args else []
            assert main(["serve", *data, "--port", port, *args]) == 2, args
            err = capsys.readouterr().err
            assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_finished_jobs_expire_with_their_files(tmp_path):
    store = JobStore(tmp_path)
    job, folder = store.new_folder()
    store.add(job, {"source": "x"})
    store.next_queued()
    (folder / "out").mkdir()
    store.done(job, "r.mp4", "c.mp4", 3, 1.0)
    kept, kept_folder = store.new_folder()
    store.add(kept, {"source": "y"})
    runner = Runner(store, executor=None, keep_hours=1 / 3600)  # a second
    runner._cleanup()
    assert store.get(job) is not None  # not a second old yet
    time.sleep(1.1)
    runner._cleaned = 0.0
    runner._cleanup()
    assert store.get(job) is None and not folder.exists()
    assert store.get(kept) is not None and kept_folder.exists()  # queued: kept


def _job_dirs(server: Server) -> list[Path]:
    data = Path(server.process.args[server.process.args.index("--data_dir") + 1])
    return list((data / "jobs").iterdir())


def _template(path: Path) -> Path:
    from portrait_animate.engines.classic.motion import classic_layout
    from portrait_animate.io.templates import save_template
    from portrait_animate.motion.presets import preset_template

    return save_template(path, preset_template("nod", classic_layout()))


def test_garbage_and_faceless_images_fail_with_one_line_and_the_server_goes_on(
        server, client, shared, tmp_path):
    garbage = tmp_path / "photo.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + os.urandom(5000))  # a JPEG's magic, then noise
    with pytest.raises(ServiceError) as bad:
        client.submit(garbage, "preset:talk")
    assert bad.value.status == 422
    assert "neither an image" in str(bad.value) and "\n" not in str(bad.value)
    text = tmp_path / "face.png"
    text.write_text("not a picture")
    with pytest.raises(ServiceError, match="neither an image"):
        client.submit(text, "preset:talk")
    # a motion template, which animate takes, is named as one (it was 'neither an image')
    for template in (shared / "assets/driving/d1.pkl", _template(tmp_path / "t.npz")):
        with pytest.raises(ServiceError, match="is a motion template .* which the service does "
                                               "not take; send the driving video or image"):
            client.submit(shared / "assets/source/s0.jpg", template)
    faceless = tmp_path / "wall.jpg"
    cv2.imwrite(str(faceless), np.full((300, 300, 3), 140, np.uint8))
    with pytest.raises(ServiceError, match='unknown option "regio"'):
        client.submit(faceless, "preset:talk", regio="lip")
    job = client.submit(faceless, "preset:talk")
    with pytest.raises(ServiceError) as failed:
        client.wait(job, timeout=120)
    message = str(failed.value)
    assert "no face found in the source image source.jpg" in message
    assert "Traceback" not in message and str(_job_dirs(server)[0].parent) not in message
    assert '"det_thresh"' in message and "--" not in message, "options as the client sets them"
    assert client.status(job)["status"] == "failed"
    assert client.status(job)["timings"]["seconds"] > 0
    result = httpx.get(f"{server.url}/v1/jobs/{job}/result", headers=AUTH)
    assert result.status_code == 409
    assert result.json()["detail"].startswith(f"job {job} failed, so it has no result: no face")
    _healthy(server)


def test_bad_images_and_options_get_one_line_and_leave_no_folder(server, client, shared,
                                                                 tmp_path):
    """Images the pipeline must not take (a decompression bomb, too many pixels, a format it
    does not read, a cut-off file), options a client cannot set and bodies that are not
    options all get a 422 naming the fix, before any work and with nothing kept."""
    from PIL import Image

    def refused(source: Path | None, detail: str, options: str = "{}",
                driving: str | None = "talk") -> None:
        files = {} if source is None else {"source": (source.name, source.read_bytes())}
        data = {"options": options} | ({} if driving is None else {"driving": driving})
        response = httpx.post(f"{server.url}/v1/jobs", headers=AUTH, files=files, data=data,
                              timeout=60)
        assert response.status_code == 422, response.text
        assert detail in response.json()["detail"], response.text

    before = {p.name for p in _job_dirs(server)}
    bomb, big, icon, cut = (tmp_path / name for name in ("bomb.png", "big.png", "s.ico",
                                                         "cut.jpg"))
    Image.new("1", (14000, 14000)).save(bomb)  # 196 megapixels in a few kB
    Image.new("1", (10000, 10000)).save(big)
    Image.new("RGB", (64, 64)).save(icon)
    cut.write_bytes((shared / "assets/source/s0.jpg").read_bytes()[:5000])
    refused(bomb, "the source upload has over 89 megapixels; send a smaller image")
    refused(big, "the source upload is 10000x10000 pixels, over 89 megapixels")
    refused(icon, "the source upload is an image of the ICO format; send a JPEG, PNG, WebP, BMP, "
                  "TIFF, GIF, HEIC or AVIF image")
    refused(cut, "the source upload is a damaged JPEG image")
    face = shared / "assets/source/s6.jpg"
    refused(face, "options nest too deeply", "[" * 100_000 + "]" * 100_000)
    for name, value in (("weights_dir", "/etc"), ("save_frames", True), ("quiet", True)):
        refused(face, f'option "{name}" is the server\'s to decide', json.dumps({name: value}))
    refused(face, '"batch_size" 1000000000000000000000000000000 is not a whole number of '
                  "frames from 0 to 64", json.dumps({"batch_size": 10**30}))
    refused(face, 'conflicting options: "flag_normalize_lip" needs relative motion; set '
                  '"flag_relative_motion" to true or set "flag_normalize_lip" to false',
            json.dumps({"flag_normalize_lip": True, "flag_relative_motion": False}))
    refused(face, 'unknown option "name"', json.dumps({"name": "x"}))
    refused(face, "no driving; send a driving video or image", driving=None)
    if not client.health()["engines"]["neural"]:
        refused(face, "this server has no weights for the neural engine",
                json.dumps({"engine": "neural"}))
    assert {p.name for p in _job_dirs(server)} == before
    _healthy(server)


def test_ids_that_try_to_leave_the_jobs_folder_get_404(server):
    for path in ("/v1/jobs/..%2F..%2Fservice.sqlite", "/v1/jobs/..%2Fservice.sqlite/result",
                 "/v1/jobs/%2e%2e/concat", "/v1/jobs/" + "a" * 31 + "%2F/result",
                 "/v1/jobs/../service.sqlite", "/v1/jobs/0123456789abcdef0123456789ABCDEF"):
        response = httpx.get(f"{server.url}{path}", headers=AUTH)
        assert response.status_code == 404, path
        assert b"SQLite" not in response.content


def test_a_job_runs_and_its_result_and_concat_download(server, client, shared, tmp_path):
    job = client.submit(shared / "assets/source/s6.jpg", shared / "assets/driving/d12.jpg",
                        animation_region="lip")
    status = client.wait(job, timeout=120)
    assert status["progress"] == {"frames": 1, "total": 1}
    assert status["options"] == {"animation_region": "lip"}
    response = httpx.get(f"{server.url}/v1/jobs/{job}/result", headers=AUTH)
    assert response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] > 100
    head = httpx.head(f"{server.url}/v1/jobs/{job}/result", headers=AUTH)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(response.content)
    concat = client.download(job, tmp_path / "concat.jpg", concat=True)
    assert cv2.imread(str(concat)).shape[1] > image.shape[1]
    assert job in [j["id"] for j in client.jobs("done")]
    assert job not in [j["id"] for j in client.jobs("queued")]
    assert httpx.get(f"{server.url}/v1/jobs?status=nope", headers=AUTH).status_code == 422


def test_cancel_a_queued_and_a_running_job(server, client, shared):
    source = shared / "assets/source/s0.jpg"
    running = client.submit(source, "preset:talk")
    queued = client.submit(source, "preset:talk")  # one worker: it waits
    end = time.monotonic() + 120
    while client.status(running)["status"] != "running" or \
            not client.status(running)["progress"]["frames"]:
        assert time.monotonic() < end
        time.sleep(0.05)
    assert client.status(queued)["status"] == "queued"
    (worker,) = spawned_workers(server.process.pid)
    os.kill(worker, signal.SIGSTOP)  # busy until it sees the cancel, held here to see it
    try:
        client.cancel(queued)
        client.cancel(running)
        health = client.health()
        assert (health["running"], health["queued"]) == (1, 0), "the worker is still busy"
    finally:
        os.kill(worker, signal.SIGCONT)
    for job in (queued, running):
        with pytest.raises(ServiceError) as gone:
            client.status(job)
        assert gone.value.status == 404
    folders = {p.name for p in _job_dirs(server)}
    assert queued not in folders
    end = time.monotonic() + 60
    while running in {p.name for p in _job_dirs(server)}:  # removed when the worker stops
        assert time.monotonic() < end
        time.sleep(0.1)
    assert client.health()["running"] == 0
    _healthy(server)


def test_a_sigkilled_server_loses_no_accepted_job(shared, tmp_path):
    driving = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "d0_40.mp4", 40)
    data = tmp_path / "data"
    server = Server(data)
    client = Client(server.url)
    source = shared / "assets/source"
    jobs = [client.submit(source / name, driving) for name in ("s6.jpg", "s0.jpg", "s5.jpg")]
    end = time.monotonic() + 120
    while not client.status(jobs[0])["progress"]["frames"]:
        assert time.monotonic() < end
        time.sleep(0.05)
    server.kill()
    orphan = data / "jobs" / ("f" * 32)  # a job folder no job owns: a cut-off upload's
    orphan.mkdir()
    restarted = Server(data)
    assert not orphan.exists()
    try:
        client = Client(restarted.url)
        for job in jobs:
            status = client.wait(job, timeout=240)
            assert status["progress"]["frames"] == 40
            video = client.download(job, tmp_path / f"{job}.mp4")
            assert frame_count(video) == 40
        assert client.status(jobs[0])["attempts"] == 2  # run again from scratch
    finally:
        restarted.kill(signal.SIGTERM)


def test_a_server_stopped_with_a_job_running_stops_at_once(shared, tmp_path):
    """SIGTERM (systemd's or docker's stop) with a job running: the server could wait for the
    job to end (37 s for a 600-frame job stopped while it analysed its driver) and lost its
    work all the same, since a job left running runs again at the next start (docker kills
    a server that takes over 10 s). Its workers are stopped at once."""
    driving = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "d0_300.mp4", 300)
    data = tmp_path / "data"
    server = Server(data, "--workers", "1")
    client = Client(server.url)
    job = client.submit(shared / "assets/source/s6.jpg", driving)
    end = time.monotonic() + 120
    while client.status(job)["status"] != "running":
        assert time.monotonic() < end
        time.sleep(0.05)
    workers = spawned_workers(server.process.pid)
    sent = time.monotonic()
    server.kill(signal.SIGTERM)
    assert time.monotonic() - sent < 5
    for worker in workers:
        wait_gone(worker, timeout=5)
    restarted = Server(data, "--workers", "1")
    try:
        assert Client(restarted.url).status(job)["status"] in ("queued", "running")
    finally:
        restarted.kill(signal.SIGTERM)


def test_an_idle_worker_that_died_is_replaced_and_the_next_job_runs(shared, tmp_path):
    """A worker killed while idle (the OOM killer's usual victim) breaks its pool before any
    job notices: the next job starts on a new one, once, instead of staying running."""
    server = Server(tmp_path / "data", "--workers", "1")
    try:
        client = Client(server.url)
        source, driving = shared / "assets/source/s6.jpg", shared / "assets/driving/d12.jpg"
        client.wait(client.submit(source, driving), timeout=120)
        (worker,) = spawned_workers(server.process.pid)
        os.kill(worker, signal.SIGKILL)
        wait_gone(worker)  # reaped: its pool knows it is broken
        time.sleep(0.5)
        job = client.submit(source, driving)
        status = client.wait(job, timeout=90)
        assert status["attempts"] == 1 and status["error"] is None
        assert client.health()["running"] == 0
        assert "Traceback" not in server.log.read_text()
    finally:
        server.kill(signal.SIGTERM)


def _sent_until_refused(url: str, body: Iterator[bytes], headers: str) -> tuple[int, bytes]:
    """Send a chunked request until the server answers (or stops reading); the bytes sent
    and the answer."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(headers.encode())
        try:
            for piece in body:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection, or stopped reading
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return sent, answer


def test_an_upload_without_content_length_is_cut_off_at_the_limit(server):
    """A chunked upload has no length to refuse it by: the limit applies as it streams in, so
    no more than about the limit reaches the server's disk."""
    boundary = "b0undary"
    total = 64 * 2**20

    def body() -> Iterator[bytes]:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="driving"\r\n\r\n'
               f'talk\r\n--{boundary}\r\nContent-Disposition: form-data; name="source"; '
               f'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
        piece = b"\xff" * 2**16
        for _ in range(total // len(piece)):
            yield piece
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n")
    before = {p.name for p in _job_dirs(server)}
    sent, answer = _sent_until_refused(server.url, body(), headers)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"the source upload is over 1 MB; send a smaller file" in answer
    assert sent < 16 * 2**20, f"{sent} bytes were read before the 413"
    assert {p.name for p in _job_dirs(server)} == before
    _healthy(server)


def _chunked_refused(server: Server, body: Iterator[bytes], boundary: str) -> bytes:
    """A chunked multipart request, sent until the server answers; its answer, checked to have
    come early and left no job folder."""
    headers = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n")
    before = {p.name for p in _job_dirs(server)}
    sent, answer = _sent_until_refused(server.url, body, headers)
    assert sent < 16 * 2**20, f"{sent} bytes were read before the answer"
    assert {p.name for p in _job_dirs(server)} == before
    return answer


def test_a_request_of_many_parts_or_with_an_endless_epilogue_is_cut_off_at_413(server, shared):
    """The limit is the whole request's: many file parts, each under the limit, or data after
    the closing boundary (which the parser drops), are cut off as they stream in."""
    boundary = "b0undary"
    driving = (f'--{boundary}\r\nContent-Disposition: form-data; name="driving"\r\n\r\n'
               "talk\r\n").encode()

    def file_part(name: str, data: bytes) -> bytes:
        return (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{name}.jpg"\r\n\r\n').encode() + data + b"\r\n"

    def parts() -> Iterator[bytes]:
        yield driving
        for i in range(64):  # 0.9 MB each, 58 MB in all
            yield file_part(f"extra{i}", b"\xff" * (9 * 2**20 // 10))
        yield f"--{boundary}--\r\n".encode()

    answer = _chunked_refused(server, parts(), boundary)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'the request has over 3 parts; send only \\"source\\", \\"driving\\" and ' \
           b'\\"options\\"' in answer

    def epilogue() -> Iterator[bytes]:
        yield driving + file_part("source", (shared / "assets/source/s6.jpg").read_bytes())
        yield f"--{boundary}--\r\n".encode()
        for _ in range(512):  # 32 MB after the end
            yield b"a" * 2**16

    answer = _chunked_refused(server, epilogue(), boundary)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"the request is over 2 MB; each upload may be 1 MB" in answer
    _healthy(server)


def test_a_body_cut_off_before_its_end_says_so(server, shared):
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="driving"\r\n\r\ntalk\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="source"; '
            'filename="s6.jpg"\r\n\r\n').encode() + \
        (shared / "assets/source/s6.jpg").read_bytes()[:5000]  # no more, no closing boundary
    before = {p.name for p in _job_dirs(server)}
    response = httpx.post(f"{server.url}/v1/jobs", headers={
        **AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}, content=body)
    assert response.status_code == 400
    assert response.json() == {"detail": "the upload was cut off before its end; send it again"}
    assert {p.name for p in _job_dirs(server)} == before


def test_a_second_server_on_the_same_data_dir_refuses_to_start_and_touches_nothing(server):
    """It would queue the first one's running jobs again and remove the folders of the uploads
    it is taking."""
    data = Path(server.process.args[server.process.args.index("--data_dir") + 1])
    upload = data / "jobs" / ("e" * 32)  # as the first server makes for an upload it takes
    upload.mkdir()
    try:
        before = sorted(p.relative_to(data) for p in data.rglob("*"))
        second = subprocess.run([sys.executable, "-m", "portrait_animate", "serve", "--port",
                                 str(free_port()), "--data_dir", str(data)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and second.stdout == "", second
        assert second.stderr == (f"error: another server (pid {server.process.pid}) serves "
                                 f"{data.resolve()}; stop it, or give this one another "
                                 "--data_dir\n")
        assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    finally:
        upload.rmdir()
    _healthy(server)


def test_submit_time_errors_hide_the_servers_paths_and_speak_json(server, shared):
    data = Path(server.process.args[server.process.args.index("--data_dir") + 1])
    face, still = shared / "assets/source/s6.jpg", shared / "assets/driving/d30.jpg"
    files = {"source": (face.name, face.read_bytes()), "driving": (still.name,
                                                                   still.read_bytes())}
    response = httpx.post(f"{server.url}/v1/jobs", headers=AUTH, files=files,
                          data={"options": json.dumps({"driving_anchor": "9999"})}, timeout=60)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "past the last frame of the driving image driving.jpg (1 frame)" in detail, detail
    assert str(data) not in detail and "/jobs/" not in detail
    # values as JSON spells them: true, null, and strings in double quotes ('x' was Python's)
    for options, wrong in (({"det_thresh": True}, '"det_thresh" is true; give it a number'),
                           ({"scale": None}, '"scale" is null; give it a number'),
                           ({"det_thresh": "high"}, '"det_thresh" is "high"; give it a number'),
                           ({"animation_region": "nose"},
                            '"animation_region" "nose" is not one of exp, pose, lip, eyes, all')):
        response = httpx.post(f"{server.url}/v1/jobs", headers=AUTH, files=files,
                              data={"options": json.dumps(options)}, timeout=60)
        assert response.status_code == 422 and wrong in response.json()["detail"], response.text
    for body in ({"json": {"source": "x", "driving": "talk"}}, {"data": {"driving": "talk"}}):
        response = httpx.post(f"{server.url}/v1/jobs", headers=AUTH, **body)
        assert response.status_code == 415
        assert response.json()["detail"].startswith("the request must be multipart/form-data")


def test_a_retried_job_shows_nothing_of_its_last_attempt_while_it_runs(tmp_path):
    store = JobStore(tmp_path)
    job, _ = store.new_folder()
    store.add(job, {"source": "x"})
    store.next_queued()
    store.failed(job, "an internal error", 2.5, retry=True)
    assert (store.get(job).status, store.get(job).seconds) == ("queued", 2.5)
    store.next_queued()
    again = store.get(job)
    assert (again.status, again.attempts, again.error, again.finished,
            again.seconds) == ("running", 2, None, None, None)
    store.close()


def test_serve_refuses_a_damaged_state_or_an_unusable_ray_with_one_line_and_no_banner(
        tmp_path, capsys, monkeypatch):
    from portrait_animate.cli.main import main

    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))  # no cluster of this machine's
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "service.sqlite").write_text("garbage\n")
    good = ["--data_dir", str(tmp_path / "data")]
    for args, message in (
            (["--data_dir", str(damaged)], f"{damaged}/service.sqlite cannot be used as the "
                                           "state database (file is not a database); move it "
                                           "away"),
            ([*good, "--ray_address", "bogus://x"], "--ray_address bogus://x is not local, "
                                                    "auto, ray://HOST:PORT or HOST:PORT"),
            ([*good, "--ray_address", "bogus"], "--ray_address bogus is not local, auto, "
                                                "ray://HOST:PORT or HOST:PORT"),
            ([*good, "--ray_address", "auto"], "--ray_address auto: no Ray cluster reached "
                                               "(Could not find any running Ray instance); "
                                               "start one with `ray start --head`")):
        assert main(["serve", "--port", str(free_port()), *args]) == 2, args
        captured = capsys.readouterr()
        assert captured.out == "", "no banner for a server that does not start"
        err = captured.err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


class _NoPool:
    """An executor whose every start fails, as a pool that cannot be rebuilt would."""

    capacity = 1

    def submit(self, *args: object) -> None:
        raise RuntimeError("no pool")


def test_a_job_that_cannot_start_fails_after_its_retries_and_frees_its_place(tmp_path):
    store = JobStore(tmp_path)
    job, _ = store.new_folder()
    store.add(job, {"source": "x"})
    runner = Runner(store, executor=_NoPool(), retries=1)
    runner._submit()
    failed = store.get(job)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert failed.error == "the job could not start (RuntimeError); the server's log has the " \
                           "details"
    assert runner.running == set() and not (tmp_path / "jobs" / job / ".staging").exists()
    store.close()


def test_a_limit_in_megabytes_is_told_as_it_was_given():
    """--max_upload_mb 0.05 is 52,428 whole bytes, which the 413 told as "over 0.0499992 MB"."""
    from portrait_animate.service.uploads import TooLarge

    assert str(TooLarge("source upload", int(0.05 * 2**20))) == (
        "the source upload is over 0.05 MB; send a smaller file")
    assert str(TooLarge("driving upload", 100 * 2**20)) == (
        "the driving upload is over 100 MB; send a smaller file")
