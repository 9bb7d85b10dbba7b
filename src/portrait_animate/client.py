"""A Python client of the REST service (``portrait-animate serve``), shaped like the command
line: submit a source and a driver with ``animate``'s options, wait, download.

    from portrait_animate.client import Client

    client = Client("http://127.0.0.1:8891", api_key="...")
    job = client.submit("photo.jpg", "preset:talk", animation_region="lip")
    client.wait(job)
    client.download(job, "photo--talk.mp4")

Every failure of a call is a :class:`ServiceError` with one line that names the address or
the file and what to do: the service refused the request (``.status`` is its HTTP status),
could not be reached, answered with something that is not the service's, or a local file
could not be read or written. Mistakes in the arguments themselves (a URL without
``http://``, a key with a line break, an option JSON cannot carry) are ``ValueError`` or
``TypeError``, raised before any request.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from .io.files import atomic_path

__all__ = ["Client", "ServiceError"]

PRESET_PREFIX = "preset:"
_EXCERPT = 160  # characters of a body that is not the service's, quoted in an error
#: A result's content type -> the extensions its file may have (the first is given).
_SUFFIXES = {"image/jpeg": (".jpg", ".jpeg"), "video/mp4": (".mp4",)}


class ServiceError(RuntimeError):
    """The service refused a request, or a job failed: its one-line reason.

    ``status`` is the HTTP status of the refusal, or None where there was none (the service
    could not be reached, a job failed, a local file could not be read or written).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _one_line(text: str, limit: int = _EXCERPT) -> str:
    """``text`` as one short line: markup dropped, whitespace collapsed, cut at ``limit``."""
    if "<" in text and ">" in text:  # HTML: its head, scripts and styles say nothing
        text = re.sub(r"(?is)<(head|script|style)\b.*?</\1\s*>", " ", text)
        text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _excerpt(response: httpx.Response) -> str:
    try:
        text = response.text
    except (httpx.HTTPError, ValueError, LookupError):  # undecodable, or not read
        return "an unreadable body"
    excerpt = _one_line(text)
    return repr(excerpt) if excerpt else "an empty body"


def _validation_error(item: object) -> str:
    """One of FastAPI's validation errors (``{"loc": [...], "msg": ...}``) as ``field: msg``."""
    if not isinstance(item, dict) or "msg" not in item:
        return json.dumps(item) if not isinstance(item, str) else item
    loc = item.get("loc")
    field = loc[-1] if isinstance(loc, list) and loc else None
    return f"{field}: {item['msg']}" if field is not None else str(item["msg"])


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_url(url: object) -> str:
    if isinstance(url, os.PathLike):
        raise TypeError(f"url must be the service's address as a str, like "
                        f"'http://127.0.0.1:8891', not a path ({_type_name(url)} {url!s})")
    if not isinstance(url, str):
        raise TypeError(f"url must be the service's address as a str, like "
                        f"'http://127.0.0.1:8891', not {_type_name(url)}")
    text = url.strip()
    if not text:
        raise ValueError("url is empty; give the service's address, like "
                         "'http://127.0.0.1:8891'")
    if re.search(r"[\x00-\x20\x7f]", text):
        raise ValueError(f"url {url!r} has a space or a control character; give the service's "
                         "address, like 'http://127.0.0.1:8891'")
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"url {url!r} is not a valid address ({exc}); give one like "
                         "'http://127.0.0.1:8891'") from None
    if parsed.scheme not in ("http", "https"):
        guess = text.split("://", 1)[-1]
        raise ValueError(f"url {url!r} has no http:// or https:// in front; use "
                         f"'http://{guess}' (or https://)")
    if not parsed.host:
        raise ValueError(f"url {url!r} names no host; give the service's address, like "
                         "'http://127.0.0.1:8891'")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ValueError(f"url {url!r} has port {parsed.port}, outside 1-65535; give the port "
                         "the service listens on (serve --port)")
    if parsed.query or parsed.fragment:
        raise ValueError(f"url {url!r} has a query or a fragment; give only the service's "
                         "address, like 'http://127.0.0.1:8891'")
    return text.rstrip("/")


def _check_key(api_key: object) -> str | None:
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise TypeError(f"api_key must be a str (or None for a service without a key), not "
                        f"{_type_name(api_key)}")
    key = api_key.strip()  # the service strips the key it is sent too
    if not key:
        return None
    if not re.fullmatch(r"[\x20-\x7e]+", key):
        raise ValueError("api_key has a line break, a control character or a character "
                         "outside ASCII in it, which an HTTP header cannot carry; give the "
                         "key exactly as the service has it (one line, e.g. the first line "
                         "of serve's --api_key_file)")
    return key


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be seconds as a number (or None to wait forever), not "
                        f"{_type_name(timeout)}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout {timeout!r} must be a positive number of seconds (or None "
                         "to wait forever)")
    return float(timeout)


def _check_path(value: object, what: str) -> Path:
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or pathlib.Path), not {_type_name(value)}")
    return Path(value)


def _jsonable(value: Any) -> Any:
    """``json.dumps``'s ``default``: paths as their str, NumPy's scalars as Python's."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()
    raise TypeError(f"holds a {_type_name(value)}, which JSON cannot carry")


class Client:
    """Args:
    url: the service's address, e.g. ``http://127.0.0.1:8891`` (a str with ``http://`` or
        ``https://``).
    api_key: its key, if it has one.
    timeout: seconds for each request (None: no limit).

    Raises:
        TypeError, ValueError: one of them is not of that shape (nothing is sent to check).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float | None = 60.0
                 ) -> None:
        self.url = _check_url(url)
        key = _check_key(api_key)
        self._timeout = _check_timeout(timeout)
        self._has_key = key is not None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=self._timeout)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- requests ---------------------------------------------------------------------------

    @contextmanager
    def _reaching(self, method: str, path: str) -> Iterator[None]:
        """httpx's transport errors as a ServiceError that says what to do."""
        try:
            yield
        except httpx.ConnectTimeout:
            within = f" within {self._timeout:g} s" if self._timeout is not None else ""
            raise ServiceError(
                f"cannot reach the service at {self.url} (no answer to connect{within}); "
                "is it running, and is the address right? Start it with "
                "'portrait-animate serve', or give Client the address it listens on") from None
        except httpx.ConnectError as exc:
            raise ServiceError(
                f"cannot reach the service at {self.url} ({_one_line(str(exc)) or 'refused'})"
                "; is it running? Start it with 'portrait-animate serve', or give Client the "
                "address it listens on") from None
        except httpx.TimeoutException:
            limit = f"{self._timeout:g} s" if self._timeout is not None else "its time limit"
            raise ServiceError(
                f"the service at {self.url} did not answer {method} {path} within {limit}; "
                "it may be busy: give Client a longer timeout=, or check the server's log"
            ) from None
        except httpx.HTTPError as exc:  # the connection broke, a bad answer, a proxy, ...
            reason = _one_line(str(exc)) or _type_name(exc)
            raise ServiceError(
                f"the connection to the service at {self.url} failed during {method} {path} "
                f"({reason}); try again, and check the server's log if it goes on") from None
        except httpx.InvalidURL as exc:
            raise ServiceError(f"{method} {self.url}{path} is not a valid address "
                               f"({_one_line(str(exc))}); check the job id and Client's url"
                               ) from None

    def _refuse(self, response: httpx.Response, method: str) -> NoReturn:
        """A ServiceError for an answer of 3xx, 4xx or 5xx (its body read)."""
        status = response.status_code
        where = f"{method} {response.url}"
        if status < 400:
            location = response.headers.get("location", "another address")
            raise ServiceError(f"{status}: {where} redirects to {location}; give Client the "
                               "service's own address", status)
        detail = None
        try:
            body = response.json()
        except ValueError:  # not JSON, or not text
            body = None
        if isinstance(body, dict) and "detail" in body:
            detail = body["detail"]
            if isinstance(detail, list):  # FastAPI's own validation errors
                detail = "; ".join(_validation_error(item) for item in detail)
            elif not isinstance(detail, str):
                detail = json.dumps(detail)
            detail = _one_line(detail, 1000)
        if detail is None:
            raise ServiceError(f"{status} from {where}, with {_excerpt(response)}: not an "
                               f"answer of the portrait-animate service; is {self.url} the "
                               "address of 'portrait-animate serve'?", status)
        hint = ""
        if status == 401:
            hint = ("; check Client's api_key" if self._has_key else
                    "; give Client the service's key: Client(url, api_key=...)")
        raise ServiceError(f"{status}: {detail} ({where}){hint}", status)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._reaching(method, path):
            response = self._http.request(method, path, **kwargs)
        if response.status_code >= 300:
            self._refuse(response, method)
        return response

    def _json(self, method: str, path: str, key: str, **kwargs: Any) -> dict[str, Any]:
        """The answer's JSON object, which must hold ``key``."""
        response = self._call(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or key not in data:
            raise ServiceError(f"{method} {response.url} answered {response.status_code} with "
                               f"{_excerpt(response)}, not the portrait-animate service's "
                               f"JSON; is {self.url} the address of 'portrait-animate serve' "
                               "(of this client's version)?")
        return data

    @staticmethod
    def _job_path(job_id: object, tail: str = "") -> str:
        if not isinstance(job_id, str):
            raise TypeError(f"job id must be the str that submit returned, not "
                            f"{_type_name(job_id)}")
        if not job_id.strip() or job_id in (".", ".."):
            raise ValueError(f"job id {job_id!r} is not a job's id; give the id that submit "
                             "returned")
        return f"/v1/jobs/{quote(job_id, safe='')}{tail}"

    # -- files ------------------------------------------------------------------------------

    @staticmethod
    def _read(path: Path, what: str) -> tuple[str, bytes]:
        hint = (" (a preset is written 'preset:NAME', e.g. 'preset:talk')"
                if what == "driving" and os.sep not in str(path) and not path.suffix else "")
        if path.is_dir():
            raise ServiceError(f"{what} {path} is a folder; give an image or video file{hint}")
        if not path.exists():
            raise ServiceError(f"{what} {path} does not exist; give an image or video "
                               f"file{hint}")
        try:
            return path.name, path.read_bytes()
        except OSError as exc:
            raise ServiceError(f"{what} {path} cannot be read ({exc.strerror or exc}); give a "
                               "file you can read") from None

    @staticmethod
    def _target(path: Path, job_id: str) -> None:
        """Refuse, before any request, a download target that cannot be written."""
        example = f"{path / job_id}.mp4"
        if str(path) in ("", ".") or path.is_dir():
            raise ServiceError(f"cannot download to {path}: it is a folder; give a file's path "
                               f"in it, e.g. {example}")
        folder = path.parent
        if not folder.exists():
            raise ServiceError(f"cannot download to {path}: the folder {folder} does not "
                               "exist; create it first, or give a path in a folder that does")
        if not folder.is_dir():
            raise ServiceError(f"cannot download to {path}: {folder} is a file, not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ServiceError(f"cannot download to {path}: the folder {folder} is not "
                               "writable; give a path in a folder you can write to")

    # -- the API ----------------------------------------------------------------------------

    def submit(self, source: str | os.PathLike, driving: str | os.PathLike,
               **options: Any) -> str:
        """Queue ``source`` animated by ``driving`` (a file, or ``preset:NAME``) with
        ``animate``'s options by name (paths as their str); the job's id.

        Raises:
            ServiceError: a file cannot be read, or the service refused the job.
            TypeError: an option's value is not what JSON carries.
        """
        source = _check_path(source, "source")
        if isinstance(driving, bytes) or not isinstance(driving, (str, os.PathLike)):
            raise TypeError(f"driving must be a path (str or pathlib.Path) or 'preset:NAME', "
                            f"not {_type_name(driving)}")
        for name, value in options.items():
            try:
                json.dumps(value, default=_jsonable, allow_nan=False)
            except TypeError as exc:
                reason = str(exc) if str(exc).startswith("holds a") else \
                    f"cannot be sent as JSON ({exc})"
                raise TypeError(f"option {name!r} {reason}; give a str, number, bool, None, "
                                "list or dict") from None
            except ValueError as exc:
                if "float" in str(exc):
                    raise ValueError(f"option {name!r} holds {value!r}, not a finite number; "
                                     "give a finite one") from None
                raise ValueError(f"option {name!r} cannot be sent as JSON ({exc}); give a "
                                 "str, number, bool, None, list or dict") from None
        data = {"options": json.dumps(options, default=_jsonable)}
        files = {"source": self._read(source, "source")}
        if str(driving).startswith(PRESET_PREFIX):
            data["driving"] = str(driving)
        else:
            files["driving"] = self._read(Path(driving), "driving")
        return str(self._json("POST", "/v1/jobs", "id", data=data, files=files)["id"])

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's status, progress, error and timings."""
        return self._json("GET", self._job_path(job_id), "status")

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.5
             ) -> dict[str, Any]:
        """Poll until the job is done; its status.

        Raises:
            ServiceError: the job failed (with its reason) or was deleted.
            TimeoutError: ``timeout`` seconds passed first.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout) if timeout != 0 else 0.0
        if isinstance(poll, bool) or not isinstance(poll, (int, float)) or \
                not math.isfinite(poll) or poll < 0:
            raise ValueError(f"poll {poll!r} must be seconds between polls, a number >= 0")
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if status["status"] == "done":
                return status
            if status["status"] == "failed":
                raise ServiceError(f"job {job_id} failed: {status.get('error')}")
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"job {job_id} is still {status['status']} after "
                                   f"{timeout:g} s")
            time.sleep(poll)

    def download(self, job_id: str, path: str | os.PathLike, concat: bool = False) -> Path:
        """Write the job's result (or its concat) to ``path`` and return the path written;
        nothing is left there (nor a part of it) when it fails. The file's extension is its
        type's: a JPEG (an image driven by an image) asked for as ``x.mp4`` is written as
        ``x.jpg``, and a video asked for as ``x.jpg`` as ``x.mp4``.

        Raises:
            ServiceError: ``path`` cannot be written, the job has no result (yet), or the
                download broke.
        """
        which = "concat" if concat else "result"
        url_path = self._job_path(job_id, f"/{which}")
        given = path
        path = _check_path(path, "path")
        if os.fspath(given).endswith(("/", os.sep)) and not path.is_dir():
            raise ServiceError(f"cannot download to {os.fspath(given)}: it names a folder; "
                               f"give a file's path, e.g. {path / job_id}.mp4")
        self._target(path, job_id)
        with self._reaching("GET", url_path), self._http.stream("GET", url_path) as response:
            if response.status_code >= 300:
                response.read()
                self._refuse(response, "GET")
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            if kind.startswith(("text/", "application/json")):
                response.read()
                raise ServiceError(f"GET {response.url} answered {kind} "
                                   f"({_excerpt(response)}), not a video or an image; is "
                                   f"{self.url} the address of 'portrait-animate serve'?")
            suffix = _SUFFIXES.get(kind)
            if suffix is not None and path.suffix.lower() not in suffix:
                path = path.with_suffix(suffix[0])
            try:
                with atomic_path(path) as tmp, open(tmp, "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            except OSError as exc:
                raise ServiceError(f"cannot write {path} ({exc.strerror or exc}); give a "
                                   "path you can write to, with room for the file") from None
        return path

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job (or delete a finished one) and its files."""
        self._call("DELETE", self._job_path(job_id))

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every job, or those of one ``status`` (queued, running, done, failed)."""
        jobs = self._json("GET", "/v1/jobs", "jobs",
                          params={"status": status} if status else {})["jobs"]
        if not isinstance(jobs, list):
            raise ServiceError(f"GET {self.url}/v1/jobs answered a 'jobs' that is not a list; "
                               f"is {self.url} the address of 'portrait-animate serve'?")
        return jobs

    def health(self) -> dict[str, Any]:
        """Engines available, queued and running jobs, workers (no key needed)."""
        return self._json("GET", "/v1/health", "status")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
