"""A Python client of the REST service (``portrait-animate serve``), shaped like the command
line: submit a source and a driver with ``animate``'s options, wait, download.

    from portrait_animate.client import Client

    client = Client("http://127.0.0.1:8891", api_key="...")
    job = client.submit("photo.jpg", "preset:talk", animation_region="lip")
    client.wait(job)
    client.download(job, "photo--talk.mp4")
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["Client", "ServiceError"]


class ServiceError(RuntimeError):
    """The service refused a request, or a job failed: its one-line reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """Args:
    url: the service's address, e.g. ``http://127.0.0.1:8891``.
    api_key: its key, if it has one.
    timeout: seconds for each request.
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(f"{response.status_code}: {detail}", response.status_code)
        return response

    def submit(self, source: str | os.PathLike, driving: str | os.PathLike,
               **options: Any) -> str:
        """Queue ``source`` animated by ``driving`` (a file, or ``preset:NAME``) with
        ``animate``'s options by name; the job's id."""
        data = {"options": json.dumps(options)}
        files = {}
        with open(source, "rb") as src:
            files["source"] = (Path(source).name, src.read())
        if str(driving).startswith("preset:"):
            data["driving"] = str(driving)
        else:
            with open(driving, "rb") as drv:
                files["driving"] = (Path(driving).name, drv.read())
        return self._call("POST", "/v1/jobs", data=data, files=files).json()["id"]

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's status, progress, error and timings."""
        return self._call("GET", f"/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5
             ) -> dict[str, Any]:
        """Poll until the job is done; its status.

        Raises:
            ServiceError: the job failed (with its reason) or was deleted.
            TimeoutError: ``timeout`` seconds passed first.
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if status["status"] == "done":
                return status
            if status["status"] == "failed":
                raise ServiceError(f"job {job_id} failed: {status['error']}")
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"job {job_id} is still {status['status']} after "
                                   f"{timeout:g} s")
            time.sleep(poll)

    def download(self, job_id: str, path: str | os.PathLike, concat: bool = False) -> Path:
        """Write the job's result (or its concat) to ``path``."""
        which = "concat" if concat else "result"
        path = Path(path)
        tmp = path.with_name(f".{path.name}.part")
        with self._http.stream("GET", f"/v1/jobs/{job_id}/{which}") as response:
            if response.status_code >= 400:
                response.read()
                raise ServiceError(f"{response.status_code}: "
                                   f"{response.json().get('detail', '')}", response.status_code)
            with open(tmp, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        tmp.replace(path)
        return path

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job (or delete a finished one) and its files."""
        self._call("DELETE", f"/v1/jobs/{job_id}")

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/jobs", params={"status": status} if status else {}
                          ).json()["jobs"]

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/v1/health").json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
