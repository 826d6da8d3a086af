"""Tests for the synthetic generator v2: every image kind's ground truth, sizes and looks."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from scipy import ndimage as ndi
from skimage.measure import regionprops

from labelassist.geometry import polygons_to_masks
from labelassist.instances import Instances
from labelassist.synthetic import (
    KINDS,
    WORMS,
    synthetic_brightfield,
    synthetic_cells,
    synthetic_dataset,
    synthetic_epithelium,
    synthetic_histology,
    synthetic_image,
    synthetic_nuclei,
    synthetic_piles,
    synthetic_rods,
)

SHAPE = (64, 64)
# a small size per kind that fills a 64 x 64 image with several objects
SMALL = {
    "nuclei": 10,
    "cells": 16,
    "epithelium": 10,
    "brightfield": 14,
    "histology": 10,
    "rods": 12,
    "worms": 40,
    "piles": 12,
}
RGB_KINDS = {"cells", "histology", "piles"}


def _make(kind, seed=0, shape=SHAPE, **kwargs):
    kwargs.setdefault("size", SMALL[kind])
    return synthetic_image(kind, shape, seed=seed, return_labels=True, **kwargs)


def _coco_masks(polygons, shape):
    """Rasterize with pycocotools: exteriors filled, holes cut out, (N, H, W) bool."""
    h, w = shape

    def fill(ring):
        coords = np.asarray(ring.coords)[:-1].ravel().tolist()
        return mask_utils.decode(mask_utils.frPyObjects([coords], h, w))[..., 0].astype(bool)

    out = np.zeros((len(polygons), h, w), dtype=bool)
    for k, geom in enumerate(polygons):
        for part in shapely.get_parts(geom):
            hole = np.zeros(shape, dtype=bool)
            for ring in part.interiors:
                hole |= fill(ring)
            out[k] |= fill(part.exterior) & ~hole
    return out


def _stack(labels):
    return labels[None] == np.arange(1, labels.max() + 1)[:, None, None]


def _adjacent_pairs(labels):
    """Pairs (a, b), a < b, of labels that share a pixel edge."""
    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        sel = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[sel], b[sel], strict=True)}
    return pairs


def _complete(labels):
    """Ids of objects touching neither the border nor another object."""
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    touching = {i for pair in _adjacent_pairs(labels) for i in pair}
    ids = np.arange(1, labels.max() + 1)
    return [i for i in ids if i not in border and i not in touching]


# -- ground truth: every kind -------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_polygons_rasterize_to_the_label_image(kind, seed):
    image, inst, labels = _make(kind, seed=seed)
    assert isinstance(inst, Instances)
    assert inst.image_shape == labels.shape == SHAPE == image.shape[:2]
    assert labels.dtype == np.int32
    n = len(inst)
    assert n > 1
    assert np.array_equal(np.unique(labels), np.arange(n + 1))  # ids 1..N, no gaps
    expected = _stack(labels)
    assert np.array_equal(polygons_to_masks(inst.polygons, SHAPE), expected)
    assert np.array_equal(_coco_masks(inst.polygons, SHAPE), expected)  # pycocotools agrees
    assert shapely.is_valid(inst.polygons).all()
    assert np.array_equal(inst.labels, np.zeros(n)) and np.array_equal(inst.scores, np.ones(n))


@pytest.mark.parametrize("kind", KINDS)
def test_instances_do_not_overlap(kind):
    _, inst, _ = _make(kind, seed=3)
    assert polygons_to_masks(inst.polygons, SHAPE).sum(0).max() == 1
    tree = shapely.STRtree(inst.polygons)
    left, right = tree.query(inst.polygons, predicate="intersects")
    pairs = left < right
    shared = shapely.intersection(inst.polygons[left[pairs]], inst.polygons[right[pairs]])
    assert np.all(shapely.area(shared) == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_image_other_seed_other_image(kind):
    a, b, c = _make(kind, seed=5), _make(kind, seed=5), _make(kind, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2]) and a[1] == b[1]
    assert not np.array_equal(a[0], c[0])
    generator = _make(kind, seed=np.random.default_rng(5))
    assert np.array_equal(generator[0], _make(kind, seed=np.random.default_rng(5))[0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dtype_shape_and_channels(kind, dtype):
    image, inst, _ = _make(kind, seed=2, shape=(40, 56), dtype=dtype)
    assert image.dtype == dtype
    assert image.shape == ((40, 56, 3) if kind in RGB_KINDS else (40, 56))
    assert inst.image_shape == (40, 56)
    if dtype == np.float32:
        assert 0 <= image.min() and image.max() <= 1
    if dtype == np.uint16:
        assert image.max() <= 4000  # the realistic part of the 16-bit range
    assert np.ptp(image.astype(float)) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_without_return_labels_two_values(kind):
    out = synthetic_image(kind, SHAPE, seed=0, size=SMALL[kind])
    assert len(out) == 2 and isinstance(out[1], Instances)


# -- sizes from 5 to 100 px ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "shape"),
    [(kind, (48, 48)) for kind in KINDS],
)
def test_five_pixel_objects_are_exact(kind, shape):
    _, inst, labels = _make(kind, shape=shape, size=5)
    assert len(inst) > 5
    assert np.array_equal(polygons_to_masks(inst.polygons, shape), _stack(labels))


@pytest.mark.parametrize("kind", KINDS)
def test_hundred_pixel_objects_are_exact(kind):
    extents = []
    for seed in (0, 1):
        _, inst, labels = _make(kind, seed=seed, shape=(160, 160), size=100)
        assert len(inst) >= 1
        assert np.array_equal(polygons_to_masks(inst.polygons, (160, 160)), _stack(labels))
        extents += [max(b[2] - b[0], b[3] - b[1]) for b in inst.boxes]
    assert max(extents) > 60  # big objects indeed (some are cut by the border)


def _diameters(labels):
    ids = _complete(labels)
    return 2 * np.sqrt(np.bincount(labels.ravel())[ids] / np.pi)


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("cells", {"touching": 0}),
        ("brightfield", {"touching": 0}),
        ("histology", {"touching": 0}),
        ("piles", {"density": 0.15}),
    ],
)
@pytest.mark.parametrize("size", [(8.0, 10.0), (20.0, 24.0)])
def test_size_sets_the_object_diameter(kind, kwargs, size):
    found = np.concatenate(
        [_diameters(_make(kind, seed=s, shape=(96, 96), size=size, **kwargs)[2]) for s in range(3)]
    )
    assert found.size >= 3
    # a digitised outline holds the area of its disc +- about half its perimeter
    assert found.min() >= size[0] - 1.5 and found.max() <= size[1] + 1.5


def test_epithelium_cell_size_follows_size():
    def median_diameter(size):
        labels = synthetic_epithelium(
            (128, 128), size=size, coverage=1, return_labels=True, seed=1
        )[2]
        interior = labels[1:-1, 1:-1]
        ids = np.setdiff1d(np.unique(interior), np.unique(labels[[0, -1]]))
        ids = np.setdiff1d(ids, np.unique(labels[:, [0, -1]]))
        return np.median(2 * np.sqrt(np.bincount(labels.ravel())[ids] / np.pi))

    assert median_diameter(10) == pytest.approx(10, rel=0.2)
    assert median_diameter(24) == pytest.approx(24, rel=0.2)


def test_rods_length_and_width():
    _, _, labels = synthetic_rods(
        (128, 128), size=(18, 22), aspect=4, bend=0, touching=0, return_labels=True, seed=0
    )
    props = [p for p in regionprops(labels) if p.label in _complete(labels)]
    assert len(props) >= 3
    lengths = np.array([p.feret_diameter_max for p in props])
    assert lengths.min() >= 16 and lengths.max() <= 24
    widths = np.array([p.area for p in props]) / lengths
    assert np.median(widths) == pytest.approx(20 / 4, rel=0.3)


def test_worms_are_long_thin_and_curved():
    _, inst, labels = synthetic_rods((160, 160), n=4, return_labels=True, seed=1, **WORMS)
    props = regionprops(labels)
    assert max(p.feret_diameter_max for p in props) > 40
    assert np.median([p.solidity for p in props]) < 0.8  # bent, not straight sticks


# -- touching where asked -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cells", "brightfield", "histology", "rods"])
def test_touching_zero_keeps_a_gap(kind):
    for seed in range(3):
        labels = _make(kind, seed=seed, touching=0.0)[2]
        assert labels.max() > 1
        assert not _adjacent_pairs(labels)


@pytest.mark.parametrize("kind", ["cells", "brightfield", "histology", "rods"])
def test_touching_one_makes_neighbours(kind):
    labels = _make(kind, seed=0, shape=(96, 96), touching=1.0)[2]
    assert len(_adjacent_pairs(labels)) >= 3


def test_epithelium_is_packed():
    labels = synthetic_epithelium(SHAPE, size=10, coverage=1, return_labels=True, seed=0)[2]
    neighbours = np.bincount(np.array(sorted(_adjacent_pairs(labels))).ravel())
    assert (labels > 0).mean() > 0.97
    assert np.median(neighbours[1:]) >= 4  # honeycomb-like: about six neighbours


def test_epithelium_coverage_leaves_room_without_tissue():
    fractions = [
        (
            synthetic_epithelium((96, 96), size=10, coverage=0.5, return_labels=True, seed=s)[2] > 0
        ).mean()
        for s in range(3)
    ]
    assert all(0.3 < f < 0.65 for f in fractions)


def test_piles_occlude_and_label_the_visible_part():
    image, inst, labels = synthetic_piles(SHAPE, size=14, density=2.5, return_labels=True, seed=0)
    assert (labels > 0).mean() > 0.75
    assert len(_adjacent_pairs(labels)) > len(inst)  # a dense pile: many contacts
    # occluded objects show a visible part smaller than a whole object
    areas = inst.areas
    assert areas.min() < 0.5 * np.pi * 7**2 < areas.max()


# -- looks --------------------------------------------------------------------------------
def test_cells_channels_cytoplasm_and_nucleus():
    image, _, labels = synthetic_cells(
        SHAPE, size=24, channels=(0, 2), noise=0, blur=0, return_labels=True, seed=0
    )
    cyto, unused, nucleus = (image[..., c].astype(float) for c in range(3))
    assert not unused.any()
    assert cyto[labels > 0].mean() > cyto[labels == 0].mean() + 20  # the cells are bright
    # the nucleus channel is bright inside cells only, and not everywhere in them
    inside = nucleus[labels > 0]
    assert inside.max() > nucleus[labels == 0].max() + 20
    assert (inside > nucleus[labels == 0].max() + 20).mean() < 0.6


def test_cells_without_a_nucleus_channel():
    image = synthetic_cells(SHAPE, size=20, channels=(1, None), seed=0)[0]
    assert image[..., 1].any() and not image[..., 0].any() and not image[..., 2].any()


def test_epithelium_membranes_are_bright():
    image, _, labels = synthetic_epithelium(
        SHAPE, size=12, coverage=1, blur=0, noise=0, return_labels=True, seed=0
    )
    wall = (ndi.grey_dilation(labels, size=3) != ndi.grey_erosion(labels, size=3)) & (labels > 0)
    middle = ndi.binary_erosion(~wall, iterations=2) & (labels > 0)
    assert image[wall].mean() > 2 * image[middle].mean()


@pytest.mark.parametrize("mode", ["phase", "brightfield"])
def test_brightfield_bright_background(mode):
    image, _, labels = synthetic_brightfield(
        SHAPE, size=16, mode=mode, background="flat", noise=0, return_labels=True, seed=0
    )
    far = ~ndi.binary_dilation(labels > 0, iterations=6)
    assert image[far].mean() > 100  # a bright field
    if mode == "phase":  # dark cells in a bright halo
        inner = ndi.binary_erosion(labels > 0, iterations=2)
        halo = ndi.binary_dilation(labels > 0, iterations=2) & ~(labels > 0)
        assert image[inner].mean() < image[far].mean() < image[halo].mean()


def test_histology_colours():
    image, _, labels = synthetic_histology(SHAPE, size=10, stain=0, return_labels=True, seed=0)
    rgb = image.astype(float)
    nuclei = rgb[ndi.binary_erosion(labels > 0)]
    stroma = rgb[~ndi.binary_dilation(labels > 0, iterations=3) & (rgb.sum(-1) < 700)]
    assert nuclei.mean(0)[2] > nuclei.mean(0)[0]  # haematoxylin: blue-purple
    assert stroma.mean(0)[0] > stroma.mean(0)[1]  # eosin: pink, red over green
    assert nuclei.sum(-1).mean() < stroma.sum(-1).mean()  # nuclei are darker


def test_histology_stain_varies_between_images():
    means = [synthetic_histology(SHAPE, size=10, stain=1, seed=s)[0].mean((0, 1)) for s in range(4)]
    assert np.ptp(np.array(means), axis=0).max() > 10


def test_rods_appearances():
    fluo = synthetic_rods(SHAPE, n=6, appearance="fluorescence", seed=0, return_labels=True)
    phase = synthetic_rods(SHAPE, n=6, appearance="phase", seed=0, return_labels=True)
    for (image, _, labels), brighter in ((fluo, True), (phase, False)):
        inside, outside = image[labels > 0].mean(), image[labels == 0].mean()
        assert (inside > outside) == brighter


def test_piles_gray():
    image = synthetic_piles(SHAPE, size=12, color=False, seed=0)[0]
    assert image.shape == SHAPE


# -- the dispatcher and the dataset mix ----------------------------------------------------
def test_synthetic_image_matches_the_generators():
    direct = synthetic_cells(SHAPE, size=16, seed=4)
    via = synthetic_image("cells", SHAPE, size=16, seed=4)
    assert np.array_equal(direct[0], via[0]) and direct[1] == via[1]
    worms = synthetic_image("worms", (96, 96), seed=1)
    assert np.array_equal(worms[0], synthetic_rods((96, 96), seed=1, **WORMS)[0])
    # size means the diameter for nuclei too
    nuclei = synthetic_image("nuclei", SHAPE, size=(10, 16), n=4, seed=2)
    assert np.array_equal(nuclei[0], synthetic_nuclei(SHAPE, radius=(5, 8), n=4, seed=2)[0])


def test_dataset_mix_of_kinds(tmp_path):
    from labelassist.coco import read_coco
    from labelassist.io import read_image

    ds = synthetic_dataset(6, out=tmp_path, shape=(48, 48), seed=3, kinds=KINDS, size=12)
    assert ds.categories == ["object"]
    assert read_coco(tmp_path / "annotations.json").instances == ds.instances
    kinds = [r["kind"] for r in ds.images]
    assert set(kinds) <= set(KINDS) and len(set(kinds)) >= 3
    for k, (record, child) in enumerate(
        zip(ds.images, np.random.SeedSequence(3).spawn(6), strict=True)
    ):
        rng = np.random.default_rng(child)
        assert record["kind"] == KINDS[rng.integers(len(KINDS))]
        image, inst = synthetic_image(record["kind"], (48, 48), seed=rng, size=12)
        assert np.array_equal(read_image(ds.image_path(k + 1)), image)
        assert ds.instances[k + 1] == inst


def test_dataset_one_kind_with_a_category(tmp_path):
    ds = synthetic_dataset(2, out=tmp_path, shape=(32, 32), kinds="histology", category="nucleus")
    assert ds.categories == ["nucleus"] and {r["kind"] for r in ds.images} == {"histology"}


# -- hypothesis: any small image is exact --------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    height=st.integers(8, 40),
    width=st.integers(8, 40),
    low=st.floats(4.0, 20.0),
    spread=st.floats(1.0, 2.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_small_image_is_exact(kind, height, width, low, spread, seed):
    image, inst, labels = synthetic_image(
        kind, (height, width), size=(low, low * spread), seed=seed, return_labels=True
    )
    assert image.shape[:2] == labels.shape == (height, width)
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert np.array_equal(polygons_to_masks(inst.polygons, (height, width)), _stack(labels))


# -- the gallery example --------------------------------------------------------------------
def test_gallery_example_draws_every_kind_asked(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import imageio.v3 as iio

    script = Path(__file__).resolve().parents[1] / "examples" / "synthetic_gallery.py"
    args = ["--kinds", "cells", "worms", "--n-images", "2", "--shape", "48", "48"]
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "synthetic_cells.png",
        "synthetic_worms.png",
    ]
    picture = iio.imread(tmp_path / "synthetic_cells.png")
    assert picture.ndim == 3 and np.ptp(picture) > 100  # not blank
    wrong = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "--kinds", "cats"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert wrong.returncode == 2 and "unknown kinds ['cats']" in wrong.stderr
