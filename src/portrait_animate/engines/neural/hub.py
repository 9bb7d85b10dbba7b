"""Fetching the published human-mode checkpoints from the model hub."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from ...errors import WeightsError
from ...io.files import removed_on_failure
from .config import CHECKPOINTS
from .synthetic import MARKER
from .weights import liveportrait_dir

__all__ = ["HUB_REPO_ID", "check_endpoint", "download_weights"]

HUB_REPO_ID = "KwaiVGI/LivePortrait"
#: Where a download writes under its target folder: the files, and the hub client's lock
#: and partial files.
_WRITTEN = (Path("liveportrait"), Path(".cache", "huggingface"))


def check_endpoint(endpoint: str | None) -> None:
    """Fail unless the hub address to use (``endpoint``, else ``$HF_ENDPOINT`` when set) is an
    ``http://`` or ``https://`` address.

    Raises:
        WeightsError: naming where the address came from and the fix.
    """
    given, origin = (endpoint, "--endpoint") if endpoint is not None else (
        os.environ.get("HF_ENDPOINT"), "HF_ENDPOINT")
    if given is None:
        return
    try:
        parts = urlsplit(given)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (
            parts.port is None or parts.port > 0)
    except ValueError:
        valid = False
    if not valid:
        raise WeightsError(f"{origin} {given!r} is not a hub address; give an http:// or "
                           "https:// address, such as https://huggingface.co or a mirror")


def download_weights(dest: str | os.PathLike, *, repo_id: str = HUB_REPO_ID,
                     revision: str | None = None, endpoint: str | None = None) -> Path:
    """Download the five human-mode checkpoint files into ``dest/liveportrait/``.

    Over synthetic weights (their marker), every file is fetched again, and a hub that cannot
    be reached is an error. On failure, what the download wrote (files, the hub client's cache
    and lock files, new folders) is removed; what was there before is kept.

    Args:
        dest: target folder (the published ``pretrained_weights`` layout is kept).
        repo_id: model repository.
        revision: branch, tag or commit; the default branch when None.
        endpoint: hub address, e.g. a mirror; ``$HF_ENDPOINT`` or the public hub when None.

    Returns:
        The ``liveportrait/`` folder.

    Raises:
        WeightsError: a bad hub address, or a file that could not be fetched or written.
    """
    check_endpoint(endpoint)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    dest = Path(dest).expanduser()
    # Synthetic files are replaced or the download fails: the hub client would keep a file
    # already there when the hub cannot be reached.
    synthetic = (liveportrait_dir(dest) / MARKER).is_file()
    with removed_on_failure(dest, _WRITTEN):
        for file in dict.fromkeys(c.file for c in CHECKPOINTS):
            try:
                hf_hub_download(repo_id=repo_id, filename=file, revision=revision,
                                local_dir=dest, endpoint=endpoint, force_download=synthetic)
            except (HfHubHTTPError, LocalEntryNotFoundError) as exc:
                raise _not_fetched(file, repo_id, endpoint, exc) from exc
            except ValueError as exc:  # a forced download that failed, with the reason as cause
                if not synthetic or exc.__cause__ is None:
                    raise
                raise _not_fetched(file, repo_id, endpoint, exc.__cause__) from exc
            except OSError as exc:
                raise WeightsError(f"could not write {file} under {dest}: "
                                   f"{exc.strerror or exc}; give a folder you can write to"
                                   ) from exc
    # real weights now, where `weights synth` had written: its marker would call them synthetic
    (liveportrait_dir(dest) / MARKER).unlink(missing_ok=True)
    return dest / "liveportrait"


def _not_fetched(file: str, repo_id: str, endpoint: str | None,
                 exc: BaseException) -> WeightsError:
    """The one-line error of a file the hub client could not fetch, with the fix."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    mirror = ("check that the --endpoint given is reachable" if endpoint else
              "check the network, or give a reachable mirror with --endpoint")
    return WeightsError(f"could not download {file} from {repo_id}: {reason}; {mirror}")
