"""``segment(..., exclude=...)``: prompted objects keep off the objects already annotated."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
from shapely.ops import polylabel
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist import Instances, polygons_to_masks
from labelassist.model import Model, load_model
from labelassist.model.roi_masks import rois_to_polygons
from labelassist.synthetic import synthetic_nuclei


@pytest.fixture(scope="module")
def starter() -> Model:
    return load_model("starter", device="cpu")


@pytest.fixture(scope="module")
def crowded() -> tuple[np.ndarray, Instances]:
    """Touching nuclei: the case where a box prompt's mask spills into a neighbour."""
    return synthetic_nuclei((128, 128), n=40, seed=1, touching=0.9, overlap=0.0)


def _masks(polygons, shape) -> np.ndarray:
    return polygons_to_masks(list(polygons), shape)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_rois_to_polygons_exclude_removes_the_covered_pixels():
    """A full RoI mask over pixels x 2-9, y 3-7 loses the columns whose centres an excluded
    box covers (x 2-5: centres 2.5-5.5 < 6), in output coordinates (after ``offset``)."""
    probs = torch.ones(1, 1, 28, 28)
    box = torch.tensor([[2.0, 3.0, 9.0, 7.0]])
    taken = np.array([shapely.box(2, 3, 6, 8)], dtype=object)
    [cut] = rois_to_polygons(probs, box, (16, 16), tolerance=0, exclude=taken)
    assert cut.equals(shapely.box(6, 3, 10, 8))
    shifted = np.array([shapely.box(12, 23, 16, 28)], dtype=object)
    [moved] = rois_to_polygons(probs, box, (16, 16), tolerance=0, offset=(10, 20), exclude=shifted)
    assert moved.equals(shapely.box(16, 23, 20, 28))
    far = np.array([shapely.box(40, 40, 50, 50)], dtype=object)
    [whole] = rois_to_polygons(probs, box, (16, 16), tolerance=0, exclude=far)
    assert whole.equals(shapely.box(2, 3, 10, 8))


@pytest.mark.parametrize("box_scale", [1, "auto"])
def test_box_prompts_keep_off_their_annotated_neighbours(starter, crowded, box_scale):
    """Each object prompted by a box dragged 2 px loose around it, every other object
    already annotated: no result overlaps a neighbour, each is the plain result less the
    neighbours' pixels, and where a plain result spilled into a neighbour the excluded one
    is closer to the truth."""
    image, truth = crowded
    shape = truth.image_shape
    polys = list(truth.polygons)
    boxes = np.clip(truth.boxes + [-2, -2, 2, 2], 0, 128)
    feats = starter.encode(image)
    plain = starter.segment(feats, boxes=boxes, box_scale=box_scale)
    gt = _masks(polys, shape)
    spilled, gains = 0, []
    for k in range(len(polys)):
        others = polys[:k] + polys[k + 1 :]
        got = starter.segment(feats, boxes=boxes[[k]], box_scale=box_scale, exclude=others)
        polygon = got.polygons[0]
        if plain.polygons[k].is_empty:  # nothing found either way (tiny slivers)
            assert polygon.is_empty
            continue
        assert shapely.intersection(polygon, shapely.union_all(others)).area < 1e-6
        taken = gt[np.arange(len(polys)) != k].any(axis=0)
        before = _masks([plain.polygons[k]], shape)[0]
        after = _masks([polygon], shape)[0]
        assert not (after & taken).any()
        assert _mask_iou(after, before & ~taken) >= 0.9, k
        if (before & taken).sum() >= 3:
            spilled += 1
            gains.append(_mask_iou(after, gt[k]) - _mask_iou(before, gt[k]))
    assert spilled >= 3  # the image does test the case
    assert np.mean(gains) > 0 and min(gains) > -0.02, np.round(gains, 3)


def test_point_prompt_loses_the_excluded_part(starter):
    image, truth = synthetic_nuclei((128, 128), n=10, seed=0, touching=0.0, overlap=0.0)
    k = int(np.argmax(truth.areas))
    x0, y0, x1, y1 = truth.boxes[k]
    left = shapely.box(x0 - 1, y0 - 1, (x0 + x1) / 2, y1 + 1)
    right = shapely.intersection(truth.polygons[k], shapely.box((x0 + x1) / 2, y0, x1, y1))
    click = polylabel(right, tolerance=0.1)
    plain = starter.segment(image, points=[(click.x, click.y)]).polygons[0]
    got = starter.segment(image, points=[(click.x, click.y)], exclude=[left]).polygons[0]
    assert plain.intersection(left).area > 10  # without exclude it covers the left half
    assert got.intersection(left).area < 1e-6
    assert got.covers(click)
    assert abs(got.area - plain.difference(left).area) < 1.0


def test_exclusion_covering_the_box_finds_nothing(starter, crowded):
    image, truth = crowded
    box = truth.boxes[0]
    result = starter.segment(image, boxes=[box], exclude=[shapely.box(*(box + [-2, -2, 2, 2]))])
    assert result.polygons[0].is_empty and result.scores[0] == 0.0


def test_empty_far_or_instances_exclude(starter, crowded):
    """Nothing to exclude changes nothing; an `Instances` is read as its polygons."""
    image, truth = crowded
    feats = starter.encode(image)
    boxes = truth.boxes[:6]
    plain = starter.segment(feats, boxes=boxes)
    for exclude in (None, [], [shapely.Polygon()], [shapely.box(0, 0, 0.2, 0.2)]):
        same = starter.segment(feats, boxes=boxes, exclude=exclude)
        assert all(a.equals(b) for a, b in zip(plain.polygons, same.polygons, strict=True))
        np.testing.assert_array_equal(plain.scores, same.scores)
    others = truth[np.arange(len(truth)) >= 6]
    as_list = starter.segment(feats, boxes=boxes, exclude=list(others.polygons))
    as_instances = starter.segment(feats, boxes=boxes, exclude=others)
    assert all(a.equals(b) for a, b in zip(as_list.polygons, as_instances.polygons, strict=True))


BAD_EXCLUDE = [
    (shapely.box(0, 0, 4, 4), r"exclude must be a sequence .* wrap a single polygon in a list"),
    (3, r"exclude must be a sequence of shapely polygons or an Instances, got int"),
    ([shapely.box(0, 0, 4, 4), shapely.Point(1, 1)], r"exclude\[1\] must be a shapely Polygon"),
    (Instances.empty((10, 10)), r"exclude is an Instances of a \(10, 10\) image.* \(40, 40\)"),
]


@pytest.mark.parametrize(("exclude", "match"), BAD_EXCLUDE)
def test_segment_bad_exclude(exclude, match):
    model = tiny_model(["a"])
    with pytest.raises(ValueError, match=match):
        model.segment(np.zeros((40, 40), np.uint8), boxes=[[1, 2, 5, 6]], exclude=exclude)


def test_extreme_clicks_on_an_annotated_outline_take_its_pixels(starter, crowded):
    """An accepted outline can swallow a small neighbour the model missed. Extreme clicks on
    that neighbour say its pixels are the new object's: the prompt does not keep off the
    outline under its clicks (it still keeps off every other annotated object), where a box
    prompt on the same pixels loses them all. Prompts in one call give what each gives alone."""
    from extreme_pixels import extreme_pixels

    image, truth = crowded
    shape = truth.image_shape
    polys, gt = list(truth.polygons), truth.masks()
    feats = starter.encode(image)
    checked = 0
    for k in np.argsort(truth.areas)[: len(polys) // 2]:  # the smaller half
        near = [j for j in range(len(polys)) if j != k and polys[j].distance(polys[k]) < 0.5]
        if not near:
            continue
        j = max(near, key=lambda i: truth.areas[i])
        swallowed = shapely.union_all([polys[j], polys[k]])  # one outline over both
        others = [p for i, p in enumerate(polys) if i not in (j, k)]
        clicks = extreme_pixels(gt[k])[None] + 0.5
        box = np.concatenate([clicks.min(axis=1) - 0.5, clicks.max(axis=1) + 0.5], axis=1)
        as_box = starter.segment(feats, boxes=box, tight=True, exclude=[swallowed, *others])
        assert as_box.polygons[0].intersection(polys[k]).area < 1e-6  # kept off the outline
        got = starter.segment(feats, extreme_points=clicks, exclude=[swallowed, *others])
        alone = starter.segment(feats, extreme_points=clicks, exclude=others)
        polygon = got.polygons[0]
        assert polygon.equals(alone.polygons[0])
        assert shapely.intersection(polygon, shapely.union_all(others)).area < 1e-6
        assert _mask_iou(_masks([polygon], shape)[0], gt[k]) > 0.7, k
        checked += 1
    assert checked >= 3  # the image does test the case
    # several prompts in one call, each with the outlines under its own clicks: as alone
    big = int(np.argmax(truth.areas))
    clicks = np.stack([extreme_pixels(gt[i]) for i in (k, big)]) + 0.5
    together = starter.segment(feats, extreme_points=clicks, exclude=[swallowed, *others])
    for c, polygon in zip(clicks, together.polygons, strict=True):
        one = starter.segment(feats, extreme_points=c[None], exclude=[swallowed, *others])
        assert polygon.equals(one.polygons[0])
