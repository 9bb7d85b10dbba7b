"""Every output video holds exactly the frames rendered, its audio fitted to their length, in
time with them and with the source's pixel shape; a failure leaves nothing behind, and a
truncated input is reported (issue 11, items 3, 4, 5, 9, 13)."""

from __future__ import annotations

import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

import portrait_animate.io.video as video_io
from media import FFMPEG, audio_seconds, clip, frame_count, read_video, streams, write_video
from portrait_animate.cli.main import main
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.io.video import iter_frames
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.options import AnimateOptions
from portrait_animate.pipeline.retargeting import VideoRetargetOptions, retarget_video

#: One video frame at 25 fps: the audio may differ from the video by less.
FRAME_25 = 0.04


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def source_clip(shared, media_dir) -> Path:
    """12 frames of s13 at 25 fps (0.48 s), small, with non-square pixels (SAR 15:16) and
    0.25 s of audio: shorter than the video."""
    path = media_dir / "s13_sar.mp4"
    _ffmpeg("-i", str(shared / "assets/source/s13.mp4"),
            "-f", "lavfi", "-i", "sine=frequency=440:duration=0.25", "-map", "0:v", "-map", "1:a",
            "-frames:v", "12", "-vf", "scale=360:540,setsar=15/16", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))
    return path


@pytest.fixture(scope="module")
def ramp_driver(shared, media_dir) -> tuple[Path, list[float]]:
    """12 frames of d12 at 30 fps, each brighter than the last (so that a frame tells which
    driving frame it shows), with 1 s of audio; and the mean brightness of each frame."""
    face = cv2.resize(cv2.imread(str(shared / "assets/driving/d12.jpg"))[..., ::-1], (256, 256))
    frames = [np.clip(face.astype(np.int16) + 6 * j, 0, 255).astype(np.uint8)
              for j in range(12)]
    silent = media_dir / "ramp_silent.mp4"
    writer = imageio_ffmpeg.write_frames(str(silent), (256, 256), fps=30, codec="libx264",
                                         quality=None, output_params=["-crf", "10"],
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()
    path = media_dir / "ramp.mp4"
    _ffmpeg("-i", str(silent), "-f", "lavfi", "-i", "sine=frequency=300:duration=1",
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(path))
    return path, [float(f.mean()) for f in frames]


def _animate(source: Path, driving: Path, out: Path, *extra: str) -> int:
    return main(["animate", "--engine", "classic", "-s", str(source), "-d", str(driving),
                 "-o", str(out), "--quiet", *extra])


def _check_video(path: Path, frames: int, fps: float = 25.0) -> None:
    """``frames`` frames, and audio lasting as long, to less than a frame."""
    assert frame_count(path) == frames, path.name
    assert audio_seconds(path) == pytest.approx(frames / fps, abs=0.5 / fps), path.name


def test_videos_keep_every_frame_and_the_source_pixel_shape(shared, source_clip, tmp_path):
    """The audio (0.25 s) is padded to the 12 frames (0.48 s), not the video cut to the
    audio; the result has the source's 15:16 pixels."""
    assert _animate(source_clip, shared / "assets/driving/d12.jpg", tmp_path,
                    "--save_frames") == 0
    assert len(list((tmp_path / "s13_sar--d12_frames").glob("*.png"))) == 12
    for name in ("s13_sar--d12.mp4", "s13_sar--d12_concat.mp4"):
        _check_video(tmp_path / name, 12)
    assert "SAR 15:16" in streams(tmp_path / "s13_sar--d12.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "d12_template.npz", "s13_sar--d12.mp4", "s13_sar--d12_concat.mp4",
        "s13_sar--d12_frames"]


def _driving_frames_shown(concat: Path, means: list[float]) -> list[int]:
    """Per concat frame, the ramp frame of its driving panel (the nearest in brightness)."""
    frames, _ = read_video(concat)
    return [int(np.argmin([abs(f[:, :512].mean() - m) for m in means])) for f in frames]


def test_a_driver_with_audio_is_resampled_onto_the_output_time_base(source_clip, ramp_driver,
                                                                      tmp_path):
    """The 30 fps driver in a 25 fps output shows, at i / 25 s, its frame nearest in time, so
    that its audio stays in time; --driving_time_base driving keeps the reference's frame for
    frame."""
    driving, means = ramp_driver
    assert _animate(source_clip, driving, tmp_path / "auto") == 0
    concat = tmp_path / "auto/s13_sar--ramp_concat.mp4"
    # round(i * 30 / 25) for the 10 output frames of the 0.4 s driver
    assert _driving_frames_shown(concat, means) == [0, 1, 2, 4, 5, 6, 7, 8, 10, 11]
    for path in (concat, tmp_path / "auto/s13_sar--ramp.mp4"):
        _check_video(path, 10)

    assert _animate(source_clip, driving, tmp_path / "parity",
                    "--driving_time_base", "driving") == 0
    concat = tmp_path / "parity/s13_sar--ramp_concat.mp4"
    assert _driving_frames_shown(concat, means) == list(range(12))
    _check_video(concat, 12)


def test_a_variable_frame_rate_driver_keeps_its_length(shared, ramp_driver, media_dir,
                                                      tmp_path):
    """A phone records at a variable frame rate. ffmpeg filled such a clip out with repeats
    to its nominal 30 fps, while the output was written at its 20 fps average: the motion
    came out slow and behind its sound; each frame read once at the average rate, a frame
    after a gap came early. Each frame is shown from its time on, at the usual rate."""
    driving, means = ramp_driver
    vfr = media_dir / "ramp_vfr.mp4"  # 8 of the 12 frames, each at its own time
    _ffmpeg("-i", str(driving), "-vf", r"select=not(eq(mod(n\,3)\,2))", "-fps_mode", "vfr",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-c:a", "copy", str(vfr))
    frames = list(iter_frames(vfr))
    assert [int(np.argmin([abs(f.mean() - m) for m in means])) for f in frames] == [
        0, 1, 1, 3, 4, 4, 6, 7, 7, 9, 10]
    assert video_io.probe_video(vfr).fps == 30  # the usual interval's rate, not the average
    assert _animate(shared / "assets/source/s0.jpg", vfr, tmp_path) == 0
    result = tmp_path / "s0--ramp_vfr.mp4"
    assert frame_count(result) == 11 and video_io.probe_video(result).fps == 30


@pytest.mark.parametrize("version, option", [("n9.0.2-17-g2a571b6068-20260930", "-fps_mode"),
                                             ("5.1.2", "-fps_mode"), ("4.2.2-static", "-vsync")])
def test_each_frame_is_read_once_with_the_option_the_ffmpeg_binary_knows(monkeypatch, version,
                                                                          option):
    """-vsync went in ffmpeg 9, -fps_mode came in 5.1 (a GPU machine may bring ffmpeg 4)."""
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_version", lambda: version)
    assert video_io._every_frame_once(version) == (option, "passthrough")


def test_a_failure_at_the_end_leaves_no_output_and_no_template(shared, source_clip, tmp_path,
                                                               monkeypatch):
    """Adding the audio fails after every frame is rendered: the template, the videos and
    their temporary files all go."""
    monkeypatch.setattr(video_io, "ffmpeg_exe", lambda: shutil.which("false"))
    assert _animate(source_clip, shared / "assets/driving/d12.jpg", tmp_path) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_video_is_reported_with_the_frames_read(shared, media_dir, tmp_path,
                                                           capsys):
    full = media_dir / "d9_faststart.mp4"
    _ffmpeg("-i", str(shared / "assets/driving/d9.mp4"), "-t", "0.6", "-c:v", "libx264",
            "-preset", "ultrafast", "-c:a", "aac", "-movflags", "+faststart", str(full))
    truncated = tmp_path / "half.mp4"
    truncated.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    warnings: list[str] = []
    assert len(list(iter_frames(full, warn=warnings.append))) == 18 and warnings == []
    read = len(list(iter_frames(truncated, warn=warnings.append)))
    assert 0 < read < 14 and len(warnings) == 1
    assert f"stopped after {read} frames" in warnings[0] and "announces 18" in warnings[0]

    result = animate(AnimateOptions(str(shared / "assets/source/s6.jpg"), str(truncated),
                                    output_dir=str(tmp_path / "out"), engine="classic"))
    assert result.n_frames == read
    assert f"stopped after {read} frames" in capsys.readouterr().err


def test_a_sound_longer_than_the_picture_is_no_truncation(shared, tmp_path):
    """A container's duration is its longest stream's: a video whose audio runs on (or starts
    late) was called truncated, and its user told to re-download it."""
    picture = tmp_path / "picture.mp4"
    _ffmpeg("-i", str(shared / "assets/driving/d9.mp4"), "-an", "-frames:v", "15", "-c:v",
            "libx264", "-preset", "ultrafast", str(picture))
    for name, audio in (("longer.mp4", ["-f", "lavfi", "-i", "sine=duration=2"]),
                        ("late.mp4", ["-itsoffset", "0.5", "-f", "lavfi",
                                      "-i", "sine=duration=0.6"])):
        _ffmpeg("-i", str(picture), *audio, "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                "-c:a", "aac", str(tmp_path / name))
        assert video_io.probe_video(tmp_path / name).duration > 1, name
        warnings: list[str] = []
        assert len(list(iter_frames(tmp_path / name, warn=warnings.append))) == 15
        assert warnings == [], name


def test_a_frame_limit_below_one_is_named_and_numpy_limits_work(shared):
    """A limit of no frames is the caller's mistake, named as such (not as a video of zero
    frames); a numpy integer is a limit like any other."""
    d0 = shared / "assets/driving/d0.mp4"
    for bad in (0, -3, np.int64(0), 2.5, True):
        with pytest.raises(ValueError, match=r"^limit must be a whole number of frames, 1 or "
                                             r"more \(or None for all\), got "
                                             + re.escape(repr(bad)) + "$"):
            next(iter_frames(d0, limit=bad))
    assert len(list(iter_frames(d0, limit=np.int64(3)))) == 3
    assert len(list(iter_frames(d0, limit=np.uint8(2)))) == 2


def test_audio_from_a_video_without_sound_is_refused_up_front(shared, tmp_path):
    """d0 has no audio track: one clear line before any frame is encoded, and no file."""
    from portrait_animate.errors import InputError

    silent = shared / "assets/driving/d0.mp4"
    with pytest.raises(InputError, match=f"^cannot add the audio of {re.escape(str(silent))}: "
                                         "it has no audio track; give a video with sound, or "
                                         "no audio$"), \
            video_io.VideoWriter(tmp_path / "v.mp4", 25, audio=silent) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_video_retargeting_keeps_frames_audio_and_pixel_shape(shared, media_dir, tmp_path):
    """d9 has 15:16 pixels: the retargeted video displays as wide as the input."""
    talking = clip(shared / "assets/driving/d9.mp4", media_dir / "d9.mp4", 0.3)
    assert "SAR 15:16" in streams(talking)
    result = retarget_video(str(talking), ClassicEngine(), VideoRetargetOptions(), tmp_path)
    frames = frame_count(talking)
    for path in (result.output, result.concat):
        _check_video(path, frames, fps=30.0)
    assert "SAR 15:16" in streams(result.output)


def test_an_odd_sized_video_is_scaled_to_even_sizes_without_a_warning(tmp_path, caplog):
    """x264's yuv420p needs even sizes: odd frames are scaled up by a pixel, quietly."""
    y, x = np.mgrid[0:33, 0:65]
    frame = np.stack([x * 3, y * 7, (x + y) * 2], axis=-1).astype(np.uint8)
    with caplog.at_level("WARNING"), video_io.VideoWriter(tmp_path / "odd.mp4", 25) as writer:
        for _ in range(3):
            writer.write(frame)
    assert not caplog.records
    frames, _ = read_video(tmp_path / "odd.mp4")
    assert np.shape(frames) == (3, 34, 66, 3)
    expected = cv2.resize(frame, (66, 34)).astype(int)
    assert np.abs(frames[0].astype(int) - expected).mean() < 4


def test_a_rotated_phone_video_is_read_upright_without_a_warning(shared, tmp_path, caplog):
    """A portrait clip from a phone is stored sideways with a display rotation: its frames
    come upright, sized as the probe says, with the pixel aspect turned too, and quietly
    (imageio-ffmpeg warned on every read that the sizes differ)."""
    rotated = tmp_path / "phone.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-display_rotation", "90", "-i",
                    str(shared / "assets/driving/d9.mp4"), "-t", "0.2", "-c", "copy",
                    str(rotated)], check=True)
    with caplog.at_level("WARNING"):
        probe = video_io.probe_video(rotated)
        frame = next(iter_frames(rotated, limit=1))
    assert not caplog.records
    upright = next(iter_frames(shared / "assets/driving/d9.mp4", limit=1))
    assert frame.shape == (*probe.size[::-1], 3) == (upright.shape[1], upright.shape[0], 3)
    assert np.array_equal(frame, np.rot90(upright))  # a quarter turn, as players show it
    assert probe.sar == 1 / video_io.probe_video(shared / "assets/driving/d9.mp4").sar


def test_writers_refuse_what_they_cannot_write_and_leave_nothing(tmp_path):
    """A frame of another size than the first, a float frame, a rate that is no rate, an
    image of floats or a name no writer takes: a clear error, and no file left behind."""
    from portrait_animate.errors import InputError
    from portrait_animate.io.images import write_image_rgb

    frame = np.zeros((32, 32, 3), np.uint8)
    for fps in (0, -1, float("nan"), 1e9, "25", True):
        with pytest.raises(ValueError, match="fps must be a number above 0"):
            video_io.VideoWriter(tmp_path / "v.mp4", fps)
    for bad, message in ((np.zeros((64, 64, 3), np.uint8), "frame 1 is 64x64, but the video's "
                          "first frame is 32x32"),
                         (frame.astype(np.float32), r"frame must be a non-empty \(H, W, 3\) "
                                                    "uint8 RGB array, got")):
        with pytest.raises(ValueError, match=message), \
                video_io.VideoWriter(tmp_path / "v.mp4", 25) as writer:
            writer.write(frame)
            writer.write(bad)
    with pytest.raises(RuntimeError, match="outside its with block"):
        video_io.VideoWriter(tmp_path / "v.mp4", 25).write(frame)
    with pytest.raises(ValueError, match="uint8 RGB"):
        write_image_rgb(tmp_path / "f.png", frame.astype(np.float32) / 255)
    with pytest.raises(InputError, match="use a .jpg or .png name"):
        write_image_rgb(tmp_path / "f.xyz", frame)
    with pytest.raises(InputError, match="use a .jpg or .png name"):
        write_image_rgb(tmp_path / "f.gif", frame)
    assert list(tmp_path.iterdir()) == []


# the second bug hunt (bughunt_cli): timing and shape of phone clips and animated images


def _astronaut(side: int = 192) -> np.ndarray:
    from portrait_animate.io.images import read_image_rgb

    return cv2.resize(read_image_rgb("sample:astronaut"), (side, side),
                      interpolation=cv2.INTER_AREA)


def _ramp(frames: int) -> list[np.ndarray]:
    """The astronaut, darkened, brighter in each frame (a frame tells its index)."""
    face = _astronaut() // 5
    return [face + np.uint8(4 * j) for j in range(frames)]


def _shown(frame: np.ndarray, frames: list[np.ndarray]) -> int:
    """The index of the one of ``frames`` that ``frame`` is most like."""
    return int(np.argmin([np.abs(frame.astype(np.int16) - f).mean() for f in frames]))


@pytest.fixture(scope="module")
def vfr_clip(media_dir) -> Path:
    """A variable frame rate clip, as the bug report made it: of 60 frames at 30 fps (2 s),
    frames 10-39 are dropped, so 10 frames fill 0-0.3 s, then 20 frames 1.33-2 s; with 2 s of
    sound. ffmpeg calls it 15 fps."""
    from media import write_video

    cfr = write_video(_ramp(60), media_dir / "cfr60.mp4", fps=30)
    path = media_dir / "vfr.mp4"
    _ffmpeg("-i", str(cfr), "-f", "lavfi", "-i", "sine=frequency=300:duration=2",
            "-vf", "select='not(between(n,10,39))'", "-fps_mode", "vfr", "-c:v", "libx264",
            "-crf", "10", "-c:a", "aac", "-shortest", str(path))
    return path


def test_variable_frame_rate_frames_are_placed_by_their_times(vfr_clip):
    """Frame by frame at the average rate, output frame 10 (0.67 s) showed the frame filmed at
    1.33 s, ahead of its sound; at the clip's usual rate each frame is shown when filmed."""
    probe = video_io.probe_video(vfr_clip)
    assert probe.fps == 30 and probe.frames == 60
    ramp = _ramp(60)
    shown = [_shown(f, ramp) for f in iter_frames(vfr_clip)]
    filmed = [*range(10), *range(40, 60)]  # the ramp's index of each frame kept
    due = [max(j for j in filmed if j <= k) for k in range(60)]
    assert shown == due


def test_variable_frame_rate_source_stays_in_time_with_its_sound(vfr_clip, tmp_path):
    result = animate(AnimateOptions(str(vfr_clip), "sample:astronaut", output_dir=str(tmp_path),
                                    engine="classic", quiet=True))
    frames, fps = read_video(result.output)
    assert (len(frames), fps) == (60, 30)
    assert audio_seconds(result.output) == pytest.approx(2.0, abs=FRAME_25)
    filmed = [np.frombuffer(b, np.uint8).reshape(frames[0].shape)  # each frame once
              for b in list(imageio_ffmpeg.read_frames(str(vfr_clip), output_params=[
                  "-fps_mode", "passthrough"]))[1:]]
    for k in (5, 20, 45):  # before, in and after the gap: frames 5, 9 (held) and 15
        assert _shown(frames[k], filmed) == (k if k < 10 else 9 if k < 40 else k - 30), k


def test_animated_image_timing(tmp_path):
    """An animated WebP's frame durations are read (Pillow gives them only once a frame is
    decoded: every frame was taken as 100 ms); a GIF's frame of twice the usual delay is
    shown twice as long, not for the mean."""
    from PIL import Image

    frames = [Image.fromarray(f) for f in _ramp(5)]
    webp = tmp_path / "anim.webp"
    frames[0].save(webp, save_all=True, append_images=frames[1:], duration=80, loop=0,
                   lossless=True)
    probe = video_io.probe_video(webp)
    assert (probe.fps, probe.duration) == (12.5, 0.4) and probe.frames == 5
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:],
                   duration=[100, 200, 100, 100, 100], loop=0)
    assert video_io.probe_video(gif).fps == 10
    ramp = _ramp(5)
    assert [_shown(f, ramp) for f in iter_frames(gif)] == [0, 1, 1, 2, 3, 4]


def test_concat_shows_non_square_pixels_as_players_do(tmp_path):
    """A driver of SAR 2 (128x256 pixels, shown 256x256): its panel is twice as wide as
    tall, as it is shown, not squeezed to a square."""
    from media import write_video

    square = write_video([_astronaut(256)] * 3, tmp_path / "square.mp4")
    wide = tmp_path / "sar2.mp4"
    _ffmpeg("-i", str(square), "-vf", "scale=128:256,setsar=2", "-c:v", "libx264", str(wide))
    result = animate(AnimateOptions("sample:astronaut", str(wide), output_dir=str(tmp_path),
                                    engine="classic", quiet=True))
    concat, _ = read_video(result.concat)
    assert concat[0].shape[:2] == (512, 1024 + 512 + 512)


def test_one_frame_driving_video_drives_like_its_picture(source_clip, tmp_path):
    """A driving video of one frame animates the whole source video, as the same picture
    does, and an image source gives an image."""
    from media import write_video

    one = write_video([_astronaut()], tmp_path / "one.mp4")
    result = animate(AnimateOptions(str(source_clip), str(one), output_dir=str(tmp_path),
                                    engine="classic", quiet=True))
    assert result.n_frames == 12 and frame_count(result.output) == 12
    still = animate(AnimateOptions("sample:astronaut", str(one), output_dir=str(tmp_path),
                                   engine="classic", quiet=True))
    assert still.output.suffix == ".jpg" and still.fps is None


def test_a_one_frame_source_video_gives_one_frame_and_says_how_to_animate_it(tmp_path,
                                                                            capsys):
    """As in the reference, a video source gives as many frames as the shorter input: a
    source video of one frame gives one, and the note names the fix (the picture as an
    image)."""
    from media import write_video

    one = write_video([_astronaut()], tmp_path / "one.mp4")
    assert main(["animate", "-s", str(one), "-d", "preset:talk", "-o", str(tmp_path),
                 "--engine", "classic"]) == 0
    assert frame_count(tmp_path / "one--talk.mp4") == 1
    assert "the source video has one frame, so the result has one" in capsys.readouterr().err


def _pattern(path: Path, frames: int, *codec: str) -> Path:
    """``frames`` frames of ffmpeg's 64x64 test pattern at 25 fps, encoded with ``codec``."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-frames:v", str(frames),
            *codec, str(path))
    return path


def test_a_bare_h264_stream_gives_every_frame(tmp_path):
    """A bare H.264 stream (no container: no duration, no frame count, no packet times), as
    the service saves an upload (.mp4, by its content) and the Python API may be given it:
    every frame is read, not only one (its packets, all without a time, were placed at one
    time), and it is a video, not a one-frame one that drives as a picture."""
    path = _pattern(tmp_path / "bare.mp4", 8, "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-f", "h264")
    assert "Input #0, h264," in video_io._header(path)  # no container
    frames = list(iter_frames(path))
    assert len(frames) == 8 == frame_count(path)
    assert all(frame.shape == (64, 64, 3) for frame in frames)
    assert len({frame.tobytes() for frame in frames}) > 1  # the pattern moves
    info = video_io.probe_video(path)
    assert info.fps == 25 and info.frames is None  # no count without decoding


def test_an_avi_with_b_frames_gives_each_frame_once(tmp_path):
    """An AVI of MPEG-4 with B-frames (an Xvid file): some packets have no time, which placed
    frames at a time of -2**63 and yielded frames without end; each frame comes once."""
    path = _pattern(tmp_path / "xvid.avi", 12, "-c:v", "mpeg4", "-bf", "2")
    assert len(list(iter_frames(path, limit=24))) == 12 == frame_count(path)


def _beep_seconds(path: Path) -> float:
    """When the first loud sample of ``path``'s sound plays, in seconds."""
    pcm = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", "8000", "-f", "s16le", "-"], capture_output=True,
                         check=True).stdout
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, np.int16)) > 8000)
    assert loud.size, f"no beep in {path}"
    return loud[0] / 8000


def test_sound_that_starts_before_the_picture_stays_with_it(tmp_path):
    """A clip whose picture starts 0.5 s after its sound (a phone's clip, an edited one): its
    frames are decoded from the picture's start, so its sound must be taken from there too. A
    beep at 1.5 s, under the picture's frame 25, came out 1.5 s into the output, under frame
    37 (the sound lagged the picture by 0.5 s)."""
    talk = tmp_path / "late_picture.mp4"
    _ffmpeg("-itsoffset", "0.5", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25:duration=2",
            "-f", "lavfi", "-i",
            "aevalsrc='if(between(t,1.5,1.55),0.8*sin(2*PI*1000*t),0)':s=44100:d=2.5",
            "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac", str(talk))
    assert _beep_seconds(talk) == pytest.approx(1.5, abs=0.03)
    frames = list(iter_frames(talk))
    assert len(frames) == 50
    out = tmp_path / "out.mp4"
    with video_io.VideoWriter(out, 25.0, audio=talk) as writer:
        for frame in frames:
            writer.write(frame)
    assert _beep_seconds(out) == pytest.approx(1.0, abs=0.03)  # under frame 25
    assert audio_seconds(out) == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(("suffix", "codec"), [(".webm", ["-c:v", "libvpx-vp9"]),
                                               (".mov", ["-c:v", "prores_ks"])])
def test_non_square_pixels_of_a_webm_or_a_prores_mov_are_read(tmp_path, suffix, codec):
    """VP9 in WebM and ProRes in QuickTime carry the pixel aspect ratio in the container
    alone (ffmpeg shows it unbracketed): it was read as square, and the output squeezed."""
    path = tmp_path / f"sar{suffix}"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=0.12", "-vf",
            "setsar=4/3", *codec, str(path))
    assert "[SAR" not in video_io._header(path)
    assert video_io.probe_video(path).sar == Fraction(4, 3)


def test_frames_a_damaged_file_cannot_decode_are_told(tmp_path):
    """Bytes zeroed inside a clip with sound: 5 of its 60 frames cannot be decoded, so every
    later frame plays early. The sound still reaches the container's end, so the truncation
    check said nothing."""
    clean = tmp_path / "clean.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2.4", "-f", "lavfi",
            "-i", "sine=d=2.4", "-c:v", "libx264", "-g", "12", "-c:a", "aac", "-movflags",
            "+faststart", str(clean))
    data = bytearray(clean.read_bytes())
    for share in (0.3, 0.5, 0.7):
        at = int(len(data) * share)
        data[at:at + 1500] = bytes(1500)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    warnings: list[str] = []
    decoded = sum(1 for _ in iter_frames(damaged, warn=warnings.append))
    assert decoded <= 57
    assert warnings == [f"warning: decoding {damaged} gave {decoded} of its 60 frames: the "
                        "others could not be decoded (the file is damaged), so the frames "
                        "after them play early and its sound drifts behind them (re-download "
                        "or re-encode it)"]
    assert sum(1 for _ in iter_frames(clean, warn=warnings.append)) == 60
    assert len(warnings) == 1


def test_a_source_video_tells_the_frames_without_its_face(shared, tmp_path, capsys):
    """As a driver does: the frames take a nearby frame's face, and the user is told which
    (nothing was said)."""
    frames, _ = read_video(shared / "assets/driving/d0.mp4")
    face = [cv2.resize(frames[i], (160, 160)) for i in range(5)]
    source = write_video([np.full_like(face[0], 90)] * 3 + face, tmp_path / "late_face.mp4")
    assert main(["animate", "-s", str(source), "-d", str(shared / "assets/driving/d12.jpg"),
                 "-o", str(tmp_path / "out"), "--engine", "classic"]) == 0
    err = capsys.readouterr().err
    assert ("note: the source face is not found in 3 of 8 frames (0-2); they reuse a nearby "
            "frame's face") in err
    assert frame_count(tmp_path / "out/late_face--d12.mp4") == 8
