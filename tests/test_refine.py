"""Tests of labelassist.refine: GrabCut edge refinement with real OpenCV on small synthetic images."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import shapely
from scipy import ndimage

from labelassist import Instances, masks_to_polygons, polygons_to_masks
from labelassist.refine import _cleanup, refine_edges


def _disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    """Pixels whose centre lies within ``r`` of ``(cx, cy)`` (COCO (x, y) coordinates)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < r**2


def _fluorescence(truth: np.ndarray, *, seed: int = 0, blur: float = 1.0) -> np.ndarray:
    """A blurred, noisy uint8 image of the objects ``truth`` (bright on dark)."""
    image = ndimage.gaussian_filter(np.where(truth, 200.0, 30.0), blur)
    image += np.random.default_rng(seed).normal(0, 8, truth.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _instances(masks: list[np.ndarray], **extra) -> Instances:
    polygons = masks_to_polygons(np.stack(masks), tolerance=0)
    n = len(masks)
    return Instances(polygons, [0] * n, [0.5] * n, masks[0].shape, extra=extra)


# -- refinement moves outlines towards the truth ----------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blurry_disc_two_pixels_too_large_gets_closer(seed):
    truth = _disc((48, 48), 24, 24, 10)
    image = _fluorescence(truth, seed=seed)
    proposal = _instances([_disc((48, 48), 24, 24, 12)])
    before = _iou(proposal.masks()[0], truth)
    for kwargs in ({}, {"band": 2, "smoothing": 0}):
        refined = refine_edges(image, proposal, **kwargs)
        assert refined.extra["refined"].tolist() == [True]
        assert _iou(refined.masks()[0], truth) > before + 0.08, kwargs
    # a band as wide as the error finds (nearly) the true outline
    assert _iou(refine_edges(image, proposal, band=2, smoothing=0).masks()[0], truth) > 0.88


@pytest.mark.parametrize("seed", [0, 1])
def test_too_small_proposal_grows(seed):
    truth = _disc((48, 48), 24, 24, 10)
    image = _fluorescence(truth, seed=seed)
    proposal = _instances([_disc((48, 48), 24, 24, 8.5)])
    refined = refine_edges(image, proposal, band=2, smoothing=0)
    assert refined.areas[0] > proposal.areas[0]
    assert _iou(refined.masks()[0], truth) > _iou(proposal.masks()[0], truth) + 0.05


@pytest.mark.parametrize(
    "kind", ["uint8", "uint16", "float32", "float_nan", "int32", "rgb", "rgba", "bool"]
)
def test_every_image_kind_is_refined(kind):
    truth = _disc((40, 40), 20, 20, 9)
    image8 = _fluorescence(truth, seed=3)
    image = {
        "uint8": image8,
        "uint16": image8.astype(np.uint16) * 40 + 100,
        "float32": image8.astype(np.float32) / 255 - 0.3,
        "int32": image8.astype(np.int32) - 1000,
        "rgb": np.stack([image8, image8 // 2, np.zeros_like(image8)], axis=-1),
        "rgba": np.dstack([image8, image8, image8, np.full_like(image8, 255)]),
        "bool": ndimage.gaussian_filter(truth.astype(float), 1.0) > 0.5,
    }.get(kind)
    if kind == "float_nan":
        image = image8.astype(np.float64)
        image[0, :5] = np.nan
        image[1, :5] = np.inf
    proposal = _instances([_disc((40, 40), 20, 20, 11)])
    refined = refine_edges(image, proposal, band=2)
    assert refined.extra["refined"].tolist() == [True]
    assert _iou(refined.masks()[0], truth) > _iou(proposal.masks()[0], truth) + 0.05


def test_result_does_not_depend_on_earlier_calls():
    """GrabCut's k-means draws from OpenCV's global generator; the result must not."""
    truth = _disc((48, 48), 24, 24, 10)
    image = _fluorescence(truth, seed=5)
    proposal = _instances([_disc((48, 48), 24, 24, 12)])
    first = refine_edges(image, proposal, band=2)
    for seed in range(3):  # other work in between
        refine_edges(_fluorescence(truth, seed=seed), proposal)
    assert refine_edges(image, proposal, band=2) == first


def test_read_only_image_and_instances_are_not_modified():
    truth = _disc((40, 40), 20, 20, 9)
    image = _fluorescence(truth)
    image.setflags(write=False)
    copy = image.copy()
    proposal = _instances([_disc((40, 40), 20, 20, 11)], source=np.array(["model"]))
    before = list(proposal.polygons)
    refine_edges(image, proposal)
    assert np.array_equal(image, copy)
    assert list(proposal.polygons) == before and "refined" not in proposal.extra


# -- the pixel convention --------------------------------------------------------------------
@pytest.mark.parametrize("tolerance", [0, 0.3])
def test_polygons_follow_the_pixel_convention(tolerance):
    """A sharp-edged object off the image origin: the refined polygon, rasterized back,
    gives exactly the object's pixels (a half-pixel shift or a wrong region offset would
    not)."""
    truth = _disc((64, 80), 47, 29, 9)
    truth[29:31, 36:40] = True  # a small bump, so the shape is not symmetric
    image = np.where(truth, 180, 40).astype(np.uint8)
    proposal = _instances([ndimage.binary_dilation(truth)])
    refined = refine_edges(image, proposal, band=2, smoothing=0, tolerance=tolerance)
    assert refined.extra["refined"].tolist() == [True]
    assert np.array_equal(polygons_to_masks(refined.polygons, (64, 80))[0], truth)
    if tolerance == 0:  # exact pixel edges: vertices on the lattice, area = pixel count
        coords = shapely.get_coordinates(refined.polygons[0])
        assert np.array_equal(coords, np.round(coords))
        assert refined.areas[0] == truth.sum()


# -- neighbours, tiny objects, never dropping -------------------------------------------------
@pytest.mark.parametrize("band", [1, 2, 3])
@pytest.mark.parametrize("grow", [0, 1])
def test_touching_objects_stay_separate(band, grow):
    """Two bright nuclei in contact: neither refined mask takes the other's pixels (marked
    sure background of its region), although both have the same colour."""
    a = _disc((40, 64), 24, 20, 10)
    b = _disc((40, 64), 40, 20, 10) & ~a
    assert (a & ndimage.binary_dilation(b)).sum() >= 10  # a long contact
    image = _fluorescence(a | b)
    pa = ndimage.binary_dilation(a, iterations=grow) & ~b if grow else a
    pb = ndimage.binary_dilation(b, iterations=grow) & ~a if grow else b
    refined = refine_edges(image, _instances([pa, pb]), band=band)
    ma, mb = refined.masks()
    assert refined.extra["refined"].tolist() == [True, True]
    assert not (ma & mb).any()
    assert not (ma & b).any() and not (mb & a).any()
    assert _iou(ma, a) > 0.85 and _iou(mb, b) > 0.85


@pytest.mark.parametrize("size", [1, 2, 3])
def test_tiny_object_is_kept(size):
    truth = np.zeros((24, 24), dtype=bool)
    truth[10 : 10 + size, 12 : 12 + size] = True
    image = _fluorescence(truth, blur=0.5)
    proposal = _instances([truth])
    refined = refine_edges(image, proposal)
    assert len(refined) == 1 and not refined.polygons[0].is_empty
    if not refined.extra["refined"][0]:  # GrabCut gave up: the original, unchanged
        assert refined.polygons[0].equals(proposal.polygons[0])
    assert (refined.masks()[0] & truth).any()


def test_holes_of_the_original_stay_holes():
    outer = _disc((48, 48), 24, 24, 12)
    donut = outer & ~_disc((48, 48), 24, 24, 5)
    refined = refine_edges(_fluorescence(donut), _instances([donut]), band=2)
    assert refined.extra["refined"].tolist() == [True]
    assert len(refined.polygons[0].interiors) == 1
    assert _iou(refined.masks()[0], donut) > 0.9


def test_cleanup_drops_detached_parts_and_fills_new_holes():
    own = np.zeros((12, 12), dtype=bool)
    own[2:9, 2:9] = True
    own[5, 5] = False  # a hole of the original: may stay
    result = own.copy()
    result[3, 3] = False  # a hole GrabCut opened: filled
    result[5, 5] = False
    result[10:12, 10:12] = True  # a part that misses the original mask: dropped
    expected = own.copy()
    assert np.array_equal(_cleanup(result, own), expected)


def test_emptied_mask_keeps_the_original():
    """A 2 x 2 proposal (no sure foreground at band 1) on a flat image: GrabCut, with no
    edge to follow, empties it; the original polygon stays, marked as not refined."""
    image = np.full((32, 32), 100, dtype=np.uint16)
    mask = np.zeros((32, 32), dtype=bool)
    mask[15:17, 15:17] = True
    proposal = _instances([mask])
    refined = refine_edges(image, proposal)
    assert refined.extra["refined"].tolist() == [False]
    assert refined.polygons[0].equals(proposal.polygons[0])


def test_area_change_beyond_max_area_ratio_keeps_the_original():
    truth = _disc((48, 48), 24, 24, 10)
    image = _fluorescence(truth)
    proposal = _instances([_disc((48, 48), 24, 24, 12)])
    refined = refine_edges(image, proposal, band=2)
    assert refined.extra["refined"].tolist() == [True]
    ratio = proposal.areas[0] / refined.areas[0]
    assert ratio > 1.1
    strict = refine_edges(image, proposal, band=2, max_area_ratio=1 + (ratio - 1) / 2)
    assert strict.extra["refined"].tolist() == [False]
    assert strict.polygons[0].equals(proposal.polygons[0])
    grown = refine_edges(image, _instances([_disc((48, 48), 24, 24, 8)]), band=2)
    assert grown.extra["refined"].tolist() == [True]  # growth within the default ratio
    assert grown.areas[0] > 1.1 * np.pi * 8**2


def test_empty_and_outside_polygons_are_kept_unrefined():
    truth = _disc((40, 40), 20, 20, 8)
    image = _fluorescence(truth)
    polygons = [
        shapely.Polygon(),
        shapely.box(50, 50, 60, 60),  # outside the image
        shapely.box(3.6, 3.6, 4.4, 4.4),  # covers no pixel centre
        masks_to_polygons(_disc((40, 40), 20, 20, 10), tolerance=0)[0],
    ]
    inst = Instances(polygons, [1, 0, 2, 1], [0.1, 0.2, 0.3, 0.4], (40, 40))
    refined = refine_edges(image, inst)
    assert refined.extra["refined"].tolist() == [False, False, False, True]
    for k in range(3):
        assert refined.polygons[k].equals(polygons[k]) or refined.polygons[k].is_empty


def test_labels_scores_and_extra_columns_are_kept():
    truth = [_disc((40, 60), 15, 20, 8), _disc((40, 60), 42, 20, 9)]
    image = _fluorescence(truth[0] | truth[1])
    inst = Instances(
        masks_to_polygons(np.stack(truth), tolerance=0),
        [2, 0],
        [0.25, 0.75],
        (40, 60),
        extra={"source": np.array(["model", "human"]), "refined": np.array([7, 8])},
    )
    refined = refine_edges(image, inst)
    assert refined.labels.tolist() == [2, 0]
    assert refined.scores.tolist() == [0.25, 0.75]
    assert refined.extra["source"].tolist() == ["model", "human"]
    assert refined.extra["refined"].dtype == bool  # the old column is replaced
    assert refined.image_shape == (40, 60)


def test_empty_instances_give_empty_result():
    image = np.zeros((16, 16), np.uint8)
    out = refine_edges(image, Instances.empty((16, 16), extra_keys=["source"]))
    assert len(out) == 0 and out.image_shape == (16, 16)
    assert set(out.extra) == {"source", "refined"} and out.extra["refined"].dtype == bool


def test_limits_choose_the_intensity_window():
    """A 16-bit image with ``limits`` that map it exactly onto an 8-bit one is refined
    exactly like that 8-bit image (taken as it is); the default window differs."""
    truth = _disc((48, 48), 24, 24, 10)
    image8 = _fluorescence(truth)
    image16 = image8.astype(np.uint16) * 10
    proposal = _instances([_disc((48, 48), 24, 24, 12)])
    expected = refine_edges(image8, proposal, band=2, smoothing=0)
    assert refine_edges(image16, proposal, band=2, smoothing=0, limits=(0, 2550)) == expected
    stretched = refine_edges(image16, proposal, band=2, smoothing=0)  # 1st-99.8th percentiles
    assert stretched.extra["refined"].tolist() == [True]


# -- bad input --------------------------------------------------------------------------------
def _good() -> tuple[np.ndarray, Instances]:
    truth = _disc((32, 32), 16, 16, 6)
    return _fluorescence(truth), _instances([truth])


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"method": "watershed"}, ValueError, r"method must be one of \['grabcut'\]"),
        ({"band": 0}, ValueError, "band must be an integer >= 1"),
        ({"band": 1.5}, ValueError, "band must be an integer >= 1"),
        ({"iterations": 0}, ValueError, "iterations must be an integer >= 1"),
        ({"smoothing": -1}, ValueError, "smoothing must be a finite number >= 0"),
        ({"smoothing": float("nan")}, ValueError, "smoothing must be a finite number"),
        ({"band": 3, "margin": 2}, ValueError, "margin must be an integer >= 3 or None"),
        ({"tolerance": -0.1}, ValueError, "tolerance must be a finite number >= 0"),
        ({"max_area_ratio": 0.5}, ValueError, "max_area_ratio must be a finite number >= 1"),
        ({"max_area_ratio": 1}, ValueError, r"max_area_ratio must be > 1"),
        ({"limits": (5, 5)}, ValueError, r"limits must be finite \(low, high\) with low < high"),
        ({"limits": (0, np.inf)}, ValueError, "limits must be finite"),
        ({"limits": "0,1"}, ValueError, "limits must be finite"),
        ({"limits": 3}, ValueError, "limits must be finite"),
        ({"normalization": {"mode": "zscore"}}, ValueError, "normalization mode 'zscore'"),
        ({"normalization": 5}, TypeError, "normalization must be a dict"),
    ],
)
def test_bad_options(change, error, match):
    image, inst = _good()
    if "normalization" in change:
        image = image.astype(np.uint16)  # the default limits are computed
    with pytest.raises(error, match=match):
        refine_edges(image, inst, **change)


@pytest.mark.parametrize(
    ("image", "instances", "error", "match"),
    [
        ([[0, 1], [2, 3]], None, TypeError, "image must be a numpy array"),
        (np.zeros((32, 32, 2), np.uint8), None, ValueError, "image: 2-channel images"),
        (np.zeros((3, 32, 32), np.uint8), None, ValueError, "image: a 3-D stack"),
        (np.zeros((32, 32), np.complex64), None, ValueError, "unsupported pixel type"),
        (np.zeros((32, 31), np.uint8), None, ValueError, r"image has shape \(32, 31\)"),
        (None, [shapely.box(0, 0, 2, 2)], TypeError, "instances must be labelassist.Instances"),
    ],
)
def test_bad_image_or_instances(image, instances, error, match):
    good_image, good_instances = _good()
    with pytest.raises(error, match=match):
        refine_edges(
            good_image if image is None else image,
            good_instances if instances is None else instances,
        )


def test_missing_opencv_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if it were not installed
    image, inst = _good()
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        refine_edges(image, inst)
