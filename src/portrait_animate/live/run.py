"""The live loop: three threads, capture (:class:`~.capture.Capture`), analysis (face mesh and
motion of the newest captured frame) and render (the newest analysed frame, then the outputs),
so that analysing frame k+1 overlaps rendering frame k. Nothing queues: a frame that arrives
while a stage is busy replaces the one waiting, and a camera frame never rendered counts as
dropped. Every output frame is written as soon as it is rendered. Ctrl-C and SIGTERM end the
session as a quit key does (:func:`_stop_on_signals`)."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..face.mesh import FaceMesh
from ..io.files import atomic_path
from ..io.video import VideoWriter
from ..pipeline.engines import load_engine
from ..pipeline.progress import Reporter
from .capture import Capture, CapturedFrame
from .options import LiveOptions
from .outputs import NEUTRAL_KEY, QUIT_KEYS, VirtualCamera, Window, has_display
from .session import Driven, LiveSession, prepare_live_source

__all__ = ["LiveStats", "run_live"]

#: How often the render loop looks whether it was told to stop while it waits for a frame.
POLL_SECONDS = 0.1


@dataclass
class LiveStats:
    """What a session did. Latency runs from a frame's capture to its result being shown,
    sent or written.

    Attributes:
        frames_in: camera frames read.
        frames_rendered: frames animated.
        frames_dropped: camera frames never animated (replaced by a newer one while busy).
        frames_with_face: animated frames whose camera frame had a face.
        frames_recorded: frames in the recording (one per camera frame), 0 without one.
        fps: frames rendered per second of the session.
        latency_ms_p50, latency_ms_p95: capture-to-output latency.
        render_latency_ms: the engine's render of one frame (the median; with the neural
            engine on CUDA and ``--flag_do_torch_compile``, one CUDA-graph replay at batch 1).
        seconds: the session's length.
        camera_fps: the rate the camera delivers.
        engine: the engine's name.
    """

    frames_in: int
    frames_rendered: int
    frames_dropped: int
    frames_with_face: int
    frames_recorded: int
    fps: float
    latency_ms_p50: float
    latency_ms_p95: float
    render_latency_ms: float
    seconds: float
    camera_fps: float
    engine: str

    def summary(self) -> str:
        render = f"render {self.render_latency_ms:.1f} ms" if self.render_latency_ms \
            else "no face to render"
        return (f"live: {self.frames_rendered} of {self.frames_in} camera frames shown "
                f"({self.frames_dropped} dropped, {self.frames_with_face} with a face) in "
                f"{self.seconds:.1f} s: {self.fps:.1f} fps, latency p50 "
                f"{self.latency_ms_p50:.0f} ms, p95 {self.latency_ms_p95:.0f} ms, {render} "
                f"({self.engine} engine)")


class _Analysis:
    """Analyses the newest captured frame, again and again, in a thread; keeps the newest
    result."""

    def __init__(self, capture: Capture, session: LiveSession) -> None:
        self._capture, self._session = capture, session
        self._latest: tuple[CapturedFrame, Driven] | None = None
        self._ended = self._stop = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="live-analysis", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = -1
        try:
            while not self._stop:
                frame = self._capture.latest(last, timeout=0.1)
                if frame is None:
                    if self._capture.ended:
                        break
                    continue
                last = frame.index
                driven = self._session.analyse(frame.image, frame.time)
                with self._changed:
                    self._latest = (frame, driven)
                    self._changed.notify_all()
        except BaseException as exc:  # raised in the render thread
            self._error = exc
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    @property
    def ended(self) -> bool:
        """Whether the analysis stopped: the capture ended, or it failed."""
        return self._ended

    def latest(self, after: int, timeout: float | None) -> tuple[CapturedFrame, Driven] | None:
        """The newest analysed frame with an index above ``after``, waiting for one; None at
        the end of the capture or after ``timeout``."""
        def ready() -> bool:
            return self._ended or (self._latest is not None and self._latest[0].index > after)

        with self._changed:
            self._changed.wait_for(ready, timeout)
            item = self._latest
        if self._error is not None:
            raise self._error
        return item if item is not None and item[0].index > after else None

    def close(self) -> None:
        self._stop = True
        self._thread.join()


class _Record:
    """One recorded frame per camera frame: frames dropped before a render repeat the last
    frame written (the portrait at rest before the first)."""

    def __init__(self, writer: VideoWriter | None, rest: np.ndarray) -> None:
        self._writer, self._last, self.next = writer, rest, 0

    def write(self, index: int, frame: np.ndarray | None) -> None:
        """Fill up to camera frame ``index`` (exclusive) with the last frame, then write
        ``frame`` as frame ``index`` (nothing more without one)."""
        if self._writer is None:
            return
        while self.next < index:
            self._writer.write(self._last)
            self.next += 1
        if frame is not None:
            self._writer.write(frame)
            self._last, self.next = frame, index + 1


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Within the block, SIGINT (Ctrl-C) and SIGTERM set ``stop`` instead of ending the
    process, so that the session ends as a quit key ends it, its recording and stats written;
    outside it, a second Ctrl-C aborts them. Signals are the main thread's: elsewhere nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def run_live(options: LiveOptions, reporter: Reporter | None = None) -> LiveStats:
    """Run a live session until the camera ends, ``max_seconds`` pass, a quit key, Ctrl-C or
    SIGTERM.

    Raises:
        InputError: a bad source or camera (one that gives no frame), or a virtual camera
            that cannot be had; nothing is left behind.
    """
    reporter = reporter or Reporter(options.animate.quiet)
    capture = Capture(options.camera)
    with contextlib.ExitStack() as stack:
        stack.callback(capture.close)
        width, height = capture.size
        engine = load_engine(options.animate, reporter)
        stack.callback(engine.close)
        mesh = stack.enter_context(FaceMesh(options.animate.det_thresh))
        source = prepare_live_source(options.animate, engine, mesh, reporter)
        session = LiveSession(engine, options.animate, source, mesh, options.live_smooth)
        out_h, out_w = session.rest.shape[:2]
        camera = None
        if options.virtual_camera:
            camera = VirtualCamera(out_w, out_h, capture.fps)
            stack.callback(camera.close)
            reporter.note(f"virtual camera: {camera.device}")
        window = None
        if options.window:
            if has_display():
                window = Window()
                stack.callback(window.close)
            else:
                reporter.note("note: no display, so no window (--no_window hides this note)")
        writer = None
        if options.record:
            writer = stack.enter_context(VideoWriter(options.record, capture.fps, fast=True))
        record = _Record(writer, session.rest)
        latencies: list[float] = []
        render_ms: list[float] = []
        rendered = with_face = 0
        last = -1
        capture.start()
        analysis = _Analysis(capture, session)
        stack.callback(analysis.close)
        start = time.monotonic()
        stop = threading.Event()
        with _stop_on_signals(stop):
            while not stop.is_set():
                remaining = None if options.max_seconds is None else \
                    start + options.max_seconds - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                item = analysis.latest(last, timeout=POLL_SECONDS if remaining is None
                                       else min(remaining, POLL_SECONDS))
                if item is None:
                    if analysis.ended:
                        break
                    continue
                frame, driven = item
                last = frame.index
                result = session.render(driven)
                rendered += 1
                with_face += result.face
                if result.animated:
                    render_ms.append(result.render_ms)
                record.write(frame.index, result.image)
                if camera is not None:
                    camera.send(result.image)
                key = window.show(result.image) if window is not None else None
                latencies.append(time.monotonic() - frame.time)
                if key == NEUTRAL_KEY:
                    session.set_neutral()
                elif key in QUIT_KEYS:
                    break
        seconds = time.monotonic() - start
        analysis.close()
        capture.close()
        frames_in = capture.frames_in
        if not frames_in:  # nothing to record or report
            raise InputError(f"--camera {options.camera} gave no frame in the {seconds:.1f} s "
                             "the session ran; check that the camera works and is not in use "
                             "by another program (or give a longer --max_seconds)")
        record.write(frames_in, None)
        ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
        stats = LiveStats(
            frames_in=frames_in, frames_rendered=rendered, frames_dropped=frames_in - rendered,
            frames_with_face=with_face, frames_recorded=record.next if writer else 0,
            fps=rendered / seconds if seconds > 0 else 0.0,
            latency_ms_p50=float(np.percentile(ms, 50)),
            latency_ms_p95=float(np.percentile(ms, 95)),
            render_latency_ms=float(np.median(render_ms)) if render_ms else 0.0, seconds=seconds,
            camera_fps=capture.fps, engine=engine.name)
    if options.stats_json:
        with atomic_path(options.stats_json) as tmp:
            Path(tmp).write_text(json.dumps(asdict(stats), indent=2) + "\n")
    reporter.note(stats.summary())
    if rendered and not render_ms:  # frames were rendered, none animated
        reporter.note("note: no face was seen in the camera frames, so the portrait stayed at "
                      "rest; face the camera, in good light")
    return stats
