"""What the app says when something goes wrong: in the page, the page's own words; in the
server's log, one line for a user's error and a traceback only for a fault."""

from __future__ import annotations

import logging
import socket

import gradio as gr
import pytest

from portrait_animate.app.layout import NO_DRIVING, NO_SOURCE, _pick, page_message, user_errors
from portrait_animate.errors import InputError

UPLOAD = "/tmp/gradio/0f1e2d/wall photo.png"


def test_page_message_names_uploads_by_their_file_name():
    message = f"cannot decode image {UPLOAD}: the file is corrupt"
    assert page_message(message, ["Image", UPLOAD, 2.3, None]) == \
        "cannot decode image wall photo.png: the file is corrupt"


def test_page_messages_name_the_controls_not_the_command_lines_options():
    """An option's message made for the command line names the page's control, and a flag
    to pass or drop is a box to tick or untick."""
    from portrait_animate.pipeline.options import AnimateOptions

    [problem] = AnimateOptions("s.jpg", "d.mp4", face_order="x").invalid_values()
    assert page_message(problem, []).startswith("'face order' 'x' is not one of large-small")
    [conflict] = AnimateOptions("s.jpg", "d.mp4", flag_normalize_lip=True,
                                flag_relative_motion=False).conflicts()
    assert page_message(conflict, []) == (
        "'normalize lip' needs relative motion; tick 'relative motion' or untick 'normalize lip'")
    assert page_message("pass --no_flag_stitching or --driving_multiplier 1 (--quiet)", []) == \
        "untick 'stitching' or 'driving multiplier (i2v)' 1 (--quiet)"


def test_a_users_error_is_its_page_wording_and_one_log_line(caplog):
    @user_errors
    def handler(image: str) -> None:
        raise InputError(f"no face in {image}; pass --no_flag_do_crop",
                         page=f'no face in {image}; untick "do crop (source)"')

    with caplog.at_level(logging.INFO, logger="portrait_animate"), \
            pytest.raises(gr.Error) as info:
        handler(UPLOAD)
    assert info.value.message == 'no face in wall photo.png; untick "do crop (source)"'
    assert not info.value.print_exception, "gradio prints no traceback for it"
    [record] = caplog.records
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage() == f"handler: no face in {UPLOAD}; pass --no_flag_do_crop"


def test_a_fault_logs_its_traceback_once(caplog):
    @user_errors
    def handler() -> None:
        raise ZeroDivisionError("division by zero")

    with caplog.at_level(logging.INFO, logger="portrait_animate"), \
            pytest.raises(gr.Error) as info:
        handler()
    assert "ZeroDivisionError" in info.value.message and "Traceback" not in info.value.message
    assert not info.value.print_exception
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_a_missing_input_names_what_can_fill_it():
    with pytest.raises(InputError, match=NO_SOURCE):
        _pick("Image", {"Image": None, "Video": None}, NO_SOURCE)
    assert "preset" not in NO_SOURCE and "preset" in NO_DRIVING
    assert _pick("Image", {"Image": None, "Video": "clip.mp4"}, NO_SOURCE) == ("Video",
                                                                           "clip.mp4")


def test_the_banner_points_at_the_share_option(tmp_path, capsys):
    from portrait_animate.app import AppBackend, AppLimits, serve
    from portrait_animate.pipeline.options import AnimateOptions

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = AppBackend(AnimateOptions(source="", driving="", engine="classic"), AppLimits(),
                         tmp_path)
    demo = serve(backend, server_port=port, block=False)
    demo.close()
    out = capsys.readouterr().out
    assert f"127.0.0.1:{port}" in out and "start the app with --share" in out
    assert "share=True" not in out
