"""The app's Live tab: the browser's webcam streams in (Gradio streaming), the animated portrait
streams back, with the same :class:`~portrait_animate.live.session.LiveSession` as
``portrait-animate live``.

Each browser session has its own live session (anchor, filter, face mesh), kept here by
Gradio's session hash, so that one idle for :data:`FORGET_SECONDS` is closed and its face
mesh freed; one browser at a time may stream per engine, and a second one is told so once, in
its figures box (not per frame), and takes over when the first stops.

A streaming event makes Gradio keep a heartbeat connection open on every page of the app, so
the page never goes network-idle: wait for an element instead."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import gradio as gr
import numpy as np

from ..errors import InputError
from ..face.mesh import FaceMesh
from ..live.session import LiveSession, prepare_live_source
from ..motion.model import REGIONS
from ..pipeline.options import ENGINES
from ..pipeline.progress import Reporter
from .backend import AppBackend
from .uploads import image_upload

__all__ = ["live_section", "LiveHandlers"]

log = logging.getLogger(__name__)

#: Seconds without a frame after which a browser's hold on an engine lapses.
IDLE_SECONDS = 5.0
#: Seconds without a frame after which a browser's live session is closed.
FORGET_SECONDS = 120.0
STREAM_EVERY = 0.04


@dataclass
class LiveState:
    """One browser's live session and its figures."""

    key: tuple = ()
    session: LiveSession | None = None
    mesh: FaceMesh | None = None
    started: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    frames: int = 0
    latencies: list[float] = field(default_factory=list)
    #: the engine this browser waits for, held by another one; None while it streams.
    waiting: str | None = None

    def close(self) -> None:
        if self.mesh is not None:
            self.mesh.close()
        self.session = self.mesh = None


class LiveHandlers:
    """The Live tab's functions; one holder of each engine at a time."""

    def __init__(self, backend: AppBackend) -> None:
        self.backend = backend
        self._holders: dict[str, tuple[str, float]] = {}
        self._states: dict[str, LiveState] = {}
        self._lock = threading.Lock()

    def _hold(self, engine: str, session: str, state: LiveState) -> bool:
        """Whether ``session`` holds ``engine`` now: it was free, idle or its own. The first
        frame of a wait for another page's engine says so in the server's log, the others
        not (frames come in parallel)."""
        now = time.monotonic()
        with self._lock:
            holder = self._holders.get(engine)
            if holder is None or holder[0] == session or now - holder[1] >= IDLE_SECONDS:
                self._holders[engine] = (session, now)
                state.waiting = None
                return True
            told, state.waiting = state.waiting == engine, engine
        if not told:
            log.info("live tab: a page waits for the live %s engine, in use by another page",
                     engine)
        return False

    def _state(self, session: str) -> LiveState:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, v in self._states.items() if now - v.seen > FORGET_SECONDS]:
                self._states.pop(key).close()
            state = self._states.setdefault(session, LiveState())
            state.seen = now
            return state

    def frame(self, image: np.ndarray | None, source: str | None, engine: str, region: str,
              multiplier: float, request: gr.Request) -> tuple:
        """The portrait animated by one webcam frame of the page's session, and the figures."""
        return self.frame_for(request.session_hash, image, source, engine, region, multiplier)

    def frame_for(self, session: str, image: np.ndarray | None, source: str | None,
                  engine: str, region: str, multiplier: float) -> tuple:
        """:meth:`frame` for the browser session ``session``."""
        state = self._state(session)
        if image is None:
            return None, ""
        start = time.monotonic()
        engine_name = self.backend.engines.get(engine).name
        if not self._hold(engine_name, session, state):
            return None, (f"waiting: the live {engine_name} engine is in use by another page; "
                          "this page takes over when it stops, or pick the other engine")
        key = (source, engine_name, region, float(multiplier))
        if state.session is None or state.key != key:
            state.close()
            options = replace(self.backend.base, source=source or "sample:astronaut",
                              driving="", engine=engine_name, animation_region=region,
                              driving_multiplier=float(multiplier))
            for problem in options.invalid_values():
                raise InputError(problem)
            engine_obj = self.backend.engines.get(engine_name)
            state.mesh = FaceMesh(options.det_thresh)
            source_image = prepare_live_source(options, engine_obj, state.mesh,
                                               Reporter(quiet=True))
            state.session = LiveSession(engine_obj, options, source_image, state.mesh)
            state.key, state.started, state.frames, state.latencies = key, start, 0, []
        result = state.session.process(np.ascontiguousarray(image[..., :3]), start)
        state.frames += 1
        state.latencies = [*state.latencies[-99:], (time.monotonic() - start) * 1000]
        fps = state.frames / max(time.monotonic() - state.started, 1e-6)
        figures = (f"{fps:.1f} fps · {np.median(state.latencies):.0f} ms per frame (p50) · "
                   f"{'face' if result.face else 'no face'}")
        return result.image, figures

    def set_neutral(self, request: gr.Request) -> None:
        state = self._states.get(request.session_hash)
        if state is not None and state.session is not None:
            state.session.set_neutral()

    def session(self, session: str) -> LiveState | None:
        """The live state of a browser session, if it has one."""
        return self._states.get(session)


def live_section(handlers: LiveHandlers, engine: str, astronaut: str,
                 user_errors: Callable[[Callable], Callable]) -> None:
    """The Live tab's components and events; ``user_errors`` turns failures into page
    messages."""
    with gr.Row():
        with gr.Column():
            webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy",
                              label="Webcam", elem_id="live-webcam")
            source = image_upload("Source portrait", astronaut, elem_id="live-source")
        with gr.Column():
            output = gr.Image(label="Animated portrait", elem_id="live-output",
                              interactive=False)
            figures = gr.Textbox(label="Live", elem_id="live-figures", interactive=False)
            neutral = gr.Button("Set neutral", elem_id="live-neutral")
    with gr.Row():
        engine_radio = gr.Radio([e for e in ENGINES if e != "auto"],
                                value=engine if engine != "auto" else "classic",
                                label="engine")
        region = gr.Radio(list(REGIONS), value="all", label="animation region")
        multiplier = gr.Number(1.0, label="driving multiplier", minimum=0.0, maximum=2.0,
                               step=0.1)
    webcam.stream(user_errors(handlers.frame), [webcam, source, engine_radio, region, multiplier],
                  [output, figures], stream_every=STREAM_EVERY, time_limit=600,
                  concurrency_limit=None, api_visibility="private")
    neutral.click(handlers.set_neutral, None, None, api_visibility="private")
