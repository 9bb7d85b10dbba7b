"""Serving the app: one place for the launch settings the CLI and the tests share."""

from __future__ import annotations

import logging

import gradio as gr

from .backend import AppBackend
from .layout import build_app

__all__ = ["serve"]


def _show_app_log() -> None:
    """Print the app's INFO lines (each job's notes, each user's error) on stderr, unless
    logging is configured already."""
    logger = logging.getLogger("portrait_animate")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def serve(backend: AppBackend, *, server_port: int = 8890, server_name: str = "127.0.0.1",
          share: bool = False, block: bool = True) -> gr.Blocks:
    """Build the app on ``backend`` and serve it; with ``block=False`` return at once (the
    server runs in a thread until ``.close()``).

    Gradio's own banner is replaced by one that names this command's options.
    """
    _show_app_log()
    demo = build_app(backend)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_port=server_port, server_name=server_name, share=share,
                max_file_size=int(backend.limits.max_upload_mb * 2**20),
                allowed_paths=[str(backend.work_dir)], show_error=True,
                prevent_thread_lock=True, theme=gr.themes.Soft(), quiet=True)
    print(f"* Running on local URL:  {demo.local_url}")
    if not share:
        print("* To create a public link, start the app with --share.")
    if block:
        demo.block_thread()
    return demo
