"""An extreme-point prompt's mask fills thin gaps to its annotated neighbours
(`labelassist.model.roi_masks.rois_to_polygons`'s ``gap_width``,
`labelassist.model.box_prompts.NEIGHBOUR_GAP`): touching objects share their outline, and
the mask head stops a pixel or two short of a neighbour."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
from extreme_pixels import extreme_pixels
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from tiny_models import one_thread  # noqa: F401 (autouse fixture)

import labelassist.model.box_prompts as box_prompts
from labelassist import polygons_to_masks
from labelassist.model import Model, load_model
from labelassist.model.roi_masks import rois_to_polygons
from labelassist.synthetic import synthetic_nuclei

SIZE = 28  # a box of 28 x 28 pixels at the origin, in an image with room around it
SHAPE = (SIZE + 12, SIZE + 12)


def _mask(probs: np.ndarray, exclude: list, gap_width: int) -> np.ndarray:
    """``rois_to_polygons`` of ``probs`` (28 x 28) on the box's pixels, as a mask."""
    box = torch.tensor([[0.0, 0.0, SIZE - 1.0, SIZE - 1.0]])  # index coordinates
    [polygon] = rois_to_polygons(
        torch.from_numpy(probs.astype(np.float32))[None, None], box, SHAPE, tolerance=0,
        clip=np.array([[0, 0, SIZE, SIZE]]), exclude=np.array(exclude, dtype=object),
        gap_width=gap_width,
    )  # fmt: skip
    return polygons_to_masks([polygon], SHAPE)[0]


def _left_half() -> np.ndarray:
    probs = np.zeros((28, 28))
    probs[:, :12] = 1.0
    return probs


@pytest.mark.parametrize("gap", [1, 2, 3, 4, 5, 6])
def test_a_straight_gap_up_to_the_width_is_filled(gap):
    """The mask stops at column k; a neighbour starts ``gap`` columns later: at width 4 the
    gap's columns join the mask when it is at most 4 wide, and nothing else changes."""
    alone = _mask(_left_half(), [], 0)
    k = int(np.flatnonzero(alone.any(axis=0)).max())
    rows = np.flatnonzero(alone.any(axis=1))
    neighbour = shapely.box(k + 1 + gap, 0, SIZE + 6, SIZE)
    before = _mask(_left_half(), [neighbour], 0)
    np.testing.assert_array_equal(before, alone)  # the neighbour takes none of its pixels
    after = _mask(_left_half(), [neighbour], 4)
    expected = alone.copy()
    if gap <= 4:
        expected[rows[0] : rows[-1] + 1, k + 1 : k + 1 + gap] = True
    np.testing.assert_array_equal(after, expected)


def test_nothing_joins_without_a_neighbour_or_between_two_neighbours_away_from_the_mask():
    """A gap between two neighbours farther than 4 px from the mask stays open; without
    neighbours the mask is the same whatever the width."""
    np.testing.assert_array_equal(_mask(_left_half(), [], 4), _mask(_left_half(), [], 0))
    two = [shapely.box(20, 0, 23, 10), shapely.box(25, 0, 28, 10)]  # a 2 px gap at x 23-25
    after = _mask(_left_half(), two, 4)
    assert not after[:10, 23:25].any()
    np.testing.assert_array_equal(after, _mask(_left_half(), two, 0))


@settings(max_examples=60, deadline=None)
@given(
    cut=st.integers(3, 24),
    neighbours=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 10), st.integers(1, 10)),
        min_size=1,
        max_size=4,
    ),
    width=st.integers(1, 6),
)
def test_exactly_the_box_pixels_in_a_gap_up_to_the_width_join(cut, neighbours, width):
    """Whatever the neighbours: the mask stays, nothing of a neighbour or outside the box
    joins, and a free pixel of the box joins exactly when its distances to the mask and to a
    neighbour (pixel centres, by brute force) add up to at most ``width + 1``."""
    probs = np.zeros((28, 28))
    probs[:, :cut] = 1.0
    polygons = [shapely.box(x, y, x + w, y + h) for x, y, w, h in neighbours]
    before, after = _mask(probs, polygons, 0), _mask(probs, polygons, width)
    taken = polygons_to_masks(polygons, SHAPE).any(axis=0)
    assert (after >= before).all()
    assert not (after & taken).any()
    assert not after[SIZE:].any() and not after[:, SIZE:].any()
    free = np.argwhere(~before & ~taken)
    free = free[(free < SIZE).all(axis=1)]

    def distance(to):
        near = np.argwhere(to)
        if not len(near):
            return np.full(len(free), np.inf)
        return np.sqrt(((free[:, None, :] - near[None]) ** 2).sum(-1)).min(axis=1)

    joins = distance(before) + distance(taken) <= width + 1 + 1e-9
    np.testing.assert_array_equal(after[free[:, 0], free[:, 1]], joins)


@pytest.fixture(scope="module")
def starter() -> Model:
    return load_model("starter", device="cpu")


def test_extreme_points_next_to_annotated_nuclei_reach_them(starter, monkeypatch):
    """The starter on touching synthetic nuclei, each prompted by its four extreme clicks
    with the others annotated: with the gaps filled no result overlaps a neighbour, the
    results grow only next to the neighbours, and the mean mask IoU with the truth rises
    (0.931 -> 0.933 when written)."""
    image, truth = synthetic_nuclei((192, 192), n=30, seed=5)[:2]
    shape = truth.image_shape
    feats = starter.encode(image)
    masks = truth.masks()
    polygons = list(truth.polygons)

    def run(gap):
        monkeypatch.setattr(box_prompts, "NEIGHBOUR_GAP", gap)
        out = []
        for k, mask in enumerate(masks):
            others = polygons[:k] + polygons[k + 1 :]
            clicks = extreme_pixels(mask)[None] + 0.5
            found = starter.segment(feats, extreme_points=clicks, exclude=others, tolerance=0)
            out.append(polygons_to_masks([found.polygons[0]], shape)[0])
        return out

    width = box_prompts.NEIGHBOUR_GAP
    assert width > 0
    closed, open_ = run(width), run(0)
    grown = 0
    for k, (a, b) in enumerate(zip(closed, open_, strict=True)):
        others = np.delete(masks, k, axis=0).any(axis=0)
        assert not (a & others).any()
        added = a & ~b
        assert (ndimage.distance_transform_edt(~others)[added] <= width).all()
        grown += int(added.sum())
    assert grown > 0

    def iou(a, b):
        return (a & b).sum() / max((a | b).sum(), 1)

    with_gaps = np.mean([iou(a, t) for a, t in zip(closed, masks, strict=True)])
    without = np.mean([iou(a, t) for a, t in zip(open_, masks, strict=True)])
    assert with_gaps > without
