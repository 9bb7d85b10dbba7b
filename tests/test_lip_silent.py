""""Keeping the lip silent" (SPEC 6.3) through the shared motion code, on both engines."""

from __future__ import annotations

import cv2
import numpy as np

from media import clip, read_video
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.engines.neural.animator import NeuralEngine
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import lip_ratio
from portrait_animate.motion.retargeting import lip_silent_keypoints

#: The frames rendered and compared (each takes W and G, ~11 s on a 2-core CPU); the
#: keypoints of all 8 are compared.
RENDERED = (0, 7)


def test_neural_matches_the_reference_keypoints_and_frames(shared, networks):
    with np.load(shared / "reference/lip_silent_src_video.npz") as data:
        ref = {k: data[k] for k in data.files}
    engine = NeuralEngine(networks)
    frames, _ = read_video(shared / "reference/pipeline/inputs/src_video.mp4")
    assert len(frames) == len(ref["x_d"]) == 8
    for i, frame in enumerate(frames):
        crop = cv2.resize(frame, (256, 256))
        motion = engine.motion(crop)
        x_s = motion.keypoints()
        x_d = lip_silent_keypoints(engine, motion, engine.layout, None)
        np.testing.assert_allclose(x_s.numpy()[0], ref["x_s"][i], atol=1e-5)
        np.testing.assert_allclose(x_d.numpy()[0], ref["x_d"][i], atol=1e-5)
        if i not in RENDERED:
            continue
        image = engine.render(engine.appearance(crop), x_s, x_d).astype(np.float64)
        psnr = 10 * np.log10(255**2 / max(np.mean((image - ref["frames"][i]) ** 2), 1e-12))
        assert psnr >= 40, f"frame {i}: {psnr:.1f} dB"


def test_classic_closes_a_talking_mouth(shared, tmp_path):
    frames, _ = read_video(clip(shared / "assets/driving/d0.mp4", tmp_path / "d0.mp4", 2.0))
    engine = ClassicEngine()
    before, after = [], []
    with FaceMesh() as mesh:
        for frame in frames[18::4]:  # the mouth is open from frame 18 on
            points = mesh.landmarks3d(frame)
            before.append(lip_ratio(points[:, :2]))
            motion = engine.motion(frame, points)
            x_d = lip_silent_keypoints(engine, motion, engine.layout, before[-1])[0]
            width = float((x_d[61] - x_d[291]).norm())
            assert float((x_d[13, :2] - x_d[14, :2]).norm()) < 0.01 * width, "the lips meet"
            out = engine.render(engine.appearance(frame, frame, None), motion.keypoints(),
                                x_d[None])
            after.append(lip_ratio(mesh.landmarks(out)))
    assert min(before) > 0.1, "the clip talks"
    # Upper teeth that the mesh counts as part of the upper lip stay in view, so the opening
    # measured on the output drops, but not to zero.
    assert np.mean(after) < np.mean(before), (before, after)
