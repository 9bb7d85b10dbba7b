"""Batched rendering (issue 14): W and G over a batch give the frames one at a time gives, and
the pipeline's chunks (a boundary inside the video, a short last chunk) change nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from portrait_animate.cli.main import main
from portrait_animate.engines.base import RenderItem
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.engines.neural.animator import NeuralEngine
from portrait_animate.io.images import read_image_rgb


def test_neural_batch_equals_frames_one_at_a_time(networks, shared, monkeypatch):
    """render_batch runs W and G once over the batch: its float output (caught on its way to
    the image) equals each frame's rendered alone within 1e-5, and its images are those
    floats."""
    engine = NeuralEngine(networks)
    crop = cv2.resize(read_image_rgb(shared / "assets/source/s6.jpg"), (256, 256))
    feature = engine.appearance(crop)
    x_s = engine.motion(crop).keypoints()
    items = [RenderItem(feature, x_s, x_s + 0.02 * torch.randn(
        generator=torch.Generator().manual_seed(i), size=x_s.shape)) for i in range(2)]
    caught = []
    warp_decode = networks.warp_decode

    def catching(*args):
        caught.append(warp_decode(*args))
        return caught[-1]

    monkeypatch.setattr(networks, "warp_decode", catching)
    for item in items:
        engine.render_batch([item])
    images = engine.render_batch(items)
    *alone, batched = caught
    assert [a.shape[0] for a in alone] == [1, 1] and batched.shape[0] == 2
    for i in range(2):
        torch.testing.assert_close(batched[i:i + 1], alone[i], atol=1e-5, rtol=0)
    assert len(images) == 2 and all(img.shape == (512, 512, 3) for img in images)
    expected = (batched.permute(0, 2, 3, 1).clamp(0, 1) * 255).numpy().astype(np.uint8)
    assert np.array_equal(np.stack(images), expected)


def test_neural_appearance_batch_equals_frames_one_at_a_time(networks, shared):
    """F over a batch of crops gives each crop's feature volume taken alone, within 1e-5."""
    engine = NeuralEngine(networks)
    crops = [cv2.resize(read_image_rgb(shared / f"assets/source/{name}.jpg"), (256, 256))
             for name in ("s0", "s6", "s22")]
    alone = [engine.appearance(crop) for crop in crops]
    batched = engine.appearance_batch(crops, [None] * 3, [None] * 3)
    assert len(batched) == 3
    for a, b in zip(alone, batched, strict=True):
        assert a.shape == b.shape == (1, 32, 16, 64, 64)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    assert not torch.equal(batched[0], batched[1])


def test_neural_motion_batch_gives_each_frame_its_own_motion(networks, shared):
    """M over a batch gives each crop's motion taken alone (within 1e-5), each field a copy of
    its own frame's row: a motion kept for later holds one frame, not the whole batch."""
    engine = NeuralEngine(networks)
    crops = [cv2.resize(read_image_rgb(shared / f"assets/source/{name}.jpg"), (256, 256))
             for name in ("s0", "s6", "s22")]
    alone = [engine.motion(crop) for crop in crops]
    batched = engine.motion_batch(crops, [None] * 3)
    assert len(batched) == 3
    for a, b in zip(alone, batched, strict=True):
        for name in ("scale", "R", "exp", "t", "kp"):
            value = getattr(b, name)
            assert value.shape[0] == 1 and value.device.type == "cpu"
            assert value.untyped_storage().nbytes() == value.nbytes  # one frame's row
            torch.testing.assert_close(value, getattr(a, name), atol=1e-5, rtol=0)
    assert not torch.equal(batched[0].exp, batched[1].exp)


def _frames(out) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(out.glob("*_frames/*.png"))]


def test_pipeline_chunks_change_nothing(tmp_path):
    base = ["animate", "-s", "sample:astronaut", "-d", "preset:talk", "--engine", "classic",
            "--save_frames", "--quiet"]
    one, chunked = tmp_path / "one", tmp_path / "chunked"
    assert main([*base, "-o", str(one), "--batch_size", "1"]) == 0
    assert main([*base, "-o", str(chunked), "--batch_size", "7"]) == 0  # 100 = 14 x 7 + 2
    a, b = _frames(one), _frames(chunked)
    assert len(a) == len(b) == 100
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_negative_or_huge_batch_size_is_refused(capsys):
    for size in ("-1", "65", str(10**30)):
        assert main(["animate", "-s", "sample:astronaut", "-d", "preset:talk", "--batch_size",
                     size]) == 2
        assert f"--batch_size {size} is not a whole number of frames from 0 to 64" in \
            capsys.readouterr().err


def test_the_overlapped_pipeline_writes_what_the_sequential_one_does(tmp_path, shared,
                                                                      monkeypatch):
    """The producer thread (motion, keypoints, appearance ahead of the renderer) changes
    nothing: a video source driven by a video, so that every frame has its own appearance,
    taken a chunk of frames at a time."""
    from tests.media import loop_video, read_video

    from portrait_animate.pipeline.animate import animate
    from portrait_animate.pipeline.options import AnimateOptions

    video = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "d0_8.mp4", 8)
    sizes = []
    appearance_batch = ClassicEngine.appearance_batch

    def counting(engine, crops, frames, maps):
        sizes.append(len(crops))
        return appearance_batch(engine, crops, frames, maps)

    monkeypatch.setattr(ClassicEngine, "appearance_batch", counting)
    results = []
    for overlap in (True, False):
        out = tmp_path / str(overlap)
        options = AnimateOptions(source=str(video), driving=str(video), output_dir=str(out),
                                 engine="classic", quiet=True, save_frames=True,
                                 batch_size=3)
        results.append(animate(options, overlap=overlap))
    overlapped, sequential = results
    assert overlapped.n_frames == sequential.n_frames == 8
    assert sizes == [3, 3, 2] * 2
    a, b = _frames(tmp_path / "True"), _frames(tmp_path / "False")
    assert len(a) == len(b) == 8
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert overlapped.output.read_bytes() == sequential.output.read_bytes()
    assert len(read_video(overlapped.output)[0]) == 8


def test_ahead_keeps_order_raises_where_the_producer_failed_and_stops_it():
    from portrait_animate.pipeline.prefetch import ahead

    assert list(ahead(range(50), 3)) == list(range(50))

    def failing():
        yield 1
        raise RuntimeError("decoder broke")

    got = []
    try:
        for item in ahead(failing(), 2):
            got.append(item)
    except RuntimeError as exc:
        assert str(exc) == "decoder broke"
    else:
        raise AssertionError("the producer's error was lost")
    assert got == [1]

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    stream = ahead(endless(), 2)
    assert next(stream) == 0
    stream.close()
    count = len(produced)
    assert count <= 4  # at most the queue's depth and one item in hand ahead
    assert len(produced) == count


def test_motion_batches_equal_frames_one_at_a_time(networks, shared):
    """M over chunks of driving frames, and of a source video's frames (3, 3 and a short 2 of
    an 8-frame video), takes the motion one frame at a time takes, within 1e-5."""
    from portrait_animate.face.mesh import FaceMesh
    from portrait_animate.pipeline.animate import analyse_driving, prepare_animation_source
    from portrait_animate.pipeline.inputs import InputKind
    from portrait_animate.pipeline.options import AnimateOptions
    from portrait_animate.pipeline.progress import Reporter

    engine = NeuralEngine(networks)
    sizes = []
    motion_batch = engine.motion_batch

    def counting(crops, landmarks):
        sizes.append(len(crops))
        return motion_batch(crops, landmarks)

    engine.motion_batch = counting
    video = str(shared / "reference/pipeline/inputs/drv_video.mp4")
    driving, source = {}, {}
    for batch in (1, 3):
        options = AnimateOptions(source=video, driving=video, engine="neural",
                                 batch_size=batch, quiet=True)
        chunks = [1] * 8 if batch == 1 else [3, 3, 2]
        sizes.clear()
        driving[batch] = analyse_driving(options, InputKind.VIDEO, engine, Reporter(True)).motions
        assert sizes == chunks
        sizes.clear()
        with FaceMesh() as mesh:
            group = prepare_animation_source(options, InputKind.VIDEO, engine, mesh,
                                             Reporter(True))
        source[batch] = [info.motion for info in group.first.frames_info]
        assert sizes == chunks
    for motions in (driving, source):
        assert len(motions[1]) == len(motions[3]) == 8
        for a, b in zip(motions[1], motions[3], strict=True):
            for name in ("scale", "R", "exp", "t", "kp"):
                torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=1e-5,
                                           rtol=0)


def test_cuda_graph_batches_all_have_one_shape(networks, monkeypatch):
    """Under CUDA graphs W and G see one batch shape: a long list is split, a short batch is
    padded with its last frame, and the images come back in order without the padding."""
    engine = NeuralEngine(networks)
    engine.static_batch = 3
    shapes = []

    def fake(feature, x_s, x_d):  # each image's grey level is its x_d's first value
        shapes.append((feature.shape[0], x_s.shape[0], x_d.shape[0]))
        return x_d[:, 0, 0].reshape(-1, 1, 1, 1).expand(-1, 3, 512, 512)

    monkeypatch.setattr(networks, "warp_decode", fake)
    x_s = torch.zeros(1, 21, 3)
    items = [RenderItem(torch.zeros(1, 1, 1, 1, 1), x_s, torch.full((1, 21, 3), i / 10))
             for i in range(5)]
    for n, calls in ((5, 2), (3, 1), (1, 1)):
        shapes.clear()
        images = engine.render_batch(items[:n])
        assert shapes == [(3, 3, 3)] * calls
        assert [int(img[0, 0, 0]) for img in images] == [int(i / 10 * 255) for i in range(n)]


def test_compiling_on_cuda_captures_cuda_graphs_of_the_chosen_batch(networks, monkeypatch):
    """``--flag_do_torch_compile`` on CUDA compiles W and G with CUDA graphs
    (``reduce-overhead``) and fixes the batch the engine renders; on the CPU it does not."""
    from portrait_animate.engines.neural import LivePortraitNetworks

    calls = []

    def compile_spy(module, **kwargs):
        calls.append(kwargs)
        return module

    monkeypatch.setattr(torch, "compile", compile_spy)
    # the networks stay on the CPU: compile() only wraps them
    cuda = LivePortraitNetworks(dict(networks.networks), torch.device("cuda:0"))
    cuda.compile()
    assert calls == [{"mode": "reduce-overhead"}] * 2 and cuda.cuda_graphs
    engine = NeuralEngine(cuda)
    assert engine.static_batch == 1  # live: batch 1 until a batch is chosen
    assert engine.batch_size(6) == 6 and engine.static_batch == 6
    calls.clear()
    cpu = LivePortraitNetworks(dict(networks.networks), torch.device("cpu"))
    cpu.compile()
    assert calls == [{}] * 2 and not cpu.cuda_graphs
    engine = NeuralEngine(cpu)
    assert engine.batch_size(6) == 6 and engine.static_batch is None


def test_the_neural_engine_refuses_images_that_are_not_uint8(networks):
    """A float image in [0, 1] would be divided by 255 again and animate a black face."""
    from portrait_animate.engines.neural.engine import image_to_tensor

    engine = NeuralEngine(networks)
    crop = np.full((256, 256, 3), 0.5, np.float32)
    for call in (lambda: engine.motion(crop), lambda: engine.appearance(crop)):
        with pytest.raises(ValueError, match=r"crop must be a \(256, 256, 3\) uint8 RGB image, "
                                             r"got \(256, 256, 3\) float32"):
            call()
    with pytest.raises(ValueError, match=r"image must be a non-empty \(H, W, 3\) uint8 RGB "
                                         r"array, got \(256, 256, 3\) float32; a float image "
                                         r"in \[0, 1\] is"):
        image_to_tensor(crop)


def test_the_neural_engine_names_the_keypoints_it_refuses(networks):
    """NumPy keypoints failed inside torch.cat ("expected Tensor as element 0"), a wrong
    shape was told as the networks' own argument (kp_driving), and no appearance as
    "'NoneType' object has no attribute 'expand'"."""
    engine = NeuralEngine(networks)
    x_s = torch.zeros(1, 21, 3)
    feature = torch.zeros(1, 32, 16, 64, 64)
    for call, error, message in (
            (lambda: engine.render(feature, x_s.numpy(), x_s), TypeError,
             "x_s must be a torch.Tensor, got ndarray"),
            (lambda: engine.render(None, x_s, x_s), TypeError,
             "appearance must be a torch.Tensor, got NoneType"),
            (lambda: engine.render(feature, x_s, torch.zeros(1, 20, 3)), ValueError,
             r"x_d must have shape \(1, 21, 3\), got \(1, 20, 3\)"),
            (lambda: engine.stitch(x_s, torch.zeros(1, 20, 3)), ValueError,
             r"x_d must have shape \(\*, 21, 3\)"),
            (lambda: engine.retarget_lip(x_s.numpy(), torch.zeros(1, 2)), TypeError,
             "x_s must be a torch.Tensor")):
        with pytest.raises(error, match=message):
            call()
