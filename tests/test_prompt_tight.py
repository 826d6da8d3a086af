"""``segment(..., tight=True)``: a box that touches its object on all four sides (extreme
clicking) picks the mask threshold whose mask fills the box best."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
from extreme_pixels import extreme_pixels
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist import polygons_to_masks
from labelassist.model import Model, load_model
from labelassist.model.box_prompts import tight_thresholds
from labelassist.model.roi_masks import rois_to_polygons
from labelassist.synthetic import synthetic_nuclei

BOX = torch.tensor([[0.0, 0.0, 19.0, 19.0]])  # index coordinates: pixels 0-19
CLIP = np.array([[0, 0, 20, 20]])  # the box's pixels


def _plateau(outer: float, inner: float) -> torch.Tensor:
    """28 x 28 probabilities: ``outer`` everywhere, ``inner`` in the middle half."""
    probs = torch.full((1, 1, 28, 28), outer)
    probs[..., 7:21, 7:21] = inner
    return probs


def test_the_threshold_whose_mask_fills_the_box_is_chosen():
    probs = _plateau(0.35, 0.9)  # 0.5 gives the middle, 0.3 the whole box
    kwargs = {"tolerance": 0, "clip": CLIP}
    [plain] = rois_to_polygons(probs, BOX, (32, 32), **kwargs)
    assert plain.bounds[2] - plain.bounds[0] < 12  # the middle only
    [tight] = rois_to_polygons(probs, BOX, (32, 32), fit_thresholds=tight_thresholds(0.5), **kwargs)
    assert tight.equals(shapely.box(0, 0, 20, 20))
    # out of reach (+-0.2): the middle stays
    [far] = rois_to_polygons(
        _plateau(0.25, 0.9), BOX, (32, 32), fit_thresholds=[0.3, 0.7], **kwargs
    )
    assert far.equals(plain)


def test_ties_go_to_the_models_threshold():
    """A frame at 0.9 touches all four sides at 0.5 already; 0.3 would fill it in: the same
    fit, so the model's 0.5 (the frame, with its hole) is kept."""
    probs = torch.full((1, 1, 28, 28), 0.35)
    probs[..., :4, :] = probs[..., -4:, :] = probs[..., :, :4] = probs[..., :, -4:] = 0.9
    [tight] = rois_to_polygons(
        probs, BOX, (32, 32), tolerance=0, clip=CLIP, fit_thresholds=tight_thresholds(0.5)
    )
    assert len(tight.interiors) == 1
    assert tight.area < 0.8 * 400


def test_fit_thresholds_need_the_box():
    with pytest.raises(ValueError, match="fit_thresholds needs clip"):
        rois_to_polygons(_plateau(0.35, 0.9), BOX, (32, 32), fit_thresholds=[0.3])


@pytest.fixture(scope="module")
def starter() -> Model:
    return load_model("starter", device="cpu")


def _fill(polygon, box) -> float:
    if polygon.is_empty:
        return 0.0
    x0, y0, x1, y1 = polygon.bounds
    return (x1 - x0) * (y1 - y0) / ((box[2] - box[0]) * (box[3] - box[1]))


@pytest.mark.parametrize("box_scale", [1, "auto"])
def test_tight_boxes_on_nuclei_fill_their_boxes_with_a_nearby_threshold(starter, box_scale):
    """Exact boxes of synthetic nuclei: each tight mask lies between the masks at the two
    extreme thresholds (it is one of the thresholds), fills its box at least as well as the
    plain one, and the choice changes some results."""
    image, truth = synthetic_nuclei((128, 128), n=14, seed=5)[:2]
    shape = truth.image_shape
    feats = starter.encode(image)
    boxes = truth.boxes
    common = {"boxes": boxes, "box_scale": box_scale, "tolerance": 0}
    plain = starter.segment(feats, **common).polygons
    tight = starter.segment(feats, tight=True, **common).polygons
    low = polygons_to_masks(
        list(starter.segment(feats, mask_threshold=0.1, **common).polygons), shape
    )
    high = polygons_to_masks(
        list(starter.segment(feats, mask_threshold=0.9, **common).polygons), shape
    )
    masks = polygons_to_masks(list(tight), shape)
    assert not (masks & ~low).any() and not (high & ~masks).any()
    for p, t, box in zip(plain, tight, boxes, strict=True):
        assert _fill(t, box) >= _fill(p, box) - 1e-9
    assert sum(not p.equals(t) for p, t in zip(plain, tight, strict=True)) >= 1


def test_tight_must_be_a_bool():
    with pytest.raises(ValueError, match="tight must be True or False"):
        tiny_model().segment(np.zeros((32, 32), np.uint8), boxes=[[2, 2, 12, 12]], tight="yes")


def test_clicked_pixels_rank_the_thresholds_before_the_fit():
    """A plus sign at 0.9 fills its box at 0.5 already, so the fit alone keeps 0.5; a click
    on a corner pixel (0.35 there) makes 0.3, whose mask keeps it, the choice."""
    probs = torch.full((1, 1, 28, 28), 0.35)
    probs[..., 10:18, :] = probs[..., :, 10:18] = 0.9
    kwargs = {"tolerance": 0, "clip": CLIP, "fit_thresholds": tight_thresholds(0.5)}
    [fit] = rois_to_polygons(probs, BOX, (32, 32), **kwargs)
    assert not fit.contains(shapely.Point(2.5, 2.5)) and fit.area < 0.8 * 400
    corner = np.array([[[2, 2], [10, 10], [10, 10], [10, 10]]])
    [clicked] = rois_to_polygons(probs, BOX, (32, 32), fit_pixels=corner, **kwargs)
    assert clicked.equals(shapely.box(0, 0, 20, 20))
    with pytest.raises(ValueError, match="fit_pixels needs fit_thresholds"):
        rois_to_polygons(probs, BOX, (32, 32), clip=CLIP, fit_pixels=corner)


def _extreme_clicks(mask: np.ndarray) -> np.ndarray:
    """x, y at the centres of a mask's leftmost, topmost, rightmost, bottommost pixels."""
    rows, cols = np.nonzero(mask)
    picks = [
        (cols.min(), rows[cols == cols.min()][0]),
        (cols[rows == rows.min()][0], rows.min()),
        (cols.max(), rows[cols == cols.max()][0]),
        (cols[rows == rows.max()][0], rows.max()),
    ]
    return np.array(picks, dtype=np.float64) + 0.5


def test_extreme_points_segment_the_tight_box_they_span_keeping_the_clicks(starter):
    """Four clicks on each synthetic nucleus's extreme pixels: each result lies in the box
    the clicked pixels span and keeps at least as many of them as the tight prompt on that
    box; results come after the boxes' and before the points'."""
    image, truth = synthetic_nuclei((128, 128), n=14, seed=5)[:2]
    shape = truth.image_shape
    feats = starter.encode(image)
    clicks = np.stack([_extreme_clicks(m) for m in truth.masks()])
    boxes = np.concatenate([clicks.min(axis=1) - 0.5, clicks.max(axis=1) + 0.5], axis=1)
    np.testing.assert_allclose(boxes, truth.boxes)  # the clicks span the objects' boxes
    found = starter.segment(feats, extreme_points=clicks, tolerance=0).polygons
    tight = starter.segment(feats, boxes=boxes, tight=True, tolerance=0).polygons
    kept, kept_tight = [], []
    for p, t, c, box in zip(found, tight, clicks, boxes, strict=True):
        assert shapely.box(*box).buffer(1e-6).contains(p)
        kept.append(sum(p.contains(shapely.Point(*xy)) for xy in c))
        kept_tight.append(sum(t.contains(shapely.Point(*xy)) for xy in c))
    assert all(a >= b for a, b in zip(kept, kept_tight, strict=True))
    masks = polygons_to_masks(list(found), shape)
    assert (masks & truth.masks()).sum() > 0.8 * truth.masks().sum()
    both = starter.segment(
        feats, boxes=boxes[:1], extreme_points=clicks[2:3], points=[clicks[4, 0]], tolerance=0
    )
    assert len(both) == 3
    assert both.polygons[1].equals(found[2])


def test_extreme_points_keep_their_mask_however_low_the_box_head_scores(starter):
    """Four clicks say an object is there: the real sample turned a quarter, its nucleus cut
    to a 28 x 7 px sliver by the bottom border scores 0.004 in the box head (0.03 upright), below
    `segment`'s ``score_threshold`` (0.01), so its box prompt finds nothing; the extreme
    clicks still return its mask (with that score), near the hand-drawn outline (mask IoU
    0.68 without its neighbours when written)."""
    from labelassist.model.prompts import DEFAULT_SCORE_THRESHOLD
    from labelassist.samples import real_nuclei

    image, labels = (np.ascontiguousarray(np.rot90(a)) for a in real_nuclei(labels=True))
    ids, rows, cols = [], [], []
    for i in np.unique(labels[-1])[1:]:  # the nuclei on the bottom border
        rr, cc = np.nonzero(labels == i)
        ids.append(i)
        rows.append(rr), cols.append(cc)
    k = int(np.argmin([np.ptp(r) / max(np.ptp(c), 1) for r, c in zip(rows, cols, strict=True)]))
    mask = labels == ids[k]  # the flattest of them
    assert mask.sum() == 105 and np.ptp(cols[k]) + 1 == 28 and np.ptp(rows[k]) + 1 == 7
    clicks = extreme_pixels(mask)[None] + 0.5
    box = np.concatenate([clicks.min(axis=1) - 0.5, clicks.max(axis=1) + 0.5], axis=1)
    feats = starter.encode(image)
    as_box = starter.segment(feats, boxes=box, tight=True)
    assert as_box.polygons[0].is_empty and as_box.scores[0] == 0.0
    found = starter.segment(feats, extreme_points=clicks, tolerance=0)
    assert 0.0 < found.scores[0] < DEFAULT_SCORE_THRESHOLD
    got = polygons_to_masks([found.polygons[0]], mask.shape)[0]
    assert (got & mask).sum() / (got | mask).sum() > 0.6
    strict = starter.segment(feats, extreme_points=clicks, tolerance=0, score_threshold=0.5)
    assert strict.polygons[0].equals(found.polygons[0])


@pytest.mark.parametrize(
    ("points", "match"),
    [
        (np.zeros((1, 3, 2)), r"shape \(N, 4, 2\)"),
        ([["a", "b"]] * 4, "extreme_points must be numbers"),
        (
            np.full((1, 4, 2), 40.0),
            r"extreme_points\[0\]\[0\] = \[40.0, 40.0\] lies outside the image",
        ),
        (np.array([[[1, 1], [2, 2], [3, np.nan], [4, 4]]]), r"extreme_points\[0\]\[2\]"),
    ],
)
def test_extreme_points_bad_input(points, match):
    with pytest.raises(ValueError, match=match):
        tiny_model().segment(np.zeros((32, 32), np.uint8), extreme_points=points)
