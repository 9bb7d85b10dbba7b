"""The app's Live tab: the browser's webcam streams in (Gradio streaming), the animated portrait
streams back, with the same :class:`~portrait_animate.live.session.LiveSession` as
``portrait-animate live``.

Each browser session has its own live session (anchor, filter, face mesh), kept here by
Gradio's session hash, so that one idle for :data:`FORGET_SECONDS` is closed and its face
mesh freed; one browser at a time may stream per engine, and a second one is told so once, in
its figures box (not per frame), and takes over when the first stops. A problem (a source
with no face, an unreadable upload, a number out of range, an engine that cannot load) is told
likewise: one message on the page and one line in the log, then in the figures box while
it lasts; the source is not analysed again for the same inputs, and a change of an input
tries again.

A streaming event makes Gradio keep a heartbeat connection open on every page of the app, so
the page never goes network-idle: wait for an element instead."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import gradio as gr
import numpy as np

from ..engines.base import Engine
from ..errors import InputError
from ..face.mesh import FaceMesh
from ..live.session import LiveSession, prepare_live_source
from ..motion.model import REGIONS
from ..pipeline.engines import weights_found
from ..pipeline.options import ENGINES
from ..pipeline.progress import Reporter
from .backend import AppBackend
from .uploads import Refused, image_upload, refuse_out_of_range

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
    #: the inputs whose live session could not start: not tried again while they stay.
    failed: tuple | None = None
    #: the last problem told to the page (inputs, kind and text) and the page's message.
    told: tuple[tuple, str] | None = None
    #: one frame at a time starts (or fails to start) the live session.
    lock: threading.RLock = field(default_factory=threading.RLock)

    def close(self) -> None:
        if self.mesh is not None:
            self.mesh.close()
        self.session = self.mesh = None


class LiveHandlers:
    """The Live tab's functions; one holder of each engine at a time.

    Args:
        backend: the app's engines and options.
        page_error: the page's message for a failure, given the inputs and where it happened;
            it logs the failure (:func:`~.layout.page_error`).
    """

    def __init__(self, backend: AppBackend,
                 page_error: Callable[[Exception, Iterable[object], str], gr.Error]) -> None:
        self.backend = backend
        self.page_error = page_error
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

    def _tell(self, state: LiveState, key: tuple, exc: Exception, source: object) -> tuple:
        """Raises the page's message for ``exc``, a failure with the inputs ``key``, the first
        time; the same failure with the same inputs again (a later or parallel frame) is only
        said in the figures box, neither raised nor logged again."""
        problem = (key, type(exc), str(exc))
        with state.lock:
            if state.told is not None and state.told[0] == problem:
                return None, state.told[1]
            error = self.page_error(exc, [source], "live frame")
            state.told = (problem, error.message)
        raise error

    def frame(self, image: np.ndarray | None, source: str | Refused | None, engine: str,
              region: str, multiplier: float | Refused | None, request: gr.Request) -> tuple:
        """The portrait animated by one webcam frame of the page's session, and the figures."""
        return self.frame_for(request.session_hash, image, source, engine, region, multiplier)

    def frame_for(self, session: str, image: np.ndarray | None, source: str | Refused | None,
                  engine: str, region: str, multiplier: float | Refused | None) -> tuple:
        """:meth:`frame` for the browser session ``session``.

        Raises:
            gr.Error: the page's message for a problem, once per problem and inputs; the
                figures box says it on the frames that follow. Inputs that failed to start a
                live session are not tried again until one changes.
        """
        state = self._state(session)
        if image is None:
            return None, ""
        start = time.monotonic()
        key = (source, engine, region, multiplier)
        with state.lock:
            if state.failed == key and state.told is not None:
                return None, state.told[1]
            if state.told is not None and state.told[0][0] != key:  # the inputs changed
                state.failed = state.told = None
            try:
                for value in (source, multiplier):
                    if isinstance(value, Refused):
                        raise InputError(value.message)
                if multiplier is None:
                    raise InputError("'driving multiplier' is empty; type a number, e.g. 1")
                engine_obj = self.backend.engines.get(engine)
            except Exception as exc:
                state.failed = key
                return self._tell(state, key, exc, source)
            if not self._hold(engine_obj.name, session, state):
                return None, self._waiting(engine_obj.name)
            if state.session is None or state.key != key:
                state.close()
                try:
                    self._start(state, source, engine_obj, region, float(multiplier))
                except Exception as exc:
                    state.close()
                    state.failed = key
                    return self._tell(state, key, exc, source)
                state.key, state.started, state.frames, state.latencies = key, start, 0, []
                state.failed = state.told = None
            live = state.session
        try:
            result = live.process(np.ascontiguousarray(image[..., :3]), start)
        except Exception as exc:  # told once; the next frame tries again
            return self._tell(state, key, exc, source)
        state.frames += 1
        state.latencies = [*state.latencies[-99:], (time.monotonic() - start) * 1000]
        fps = state.frames / max(time.monotonic() - state.started, 1e-6)
        figures = (f"{fps:.1f} fps · {np.median(state.latencies):.0f} ms per frame (p50) · "
                   f"{'face' if result.face else 'no face'}")
        return result.image, figures

    def _waiting(self, engine: str) -> str:
        """What a page waiting for ``engine`` is told; the other engine is named only when it
        can run (neural: its weights are found)."""
        other = "classic" if engine == "neural" else "neural"
        can_switch = other == "classic" or weights_found(self.backend.base.weights_dir)
        return (f"waiting: the live {engine} engine is in use by another page; this page "
                f"takes over when it stops{f', or pick the {other} engine' if can_switch else ''}")

    def _start(self, state: LiveState, source: str | None, engine: Engine, region: str,
               multiplier: float) -> None:
        """A live session for ``state`` with these inputs."""
        options = replace(self.backend.base, source=source or "sample:astronaut", driving="",
                          engine=engine.name, animation_region=region,
                          driving_multiplier=multiplier)
        for problem in options.invalid_values():
            raise InputError(problem)
        state.mesh = FaceMesh(options.det_thresh)
        source_image = prepare_live_source(options, engine, state.mesh,
                                           Reporter(quiet=True))
        state.session = LiveSession(engine, options, source_image, state.mesh)

    def set_neutral(self, request: gr.Request) -> None:
        state = self._states.get(request.session_hash)
        if state is not None and state.session is not None:
            state.session.set_neutral()

    def session(self, session: str) -> LiveState | None:
        """The live state of a browser session, if it has one."""
        return self._states.get(session)


def live_section(handlers: LiveHandlers, engine: str, astronaut: str) -> None:
    """The Live tab's components and events. Its source and multiplier pass what they refuse
    on to the frame function (:class:`~.uploads.Refused`), which tells it once."""
    with gr.Row():
        with gr.Column():
            webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy",
                              label="Webcam", elem_id="live-webcam")
            source = image_upload("Source portrait", astronaut, quiet=True,
                                  elem_id="live-source")
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
                               step=0.1, elem_id="live-multiplier")
        refuse_out_of_range(multiplier, quiet=True)
    webcam.stream(handlers.frame, [webcam, source, engine_radio, region, multiplier],
                  [output, figures], stream_every=STREAM_EVERY, time_limit=600,
                  concurrency_limit=None, api_visibility="private")
    neutral.click(handlers.set_neutral, None, None, api_visibility="private")
