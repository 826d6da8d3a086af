"""``segment(..., loose=True)``: a dragged box with slack (its mask's bounding box covers
less than `LOOSE_FILL` of it) is segmented again in the bounding box of its mask."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist import polygons_to_masks
from labelassist.model import Model, load_model
from labelassist.model.prompts import LOOSE_FILL
from labelassist.synthetic import synthetic_nuclei


@pytest.fixture(scope="module")
def starter() -> Model:
    return load_model("starter", device="cpu")


@pytest.fixture(scope="module")
def nuclei():
    image, truth = synthetic_nuclei((128, 128), n=14, seed=5)[:2]
    h, w = truth.image_shape
    slack = np.array([-6.0, -6.0, 6.0, 6.0])  # every side 6 px out
    return image, truth, np.clip(truth.boxes + slack, 0, [w, h, w, h])


def _iou(a, b, shape) -> float:
    ma, mb = polygons_to_masks([a, b], shape)
    return float((ma & mb).sum() / max((ma | mb).sum(), 1))


def _fill(polygon, box) -> float:
    x0, y0, x1, y1 = polygon.bounds
    return (x1 - x0) * (y1 - y0) / ((box[2] - box[0]) * (box[3] - box[1]))


@pytest.mark.parametrize("which", ["loose", "exact"])
def test_a_box_with_slack_is_segmented_again_in_its_masks_bounds(starter, nuclei, which):
    """Per box, the other objects annotated as in the plugin: where the plain prompt's mask
    covers less than `LOOSE_FILL` of the box, the result is the plain prompt on that mask's
    bounds; elsewhere (every exact box here) the plain result itself."""
    image, truth, loose = nuclei
    boxes = loose if which == "loose" else truth.boxes
    feats = starter.encode(image)
    polys = list(truth.polygons)
    again = 0
    for k in range(len(polys)):
        others = polys[:k] + polys[k + 1 :]
        got = starter.segment(feats, boxes=boxes[[k]], exclude=others, loose=True)
        want = starter.segment(feats, boxes=boxes[[k]], exclude=others)
        if _fill(want.polygons[0], boxes[k]) < LOOSE_FILL:
            again += 1
            bounds = [want.polygons[0].bounds]
            want = starter.segment(feats, boxes=bounds, exclude=others)
        assert got.polygons[0].equals(want.polygons[0])
        assert got.scores[0] == pytest.approx(want.scores[0])
        assert got.labels[0] == want.labels[0]
    if which == "loose":
        assert again >= len(polys) // 2
    else:
        assert again == 0


def test_loose_boxes_come_closer_to_their_objects(starter, nuclei):
    """Boxes 6 px too large on every side: the second look, in the bounds of the first
    mask, brings the masks closer to the truth (mean mask IoU), and every result lies
    within its box."""
    image, truth, loose = nuclei
    feats = starter.encode(image)
    shape = truth.image_shape
    plain = starter.segment(feats, boxes=loose).polygons
    again = starter.segment(feats, boxes=loose, loose=True).polygons
    before = np.mean([_iou(t, p, shape) for t, p in zip(truth.polygons, plain, strict=True)])
    after = np.mean([_iou(t, p, shape) for t, p in zip(truth.polygons, again, strict=True)])
    assert after > before + 0.02
    for p, box in zip(again, loose, strict=True):
        assert p.is_empty or shapely.box(*box).buffer(1e-6).contains(p)


def test_loose_keeps_empty_results_and_points(starter, nuclei):
    image, truth, _ = nuclei
    feats = starter.encode(image)
    h, w = truth.image_shape
    background = [[0, 0, 3, 3]]
    point = [truth.polygons[2].representative_point().coords[0]]
    plain = starter.segment(feats, boxes=background, points=point)
    loose = starter.segment(feats, boxes=background, points=point, loose=True)
    assert len(loose) == 2
    assert loose.polygons[1].equals(plain.polygons[1])
    if plain.polygons[0].is_empty:
        assert loose.polygons[0].is_empty and loose.scores[0] == 0


def test_loose_and_tight_are_checked():
    model = tiny_model()
    image = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="loose must be True or False"):
        model.segment(image, boxes=[[2, 2, 12, 12]], loose="yes")
    with pytest.raises(ValueError, match="either tight or loose"):
        model.segment(image, boxes=[[2, 2, 12, 12]], tight=True, loose=True)
