"""``portrait-animate batch``: many animations in one command, resumable (see
:mod:`portrait_animate.batch`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import InputError
from ..pipeline.options import AnimateOptions
from .animate import add_animate_options

if TYPE_CHECKING:
    from ..batch import BatchResult

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = ("portrait-animate batch JOBS.jsonl -o OUT_DIR [options]\n"
                    "       portrait-animate batch --sources GLOB --drivings GLOB -o OUT_DIR ...")
    parser.description = (
        "Run many animations: one job a line of JOBS.jsonl ({\"source\": ..., \"driving\": ..., "
        "\"name\"?: ..., any animate option by name}), or every source with every driving. "
        "Each job's outputs go in OUT_DIR/NAME/ (NAME: the job's name, else its number among "
        "the file's job lines, comments and blank lines not counted). Relative paths in "
        "JOBS.jsonl are relative to its folder. "
        "State lives in OUT_DIR/batch.sqlite: a re-run skips jobs done and retries the others. "
        "The animate options below are every job's defaults.")
    parser.add_argument("jobs", nargs="?", metavar="JOBS", help="the jobs file (.jsonl)")
    parser.add_argument("-o", "--output_dir", required=True, metavar="OUT_DIR",
                        help="folder for the jobs' outputs and the batch's state")
    parser.add_argument("--sources", metavar="DIR_OR_GLOB",
                        help="source images or videos: with --drivings, every pair is a job")
    parser.add_argument("--drivings", metavar="DIR_OR_GLOB", help="driving videos or images")
    parser.add_argument("--skip_invalid", action="store_true",
                        help="run the valid jobs when some are invalid (else none runs)")
    parser.add_argument("--retries", type=int, default=1, metavar="N",
                        help="tries again a job that failed for another reason than its input "
                             "or the set-up (no weights)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes, each loading its engine once (default 1); "
                             "with --ray_address, actors (default: one per cluster CPU)")
    parser.add_argument("--ray_address", default=None, metavar="ADDR",
                        help="run on Ray: local (start a local cluster), auto (this machine's "
                             "cluster) or ray://host:10001; needs portrait-animate[ray]")
    parser.add_argument("--ray_num_gpus", type=float, default=0.0, metavar="G",
                        help="GPUs each Ray actor asks for (neural jobs)")
    parser.add_argument("--ray_upload", action="store_true",
                        help="send local inputs through Ray's object store and the outputs "
                             "back (workers without this machine's files)")
    add_animate_options(parser, inputs=False,
                        only=[n for n in AnimateOptions.field_names() if n != "output_dir"])
    parser.set_defaults(run=_run)


def _defaults(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in AnimateOptions.field_names()
            if name not in ("source", "driving", "output_dir", "quiet")}


def _check(args: argparse.Namespace) -> None:
    if args.retries < 0:
        raise InputError(f"--retries {args.retries} is below 0; pass 0 or more")
    if args.workers is not None and args.workers < (0 if args.ray_address else 1):
        raise InputError(f"--workers {args.workers} is too few; pass at least 1")
    pair = (args.sources is not None, args.drivings is not None)
    if any(pair) and not all(pair):
        raise InputError("--sources and --drivings go together; give both, or a jobs file")
    if all(pair) == (args.jobs is not None):
        raise InputError("give a jobs file or --sources and --drivings (one of the two)")
    if (args.ray_num_gpus or args.ray_upload) and not args.ray_address:
        raise InputError("--ray_num_gpus and --ray_upload need --ray_address")
    if args.ray_address:
        from ..batch.executors import check_ray_address

        check_ray_address(args.ray_address)


def _run(args: argparse.Namespace) -> int:
    from ..batch import BatchOptions, cross_jobs, read_jobs, run_batch

    _check(args)
    defaults = _defaults(args)
    if args.jobs is not None:
        jobs, problems = read_jobs(args.jobs, defaults)
    else:
        jobs, problems = cross_jobs(args.sources, args.drivings, defaults), []
    options = BatchOptions(workers=args.workers if args.workers is not None else
                           (0 if args.ray_address else 1),
                           retries=args.retries, skip_invalid=args.skip_invalid,
                           ray_address=args.ray_address, ray_num_gpus=args.ray_num_gpus,
                           ray_upload=args.ray_upload, quiet=args.quiet)
    result = run_batch(jobs, problems, args.output_dir, options)
    _print_summary(result, args.quiet)
    return result.exit_code


def _print_summary(result: BatchResult, quiet: bool) -> None:
    """The table of jobs (stdout), and every failed one with its reason (stderr, even when
    quiet)."""
    from rich.console import Console
    from rich.table import Table

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if not quiet:
        table = Table(title=f"batch: {result.where}, {result.seconds:.1f} s")
        for column in ("job", "status", "frames", "seconds", "reason"):
            table.add_column(column, justify="right" if column in ("frames", "seconds")
                             else "left")
        skipped = set(result.skipped)
        for record in result.records:
            status = "skipped (done)" if record.name in skipped else record.status
            seconds = "" if record.seconds is None or record.name in skipped \
                else f"{record.seconds:.1f}"
            table.add_row(record.name, status, str(record.frames or ""), seconds,
                          record.error or "")
        for problem in result.invalid:
            table.add_row(problem.name or problem.where, "invalid", "", "", problem.message)
        Console(highlight=False).print(table)
        done = sum(r.status == "done" for r in result.records) - len(result.skipped)
        counts = result.counts
        err.print(f"{done} done, {len(result.skipped)} skipped (done before), "
                  f"{len(result.failed)} failed, {len(result.invalid)} invalid; "
                  f"{counts.drivings_analysed} driver(s) analysed, {counts.sources_analysed} "
                  f"source(s) analysed, {counts.engines_loaded} engine(s) loaded")
    for record in result.failed:
        err.print(f"failed: {record.name}: {record.error}")
    for problem in result.invalid:
        err.print(f"invalid: {problem}")
