"""The batch coordinator: validates the jobs, skips those done, analyses each distinct driver
once, runs the rest on an executor and moves each job's outputs into place when it is done.

Each job is written into ``OUT_DIR/.staging/<name>/`` and renamed to ``OUT_DIR/<name>/`` when
complete (with the batch's marker, replacing the folder of an earlier run), then recorded
done; a killed batch leaves only staging folders, removed by the next run, which re-runs the
jobs not recorded done. A job whose ``OUT_DIR/<name>`` is there but not the batch's is
invalid: the batch replaces only what it made. ``OUT_DIR/.staging`` carries the batch's
marker too: one without it is not the batch's, and the batch refuses to run rather than
remove it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Hashable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import InputError
from ..io.files import atomic_path, check_output_folder, file_stamp
from ..pipeline.inputs import InputKind
from .executors import Executor, LocalExecutor, RayExecutor
from .jobs import Job, JobProblem, foreign_folders, is_own, validate
from .state import DONE, INVALID, MARKER, BatchState, JobRecord, RunCounts, done_outputs
from .worker import ANALYSIS_OPTIONS, ENGINE_OPTIONS, Outcome

__all__ = ["BatchInputError", "BatchOptions", "BatchResult", "run_batch"]

STAGING = ".staging"
DRIVINGS = ".drivings"


class BatchInputError(InputError):
    """Jobs that cannot run; each is listed."""

    def __init__(self, problems: list[JobProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{len(problems)} job{'s' if len(problems) > 1 else ''} cannot run "
                         f"(nothing ran; fix them, or pass --skip_invalid to run the rest):\n"
                         f"{lines}")


@dataclass
class BatchOptions:
    """How a batch runs (its jobs' own options are ``animate``'s).

    Attributes:
        workers: local worker processes (or Ray actors; 0 there: one per cluster CPU).
        retries: times a job that failed for another reason than its input or the set-up
            (no weights) is tried again.
        skip_invalid: run the valid jobs when some are invalid, instead of none.
        ray_address: run on Ray (``local``, ``auto`` or ``ray://host:10001``), else locally.
        ray_num_gpus: GPUs each Ray actor asks for.
        ray_upload: send inputs through Ray's object store (and outputs back).
        quiet: no progress bars.
    """

    workers: int = 1
    retries: int = 1
    skip_invalid: bool = False
    ray_address: str | None = None
    ray_num_gpus: float = 0.0
    ray_upload: bool = False
    quiet: bool = False


@dataclass
class BatchResult:
    """Attributes:
    records: every valid job's state, in job order.
    skipped: jobs already done before this run.
    invalid: jobs that could not run.
    counts: what this run did.
    seconds: its length.
    where: the executor, in words.
    """

    records: list[JobRecord]
    skipped: list[str]
    invalid: list[JobProblem]
    counts: RunCounts
    seconds: float
    where: str = ""
    failed: list[JobRecord] = field(init=False)

    def __post_init__(self) -> None:
        self.failed = [r for r in self.records if r.status != DONE]

    @property
    def exit_code(self) -> int:
        """0: every job done; 1: any failed or skipped as invalid."""
        return 1 if self.failed or self.invalid else 0


def _driving_key(job: Job) -> str:
    """What a driver's analysis depends on: its file (path, :func:`~..io.files.file_stamp`)
    and options."""
    path = Path(job.values["driving"]).resolve()
    options = job.options(".")
    parts = [str(path), *file_stamp(path),
             *(getattr(options, name) for name in (*ENGINE_OPTIONS, *ANALYSIS_OPTIONS))]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def _done(record: JobRecord | None, spec: str, job: Job, out_dir: Path) -> bool:
    return (record is not None and record.status == DONE and record.spec == spec
            and bool(record.outputs)
            and all((out_dir / job.name / name).is_file() for name in record.outputs))


def _executor(options: BatchOptions) -> Executor:
    if options.ray_address:
        executor = RayExecutor(options.ray_address, options.workers, options.ray_num_gpus,
                               options.ray_upload, options.retries)
        if executor.most_gpus < options.ray_num_gpus:  # said even when quiet: nothing may run
            print(f"warning: each Ray actor asks for {options.ray_num_gpus:g} GPU(s) "
                  f"(--ray_num_gpus) and no node of the cluster has as many (the most: "
                  f"{executor.most_gpus:g}); the jobs wait until such a node joins",
                  file=sys.stderr, flush=True)
        return executor
    return LocalExecutor(max(1, options.workers))


class _Progress:
    """Jobs and frames bars on stderr; nothing when quiet."""

    def __init__(self, quiet: bool, jobs: int) -> None:
        self._bars = None if quiet else Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=Console(stderr=True))
        if self._bars is not None:
            self._bars.start()
            self._jobs = self._bars.add_task("jobs", total=jobs)
            self._frames = self._bars.add_task("frames", total=None)
        self._total = 0

    def frames_total(self, total: int) -> None:
        """The frames the jobs are expected to make (their drivers' frame counts)."""
        self._total = total
        if self._bars is not None:
            self._bars.update(self._frames, total=total)

    def job_ended(self, frames: int, expected: int) -> None:
        """A job ended with ``frames`` frames (0 when it failed) where ``expected`` were
        counted: the total follows what the jobs really make (a template's length, a
        shorter source video, a failure), so the bar never runs past it."""
        self._total += frames - expected
        if self._bars is not None:
            self._bars.advance(self._jobs, 1)
            self._bars.update(self._frames, total=self._total, advance=frames)

    def stop(self) -> None:
        if self._bars is not None:
            self._bars.stop()


class _Run:
    """One run over the jobs to do."""

    def __init__(self, todo: list[Job], state: BatchState, executor: Executor,
                 options: BatchOptions, out_dir: Path, progress: _Progress) -> None:
        self.todo, self.state, self.executor = todo, state, executor
        self.options, self.out_dir, self.progress = options, out_dir, progress
        self.counts = RunCounts()
        self.keys: dict[str, str] = {}
        self.templates: dict[str, Any] = {}
        self.frames: dict[str, int] = {}
        self.broken: dict[str, Outcome] = {}
        self.uploads: dict[str, Any] = {}
        self.running: set[str] = set()  # the jobs on the workers

    def _count(self, outcome: Outcome) -> None:
        self.counts.engines_loaded += outcome.engines_loaded
        self.counts.sources_analysed += outcome.sources_analysed
        self.state.count(self.counts)

    def _upload(self, spec: str) -> Any:
        if not self.executor.uploads or not Path(spec).is_file():
            return None
        if spec not in self.uploads:
            self.uploads[spec] = self.executor.put(Path(spec).read_bytes())
        return self.uploads[spec]

    def _drive(self, tasks: deque, start: Any, finish: Any) -> None:
        """Keep the executor full from ``tasks`` until all are finished."""
        running = 0
        while tasks or running:
            while tasks and running < self.executor.capacity:
                if start(tasks.popleft()):
                    running += 1
            if running:
                tag, outcome = self.executor.next_done()
                running -= 1
                finish(tag, outcome, tasks)
                self._count(outcome)  # after finish, so that the counts saved include it

    def analyse(self) -> None:
        """Each distinct driving video or image analysed once (or its saved analysis)."""
        needed: dict[str, Job] = {}
        for job in self.todo:
            if job.driving_kind in (InputKind.IMAGE, InputKind.VIDEO):
                key = self.keys[job.name] = _driving_key(job)
                saved = self.state.driving(key)
                if saved is not None and Path(saved[0]).is_file():
                    self._keep(key, Path(saved[0]).read_bytes(), saved[1])
                else:
                    needed.setdefault(key, job)

        def start(key: str) -> bool:
            job = needed[key]
            self.executor.submit(key, "analyse", job.values,
                                 self._upload(job.values["driving"]))
            return True

        def finish(key: Hashable, outcome: Outcome, tasks: deque) -> None:
            if outcome.error is not None:
                self.broken[key] = outcome
                return
            path = self.out_dir / DRIVINGS / f"{key}.npz"
            path.parent.mkdir(exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(outcome.template)
            self.state.analysed(key, needed[key].values["driving"], str(path),
                                outcome.frames, outcome.seconds)
            self.counts.drivings_analysed += 1
            self._keep(key, outcome.template, outcome.frames)

        self._drive(deque(needed), start, finish)

    def _keep(self, key: str, template: bytes, frames: int) -> None:
        self.frames[key] = frames
        self.templates[key] = self.executor.put(template)

    def run(self) -> None:
        jobs = {job.name: job for job in self.todo}
        expected = {name: self.frames.get(self.keys.get(name, ""), 0) for name in jobs}
        self.progress.frames_total(sum(expected.values()))
        ordered = sorted(self.todo, key=lambda j: (str(j.values["source"]),
                                                   str(j.values["driving"])))

        def start(name: str) -> bool:
            job, key = jobs[name], self.keys.get(name)
            attempt = self.state.started(name)
            if key in self.broken:  # its driver has no analysis: the job fails with it
                self.state.failed(name, self.broken[key].error, None, retry=False)
                self.progress.job_ended(0, expected[name])
                return False
            folder = None
            if not self.executor.uploads:
                folder = self.out_dir / STAGING / name
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                folder = os.path.abspath(folder)  # a Ray worker runs in a folder of its own
            self.executor.submit((name, attempt), "run", job.values, folder,
                                 self.templates.get(key), self._upload(job.values["source"]),
                                 self._upload(job.values["driving"]))
            self.running.add(name)
            return True

        def finish(tag: Hashable, outcome: Outcome, tasks: deque) -> None:
            name, attempt = tag
            self.running.discard(name)
            if outcome.error is None:
                error = self._place(name, outcome)
                if error is None:
                    self.state.finished(name, outcome.files, outcome.frames, outcome.seconds)
                    self.counts.jobs_run += 1
                    self.progress.job_ended(outcome.frames, expected[name])
                    return
                outcome = Outcome(error=error, bad_input=True, seconds=outcome.seconds)
            retry = not outcome.bad_input and attempt <= self.options.retries
            self.state.failed(name, outcome.error, outcome.seconds, retry)
            if retry:
                tasks.append(name)
            else:
                self.progress.job_ended(0, expected[name])

        self._drive(deque(job.name for job in ordered), start, finish)

    def stopped(self) -> None:
        """The batch stopped with jobs running (their workers killed): they are queued again,
        for the next run, saying why."""
        for name in sorted(self.running):
            self.state.failed(name, "the batch was stopped while the job ran", None, retry=True)
        self.running.clear()

    def _place(self, name: str, outcome: Outcome) -> str | None:
        """The job's finished outputs and the batch's marker, renamed into place as a whole
        (the job's folder of an earlier run removed once they are); None, or why they could
        not be, in one line."""
        final = self.out_dir / name
        if os.path.lexists(final) and not is_own(final, None):
            return (f"{final} was made while the batch ran, not by it, and is left as it is; "
                    "move it away and run the batch again")
        staging = self.out_dir / STAGING / name
        earlier = staging.with_name(f".{name}")  # no job's name starts with a dot
        try:
            for relative, data in (outcome.blobs or {}).items():
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).write_bytes(data)
            staging.mkdir(parents=True, exist_ok=True)
            _mark(staging)
            if os.path.lexists(final):
                final.rename(earlier)
            staging.rename(final)
        except OSError as exc:
            return f"its outputs could not be moved to {final} ({exc.strerror or exc})"
        shutil.rmtree(earlier, ignore_errors=True)
        return None


def _mark(folder: Path, what: str = "replaces this folder when it runs the job again") -> None:
    """The batch's marker in a folder of its own (a job's, or :data:`STAGING`); ``what``: what
    the batch does with the folder, for whoever reads the marker."""
    (folder / MARKER).write_text(f"made by portrait-animate batch, which {what}\n")


def _own_staging(out_dir: Path) -> bool:
    """Whether ``out_dir``'s :data:`STAGING` is absent or the batch's: a folder (no link)
    holding its marker."""
    staging = out_dir / STAGING
    return not os.path.lexists(staging) or (
        staging.is_dir() and not staging.is_symlink() and (staging / MARKER).is_file())


def _check_staging(out_dir: Path) -> None:
    """Fail unless ``out_dir``'s :data:`STAGING`, which the batch removes, is absent or its own.

    Raises:
        InputError: it is another's, in one line with the fix.
    """
    if not _own_staging(out_dir):
        staging = out_dir / STAGING
        raise InputError(f"{staging} is not the batch's (it holds no {MARKER} file), and the "
                         "batch would replace it with its unfinished jobs; move it away (an "
                         "older batch, killed, may have left it: then delete it), or give "
                         "another -o")


def _remove_staging(out_dir: Path) -> None:
    """Remove ``out_dir``'s :data:`STAGING` if it is the batch's (never another's)."""
    if _own_staging(out_dir):
        shutil.rmtree(out_dir / STAGING, ignore_errors=True)


def _make_staging(out_dir: Path) -> None:
    """``out_dir``'s :data:`STAGING`, new (none is there: :func:`_remove_staging`) and marked
    as the batch's."""
    staging = out_dir / STAGING
    staging.mkdir()
    _mark(staging, "removes this folder of its unfinished jobs when it starts and ends")


def _valid(jobs: list[Job], problems: list[JobProblem]) -> list[Job]:
    """The jobs without a problem."""
    bad = {id(problem.job) for problem in problems if problem.job is not None}
    return [job for job in jobs if id(job) not in bad]


def run_batch(jobs: list[Job], problems: list[JobProblem], out_dir: str | Path,
              options: BatchOptions | None = None) -> BatchResult:
    """Run ``jobs`` into ``out_dir`` (``problems``: lines of the jobs file that are not jobs).

    Raises:
        BatchInputError: invalid jobs, without ``skip_invalid``; nothing ran.
        InputError: ``out_dir`` cannot be a writable folder, another batch holds it, or Ray
            is missing.
    """
    options = options or BatchOptions()
    begin = time.perf_counter()
    out_dir = Path(out_dir)
    check_output_folder(out_dir, "-o")  # once, not in every job's line
    problems = [*problems, *validate(jobs, out_dir)]
    done = done_outputs(out_dir)
    problems += foreign_folders(_valid(jobs, problems), out_dir, done)
    problems.sort(key=lambda problem: problem.order)  # the file's order (sorting is stable)
    if problems and not options.skip_invalid:
        raise BatchInputError(problems)
    _check_staging(out_dir)
    valid = _valid(jobs, problems)
    if not valid and not problems:
        raise InputError("no jobs to run; give a jobs file with at least one job")
    with BatchState(out_dir) as state:
        _check_staging(out_dir)  # one made since the check above is refused too
        _remove_staging(out_dir)
        for name, outputs in done.items():  # made before the batch marked its folders
            folder = out_dir / name
            if not (folder / MARKER).exists() and is_own(folder, outputs):
                with suppress(OSError):  # unmarked, it is refused next time, with its fix
                    _mark(folder)
        for problem in problems:
            if problem.name is not None and problem.name not in {j.name for j in valid}:
                state.queue(problem.name, None, "{}", INVALID, problem.message)
        todo, skipped = [], []
        for job in valid:
            spec = job.spec()
            if _done(state.record(job.name), spec, job, out_dir):
                skipped.append(job.name)
                continue
            state.queue(job.name, job.line, spec)  # its folder of a run before stays till then
            todo.append(job)
        run = None
        where = "nothing to run"
        if todo:
            executor = _executor(options)  # no cluster reached: nothing staged is left behind
            state.keep()  # jobs are handed out: the folder stays, whatever stops the batch
            where = executor.where
            progress = _Progress(options.quiet, len(todo))
            ended = False
            try:
                _make_staging(out_dir)
                run = _Run(todo, state, executor, options, out_dir, progress)
                run.analyse()
                run.run()
                ended = True
            finally:
                progress.stop()
                # stopped (Ctrl-C, SIGTERM, a fault): the running jobs are not waited for
                executor.close(abort=not ended)
                if run is not None:
                    run.stopped()
                _remove_staging(out_dir)
        counts = run.counts if run is not None else RunCounts()
        state.count(counts)
        records = [state.record(job.name) for job in valid]
    return BatchResult(records, skipped, [p for p in problems], counts,
                       time.perf_counter() - begin, where)
