"""Serving the app: one place for the launch settings the CLI and the tests share."""

from __future__ import annotations

import gradio as gr

from .backend import AppBackend
from .layout import build_app

__all__ = ["serve"]


def serve(backend: AppBackend, *, server_port: int = 8890, server_name: str = "127.0.0.1",
          share: bool = False, block: bool = True) -> gr.Blocks:
    """Build the app on ``backend`` and serve it; with ``block=False`` return at once (the
    server runs in a thread until ``.close()``)."""
    demo = build_app(backend)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_port=server_port, server_name=server_name, share=share,
                max_file_size=int(backend.limits.max_upload_mb * 2**20),
                allowed_paths=[str(backend.work_dir)], show_error=True,
                prevent_thread_lock=not block, theme=gr.themes.Soft())
    return demo
