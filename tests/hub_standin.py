"""A local stand-in for the model hub's file endpoint, serving a folder over loopback.

It answers ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}`` with the headers that
huggingface_hub reads (commit, ETag, size), so downloads run through the real client.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn:
    """Serve ``root`` as repository ``repo_id`` on 127.0.0.1; use as a context manager."""

    def __init__(self, root: Path, repo_id: str) -> None:
        self.root, self.repo_id = Path(root), repo_id
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _file(self) -> Path | None:
                path = unquote(urlparse(self.path).path)
                prefix = f"/{standin.repo_id}/resolve/"
                if not path.startswith(prefix):
                    return None
                rel = path[len(prefix):].split("/", 1)[-1]
                target = (standin.root / rel).resolve()
                if standin.root.resolve() not in target.parents or not target.is_file():
                    return None
                return target

            def _headers(self, target: Path | None) -> None:
                standin.requests.append(f"{self.command} {self.path}")
                if target is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802
                self._headers(self._file())

            def do_GET(self) -> None:  # noqa: N802
                target = self._file()
                self._headers(target)
                if target is not None:
                    self.wfile.write(target.read_bytes())

        return Handler
