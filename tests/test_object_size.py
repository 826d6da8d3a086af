"""Object-size normalisation: sizes, rescaling, the model's input fields and predict(object_size=)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.draw import disk
from skimage.measure import block_reduce
from skimage.transform import resize
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.geometry import masks_to_polygons, polygons_to_masks
from labelassist.instances import Instances
from labelassist.model import load_model, model_from_bytes
from labelassist.model.checkpoint import (
    checkpoint_to_bytes,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from labelassist.model.scale import (
    MAX_FACTOR,
    grid_factors,
    median_object_size,
    object_sizes,
    rescale_image,
    rescale_instances,
    scale_factor,
)
from labelassist.synthetic import synthetic_image

# -- sizes -----------------------------------------------------------------------------------


def test_object_sizes_are_equivalent_circle_diameters():
    labels = np.zeros((80, 80), np.int32)
    for k, (r, c, radius) in enumerate([(20, 20, 8), (50, 50, 15), (20, 60, 4)], start=1):
        labels[disk((r, c), radius)] = k
    inst = Instances(masks_to_polygons(labels, tolerance=0), None, None, labels.shape)
    counts = np.bincount(labels.ravel())[1:]
    expected = 2 * np.sqrt(counts / np.pi)
    np.testing.assert_allclose(object_sizes(inst), expected)
    # a digitised disk of radius r has about diameter 2r
    np.testing.assert_allclose(object_sizes(inst), [16, 30, 8], rtol=0.08)
    assert median_object_size(inst) == pytest.approx(expected[0])


def test_median_object_size_over_many_and_empty():
    a = Instances([shapely.box(0, 0, 2, 2)], None, None, (8, 8))
    b = Instances(
        [shapely.box(0, 0, 4, 4), shapely.Polygon(), shapely.box(0, 0, 6, 6)], None, None, (8, 8)
    )
    sizes = 2 * np.sqrt(np.array([4.0, 16.0, 36.0]) / math.pi)
    assert median_object_size([a, b]) == pytest.approx(float(np.median(sizes)))
    assert median_object_size(iter([a, b])) == pytest.approx(float(np.median(sizes)))
    assert median_object_size([]) is None
    assert median_object_size([Instances.empty((4, 4))]) is None
    assert median_object_size(Instances([shapely.Polygon()], None, None, (4, 4))) is None
    assert object_sizes(b)[1] == 0.0


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: object_sizes(np.zeros(3)), TypeError, "instances must be an Instances"),
        (lambda: median_object_size(5), TypeError, "items must be an Instances or an iterable"),
        (lambda: median_object_size("ab"), TypeError, "items must be"),
        (lambda: rescale_image(np.zeros((4, 4)), 0), ValueError, "factor must be a positive"),
        (lambda: rescale_image(np.zeros((4, 4)), float("nan")), ValueError, "factor must be"),
        (lambda: rescale_image(np.zeros((4, 4)), "2"), ValueError, "factor must be"),
        (lambda: rescale_image(np.zeros((0, 4)), 2), ValueError, "non-empty"),
        (lambda: rescale_image(np.zeros((2, 4, 4, 1)), 2), ValueError, r"\(H, W\) or \(H, W, C\)"),
        (lambda: rescale_instances(np.zeros(2), 2), TypeError, "instances must be an Instances"),
        (lambda: rescale_instances(Instances.empty((4, 4)), -1), ValueError, "factor must be"),
        (lambda: rescale_instances(Instances.empty((4, 4)), 2, (0, 3)), ValueError, "image_shape"),
        (lambda: scale_factor(0, 3), ValueError, "net_size must be a positive"),
        (lambda: scale_factor(3, -1), ValueError, "size must be a positive"),
    ],
)
def test_scale_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_scale_factor_clips_and_ignores_unknown_sizes():
    assert scale_factor(30, 60) == 0.5
    assert scale_factor(30, 10) == 3.0
    assert scale_factor(None, 10) == 1.0 and scale_factor(30, None) == 1.0
    assert scale_factor(100, 1) == MAX_FACTOR
    assert scale_factor(1, 100) == 1 / MAX_FACTOR


# -- rescaling images ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int16, np.float32, np.int32, np.int64, np.float16]
)
@pytest.mark.parametrize("factor", [0.5, 1 / 3, 1.7, 2.0])
def test_rescale_image_shape_dtype_and_values(dtype, factor):
    rng = np.random.default_rng(1)
    image = (rng.random((31, 45, 3)) * 200).astype(dtype)
    out = rescale_image(image, factor)
    assert out.shape == (round(31 * factor), round(45 * factor), 3)
    assert out.dtype == image.dtype
    # independently: scikit-image's resize (anti-aliased when shrinking) agrees in the mean
    # and is close pixel by pixel away from the border
    ref = resize(
        image.astype(np.float64), out.shape, order=1, anti_aliasing=factor < 1, preserve_range=True
    )
    assert abs(out.astype(np.float64).mean() - ref.mean()) < 2.0
    err = np.abs(out.astype(np.float64) - ref)[3:-3, 3:-3]
    assert np.median(err) < (12 if factor < 1 else 1.5)


def test_rescale_image_halving_is_block_averaging_and_doubling_is_bilinear():
    rng = np.random.default_rng(2)
    image = rng.random((40, 60)).astype(np.float32)
    np.testing.assert_allclose(
        rescale_image(image, 0.5), block_reduce(image, (2, 2), np.mean), rtol=1e-5, atol=1e-6
    )
    # a checkerboard does not alias when shrunk: every output pixel is its mean
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    assert set(np.unique(rescale_image(board, 0.5))) <= {127, 128}
    up = rescale_image(image, 2.0)
    ref = resize(image, (80, 120), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(up, ref, atol=1e-5)


def test_rescale_image_identity_bool_and_many_channels():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert rescale_image(image, 1.0) is image
    mask = np.zeros((20, 20), bool)
    mask[4:14, 6:16] = True
    small = rescale_image(mask, 0.5)
    assert small.dtype == bool
    np.testing.assert_array_equal(small, mask[::2, ::2])
    many = np.random.default_rng(0).random((10, 12, 7)).astype(np.float32)
    out = rescale_image(many, 0.5)
    assert out.shape == (5, 6, 7)
    np.testing.assert_allclose(out[..., 3], rescale_image(many[..., 3], 0.5), rtol=1e-5)


def test_grid_factors_are_the_rounded_grids():
    assert grid_factors((10, 15), 0.5) == (8 / 15, 0.5)
    assert grid_factors((7, 7), 3) == (3.0, 3.0)


# -- rescaling instances ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))), st.integers(2, 3))
def test_rescale_instances_by_an_integer_repeats_every_pixel(mask, k):
    polygons = masks_to_polygons(mask, tolerance=0)
    inst = Instances(polygons, [0], [0.5], mask.shape, extra={"id": ["a"]})
    out = rescale_instances(inst, k)
    expected = np.kron(mask, np.ones((k, k), bool))
    assert out.image_shape == expected.shape
    np.testing.assert_array_equal(polygons_to_masks(out.polygons, out.image_shape)[0], expected)
    coords = shapely.get_coordinates(out.polygons)
    np.testing.assert_array_equal(coords, np.round(coords))  # exact pixel-boundary polygons
    assert out.extra["id"].tolist() == ["a"] and out.scores.tolist() == [0.5]


def test_rescale_instances_shrinking_matches_area_averaged_masks():
    labels = np.zeros((120, 160), np.int32)
    rng = np.random.default_rng(3)
    for k in range(1, 9):
        labels[
            disk(
                (rng.integers(15, 105), rng.integers(15, 145)),
                rng.integers(6, 14),
                shape=labels.shape,
            )
        ] = k
    polygons = masks_to_polygons(labels, tolerance=0)
    inst = Instances(polygons, np.arange(8) % 2, np.linspace(0.5, 1, 8), labels.shape)
    out = rescale_instances(inst, 0.5)
    assert out.image_shape == (60, 80)
    np.testing.assert_array_equal(out.labels, inst.labels)
    got = polygons_to_masks(out.polygons, out.image_shape)
    for k, g in enumerate(got, start=1):
        ref = block_reduce((labels == k).astype(float), (2, 2), np.mean) >= 0.5
        iou = (g & ref).sum() / (g | ref).sum()
        assert iou > 0.85
    coords = shapely.get_coordinates(out.polygons)
    np.testing.assert_array_equal(coords, np.round(coords))
    # sizes scale with the factor
    assert median_object_size(out) == pytest.approx(median_object_size(inst) / 2, rel=0.05)


def test_rescale_instances_vanishing_objects_stay_aligned_as_empty():
    inst = Instances([shapely.box(0, 0, 1, 1), shapely.box(2, 2, 10, 10)], [0, 1], None, (16, 16))
    out = rescale_instances(inst, 0.25)
    assert len(out) == 2 and out.polygons[0].is_empty and not out.polygons[1].is_empty
    assert out.image_shape == (4, 4)
    loose = rescale_instances(inst, 0.25, exact=False)
    assert loose.polygons[0].equals(shapely.box(0, 0, 0.25, 0.25))
    explicit = rescale_instances(inst, 0.5, (8, 9))
    assert explicit.polygons[1].bounds == (1.0, 1.0, 6.0, 5.0)  # x 1.125-5.625, y 1-5


# -- the model's input fields ----------------------------------------------------------------


def test_set_input_validates_and_round_trips_through_checkpoints(tmp_path):
    model = tiny_model()
    assert (model.object_size, model.data_object_size, model.channels) == (None, None, None)
    model.set_input(object_size=17.5, data_object_size=40, channels=[1, 2])
    assert (model.object_size, model.data_object_size, model.channels) == (17.5, 40.0, (1, 2))
    model.set_input(data_object_size=None)  # the others untouched
    assert (model.object_size, model.data_object_size, model.channels) == (17.5, None, (1, 2))
    model.set_input(data_object_size=33)
    loaded = load_model(model.save(tmp_path / "m.pt"), device="cpu")
    assert (loaded.object_size, loaded.data_object_size, loaded.channels) == (17.5, 33.0, (1, 2))
    again = model_from_bytes(checkpoint_to_bytes(model), device="cpu")
    assert again.meta["input"] == model.meta["input"]


def test_old_checkpoints_without_input_load_as_none(tmp_path):
    model = tiny_model()
    data = make_checkpoint(model.net, model.meta)
    del data["meta"]["input"]
    path = save_checkpoint(data, tmp_path / "old.pt")
    loaded = load_model(path, device="cpu")
    assert (loaded.object_size, loaded.data_object_size, loaded.channels) == (None, None, None)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"object_size": -3}, "object_size must be a positive"),
        ({"object_size": "big"}, "object_size must be a positive"),
        ({"channels": [0, 0]}, "channels must be 1, 2 or 3 distinct"),
        ({"colour": 1}, r"unknown keys \['colour'\]"),
        ({"mask_threshold": 1.5}, "mask_threshold'\\] must be a probability within"),
        ("big", "meta\\['input'\\] must be a dict"),
    ],
)
def test_damaged_input_meta_is_refused_on_load(tmp_path, bad, match):
    model = tiny_model()
    data = make_checkpoint(model.net, model.meta)
    data["meta"]["input"] = bad
    path = save_checkpoint(data, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="damaged labelassist checkpoint: .*" + match) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"object_size": 0}, "object_size must be a positive number of pixels"),
        ({"object_size": -2.5}, "object_size must be a positive number"),
        ({"object_size": "big"}, "object_size must be a positive number"),
        ({"object_size": float("nan")}, "object_size must be a positive number"),
        ({"object_size": float("inf")}, "object_size must be a positive number"),
        ({"object_size": True}, "object_size must be a positive number"),
        ({"object_size": "auto"}, "object_size must be a positive number"),  # not storable
        ({"data_object_size": 0}, "data_object_size must be a positive number"),
        ({"channels": 1.5}, "channels must be 1, 2 or 3 distinct"),
        ({"channels": [0, 1, 2, 3]}, "channels must be 1, 2 or 3 distinct"),
        ({"channels": [-1]}, "channels must be 1, 2 or 3 distinct"),
        ({"channels": "1,2"}, "channels must be 1, 2 or 3 distinct"),
        ({"mask_threshold": 0}, "mask_threshold must be a probability within"),
        ({"mask_threshold": 1.0}, "mask_threshold must be a probability within"),
        ({"mask_threshold": "high"}, "mask_threshold must be a probability within"),
        ({"mask_threshold": True}, "mask_threshold must be a probability within"),
    ],
)
def test_set_input_bad_values(kwargs, match):
    model = tiny_model()
    with pytest.raises(ValueError, match=match) as info:
        model.set_input(**kwargs)
    assert "\n" not in str(info.value)
    assert model.meta["input"] == {
        "object_size": None,
        "data_object_size": None,
        "channels": None,
        "mask_threshold": None,
    }


def test_model_meta_with_bad_input_is_refused():
    from labelassist.model import Model, build_maskrcnn

    torch.manual_seed(0)
    with pytest.raises(ValueError, match="meta: object_size must be a positive"):
        Model(
            build_maskrcnn(num_classes=2),
            ["cell"],
            arch="maskrcnn_resnet18_fpn",
            meta={"input": {"object_size": 0}},
            device="cpu",
        )


# -- predict(object_size=) ---------------------------------------------------------------------

#: the starter's training objects' median size (examples/train_starter.py's default data)
STARTER_SIZE = 17.33


@pytest.fixture(scope="module")
def starter():
    model = load_model("starter", device="cpu")
    return model.set_input(object_size=STARTER_SIZE, data_object_size=None, channels=None)


def _masks(inst: Instances) -> np.ndarray:
    return polygons_to_masks(inst.polygons, inst.image_shape)


def _centroids(masks: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(masks.shape[1:])
    area = masks.sum(axis=(1, 2))
    return np.stack([(masks * cols).sum((1, 2)) / area, (masks * rows).sum((1, 2)) / area], 1)


def test_predict_at_half_scale_equals_predicting_the_halved_image_mapped_back(starter):
    """Objects twice the model's size: the network sees the image halved, and the masks
    come back on the original pixels, within one pixel of the halved image (two of the
    original) of the halved image's masks repeated 2 x 2 (np.kron, independent of the code
    under test)."""
    from scipy import ndimage

    image, truth = synthetic_image("nuclei", (160, 224), size=2 * STARTER_SIZE, seed=9100)
    big = starter.predict(image, object_size=2 * STARTER_SIZE, tolerance=0)
    small = starter.predict(rescale_image(image, 0.5), tolerance=0)
    assert big.image_shape == (160, 224) and small.image_shape == (80, 112)
    assert len(big) == len(small) >= 8
    np.testing.assert_allclose(big.scores, small.scores, rtol=1e-6)  # the same forward
    np.testing.assert_array_equal(big.labels, small.labels)
    coords = shapely.get_coordinates(big.polygons)
    np.testing.assert_array_equal(coords, np.round(coords))  # the original integer grid
    assert coords.min() >= 0 and (coords.max(axis=0) <= [224, 160]).all()
    got = _masks(big)
    expected = np.stack([np.kron(m, np.ones((2, 2), bool)) for m in _masks(small)])
    near = np.ones((3, 3), bool)
    for g, e in zip(got, expected, strict=True):
        assert (g & e).sum() / (g | e).sum() > 0.85
        band = ndimage.binary_dilation(e, near) & ~ndimage.binary_erosion(e, near)
        # differences along the outline (a few pixels elsewhere: a probability near the
        # threshold, read at finer points, may open a pin hole)
        assert (g ^ e)[~band].sum() <= 0.01 * e.sum()
    # no offset: mapping boxes by b / f instead of (b + 0.5) / f - 0.5 would move every
    # object by 0.5 px (per object the 2 x 2 blocks leave +-0.4 px of noise)
    shift = _centroids(got) - _centroids(expected)
    assert np.abs(shift.mean(axis=0)).max() < 0.2
    # and the masks fit the truth
    truth_masks = _masks(truth)
    best = [max(((g & t).sum() / (g | t).sum()) for t in truth_masks) for g in got]
    assert np.median(best) > 0.85


def test_predict_at_double_scale_equals_predicting_the_doubled_image_mapped_back(starter):
    image, _ = synthetic_image("nuclei", (96, 128), size=STARTER_SIZE / 2, seed=9101)
    got = starter.predict(image, object_size=STARTER_SIZE / 2, tolerance=0)
    doubled = starter.predict(rescale_image(image, 2.0), tolerance=0)
    assert got.image_shape == (96, 128) and len(got) == len(doubled) >= 5
    np.testing.assert_allclose(got.scores, doubled.scores, rtol=1e-6)
    # each original pixel is 2 x 2 pixels of the doubled image: its mean says the answer
    for g, d in zip(_masks(got), _masks(doubled), strict=True):
        e = block_reduce(d.astype(float), (2, 2), np.mean) >= 0.5
        assert (g & e).sum() / (g | e).sum() > 0.75
    shift = _centroids(_masks(got)) - _centroids(
        np.stack([block_reduce(d.astype(float), (2, 2), np.mean) >= 0.5 for d in _masks(doubled)])
    )
    assert np.abs(shift.mean(axis=0)).max() < 0.15


def test_tiles_work_in_the_rescaled_image(starter):
    """Tiles of the rescaled image are the tiles of the halved image: the same detections,
    masks on the original pixels (as the halved image's tiled masks repeated 2 x 2)."""
    image, _ = synthetic_image("nuclei", (256, 320), size=2 * STARTER_SIZE, seed=9102)
    # rescaled to 128 x 160: tiles of 80 px with 32 px overlap (4 tiles). The comparison is of
    # two pixelations of ~9 px masks, made at torchvision's 0.5 (at the starter's own 0.6
    # one small mask's pixelations agreed at IoU 0.77: the edge pixels decide at that size;
    # with the mirrored pass, the default, the least agreement is 0.795, without it 0.807)
    opts = {"tile_size": 80, "tile_overlap": 32, "mask_threshold": 0.5}
    tiled = starter.predict(image, object_size=2 * STARTER_SIZE, **opts)
    halved = starter.predict(rescale_image(image, 0.5), **opts)
    assert tiled.image_shape == (256, 320) and len(tiled) == len(halved) >= 10
    np.testing.assert_allclose(tiled.scores, halved.scores, rtol=1e-6)
    for g, h in zip(_masks(tiled), _masks(halved), strict=True):
        e = np.kron(h, np.ones((2, 2), bool))
        assert (g & e).sum() / (g | e).sum() > 0.75
    coords = shapely.get_coordinates(tiled.polygons)
    assert coords.min() >= 0 and (coords.max(axis=0) <= [320, 256]).all()
    # and tiling changes little against the whole rescaled image
    whole = starter.predict(image, object_size=2 * STARTER_SIZE, mask_threshold=0.5)
    ious = np.array([[(x & y).sum() / (x | y).sum() for y in _masks(tiled)] for x in _masks(whole)])
    assert (ious.max(axis=1) > 0.7).mean() >= 0.85


def test_original_window_is_the_pixels_whose_centres_fall_in_the_tile():
    from labelassist.model.roi_masks import original_window

    for shape, scaled in [((100, 90), (50, 45)), ((37, 41), (111, 123)), ((64, 70), (29, 31))]:
        fy, fx = scaled[0] / shape[0], scaled[1] / shape[1]
        for window in [(0, 0, scaled[1], scaled[0]), (7, 3, 20, 17), (5, 11, 6, 12)]:
            cols = [j for j in range(shape[1]) if window[0] <= (j + 0.5) * fx < window[2]]
            rows = [i for i in range(shape[0]) if window[1] <= (i + 0.5) * fy < window[3]]
            x0, y0, x1, y1 = original_window(window, shape, scaled)
            assert list(range(x0, x1)) == cols and list(range(y0, y1)) == rows


def test_data_object_size_is_the_default(starter):
    image, _ = synthetic_image("nuclei", (128, 128), size=2 * STARTER_SIZE, seed=9103)
    explicit = starter.predict(image, object_size=2 * STARTER_SIZE)
    starter.set_input(data_object_size=2 * STARTER_SIZE)
    try:
        assert starter.predict(image) == explicit
    finally:
        starter.set_input(data_object_size=None)
    assert starter.predict(image) != explicit  # native scale: different results


def test_lists_take_a_scale_per_image(starter):
    big, _ = synthetic_image("nuclei", (128, 128), size=2 * STARTER_SIZE, seed=9104)
    plain, _ = synthetic_image("nuclei", (96, 112), size=STARTER_SIZE, seed=9105)
    sizes = [2 * STARTER_SIZE, None]  # batch_size=1: batched images are padded alike
    both = starter.predict([big, plain], object_size=sizes, batch_size=1)
    assert both[0] == starter.predict(big, object_size=2 * STARTER_SIZE)
    assert both[1] == starter.predict(plain)
    auto = starter.predict([big, plain], object_size="auto", batch_size=1)
    assert auto == [
        starter.predict(big, object_size="auto"),
        starter.predict(plain, object_size="auto"),
    ]


@pytest.mark.parametrize("scale", [2, 3])
def test_auto_estimates_the_size_within_a_fraction(starter, scale):
    image, truth = synthetic_image(
        "nuclei", (256, 256), size=scale * STARTER_SIZE, seed=9110 + scale
    )
    true = median_object_size(truth)
    estimate = starter.estimate_object_size(image)
    assert 0.75 * true < estimate < 1.33 * true
    auto = starter.predict(image, object_size="auto")
    given = starter.predict(image, object_size=true)
    # "auto" finds the objects as the true size does
    hits = lambda inst: sum(  # noqa: E731
        max(((m & t).sum() / (m | t).sum()) for m in _masks(inst)) >= 0.5 for t in _masks(truth)
    )
    assert hits(auto) >= 0.9 * len(truth) and hits(given) >= 0.9 * len(truth)


def test_auto_without_objects_keeps_the_native_pass(starter):
    image = np.zeros((64, 64), np.uint8)
    assert starter.estimate_object_size(image) is None
    assert len(starter.predict(image, object_size="auto")) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"object_size": 0}, "object_size must be a positive number of pixels"),
        ({"object_size": -4}, "object_size must be a positive number"),
        ({"object_size": "big"}, r"object_size must be a positive number .*\"auto\""),
        ({"object_size": float("nan")}, "object_size must be a positive number"),
        ({"object_size": float("inf")}, "object_size must be a positive number"),
        ({"object_size": True}, "object_size must be a positive number"),
        ({"object_size": [20]}, "object_size must be a positive number"),  # one image
        ({"object_size": np.array(3.0)}, "object_size must be a positive number"),
    ],
)
def test_predict_bad_object_size(starter, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        starter.predict(np.zeros((32, 32), np.uint8), **kwargs)
    assert "\n" not in str(info.value)


def test_predict_object_size_list_errors_and_unknown_model_size(starter):
    images = [np.zeros((32, 32), np.uint8)] * 2
    with pytest.raises(ValueError, match=r"object_size has 3 entries for 2 images"):
        starter.predict(images, object_size=[10, 20, 30])
    with pytest.raises(ValueError, match=r"object_size\[1\] must be a positive number"):
        starter.predict(images, object_size=[10, 0])
    model = tiny_model()
    with pytest.raises(
        ValueError, match="needs the object size the model was trained at.*set_input"
    ):
        model.predict(images[0], object_size=30)
    with pytest.raises(ValueError, match="needs the object size"):
        model.predict(images[0], object_size="auto")
    assert len(model.predict(images[0], score_threshold=0.99)) == 0  # None: fine


# -- preannotate and the command line --------------------------------------------------------


def test_preannotate_takes_object_size(starter, tmp_path):
    from labelassist.bulk import preannotate

    image, _ = synthetic_image("nuclei", (128, 160), size=2 * STARTER_SIZE, seed=9120)
    ds = preannotate([image], starter, object_size=2 * STARTER_SIZE, progress=False)
    assert ds.instances[1] == starter.predict(image, object_size=2 * STARTER_SIZE)
    auto = preannotate([image], starter, object_size="auto", progress=False)
    assert auto.instances[1] == starter.predict(image, object_size="auto")
    with pytest.raises(ValueError, match="object_size must be a positive number"):
        preannotate([image], starter, object_size=-1, progress=False)
    with pytest.raises(ValueError, match="object_size must be one size for all images"):
        preannotate([image], starter, object_size=[30], progress=False)


def _annotations(path) -> list:
    import json

    return json.loads(path.read_text())["annotations"]


def test_cli_object_size(starter, tmp_path, capsys):
    import imageio.v3 as iio

    from labelassist.bulk import preannotate
    from labelassist.cli import main
    from labelassist.coco import read_coco

    image, _ = synthetic_image("nuclei", (128, 160), size=2 * STARTER_SIZE, seed=9121)
    (tmp_path / "imgs").mkdir()
    iio.imwrite(tmp_path / "imgs" / "a.png", image)
    model_path = starter.save(tmp_path / "m.pt")
    out = tmp_path / "p.json"
    base = ["preannotate", str(tmp_path / "imgs"), "--model", str(model_path), "--no-progress"]
    assert main([*base, "--out", str(out), "--object-size", f"{2 * STARTER_SIZE}"]) == 0
    ref = tmp_path / "ref.json"
    preannotate(tmp_path / "imgs", starter, out=ref, object_size=2 * STARTER_SIZE, progress=False)
    assert _annotations(out) == _annotations(ref)
    assert len(read_coco(out).instances[1]) == len(
        starter.predict(image, object_size=2 * STARTER_SIZE)
    )
    assert main([*base, "--out", str(tmp_path / "q.json"), "--object-size", "AUTO"]) == 0
    capsys.readouterr()
    for bad in ("0", "-3", "big", "nan", "inf"):
        assert main([*base, "--out", str(tmp_path / "r.json"), "--object-size", bad]) == 2
        err = capsys.readouterr().err
        assert "argument --object-size: must be a positive number of pixels" in err
    plain = tiny_model().save(tmp_path / "plain.pt")
    args = ["preannotate", str(tmp_path / "imgs"), "--model", str(plain), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "s.json"), "--object-size", "30"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the object size the model was trained at" in err[0]


def test_enlarging_beyond_the_pixel_limit_is_refused(starter, monkeypatch):
    monkeypatch.setenv("LABELASSIST_MAX_IMAGE_PIXELS", "10000")
    image = np.zeros((64, 64), np.uint8)  # 4096 px; x4 in each direction: 65536 px
    with pytest.raises(
        ValueError,
        match=r"enlarge the 64 x 64 image by 4 to 256 x 256 pixels, over the limit of 10000",
    ) as info:
        starter.predict(image, object_size=STARTER_SIZE / 4)
    assert "\n" not in str(info.value)
    assert len(starter.predict(image, object_size=STARTER_SIZE / 1.5)) == 0  # 96 x 96: fine


def test_a_shrunk_image_keeps_its_original_detection_budget():
    """Detections kept per tile follow the original area when an image is shrunk (a dense
    field of small objects must not lose objects to a smaller cap), the new area when it
    is enlarged."""
    from labelassist.model.passes import _Pending, _tile_area
    from labelassist.model.tiling import Tile

    tile = Tile(y0=0, x0=0, y1=100, x1=200)  # 100 x 200 px of the rescaled image
    assert _tile_area(_Pending((100, 200), False), tile) == 20000
    shrunk = _Pending((400, 800), False, scaled=(100, 200))  # factor 1/4
    assert _tile_area(shrunk, tile) == 20000 * 16
    enlarged = _Pending((50, 100), False, scaled=(100, 200))
    assert _tile_area(enlarged, tile) == 20000


def test_rescale_instances_scales_keypoints_and_keeps_visibility():
    points = np.array([[[2.0, 3.0, 2.0], [5.5, 6.0, 0.0]]])
    inst = Instances([shapely.box(1, 2, 7, 8)], [0], [1.0], (10, 20), keypoints=points)
    out = rescale_instances(inst, 2.0)
    # the image grows from 20 x 10 to 40 x 20: x and y double, visibility is unchanged
    np.testing.assert_allclose(out.keypoints, [[[4.0, 6.0, 2.0], [11.0, 12.0, 0.0]]])
    assert out.polygons[0].bounds == (2.0, 4.0, 14.0, 16.0)
