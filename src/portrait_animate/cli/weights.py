"""``portrait-animate weights {download,synth,check}``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..engines.neural.hub import HUB_REPO_ID, download_weights
from ..engines.neural.synthetic import write_synthetic_weights
from ..engines.neural.weights import (
    SYNTHETIC_DETAIL,
    check_weights_dir,
    default_weights_dir,
    folder_problem,
    liveportrait_dir,
    weights_location,
)
from ..errors import InputError, WeightsError
from ..io.files import check_output_folder

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="weights_command", required=True, metavar="ACTION")

    dl = actions.add_parser("download", allow_abbrev=False,
                            help=f"fetch the human-mode files from {HUB_REPO_ID}")
    dl.add_argument("dir", nargs="?", default=None,
                    help=f"target folder (default: {default_weights_dir()})")
    dl.add_argument("--revision", default=None, help="branch, tag or commit")
    dl.add_argument("--endpoint", default=None, help="hub address or mirror (default: HF_ENDPOINT)")
    dl.set_defaults(run=_download)

    synth = actions.add_parser("synth", allow_abbrev=False,
                               help="write deterministic synthetic weights")
    synth.add_argument("dir", help="target folder")
    synth.set_defaults(run=_synth)

    check = actions.add_parser("check", allow_abbrev=False,
                               help="report which weight files are present and valid")
    check.add_argument("dir", nargs="?", default=None,
                       help="folder to check (default: $PORTRAIT_ANIMATE_WEIGHTS when set, "
                            "else the default cache)")
    check.set_defaults(run=_check)


def _download(args: argparse.Namespace) -> int:
    dest = Path(args.dir).expanduser() if args.dir else default_weights_dir()
    check_output_folder(dest, "the target folder")
    folder = download_weights(dest, revision=args.revision, endpoint=args.endpoint)
    bad = [r for r in check_weights_dir(folder) if not r.ok]
    if bad:
        raise WeightsError(f"downloaded files under {folder} are not valid: "
                           + "; ".join(f"{r.file}: {r.detail}" for r in bad))
    print(f"weights ready in {folder}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    dest = Path(args.dir).expanduser()
    check_output_folder(dest, "the target folder")
    try:
        folder = write_synthetic_weights(dest)
    except OSError as exc:
        raise InputError(f"cannot write synthetic weights under {dest}: "
                         f"{exc.strerror or exc}; give a folder you can write to") from exc
    print(f"synthetic weights written to {folder} ({SYNTHETIC_DETAIL})")
    return 0


STATUS_STYLES = {"ok": "green", "synthetic": "yellow", "invalid": "red", "missing": "red"}


def _folder_to_check(given: str | None) -> Path:
    """The folder given, else the one named by the environment or the default cache
    (:func:`weights_location`), which must exist (to be checked file by file)."""
    origin, folder = weights_location(given)
    if (what := folder_problem(folder)) is not None:
        named = "" if given else f" ({origin})"
        raise WeightsError(f"weights folder {folder}{named} {what}; pass the folder that holds "
                           "liveportrait/, or run `portrait-animate weights download`")
    return folder


def _check(args: argparse.Namespace) -> int:
    folder = _folder_to_check(args.dir)
    reports = check_weights_dir(folder)
    table = Table(title=f"LivePortrait weights in {liveportrait_dir(folder)}")
    names = [(r.path or Path(r.file)).name for r in reports]
    table.add_column("network", no_wrap=True)
    table.add_column("file", no_wrap=True, min_width=max(map(len, names)))
    table.add_column("status", overflow="fold")
    for r, name in zip(reports, names, strict=True):
        table.add_row(r.name, name, f"[{STATUS_STYLES[r.status]}]{r.status}:[/] {r.detail}")
    Console().print(table)
    if not all(r.ok for r in reports):
        raise WeightsError(f"{sum(not r.ok for r in reports)} of {len(reports)} networks have "
                           f"no valid weights in {folder}; run `portrait-animate weights "
                           "download`")
    if any(r.synthetic for r in reports):
        print(f"synthetic weights: {SYNTHETIC_DETAIL}; `portrait-animate weights download` gets "
              "the real ones")
    return 0
