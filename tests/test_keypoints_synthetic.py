"""Synthetic landmarks: exact masks, ends found exactly, a head marker, a COCO keypoints dataset."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from labelassist.coco import read_coco
from labelassist.synthetic.landmarks import (
    LANDMARK_NAMES,
    landmark_dataset,
    mask_ends,
    synthetic_landmarks,
)


def _capsule(shape, start, end, radius):
    """Pixels whose centre lies within ``radius`` of the segment ``start``-``end`` (x, y)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    segment = shapely.LineString([start, end])
    distance = shapely.distance(segment, shapely.points(xx.ravel(), yy.ravel()))
    return distance.reshape(shape) <= radius


def test_mask_ends_of_a_straight_capsule_are_its_tips():
    # the tips of a capsule from (10, 20) to (40, 20), radius 4: the outermost pixel columns
    # whose centres lie within 4 px of the end points, x = 6.5 and x = 43.5; there
    # |y - 20| <= sqrt(4**2 - 3.5**2) = 1.94, so y is one of 18.5 ... 21.5
    mask = _capsule((40, 50), (10, 20), (40, 20), 4)
    ends = mask_ends(mask)
    assert sorted(ends[:, 0].tolist()) == [6.5, 43.5]
    assert set(ends[:, 1].tolist()) <= {18.5, 19.5, 20.5, 21.5}


def test_mask_ends_of_a_bent_capsule_follow_the_object():
    # an L: the ends are the two free tips, not the corner, although the tips are closer
    # to each other in a straight line than to the corner's far side
    mask = _capsule((50, 50), (10, 40), (40, 40), 3) | _capsule((50, 50), (40, 40), (40, 10), 3)
    ends = sorted(map(tuple, mask_ends(mask).tolist()))
    assert ends[0][0] == pytest.approx(7.5, abs=1) and ends[0][1] == pytest.approx(40, abs=1.5)
    assert ends[1][1] == pytest.approx(7.5, abs=1) and ends[1][0] == pytest.approx(40, abs=1.5)


def test_mask_ends_of_one_pixel_and_several_pieces():
    one = np.zeros((4, 4), bool)
    one[1, 2] = True
    assert mask_ends(one).tolist() == [[2.5, 1.5], [2.5, 1.5]]
    two = one.copy()
    two[3, 0:4] = True  # the larger piece is used
    assert sorted(mask_ends(two)[:, 0].tolist()) == [0.5, 3.5]


@pytest.mark.parametrize("kind", ["rods", "worms"])
def test_landmarks_are_the_ends_of_exact_masks(kind):
    image, inst = synthetic_landmarks((128, 128), kind=kind, n=(3, 6), seed=3)
    assert inst.keypoints.shape == (len(inst), len(LANDMARK_NAMES), 3) and len(inst) >= 3
    assert (inst.keypoints[:, :, 2] == 2).all()
    masks = inst.masks()
    for k in range(len(inst)):
        for x, y, _ in inst.keypoints[k]:
            assert masks[k, int(y), int(x)]  # each keypoint is the centre of an object pixel
        # the ends are its geodesic ends: those of the mask, in either order
        expected = {tuple(p) for p in mask_ends(masks[k]).tolist()}
        assert {tuple(p) for p in inst.keypoints[k, :, :2].tolist()} == expected
        # and they span the object: at least its longest box side apart (within a pixel)
        x0, y0, x1, y1 = inst.polygons[k].bounds
        gap = np.hypot(*(inst.keypoints[k, 0, :2] - inst.keypoints[k, 1, :2]))
        assert gap >= max(x1 - x0, y1 - y0) - 2.0


def test_head_has_the_marker_and_tail_does_not():
    image, inst = synthetic_landmarks((128, 128), n=8, seed=1)
    plain, same = synthetic_landmarks((128, 128), n=8, seed=1, marker=0.0)
    assert same == inst  # the marker changes the image only
    head = [
        int(image[int(y), int(x)]) - int(plain[int(y), int(x)]) for x, y, _ in inst.keypoints[:, 0]
    ]
    tail = [
        int(image[int(y), int(x)]) - int(plain[int(y), int(x)]) for x, y, _ in inst.keypoints[:, 1]
    ]
    assert min(head) > 0 and np.mean(head) > 4 * max(np.mean(tail), 1)
    outside = ~inst.masks().any(0)
    assert np.array_equal(image[outside], plain[outside])  # the outline is untouched


def test_seeded_and_typed():
    a = synthetic_landmarks((64, 64), n=3, seed=5, dtype=np.uint16)
    b = synthetic_landmarks((64, 64), n=3, seed=5, dtype=np.uint16)
    assert a[0].dtype == np.uint16 and np.array_equal(a[0], b[0]) and a[1] == b[1]
    empty_image, empty = synthetic_landmarks((32, 32), n=0, seed=0)
    assert len(empty) == 0 and empty.keypoints.shape == (0, 2, 3)


def test_landmark_dataset_writes_coco_keypoints(tmp_path):
    ds = landmark_dataset(2, out=tmp_path, shape=(64, 64), kind="worms", n=2)
    assert ds.categories == ["worm"] and ds.keypoints == ["head", "tail"]
    assert read_coco(tmp_path / "annotations.json") == ds
    assert (tmp_path / "image_00001.png").exists()


BAD = [
    ("kind", lambda: synthetic_landmarks(kind="cells"), ValueError, "kind must be one of"),
    ("marker", lambda: synthetic_landmarks(marker=2), ValueError, "marker must be"),
    ("labels", lambda: synthetic_landmarks(return_labels=True), TypeError, "return_labels"),
    ("option", lambda: synthetic_landmarks(size=-1), ValueError, "size"),
    ("mask dims", lambda: mask_ends(np.zeros(4, bool)), ValueError, r"\(H, W\) array"),
    ("mask empty", lambda: mask_ends(np.zeros((4, 4), bool)), ValueError, "no pixel"),
    ("dataset n", lambda: landmark_dataset(-1, out="x"), ValueError, "n_images"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
