"""The classic engine's gallery: the stills a new user sees first, written as PNGs under
``test-artifacts/classic-gallery/`` to be looked at, each checked for what it must show.

A blink, a wide-open mouth and a smile (the presets' peaks), a relative result driven by the
smiling d30.jpg and a 20 degree turn, on the painted s0.jpg and on a photograph (frame 0 of
d0.mp4); ``strip.png`` puts each source's face crops side by side after the source, one row
a source (the README's picture is this strip).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from media import read_video
from portrait_animate.cli.main import main
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import eye_ratios, lip_ratio
from portrait_animate.motion.editing import EditParams
from portrait_animate.motion.presets import preset_edits
from portrait_animate.pipeline.retargeting import prepare_editable_image, render_edit

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "classic-gallery"
EDITS = {
    "blink": preset_edits("blink")[20],
    "open-mouth": preset_edits("surprise")[40],
    "smile": preset_edits("smile")[40],
    "turn-20deg": EditParams(yaw=20),
}


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _face_crop(image: np.ndarray, points: np.ndarray, size: int = 256) -> np.ndarray:
    centre = points.mean(0)
    half = 0.8 * np.ptp(points, axis=0).max()
    x0, y0 = np.maximum(np.round(centre - half).astype(int), 0)
    x1, y1 = np.round(centre + half).astype(int)
    return cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def _stills(source_path: Path, driver: Path, out: Path) -> dict[str, np.ndarray]:
    engine = ClassicEngine()
    image = prepare_editable_image(str(source_path), engine)
    stills = {"source": image.frame}
    for name, params in EDITS.items():
        stills[name] = render_edit(engine, image, params).pasted
    assert main(["animate", "--engine", "classic", "-o", str(out), "--quiet", "--save_frames",
                 "-s", str(source_path), "-d", str(driver)]) == 0
    stills["d30-relative"] = _rgb(next(next(out.glob("*_frames")).glob("*.png")))
    return stills


@pytest.fixture(scope="module")
def gallery(shared, tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("gallery")
    photo = tmp / "d0-frame0.png"
    cv2.imwrite(str(photo), cv2.cvtColor(read_video(shared / "assets/driving/d0.mp4")[0][0],
                                         cv2.COLOR_RGB2BGR))
    sources = {"s0": shared / "assets/source/s0.jpg", "photo": photo}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    rows, points = [], {}
    with FaceMesh() as mesh:
        for tag, path in sources.items():
            stills = _stills(path, shared / "assets/driving/d30.jpg", tmp / tag)
            for name, still in stills.items():
                cv2.imwrite(str(ARTIFACTS / f"{tag}-{name}.png"),
                            cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
            face = mesh.landmarks(stills["source"])
            rows.append(np.concatenate([_face_crop(s, face) for s in stills.values()], axis=1))
            points[tag] = {name: mesh.landmarks(still) for name, still in stills.items()}
    cv2.imwrite(str(ARTIFACTS / "strip.png"), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))
    return points


@pytest.mark.parametrize("tag", ["s0", "photo"])
def test_gallery_stills_show_their_expression(gallery, tag):
    stills = gallery[tag]
    source = stills["source"]

    def mouth_width(points: np.ndarray) -> float:
        return float(np.linalg.norm(points[61] - points[291]))

    def nose_offset(points: np.ndarray) -> float:
        """Nose tip from the eyes' midpoint, across the face, in eye spacings."""
        eyes = points[[33, 263]]
        return float((points[1, 0] - eyes[:, 0].mean()) / abs(eyes[1, 0] - eyes[0, 0]))

    assert np.mean(eye_ratios(stills["blink"])) < 0.5 * np.mean(eye_ratios(source))
    assert lip_ratio(stills["open-mouth"]) > lip_ratio(source) + 0.15
    assert mouth_width(stills["smile"]) > 1.08 * mouth_width(source)
    assert mouth_width(stills["d30-relative"]) > 1.04 * mouth_width(source)
    assert abs(nose_offset(stills["turn-20deg"]) - nose_offset(source)) > 0.08
    assert (ARTIFACTS / "strip.png").is_file()
