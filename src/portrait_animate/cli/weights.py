"""``portrait-animate weights {download,synth,check}``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..engines.neural.hub import HUB_REPO_ID, download_weights
from ..engines.neural.synthetic import write_synthetic_weights
from ..engines.neural.weights import (
    check_weights_dir,
    default_weights_dir,
    resolve_weights_dir,
    search_locations,
)
from ..errors import WeightsError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("weights", help="download, synthesise or check LivePortrait weights")
    actions = parser.add_subparsers(dest="weights_command", required=True, metavar="ACTION")

    dl = actions.add_parser("download", help=f"fetch the human-mode files from {HUB_REPO_ID}")
    dl.add_argument("dir", nargs="?", default=None,
                    help=f"target folder (default: {default_weights_dir()})")
    dl.add_argument("--revision", default=None, help="branch, tag or commit")
    dl.add_argument("--endpoint", default=None, help="hub address or mirror (default: HF_ENDPOINT)")
    dl.set_defaults(run=_download)

    synth = actions.add_parser("synth", help="write deterministic synthetic weights")
    synth.add_argument("dir", help="target folder")
    synth.set_defaults(run=_synth)

    check = actions.add_parser("check", help="report which weight files are present and valid")
    check.add_argument("dir", nargs="?", default=None,
                       help="folder to check (default: the usual search order)")
    check.set_defaults(run=_check)


def _download(args: argparse.Namespace) -> int:
    dest = Path(args.dir) if args.dir else default_weights_dir()
    folder = download_weights(dest, revision=args.revision, endpoint=args.endpoint)
    bad = [r for r in check_weights_dir(folder) if not r.ok]
    if bad:
        raise WeightsError(f"downloaded files under {folder} are not valid: "
                           + "; ".join(f"{r.file}: {r.detail}" for r in bad))
    print(f"weights ready in {folder}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    folder = write_synthetic_weights(args.dir)
    print(f"synthetic weights written to {folder}")
    return 0


def _check(args: argparse.Namespace) -> int:
    if args.dir:
        folder = Path(args.dir)
    else:
        try:
            folder = resolve_weights_dir(None)
        except WeightsError:
            folder = search_locations(None)[0][1]
    reports = check_weights_dir(folder)
    table = Table(title=f"LivePortrait weights in {folder}")
    for col in ("network", "file", "status", "detail"):
        table.add_column(col)
    for r in reports:
        status = "[green]ok[/]" if r.ok else "[red]invalid[/]" if r.path else "[red]missing[/]"
        table.add_row(r.name, r.file, status, r.detail)
    Console().print(table)
    if all(r.ok for r in reports):
        return 0
    raise WeightsError(f"{sum(not r.ok for r in reports)} of {len(reports)} networks have no "
                       f"valid weights in {folder}; run `portrait-animate weights download`")
