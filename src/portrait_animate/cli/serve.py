"""``portrait-animate serve``: the REST service (see :mod:`portrait_animate.service`)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from ..errors import InputError
from ..io.files import check_output_folder
from .listen import check_listen

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve the REST API: POST /v1/jobs (multipart: source, driving file or preset name, "
        "options as JSON), GET /v1/jobs/{id}, /result and /concat, DELETE /v1/jobs/{id}, "
        "GET /v1/jobs?status=, GET /v1/health; OpenAPI at /docs. Jobs survive a restart.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8891, help="port to listen on")
    parser.add_argument("--data_dir", default="service-data", metavar="DIR",
                        help="jobs' state (service.sqlite) and files")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--api_key", default=None, metavar="KEY",
                      help="require 'Authorization: Bearer KEY' (default: "
                           "$PORTRAIT_ANIMATE_API_KEY, else none)")
    keys.add_argument("--api_key_file", default=None, metavar="FILE",
                      help="read the key from this file (its first line)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="local worker processes, each loading its engines once")
    where.add_argument("--ray_address", default=None, metavar="ADDR",
                       help="run jobs on Ray (local, auto, ray://host:10001); its workers "
                            "must share --data_dir")
    parser.add_argument("--max_upload_mb", type=float, default=100.0, metavar="MB",
                        help="largest upload (413 beyond)")
    parser.add_argument("--max_video_seconds", type=float, default=120.0, metavar="S",
                        help="longest video upload, read from its container")
    parser.add_argument("--keep_hours", type=float, default=24.0, metavar="H",
                        help="finished jobs and their files are deleted after this long")
    parser.add_argument("--retries", type=int, default=1, metavar="N",
                        help="times a job is run again after a failure that is not its input's "
                             "or the set-up's (a worker died under it, an internal error)")
    parser.set_defaults(run=_run)


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_file is not None:
        path = Path(args.api_key_file)
        if not path.is_file():
            raise InputError(f"--api_key_file {path} is not a file; give the file that holds "
                             "the key")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"--api_key_file {path} is not text; write the key on its first "
                             "line") from None
        except OSError as exc:
            raise InputError(f"--api_key_file {path} cannot be read ({exc.strerror}); give a "
                             "file you can read") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise InputError(f"--api_key_file {path} holds no key; write the key on its first "
                             "line")
        return key
    if args.api_key is not None and not args.api_key.strip():
        raise InputError("--api_key is empty; give a key, or drop --api_key to serve without "
                         "one")
    return args.api_key or os.environ.get("PORTRAIT_ANIMATE_API_KEY") or None


def _run(args: argparse.Namespace) -> int:
    for name in ("max_upload_mb", "max_video_seconds", "keep_hours"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise InputError(f"--{name} {value} is not a finite number above 0; pass a "
                             "positive number")
    if args.workers < 1 or args.retries < 0:
        raise InputError("--workers must be at least 1 and --retries at least 0")
    if args.ray_address:
        from ..batch.executors import check_ray_address

        check_ray_address(args.ray_address)
    check_output_folder(args.data_dir, "--data_dir")
    api_key = _api_key(args)
    check_listen([args.host], args.port, "--host", "--port")
    import uvicorn

    from ..service import ServiceSettings, create_app

    settings = ServiceSettings(
        data_dir=Path(args.data_dir), api_key=api_key, workers=args.workers,
        ray_address=args.ray_address, max_upload_mb=args.max_upload_mb,
        max_video_seconds=args.max_video_seconds, keep_hours=args.keep_hours,
        retries=args.retries)
    app = create_app(settings)  # refuses a damaged state or an unreachable Ray before the banner
    print(f"portrait-animate service on http://{args.host}:{args.port} (API docs at /docs, "
          f"data in {settings.data_dir}{', key required' if settings.api_key else ''})",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
