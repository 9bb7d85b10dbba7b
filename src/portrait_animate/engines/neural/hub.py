"""Fetching the published human-mode checkpoints from the model hub."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import WeightsError
from .config import CHECKPOINTS

__all__ = ["HUB_REPO_ID", "download_weights"]

HUB_REPO_ID = "KwaiVGI/LivePortrait"


def download_weights(dest: str | os.PathLike, *, repo_id: str = HUB_REPO_ID,
                     revision: str | None = None, endpoint: str | None = None) -> Path:
    """Download the five human-mode checkpoint files into ``dest/liveportrait/``.

    Args:
        dest: target folder (the published ``pretrained_weights`` layout is kept).
        repo_id: model repository.
        revision: branch, tag or commit; the default branch when None.
        endpoint: hub address, e.g. a mirror; ``$HF_ENDPOINT`` or the public hub when None.

    Returns:
        The ``liveportrait/`` folder.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    dest = Path(dest).expanduser()
    for file in dict.fromkeys(c.file for c in CHECKPOINTS):
        try:
            hf_hub_download(repo_id=repo_id, filename=file, revision=revision,
                            local_dir=dest, endpoint=endpoint)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(f"could not download {file} from {repo_id}: {reason}; check the "
                               "network or set HF_ENDPOINT to a reachable mirror") from exc
    return dest / "liveportrait"
