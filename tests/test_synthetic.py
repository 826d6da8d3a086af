"""Tests for labelassist.synthetic: reproducibility, every parameter's effect, exact labels."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import shapely
from scipy import ndimage as ndi
from skimage.measure import regionprops

from labelassist.geometry import polygons_to_masks
from labelassist.instances import Instances
from labelassist.synthetic import DOMAIN_SHIFT, synthetic_dataset, synthetic_nuclei

SHAPE = (128, 128)
# no blur, no noise, flat background: the image shows the signal itself
CLEAN = {"blur": 0, "noise": 0, "background": "flat"}


def _make(seed=0, **kwargs):
    return synthetic_nuclei(kwargs.pop("shape", SHAPE), return_labels=True, seed=seed, **kwargs)


def _interior(labels):
    """Label ids of nuclei that do not touch the image border."""
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    ids = np.arange(1, labels.max() + 1)
    return ids[~np.isin(ids, border)]


# -- reproducibility ------------------------------------------------------------------------
def test_same_seed_gives_identical_output():
    a = _make(seed=3, dtype=np.uint16)
    b = _make(seed=3, dtype=np.uint16)
    assert np.array_equal(a[0], b[0])
    assert a[1] == b[1]
    assert np.array_equal(a[2], b[2])


def test_different_seeds_differ():
    a, b = _make(seed=1), _make(seed=2)
    assert not np.array_equal(a[0], b[0])
    assert not np.array_equal(a[2], b[2])


def test_generator_seed_is_accepted():
    a = _make(seed=np.random.default_rng(5))
    b = _make(seed=np.random.default_rng(5))
    assert np.array_equal(a[0], b[0])


# -- ground truth ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_polygons_rasterize_to_the_label_image(seed):
    image, inst, labels = _make(seed=seed, touching=0.8, overlap=0.3, irregularity=0.5)
    assert isinstance(inst, Instances)
    assert inst.image_shape == image.shape == labels.shape
    assert labels.dtype == np.int32
    n = len(inst)
    assert n > 0
    assert np.array_equal(np.unique(labels), np.arange(n + 1))  # ids 1..N, no gaps
    masks = polygons_to_masks(inst.polygons, SHAPE)
    expected = labels[None] == np.arange(1, n + 1)[:, None, None]
    assert np.array_equal(masks, expected)
    assert np.array_equal(inst.labels, np.zeros(n))
    assert np.array_equal(inst.scores, np.ones(n))
    assert shapely.is_valid(inst.polygons).all()


def test_instances_do_not_overlap():
    _, inst, _ = _make(seed=4, touching=1.0, overlap=0.5)
    tree = shapely.STRtree(inst.polygons)
    left, right = tree.query(inst.polygons, predicate="intersects")
    pairs = left < right
    overlap_area = shapely.area(
        shapely.intersection(inst.polygons[left[pairs]], inst.polygons[right[pairs]])
    )
    assert pairs.any()  # touching neighbours exist ...
    assert np.all(overlap_area == 0)  # ... but share no area
    assert polygons_to_masks(inst.polygons, SHAPE).sum(0).max() == 1


def test_each_instance_is_one_polygon_without_holes():
    _, inst, _ = _make(seed=6, touching=1.0, overlap=0.5)
    assert np.all(shapely.get_type_id(inst.polygons) == 3)
    assert np.all(shapely.get_num_interior_rings(inst.polygons) == 0)


# -- count ----------------------------------------------------------------------------------
def test_empty_image():
    image, inst, labels = _make(n=0)
    assert len(inst) == 0 and inst.image_shape == SHAPE
    assert not labels.any()
    assert image.shape == SHAPE and image.dtype == np.uint8


@pytest.mark.parametrize("n", [1, 7, 20])
def test_exact_count(n):
    assert len(_make(seed=n, n=n)[1]) == n


def test_count_range():
    counts = {len(_make(seed=s, n=(3, 6), shape=(96, 96))[1]) for s in range(12)}
    assert counts <= {3, 4, 5, 6}
    assert len(counts) >= 2


def test_default_count_covers_part_of_the_image():
    fractions = [(_make(seed=s)[2] > 0).mean() for s in range(4)]
    assert all(0.03 < f < 0.45 for f in fractions)


def test_too_many_nuclei_are_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="labelassist.synthetic"):
        _, inst, _ = _make(n=400, shape=(48, 48), radius=8, overlap=0.0)
    assert len(inst) < 400
    assert "placed" in caplog.text and "of 400" in caplog.text


# -- shape parameters -----------------------------------------------------------------------
def test_radius_sets_the_area():
    regular = {"irregularity": 0, "elongation": 1, "dividing": 0, "touching": 0, "overlap": 0}
    for lo, hi in [(4, 5), (10, 12)]:
        _, inst, labels = _make(seed=7, radius=(lo, hi), n=8, shape=(160, 160), **regular)
        areas = inst.areas[_interior(labels) - 1]
        assert areas.size
        # a digital disc of radius r holds about pi r^2 pixels (+- its perimeter / 2)
        assert areas.min() >= np.pi * lo**2 - np.pi * lo - 4
        assert areas.max() <= np.pi * hi**2 + np.pi * hi


def test_elongation_sets_the_axis_ratio():
    kw = {"irregularity": 0, "dividing": 0, "radius": 10, "n": 6, "touching": 0, "overlap": 0}
    for elong in (1.0, 2.5):
        _, _, labels = _make(seed=8, elongation=elong, shape=(160, 160), **kw)
        props = [p for p in regionprops(labels) if p.label in _interior(labels)]
        ratios = [p.axis_major_length / p.axis_minor_length for p in props]
        assert np.median(ratios) == pytest.approx(elong, rel=0.15)


def test_irregularity_lowers_convexity():
    def median_solidity(irregularity):
        _, _, labels = _make(seed=9, irregularity=irregularity, n=10, elongation=1, dividing=0)
        return np.median([p.solidity for p in regionprops(labels)])

    assert median_solidity(0.9) < median_solidity(0.0) - 0.03


def test_touching_creates_neighbours():
    def touching_fraction(touching):
        fractions = []
        for seed in range(4):
            _, _, labels = _make(seed=seed, touching=touching, n=12, dividing=0)
            grown = ndi.grey_dilation(labels, size=3)
            ids = np.unique(labels[(grown != labels) & (labels > 0)])
            fractions.append(ids.size / labels.max())
        return np.mean(fractions)

    assert touching_fraction(1.0) > touching_fraction(0.0) + 0.25


def test_overlap_lets_more_nuclei_into_a_crowded_image():
    def placed(overlap):
        return len(_make(seed=20, n=300, shape=(64, 64), radius=6, overlap=overlap)[1])

    assert placed(0.6) > placed(0.0) + 5


def test_dividing_nuclei_are_small_and_bright():
    kw = {"n": 10, "radius": 10, "intensity": 0.3, "texture": 0, **CLEAN}
    image, inst, _ = _make(seed=11, dividing=1.0, dtype=np.float32, **kw)
    assert inst.areas.max() < np.pi * (0.6 * 10) ** 2 + 2 * np.pi * 6
    normal_image, normal, _ = _make(seed=11, dividing=0.0, dtype=np.float32, **kw)
    assert image[image > 0.2].mean() > normal_image[normal_image > 0.2].mean()
    assert np.median(inst.areas) < np.median(normal.areas)


# -- appearance -----------------------------------------------------------------------------
def _nucleus_mean(image, labels):
    return image[labels > 0].astype(float).mean()


def test_intensity_sets_nucleus_brightness():
    kw = {"n": 10, "dividing": 0, "dtype": np.float32, **CLEAN}
    dim_image, _, dim_labels = _make(seed=12, intensity=0.2, **kw)
    bright_image, _, bright_labels = _make(seed=12, intensity=0.7, **kw)
    dim = _nucleus_mean(dim_image, dim_labels)
    bright = _nucleus_mean(bright_image, bright_labels)
    assert 0.1 < dim < 0.45
    assert bright > dim + 0.3


def test_texture_varies_intensity_inside_nuclei():
    def inner_cv(texture):
        image, _, labels = _make(seed=13, texture=texture, n=10, dividing=0, intensity=0.4,
                                 dtype=np.float32, **CLEAN)  # fmt: skip
        inner = ndi.binary_erosion(labels > 0, iterations=3)
        return image[inner].std() / image[inner].mean()

    assert inner_cv(1.0) > 2 * inner_cv(0.0)


def test_blur_smooths_edges():
    def edge_strength(blur):
        image, _, _ = _make(seed=14, blur=blur, noise=0, background="flat", dtype=np.float32)
        return np.abs(np.diff(image, axis=1)).max()

    assert edge_strength(3.0) < 0.5 * edge_strength(0.0)


def test_noise_raises_residual_std():
    def residual_std(noise):
        image, _, labels = _make(seed=15, noise=noise, blur=1, background="flat",
                                 dtype=np.float32)  # fmt: skip
        far = ~ndi.binary_dilation(labels > 0, iterations=6)
        return image[far].std()

    stds = [residual_std(v) for v in (0.0, 0.02, 0.1)]
    assert stds[0] < 1e-6  # flat background, no noise: constant
    assert stds[0] < stds[1] < stds[2]


@pytest.mark.parametrize("kind", ["gradient", "uneven"])
def test_background_kinds(kind):
    kw = {"n": 0, "blur": 0, "noise": 0, "dtype": np.float32}
    flat = _make(seed=16, background="flat", **kw)[0]
    other = _make(seed=16, background=kind, **kw)[0]
    assert np.ptp(flat) == 0
    assert np.ptp(other) > 0.005
    # a smooth field: neighbouring pixels differ far less than the whole range
    assert np.abs(np.diff(other, axis=0)).max() < 0.2 * np.ptp(other)


def test_background_is_chosen_per_image_from_a_sequence():
    kw = {"n": 0, "blur": 0, "noise": 0, "dtype": np.float32, "background": ("flat", "uneven")}
    ranges = [np.ptp(_make(seed=s, **kw)[0]) for s in range(10)]
    assert min(ranges) == 0 and max(ranges) > 0


# -- dtype ----------------------------------------------------------------------------------
def test_uint8_uses_the_range():
    image = _make(seed=17, dtype=np.uint8)[0]
    assert image.dtype == np.uint8 and image.max() > 100


def test_uint16_uses_a_realistic_part_of_the_range():
    for seed in range(3):
        image = _make(seed=seed, dtype=np.uint16)[0]
        assert image.dtype == np.uint16
        assert image.max() <= 4000  # a small part of the 16-bit range ...
        assert image.max() > 255  # ... but more than 8 bits
    maxima = [_make(seed=s, dtype=np.uint16)[0].max() for s in range(12)]
    assert np.ptp(maxima) > 500  # the range in use varies between images


def test_float32_is_within_unit_range():
    image = _make(seed=18, dtype=np.float32)[0]
    assert image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1 and image.max() > 0.3


def test_domain_shift_is_bigger_and_dimmer():
    def stats(**kwargs):
        areas, levels = [], []
        for seed in range(3):
            image, inst, labels = _make(seed=seed, shape=(160, 160), dtype=np.float32, **kwargs)
            areas.append(inst.areas)
            levels.append(_nucleus_mean(image, labels))
        return np.median(np.concatenate(areas)), np.mean(levels)

    base_area, base_level = stats()
    shift_area, shift_level = stats(**DOMAIN_SHIFT)
    assert shift_area > 2 * base_area
    assert shift_level < base_level


# -- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (0, 10)}, ValueError, "shape must be"),
        ({"shape": 5}, ValueError, "shape must be"),
        ({"shape": (64.5, 64)}, ValueError, r"shape must be \(height, width\) with two integers"),
        ({"n": -1}, ValueError, "n must be"),
        ({"n": (5, 2)}, ValueError, "n must be"),
        ({"n": 2.5}, ValueError, "n must be"),
        ({"radius": (8, 4)}, ValueError, "low <= high"),
        ({"radius": 0}, ValueError, "radius must lie within"),
        ({"radius": "big"}, ValueError, "radius must be"),
        ({"radius": (1, 2, 3)}, ValueError, "radius must be a number or a"),
        ({"irregularity": 1.5}, ValueError, "irregularity must lie within"),
        ({"elongation": 0.5}, ValueError, "elongation must lie within"),
        ({"touching": 2}, ValueError, r"touching must be a finite number in \[0, 1\]"),
        ({"overlap": 1.0}, ValueError, "overlap must be < 1"),
        ({"overlap": -0.1}, ValueError, r"overlap must be a finite number in \[0, 1\]"),
        ({"intensity": (0.5, 2)}, ValueError, "intensity must lie within"),
        ({"texture": -1}, ValueError, "texture must lie within"),
        ({"dividing": "some"}, ValueError, r"dividing must be a finite number in \[0, 1\]"),
        ({"blur": -1}, ValueError, "blur must lie within"),
        ({"noise": np.nan}, ValueError, "noise must be a number"),
        ({"background": "dark"}, ValueError, "background must be one of"),
        ({"background": ()}, ValueError, "background must be one of"),
        ({"dtype": np.int32}, TypeError, "dtype must be"),
        ({"dtype": "nonsense"}, TypeError, "dtype must be"),
    ],
)
def test_invalid_parameters(kwargs, error, match):
    shape = kwargs.pop("shape", SHAPE)
    with pytest.raises(error, match=match):
        synthetic_nuclei(shape, **kwargs)


# -- synthetic_dataset ----------------------------------------------------------------------
def test_dataset_files_match_the_generator(tmp_path):
    from labelassist.coco import read_coco
    from labelassist.io import read_image

    ds = synthetic_dataset(3, out=tmp_path, shape=(48, 64), seed=5, n=(2, 4), dtype=np.uint16)
    assert ds.image_root == tmp_path
    assert ds.categories == ["nucleus"]
    assert [r["id"] for r in ds.images] == [1, 2, 3]
    assert read_coco(tmp_path / "annotations.json") == ds
    for k, child in enumerate(np.random.SeedSequence(5).spawn(3)):
        image, inst = synthetic_nuclei((48, 64), n=(2, 4), dtype=np.uint16, seed=child)
        assert np.array_equal(read_image(ds.image_path(k + 1)), image)
        assert ds.instances[k + 1] == inst
        assert ds.images[k]["height"] == 48 and ds.images[k]["width"] == 64


def test_dataset_is_reproducible(tmp_path):
    a = synthetic_dataset(2, out=tmp_path / "a", shape=(32, 32), seed=1)
    b = synthetic_dataset(2, out=tmp_path / "b", shape=(32, 32), seed=1)
    c = synthetic_dataset(2, out=tmp_path / "c", shape=(32, 32), seed=2)
    assert a == b and a != c
    assert (tmp_path / "a" / "image_00001.png").read_bytes() == (
        tmp_path / "b" / "image_00001.png"
    ).read_bytes()


def test_dataset_float_tiff(tmp_path):
    from labelassist.io import read_image

    ds = synthetic_dataset(1, out=tmp_path, shape=(32, 32), image_format="tif", dtype=np.float32)
    assert ds.images[0]["file_name"] == "image_00000.tif"
    assert read_image(ds.image_path(1)).dtype == np.float32


def test_empty_dataset(tmp_path):
    ds = synthetic_dataset(0, out=tmp_path)
    assert len(ds) == 0 and ds.instances == {}
    assert (tmp_path / "annotations.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.json"]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((-1,), {}, ValueError, "n_images must be an integer >= 0"),
        ((2.5,), {}, ValueError, "n_images must be an integer >= 0"),
        (
            (1,),
            {"image_format": "jpg"},
            ValueError,
            r"image_format must be one of \['png', 'tif'\]",
        ),
        ((1,), {"dtype": np.float32}, ValueError, "float32 cannot be stored as PNG"),
        ((1,), {"return_labels": True}, TypeError, "does not take return_labels"),
        ((1,), {"shape": (0, 8)}, ValueError, "shape must be"),
        ((1,), {"radius": -3}, ValueError, "radius must lie within"),
    ],
)
def test_dataset_invalid_parameters(tmp_path, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        synthetic_dataset(*args, out=tmp_path, **kwargs)
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("image_format", ["png", "tif"])
def test_dataset_files_have_normal_permissions(tmp_path, image_format):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        synthetic_dataset(2, out=tmp_path, shape=(32, 32), n=(1, 2), image_format=image_format)
    finally:
        os.umask(umask)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {f".{image_format}", ".json"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files)  # not mkstemp's 0600
    assert not [p for p in files if p.name.startswith(".")]  # no temp file left behind
