"""The app's Live tab: the browser's webcam streams in (Gradio streaming), the animated portrait
streams back, with the same :class:`~portrait_animate.live.session.LiveSession` as
``portrait-animate live``.

Each browser session has its own live session (``gr.State``: anchor, filter, face mesh); one
browser at a time may stream per engine, and a second one is told so."""

from __future__ import annotations

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

__all__ = ["live_section", "LiveHandlers"]

#: Seconds without a frame after which a browser's hold on an engine lapses.
IDLE_SECONDS = 5.0
STREAM_EVERY = 0.04


@dataclass
class LiveState:
    """One browser's live session and its figures."""

    key: tuple = ()
    session: LiveSession | None = None
    mesh: FaceMesh | None = None
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    latencies: list[float] = field(default_factory=list)

    def close(self) -> None:
        if self.mesh is not None:
            self.mesh.close()
        self.session = self.mesh = None


class LiveHandlers:
    """The Live tab's functions; one holder of each engine at a time."""

    def __init__(self, backend: AppBackend) -> None:
        self.backend = backend
        self._holders: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _hold(self, engine: str, state: LiveState) -> None:
        now = time.monotonic()
        with self._lock:
            holder = self._holders.get(engine)
            if holder is not None and holder[0] != id(state) and now - holder[1] < IDLE_SECONDS:
                raise InputError(f"the live {engine} engine is in use by another page; try "
                                 "again when it stops, or pick the other engine")
            self._holders[engine] = (id(state), now)

    def frame(self, image: np.ndarray | None, source: str | None, engine: str, region: str,
              multiplier: float, state: LiveState | None) -> tuple:
        """The portrait animated by one webcam frame, the figures, and the session's state."""
        state = state or LiveState()
        if image is None:
            return None, "", state
        start = time.monotonic()
        engine_name = self.backend.engines.get(engine).name
        self._hold(engine_name, state)
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
        return result.image, figures, state

    def set_neutral(self, state: LiveState | None) -> LiveState | None:
        if state is not None and state.session is not None:
            state.session.set_neutral()
        return state


def live_section(handlers: LiveHandlers, engine: str, astronaut: str,
                 user_errors: Callable[[Callable], Callable]) -> None:
    """The Live tab's components and events; ``user_errors`` turns failures into page
    messages."""
    with gr.Row():
        with gr.Column():
            webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy",
                              label="Webcam", elem_id="live-webcam")
            source = gr.Image(astronaut, type="filepath", label="Source portrait",
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
                               step=0.1)
    state = gr.State(None)
    webcam.stream(user_errors(handlers.frame),
                  [webcam, source, engine_radio, region, multiplier, state],
                  [output, figures, state], stream_every=STREAM_EVERY, time_limit=600,
                  concurrency_limit=None, api_visibility="private")
    neutral.click(handlers.set_neutral, [state], [state], api_visibility="private")
