"""``segment(..., extreme_points=...)``: the mask stays within `HULL_MARGIN` of the convex
hull of the four clicks (half the box's size times ``1 - 1 / sqrt(2)``, how far a disc
reaches beyond its extreme points' square)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from extreme_pixels import extreme_pixels
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist import polygons_to_masks
from labelassist.model import Model, load_model
from labelassist.model.box_prompts import HULL_MARGIN, tight_thresholds
from labelassist.model.roi_masks import rois_to_polygons
from labelassist.synthetic import synthetic_nuclei


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points ``p`` (M, 2) to the segment ``a``-``b``."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def _in_triangle(p: np.ndarray, a, b, c) -> np.ndarray:
    def side(u, v):
        return (v[0] - u[0]) * (p[:, 1] - u[1]) - (v[1] - u[1]) * (p[:, 0] - u[0])

    s = np.stack([side(a, b), side(b, c), side(c, a)])
    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return bool(abs(area) > 1e-12) & ((s >= -1e-9).all(0) | (s <= 1e-9).all(0))


def _hull_distance(p: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """Distance of points to the convex hull of four points, without shapely: zero inside one
    of the triangles of three of them (Caratheodory), else the nearest segment between two."""
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    d = np.min([_segment_distance(p, clicks[i], clicks[j]) for i, j in pairs], axis=0)
    triples = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    inside = np.any([_in_triangle(p, *clicks[list(t)]) for t in triples], axis=0)
    return np.where(inside, 0.0, d)


def _expected(w: int, h: int, clicks: np.ndarray, margin: float) -> np.ndarray:
    """The box's pixels (all above the threshold) within the margin of the clicks' hull."""
    rows, cols = np.indices((h, w))
    centres = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
    reach = margin * math.sqrt(w * h) / 2
    return (_hull_distance(centres, clicks.astype(np.float64)) <= reach + 1e-9).reshape(h, w)


def _full_box(w: int, h: int, clicks: np.ndarray, margin: float | None) -> np.ndarray:
    """``rois_to_polygons`` on probabilities 1 over a ``w`` x ``h`` box at the origin."""
    box = torch.tensor([[0.0, 0.0, w - 1.0, h - 1.0]])  # index coordinates: pixel centres
    [polygon] = rois_to_polygons(
        torch.ones(1, 1, 28, 28), box, (h + 4, w + 4), tolerance=0,
        clip=np.array([[0, 0, w, h]]), fit_thresholds=tight_thresholds(0.5),
        fit_pixels=clicks[None], hull_margin=margin,
    )  # fmt: skip
    return polygons_to_masks([polygon], (h + 4, w + 4))[0][:h, :w]


def test_a_full_box_is_cut_to_the_clicks_hull_grown_by_the_margin():
    """A diamond of clicks in a 20 x 20 box whose every pixel is above the threshold: the
    corners go (farther than 2.93 px from the diamond), the rest stays."""
    clicks = np.array([[0, 10], [10, 0], [19, 10], [10, 19]])
    mask = _full_box(20, 20, clicks, HULL_MARGIN)
    assert not mask[0, 0] and not mask[19, 19] and mask[10, 10] and mask[2, 5]
    np.testing.assert_array_equal(mask, _expected(20, 20, clicks, HULL_MARGIN))
    assert _full_box(20, 20, clicks, None).all()  # no margin: the whole box
    with pytest.raises(ValueError, match="hull_margin needs fit_pixels"):
        rois_to_polygons(torch.ones(1, 1, 28, 28), torch.tensor([[0.0, 0, 19, 19]]), (24, 24),
                         clip=np.array([[0, 0, 20, 20]]), fit_thresholds=[0.5],
                         hull_margin=HULL_MARGIN)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    w=st.integers(1, 40),
    h=st.integers(1, 40),
    at=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    margin=st.sampled_from([0.0, 0.1, HULL_MARGIN, 0.6]),
)
def test_the_mask_is_the_box_within_the_margin_of_any_clicks_hull(w, h, at, margin):
    """Clicks anywhere on the box's four sides (their hull a quadrilateral, a triangle, a
    segment or a point): exactly the pixels within the margin of the hull stay."""
    left, top, right, bottom = (round(a * (n - 1)) for a, n in zip(at, (h, w, h, w), strict=True))
    clicks = np.array([[0, left], [top, 0], [w - 1, right], [bottom, h - 1]])
    mask = _full_box(w, h, clicks, margin)
    np.testing.assert_array_equal(mask, _expected(w, h, clicks, margin))
    assert all(mask[r, c] for c, r in clicks)  # the clicked pixels always stay


@pytest.fixture(scope="module")
def starter() -> Model:
    return load_model("starter", device="cpu")


def test_extreme_points_on_nuclei_stay_near_their_hull_and_come_closer_to_the_truth(starter):
    """The starter on synthetic nuclei: every pixel of each result lies within the margin of
    its clicks' hull, and more of them reach mask IoU 0.8 than the tight box prompts on the
    same boxes (no hull) do (30 of 30 against 28 when written)."""
    image, truth = synthetic_nuclei((192, 192), n=30, seed=3)[:2]
    shape = truth.image_shape
    feats = starter.encode(image)
    masks = truth.masks()
    pixels = np.stack([extreme_pixels(m) for m in masks])
    found = starter.segment(feats, extreme_points=pixels + 0.5, tolerance=0).polygons
    boxes = np.concatenate([pixels.min(axis=1), pixels.max(axis=1) + 1], axis=1)
    tight = starter.segment(feats, boxes=boxes, tight=True, tolerance=0).polygons
    ours, theirs = polygons_to_masks(list(found), shape), polygons_to_masks(list(tight), shape)
    cut = 0
    for mask, clicks, box, other in zip(ours, pixels, boxes.astype(int), theirs, strict=True):
        rows, cols = np.nonzero(mask)
        x0, y0, x1, y1 = box
        reach = HULL_MARGIN * math.sqrt((x1 - x0) * (y1 - y0)) / 2
        points = np.stack([cols, rows], axis=1).astype(np.float64)
        assert (_hull_distance(points, clicks.astype(np.float64)) <= reach + 1e-9).all()
        cut += int((other & ~mask).sum())
    assert cut > 0  # the hull does cut pixels the tight box kept

    def iou(a, b):
        return (a & b).sum() / max((a | b).sum(), 1)

    ious = np.array([iou(a, t) for a, t in zip(ours, masks, strict=True)])
    tight_ious = np.array([iou(a, t) for a, t in zip(theirs, masks, strict=True)])
    assert (ious >= 0.8).sum() > (tight_ious >= 0.8).sum()
