"""Input rules, option checks, output names and the command's help."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from media import clip
from portrait_animate.cli.main import build_parser, main
from portrait_animate.errors import InputError
from portrait_animate.io.images import read_image_rgb
from portrait_animate.io.video import iter_frames, probe_video
from portrait_animate.pipeline.inputs import InputKind, classify_input, resize_to_limit
from portrait_animate.pipeline.options import AnimateOptions


def test_resize_to_limit_shrinks_long_side_then_crops_to_division():
    img = np.zeros((1001, 2000, 3), np.uint8)
    out = resize_to_limit(img, 1280, 2)
    assert out.shape == (640, 1280, 3)  # 1001 * 0.64 = 640.64 -> 640, already even
    assert resize_to_limit(np.zeros((721, 515, 3), np.uint8), 1280, 2).shape == (720, 514, 3)
    assert resize_to_limit(np.zeros((721, 515, 3), np.uint8), 1280, 16).shape == (720, 512, 3)
    # a strip keeps a row: OpenCV's resize refused a height of 0
    assert resize_to_limit(np.zeros((3, 20000, 3), np.uint8), 1280, 1).shape == (1, 1280, 3)
    assert resize_to_limit(np.zeros((20000, 3, 3), np.uint8), 1280, 1).shape == (1280, 1, 3)


def test_classify_by_extension(tmp_path):
    for name, kind in [("a.JPG", InputKind.IMAGE), ("b.webm", InputKind.VIDEO),
                       ("c.pkl", InputKind.TEMPLATE), ("d.npz", InputKind.TEMPLATE)]:
        (tmp_path / name).write_bytes(b"")
        assert classify_input(str(tmp_path / name), "driving", allow_template=True) is kind
    with pytest.raises(InputError, match="unsupported source extension"):
        classify_input(str(tmp_path / "c.pkl"), "source")
    assert classify_input("sample:astronaut", "source") is InputKind.IMAGE


def test_tif_and_jfif_are_read_as_tiff_and_jpg_are(shared, tmp_path):
    """A camera's .tif and a browser's .jfif download are the TIFF and JPEG they hold: read by
    the command line and taken by the web app's image uploads."""
    from PIL import Image

    from portrait_animate.app.uploads import AppLimits, checked_upload

    portrait = Image.open(shared / "assets/source/s0.jpg")
    for name, known, fmt in (("a.tif", "a.tiff", "TIFF"), ("b.JFIF", "b.jpg", "JPEG")):
        path, twin = tmp_path / name, tmp_path / known
        portrait.save(path, format=fmt)
        twin.write_bytes(path.read_bytes())
        assert classify_input(str(path), "source") is InputKind.IMAGE
        assert np.array_equal(read_image_rgb(path), read_image_rgb(twin))
        assert checked_upload(str(path), "source", InputKind.IMAGE, AppLimits()) == str(path)


def test_a_floating_point_tiff_is_refused_and_a_16_bit_one_read(shared, tmp_path):
    """OpenCV drew a float RGB TIFF in garbage colours and called a float grey one corrupt:
    both are refused, naming the re-export; a 16-bit TIFF reads as its 8-bit picture."""
    from PIL import Image

    rgb = cv2.resize(read_image_rgb(shared / "assets/source/s0.jpg"), (96, 96))
    cv2.imwrite(str(tmp_path / "rgb.tif"), rgb[..., ::-1].astype(np.float32) / 255)
    Image.fromarray(rgb[..., 0].astype(np.float32) / 255).save(tmp_path / "grey.tif")
    for name in ("rgb.tif", "grey.tif"):
        with pytest.raises(InputError, match="32-bit floating-point samples .* re-export it"):
            read_image_rgb(tmp_path / name)
    cv2.imwrite(str(tmp_path / "deep.tif"), rgb[..., ::-1].astype(np.uint16) * 257)
    assert np.array_equal(read_image_rgb(tmp_path / "deep.tif"), rgb)


def _gif(path, frames: list[np.ndarray], ms: int | list[int] = 100):
    """``frames`` as a GIF shown ``ms`` milliseconds each, or frame by frame (one frame: a
    still GIF)."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms, loop=0)
    return path


def test_a_still_gif_is_an_image_and_an_animated_gif_a_video(shared, tmp_path):
    """OpenCV reads no GIF: a still one is read (by Pillow) as the image it is, where it was
    reported corrupt; an animated one is a video, whose motion animates or drives."""
    from PIL import Image

    portrait = cv2.resize(read_image_rgb(shared / "assets/source/s0.jpg"), (150, 176))
    still = _gif(tmp_path / "still.gif", [portrait])
    moving = _gif(tmp_path / "moving.gif", [portrait, portrait[:, ::-1]])
    for role in ("source", "driving"):
        assert classify_input(str(still), role) is InputKind.IMAGE
        assert classify_input(str(moving), role) is InputKind.VIDEO
    image = read_image_rgb(still)
    assert image.shape == (176, 150, 3) and image.flags.writeable
    assert np.array_equal(image, np.asarray(Image.open(still).convert("RGB")))
    assert np.abs(image.astype(int) - portrait).mean() < 8  # a palette's error only
    broken = tmp_path / "broken.gif"
    broken.write_bytes(still.read_bytes()[:20])
    with pytest.raises(InputError, match="cannot decode image .*broken.gif: the file is corrupt"):
        read_image_rgb(broken)



def test_a_transparent_picture_is_laid_over_white(shared, tmp_path):
    """A cut-out portrait's transparent pixels show white, as on a white page, not what they
    hide (OpenCV dropped the alpha: black, or the background a tool left); the app hands its
    upload on as it is, where Gradio's RGB conversion dropped the alpha too."""
    from gradio.data_classes import ImageData
    from PIL import Image

    from portrait_animate.app.uploads import image_upload

    rgb = cv2.resize(read_image_rgb(shared / "assets/source/s5.jpg"), (160, 160))
    alpha = np.full((160, 160), 255, np.uint8)
    alpha[:, :40] = 0      # hidden: the portrait's own pixels stay under it
    alpha[:, 40:60] = 128  # half
    for name, options in (("cut.png", {}), ("cut.webp", {"lossless": True}), ("cut.tif", {})):
        path = tmp_path / name
        Image.fromarray(np.dstack([rgb, alpha])).save(path, **options)
        image = read_image_rgb(path)
        assert (image[:, :40] == 255).all(), name
        half = (rgb[:, 40:60].astype(int) + 255) / 2
        assert np.abs(image[:, 40:60] - half).max() <= 1, name
        assert np.array_equal(image[:, 60:], rgb[:, 60:]), name
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "cut.gif", transparency=int(np.asarray(palette)[0, 0]))
    assert (read_image_rgb(tmp_path / "cut.gif")[0, 0] == 255).all()
    upload = ImageData(path=str(tmp_path / "cut.png"), orig_name="cut.png")
    assert image_upload("source image").preprocess(upload) == str(tmp_path / "cut.png")

def _exif(orientation: int):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation, stored", [(3, 2), (6, 1), (8, 3)])
def test_a_photo_stored_turned_is_read_upright_in_every_format(shared, tmp_path, orientation,
                                                              stored):
    """A phone stores a photo as the sensor saw it and says how to turn it (EXIF): an opaque
    WebP stayed turned (OpenCV ignores the tag there), and a TIFF turned by a quarter was
    refused as corrupt after OpenCV's error blocks."""
    from PIL import Image

    upright = cv2.resize(read_image_rgb(shared / "assets/source/s5.jpg"), (120, 90))
    turned = Image.fromarray(np.rot90(upright, stored))  # what the tag turns back
    for name, options in (("p.webp", {"lossless": True}), ("p.tif", {}), ("p.jpg", {"quality": 95}),
                          ("p.png", {}), ("cut.tif", {"mode": "RGBA"})):
        path = tmp_path / f"{orientation}-{name}"
        picture = turned.convert(options.pop("mode")) if "mode" in options else turned
        picture.save(path, exif=_exif(orientation), **options)
        image = read_image_rgb(path)
        assert image.shape == upright.shape, name
        assert np.abs(image.astype(int) - upright).mean() < 3, name


def test_a_picture_is_read_by_what_it_holds_not_its_name(shared, tmp_path):
    """A transparent PNG saved as .jpg was decoded by OpenCV by its name, its transparent
    pixels black, where the service (which types uploads by content) laid it over white."""
    from PIL import Image

    rgb = cv2.resize(read_image_rgb(shared / "assets/source/s5.jpg"), (64, 64))
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:, :16] = 0
    Image.fromarray(np.dstack([rgb * 0, alpha])).save(tmp_path / "cut.jpg", format="PNG")
    assert (read_image_rgb(tmp_path / "cut.jpg")[:, :16] == 255).all()


def test_a_cut_off_jpeg_or_png_is_refused_in_one_line_and_a_whole_one_is_not(shared, tmp_path):
    """A download cut short: OpenCV decoded a JPEG's missing part flat grey (exit 0, its
    'Premature end of JPEG file' on stderr), and a PNG's as 'corrupt' after libpng's line.
    A whole JPEG with data after it (a phone's motion photo appends a video) is read."""
    jpeg = (shared / "assets/source/s5.jpg").read_bytes()
    png = cv2.imencode(".png", cv2.imread(str(shared / "assets/source/s5.jpg")))[1].tobytes()
    for name, data in (("half.jpg", jpeg[:len(jpeg) // 2]), ("most.jpg", jpeg[:-100]),
                       ("half.png", png[:len(png) // 2])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=rf"^cannot use image .*{name}: the (JPEG|PNG) file "
                                             "is cut off before its end; copy or download it"):
            read_image_rgb(tmp_path / name)
    trailer = np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes()
    assert b"\xff\xda" in trailer  # a scan's marker, by chance, after the picture
    (tmp_path / "motion.jpg").write_bytes(jpeg + trailer)
    assert np.array_equal(read_image_rgb(tmp_path / "motion.jpg"),
                          read_image_rgb(shared / "assets/source/s5.jpg"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.jpg is empty \(0 bytes\); copy or download"):
        read_image_rgb(tmp_path / "empty.jpg")


def test_colours_of_an_embedded_profile_are_converted_to_srgb(shared, tmp_path):
    """A camera's or an editor's Adobe RGB file (an iPhone's Display P3 alike) stores sRGB's
    colours less saturated: read as if sRGB, the result came out dull (red 255 read as 219)."""
    import io

    from PIL import Image, ImageCms

    from media import ADOBE_RGB

    srgb = cv2.resize(read_image_rgb(shared / "assets/source/s5.jpg"), (96, 96))
    srgb[:8] = (255, 0, 0)
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_RGB))
    stored = ImageCms.profileToProfile(Image.fromarray(srgb), ImageCms.createProfile("sRGB"),
                                       adobe, outputMode="RGB")
    stored.save(tmp_path / "adobe.png", icc_profile=ADOBE_RGB)
    raw = np.asarray(stored).astype(int)
    assert np.abs(raw - srgb).mean() > 3 and raw[0, 0, 0] < 230
    image = read_image_rgb(tmp_path / "adobe.png").astype(int)
    assert np.abs(image - srgb).mean() < 1.0 and image[0, 0, 0] >= 250


def test_a_png_with_a_profile_libpng_warns_of_is_read_without_a_word(tmp_path, capfd):
    """OpenCV's libpng wrote "libpng warning: iCCP: ..." to the terminal (no Python warning
    that could be caught) for a PNG whose colour profile it doubts, as many editors embed."""
    from PIL import Image, ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[68:80] = bytes(12)  # its illuminant, which libpng wants to be D50
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "edited.png", icc_profile=bytes(profile))
    cv2.imdecode(np.fromfile(tmp_path / "edited.png", np.uint8), cv2.IMREAD_COLOR)
    assert "libpng warning" in capfd.readouterr().err  # what OpenCV prints for it
    assert np.array_equal(read_image_rgb(tmp_path / "edited.png"), rgb)
    assert capfd.readouterr().err == ""


def test_a_16_bit_grey_png_with_a_transparent_grey_is_read_as_grey(shared, tmp_path):
    """Pillow's RGBA conversion of 16-bit grey clips it: the picture read as solid white."""
    from PIL import Image

    grey = cv2.resize(read_image_rgb(shared / "assets/source/s5.jpg"), (64, 64))[..., 1]
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g.png", transparency=0)
    image = read_image_rgb(tmp_path / "g.png").astype(int)
    assert np.abs(image - np.where(grey == 0, 255, grey)[..., None]).max() <= 1


def test_an_animated_gif_drives_as_the_video_it_is(shared, tmp_path):
    """ffmpeg decodes an animated GIF as a browser shows it (its frames, composed, at their
    rate): it drives the source as a video does."""
    face = cv2.resize(read_image_rgb(shared / "assets/driving/d12.jpg"), (240, 240))
    frames = [np.roll(face, 4 * i, axis=1) for i in range(6)]
    driver = _gif(tmp_path / "nod.gif", frames, ms=100)
    info = probe_video(driver)
    assert (info.fps, info.size, info.duration) == (10, (240, 240), pytest.approx(0.6))
    assert len(list(iter_frames(driver))) == 6
    assert main(["animate", "-s", str(shared / "assets/source/s5.jpg"), "-d", str(driver),
                 "-o", str(tmp_path / "out"), "--engine", "classic", "--quiet"]) == 0
    result = tmp_path / "out/s5--nod.mp4"
    assert probe_video(result).fps == 10 and len(list(iter_frames(result))) == 6


def test_an_animated_webp_or_png_drives_as_the_video_it_is(shared, tmp_path):
    """An animated WebP (a sticker, a web meme) and an APNG are videos as an animated GIF is;
    they were images, of which only the first frame was read."""
    from PIL import Image

    face = cv2.resize(read_image_rgb(shared / "assets/driving/d12.jpg"), (240, 240))
    frames = [Image.fromarray(np.roll(face, 4 * i, axis=1)) for i in range(6)]
    for name, options in (("nod.webp", {"lossless": True}), ("nod.png", {})):
        path = tmp_path / name
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0,
                       **options)
        assert classify_input(str(path), "driving") is InputKind.VIDEO, name
        info = probe_video(path)
        assert (info.fps, info.size, info.duration) == (10, (240, 240), pytest.approx(0.6))
        assert len(list(iter_frames(path))) == 6, name
        still = tmp_path / f"still{path.suffix}"
        frames[0].save(still, **options)
        assert classify_input(str(still), "driving") is InputKind.IMAGE, name
        # transparency shows white, as in a still picture (it showed what it hides: black)
        cut = [Image.fromarray(np.dstack([np.asarray(f) * 0, np.full((240, 240), 0, np.uint8)]))
               for f in frames[:2]]
        cut[0].save(tmp_path / f"cut{path.suffix}", save_all=True, append_images=cut[1:],
                    duration=100, loop=0, **options)
        assert all((f == 255).all() for f in iter_frames(tmp_path / f"cut{path.suffix}")), name
    assert main(["animate", "-s", str(shared / "assets/source/s5.jpg"), "-d",
                 str(tmp_path / "nod.webp"), "-o", str(tmp_path / "out"), "--engine", "classic",
                 "--quiet"]) == 0
    result = tmp_path / "out/s5--nod.mp4"
    assert probe_video(result).fps == 10 and len(list(iter_frames(result))) == 6


def test_a_phone_photo_in_heic_or_avif_is_read(shared, tmp_path):
    """An iPhone's photo is a HEIC, some Android phones' an AVIF: OpenCV reads neither, so
    they were refused by their extension; Pillow (with pillow-heif) reads them, in
    ``animate``, the app and the service alike."""
    import pillow_heif
    from gradio.data_classes import ImageData
    from PIL import Image

    from portrait_animate.app.uploads import image_upload

    pillow_heif.register_heif_opener()
    jpeg = shared / "assets/source/s5.jpg"
    original = read_image_rgb(jpeg)
    for name in ("s5.heic", "s5.avif"):
        path = tmp_path / name
        Image.open(jpeg).save(path, quality=90)
        assert classify_input(str(path), "source") is InputKind.IMAGE
        assert np.abs(read_image_rgb(path).astype(int) - original).mean() < 3, name
        upload = ImageData(path=str(path), orig_name=name)
        assert image_upload("source image").preprocess(upload) == str(path)
    assert main(["animate", "-s", str(tmp_path / "s5.heic"), "-d",
                 str(shared / "assets/driving/d19.jpg"), "-o", str(tmp_path / "out"),
                 "--engine", "classic", "--quiet"]) == 0
    assert read_image_rgb(tmp_path / "out/s5--d19.jpg").shape == original.shape


def test_phone_and_camcorder_videos_drive(shared, tmp_path):
    """A phone's .m4v and a camcorder's MPEG transport stream (.mts) are videos ffmpeg reads;
    their extensions were refused. The driver's sound comes along as from an .mp4."""
    for name in ("talk.m4v", "talk.mts"):
        path = clip(shared / "assets/driving/d9.mp4", tmp_path / name, 0.5, start=2.0)
        assert classify_input(str(path), "driving") is InputKind.VIDEO, name
    assert main(["animate", "-s", str(shared / "assets/source/s5.jpg"), "-d",
                 str(tmp_path / "talk.mts"), "-o", str(tmp_path / "out"), "--engine", "classic",
                 "--quiet"]) == 0
    result = tmp_path / "out/s5--talk.mp4"
    assert probe_video(result).has_audio and len(list(iter_frames(result))) == 15


def test_a_gif_is_timed_as_browsers_show_it(tmp_path):
    """A GIF frame with no delay, or one of a centisecond, is shown for 100 ms by browsers:
    the timing its maker saw. ffmpeg timed one centisecond at 100 fps (ten times too fast)
    and none at 11.1 fps."""
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(5)]
    for ms in (0, 10):
        info = probe_video(_gif(tmp_path / f"{ms}.gif", frames, ms=ms))
        assert (info.fps, info.duration) == (10, pytest.approx(0.5)), ms
    mixed = probe_video(_gif(tmp_path / "mixed.gif", frames, ms=[40, 10, 40, 10, 40]))
    assert mixed.duration == pytest.approx(0.32)  # 40 + 100 + 40 + 100 + 40 ms
    # placed by their times at the rate of the usual delay (40 ms): the 100 ms frames held
    assert mixed.fps == 25 and mixed.frames == 8
    shown = [int(frame[0, 0, 0]) // 40 for frame in iter_frames(tmp_path / "mixed.gif")]
    assert len(shown) == 8 and shown[:4] == [0, 1, 1, 1] and shown[-1] == 4
    assert len(list(iter_frames(tmp_path / "10.gif"))) == 5


@pytest.mark.parametrize("ms, shown", [([500, 100], [0] * 5 + [1]),
                                       ([100, 500, 100, 500], [0, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3,
                                                               3])],
                         ids=["two delays", "alternating"])
def test_a_gif_of_two_delays_is_placed_at_the_shorter(ms, shown, tmp_path):
    """Delays in two groups put the median between them, near no delay: such a GIF (a blink
    held shut) crashed (NaN); it is placed at the shorter delay's rate."""
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(len(ms))]
    info = probe_video(_gif(tmp_path / "two.gif", frames, ms=ms))
    assert (info.fps, info.frames) == (10, len(shown))
    assert [int(f[0, 0, 0]) // 40 for f in iter_frames(tmp_path / "two.gif")] == shown


@pytest.mark.parametrize("source, noted", [("s0.jpg", True), ("s5.jpg", False)],
                         ids=["600x704", "square"])
def test_no_crop_notes_a_source_it_squashes(source, noted, shared, tmp_path, capsys):
    """--no_flag_do_crop resizes the whole source to a square, as the reference does; a
    source that is not square is squashed so, which a note says (and --quiet hides)."""
    note = ("note: --no_flag_do_crop resizes the whole 600x704 source to a square: its "
            "proportions are not kept (drop the flag to animate the face in place)")
    args = ["animate", "-s", str(shared / "assets/source" / source), "-d",
            str(shared / "assets/driving/d12.jpg"), "-o", str(tmp_path), "--engine", "classic",
            "--no_flag_do_crop"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert (note in err if noted else "--no_flag_do_crop" not in err), err
    assert main([*args, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_conflicts_are_reported():
    options = AnimateOptions("a.jpg", "b.mp4", flag_normalize_lip=True,
                             flag_relative_motion=False, det_thresh=0)
    assert any("det_thresh" in p for p in options.invalid_values())
    assert any("--flag_normalize_lip" in p for p in options.conflicts())


def test_reference_spellings_parse():
    args = build_parser().parse_args([
        "animate", "-s", "s.jpg", "-d", "d.mp4", "-o", "out", "--no_flag_relative_motion",
        "--animation_region", "lip", "--driving_option", "pose-friendly",
        "--driving_multiplier", "1.2", "--no_flag_stitching", "--flag_eye_retargeting",
        "--flag_normalize_lip", "--flag_source_video_eye_retargeting",
        "--driving_smooth_observation_variance", "1e-6", "--audio_priority", "source",
        "--scale", "2.5", "--flag_crop_driving_video", "--no_flag_do_crop",
        "--no_flag_pasteback", "--flag_force_cpu", "--no_flag_use_half_precision",
        "--source_max_dim", "960", "--engine", "neural", "--weights_dir", "w",
        "--save_frames", "--quiet"])
    assert (args.flag_relative_motion, args.animation_region, args.driving_option) == (
        False, "lip", "pose-friendly")
    assert args.driving_multiplier == 1.2 and args.driving_smooth_observation_variance == 1e-6
    assert not args.flag_stitching and args.flag_eye_retargeting and args.flag_normalize_lip
    assert args.flag_crop_driving_video and not args.flag_do_crop and not args.flag_pasteback
    assert args.flag_force_cpu and not args.flag_use_half_precision
    assert (args.source_max_dim, args.scale, args.save_frames, args.quiet) == (960, 2.5, True,
                                                                                True)


def test_reference_defaults():
    args = build_parser().parse_args(["animate", "-s", "s.jpg", "-d", "d.mp4"])
    assert args.output_dir == "animations/" and args.det_thresh == 0.15
    assert args.flag_use_half_precision and args.flag_stitching and args.flag_pasteback
    assert args.driving_option == "expression-friendly" and args.animation_region == "all"
    assert (args.scale, args.vy_ratio, args.scale_crop_driving_video,
            args.vy_ratio_crop_driving_video) == (2.3, -0.125, 2.2, -0.1)
    assert args.driving_smooth_observation_variance == 3e-7 and args.engine == "auto"


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["animate", "--help"])
    out = capsys.readouterr().out
    # Each option's entry: its line, and the help lines indented under it.
    entries = re.split(r"\n(?=  -)", out)
    for name in AnimateOptions.field_names():
        entry = next((e for e in entries if re.match(rf"  (-\w \S+, )?--{name}\b", e)), None)
        assert entry is not None, name
        names_and_help = re.split(r"\s{2,}", entry.strip(), maxsplit=1)
        assert len(names_and_help) == 2 and len(names_and_help[1]) > 10, f"--{name} has no help"


def test_image_result_without_paste_back_is_the_result(shared, synthetic_weights, tmp_path):
    assert main(["animate", "-s", str(shared / "assets/source/s5.jpg"),
                 "-d", str(shared / "assets/driving/d30.jpg"), "-o", str(tmp_path),
                 "--weights_dir", str(synthetic_weights), "--flag_force_cpu", "--quiet",
                 "--no_flag_pasteback"]) == 0
    assert cv2.imread(str(tmp_path / "s5--d30.jpg")).shape == (512, 512, 3)
    assert cv2.imread(str(tmp_path / "s5--d30_concat.jpg")).shape == (512, 1536, 3)
    assert (tmp_path / "d30_template.npz").is_file()
