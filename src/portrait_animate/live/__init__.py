"""Live animation: a camera (or a video played in real time) drives a source portrait, shown
in a window, sent to a virtual camera or recorded (``portrait-animate live``).

Built on the pipeline: the source is prepared as for ``animate``, each frame is composed by
:class:`~portrait_animate.pipeline.animate.FrameAnimator` and rendered by the same
:class:`~portrait_animate.engines.base.Engine`; only the capture, the pacing and the outputs
are live-specific.
"""
