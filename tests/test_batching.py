"""Batched rendering (issue 14): W and G over a batch give the frames one at a time gives, and
the pipeline's chunks (a boundary inside the video, a short last chunk) change nothing."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from portrait_animate.cli.main import main
from portrait_animate.engines.base import RenderItem
from portrait_animate.engines.neural.animator import NeuralEngine
from portrait_animate.io.images import read_image_rgb


def test_neural_batch_equals_frames_one_at_a_time(networks, shared):
    engine = NeuralEngine(networks)
    crop = cv2.resize(read_image_rgb(shared / "assets/source/s6.jpg"), (256, 256))
    feature = engine.appearance(crop)
    x_s = engine.motion(crop).keypoints()
    x_ds = [x_s + 0.02 * torch.randn(generator=torch.Generator().manual_seed(i),
                                     size=x_s.shape) for i in range(2)]
    device = networks.device
    batched = networks.warp_decode(feature.expand(2, *feature.shape[1:]),
                                   torch.cat([x_s, x_s]).to(device), torch.cat(x_ds).to(device))
    for i, x_d in enumerate(x_ds):
        alone = networks.warp_decode(feature, x_s.to(device), x_d.to(device))
        torch.testing.assert_close(batched[i:i + 1], alone, atol=1e-5, rtol=0)
    images = engine.render_batch([RenderItem(feature, x_s, x_d) for x_d in x_ds])
    assert len(images) == 2 and all(img.shape == (512, 512, 3) for img in images)
    expected = (batched.permute(0, 2, 3, 1).clamp(0, 1) * 255).numpy().astype(np.uint8)
    # the same batch computed again: equal but for float noise at a level's edge
    assert np.abs(np.stack(images).astype(int) - expected).max() <= 1


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


def test_a_negative_batch_size_is_refused(capsys):
    assert main(["animate", "-s", "sample:astronaut", "-d", "preset:talk", "--batch_size",
                 "-1"]) == 2
    assert "--batch_size -1 is not a whole number" in capsys.readouterr().err
