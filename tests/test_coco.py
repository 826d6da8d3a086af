"""Tests for labelassist.coco: COCO read/write, Dataset, label images."""

from __future__ import annotations

import json
import os
import tracemalloc
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely
import tifffile
from gallery import mixed_coco_items
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from skimage import draw

from labelassist.coco import (
    CocoFormatError,
    Dataset,
    _convert,
    _emit,
    _rules,
    coco_to_instances,
    instances_to_coco,
    read_coco,
    write_coco,
)
from labelassist.coco import write as _coco_write
from labelassist.geometry import masks_to_polygons, polygons_to_masks
from labelassist.instances import Instances

pytestmark = pytest.mark.filterwarnings(
    # pycocotools' C extension with numpy 2 (decode/annToMask), not our code
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


# -- test data ----------------------------------------------------------------------------------
def _random_masks(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """n random ellipses, then a donut and a two-part object: (n + 2, H, W) bool."""
    h, w = shape
    masks = np.zeros((n + 2, h, w), dtype=bool)
    for k in range(n):
        r, c = rng.integers(4, h - 4), rng.integers(4, w - 4)
        rr, cc = draw.ellipse(r, c, rng.integers(2, 6), rng.integers(2, 6), shape=shape)
        masks[k, rr, cc] = True
    masks[n, 2:12, 2:12] = True
    masks[n, 5:8, 5:9] = False  # a hole
    masks[n + 1, h - 6 : h - 2, 1:4] = True  # two parts
    masks[n + 1, h - 4 : h - 1, w - 5 : w - 1] = True
    return masks


def _instances(seed: int, shape: tuple[int, int] = (40, 48), n: int = 4) -> Instances:
    rng = np.random.default_rng(seed)
    masks = _random_masks(rng, shape, n)
    polygons = masks_to_polygons(masks, tolerance=0)
    labels = rng.integers(0, 2, len(polygons))
    scores = rng.uniform(0.05, 1.0, len(polygons)).astype(np.float32)
    return Instances(polygons, labels, scores, shape)


def _record(image_id: int, shape: tuple[int, int], **extra) -> dict:
    return {"id": image_id, "file_name": f"img/{image_id}.png", "height": shape[0],
            "width": shape[1], **extra}  # fmt: skip


def _dataset() -> Dataset:
    a = _instances(1)
    b = _instances(2, shape=(32, 36), n=2)
    images = [
        _record(1, a.image_shape, license=3, date_captured="2024-01-01"),
        _record(5, b.image_shape),
        _record(9, (16, 16)),  # annotated, no objects
    ]
    return Dataset(["cell", "debris"], images, {1: a, 5: b, 9: Instances.empty((16, 16))})


def _write_json(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _coco(images=None, annotations=None, categories=None) -> dict:
    return {
        "images": images if images is not None else [_record(1, (6, 6))],
        "annotations": annotations if annotations is not None else [],
        "categories": categories if categories is not None else [{"id": 1, "name": "cell"}],
    }


def _square_ann(ann_id=1, image_id=1, category_id=1, **kw) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id,
            "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]], **kw}  # fmt: skip


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("segmentation", ["polygon", "rle"])
def test_round_trip(tmp_path, segmentation):
    ds = _dataset()
    out = ds.to_coco(tmp_path / "sub" / "labels.json", segmentation=segmentation)
    assert out == tmp_path / "sub" / "labels.json"
    back = read_coco(out)
    assert back == ds
    assert back.image_root == out.parent
    assert back.images[0]["license"] == 3  # other record keys kept
    assert [p.geom_type for p in back.instances[1].polygons[-2:]] == ["Polygon", "MultiPolygon"]
    assert len(back.instances[1].polygons[-2].interiors) == 1  # the hole survived


def test_polygon_mode_keeps_float_vertices_and_writes_holes_as_rle(tmp_path):
    tri = shapely.Polygon([(0.25, 0.5), (7.75, 1.125), (3.5, 6.875)])
    two = shapely.MultiPolygon([shapely.box(8.5, 0.5, 10.25, 3), shapely.box(12, 4, 13.5, 7)])
    donut = shapely.box(1, 8, 9, 15).difference(shapely.box(3, 10, 6, 13))
    inst = Instances([tri, two, donut], [0, 0, 0], [0.9, 0.25, 1.0], (16, 16))
    ds = Dataset(["cell"], [_record(1, (16, 16))], {1: inst})
    out = ds.to_coco(tmp_path / "a.json")
    anns = json.loads(out.read_text())["annotations"]
    (ring,) = anns[0]["segmentation"]
    assert sorted(ring[0::2]) == [0.25, 3.5, 7.75] and sorted(ring[1::2]) == [0.5, 1.125, 6.875]
    assert isinstance(anns[1]["segmentation"], list) and len(anns[1]["segmentation"]) == 2
    assert isinstance(anns[2]["segmentation"], dict)  # holes -> RLE
    assert isinstance(anns[2]["segmentation"]["counts"], str)
    assert [a["score"] for a in anns] == [0.9, 0.25, 1.0]
    back = read_coco(out).instances[1]
    assert back[:2] == inst[:2]  # polygons exact, floats preserved
    assert back.polygons[2].equals(donut)  # lattice donut exact through RLE


def test_rle_mode_writes_only_rle(tmp_path):
    out = _dataset().to_coco(tmp_path / "a.json", segmentation="rle")
    anns = json.loads(out.read_text())["annotations"]
    assert anns and all(isinstance(a["segmentation"]["counts"], str) for a in anns)


@pytest.mark.parametrize("segmentation", ["polygon", "rle"])
def test_pycocotools_reads_what_we_write(tmp_path, segmentation):
    ds = _dataset()
    out = ds.to_coco(tmp_path / "a.json", segmentation=segmentation)
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [1, 5, 9]
    assert [c["id"] for c in coco.loadCats(coco.getCatIds())] == [1, 2]
    ann_ids = coco.getAnnIds()
    assert sorted(ann_ids) == list(range(1, len(ann_ids) + 1))
    for image_id in (1, 5, 9):
        inst = ds.instances[image_id]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert len(anns) == len(inst)
        masks = inst.masks()
        for k, ann in enumerate(anns):
            theirs = coco.annToMask(ann).astype(bool)
            np.testing.assert_array_equal(theirs, masks[k])
            assert ann["area"] == masks[k].sum()
            rows, cols = np.nonzero(masks[k])
            x, y = cols.min(), rows.min()
            assert ann["bbox"] == [x, y, cols.max() + 1 - x, rows.max() + 1 - y]
            assert ann["category_id"] == inst.labels[k] + 1
            assert ann["iscrowd"] == 0
            assert np.float32(ann["score"]) == inst.scores[k]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    masks=st.tuples(st.integers(1, 3), st.integers(1, 10), st.integers(1, 10)).flatmap(
        lambda shape: arrays(bool, shape)
    ),
    segmentation=st.sampled_from(["polygon", "rle"]),
)
def test_any_mask_round_trips_exactly(tmp_path, masks, segmentation):
    """Random pixel soup (holes, diagonal touches, border pixels) survives a round trip,
    and pycocotools rasterizes what we write to the same pixels."""
    masks = masks[masks.any(axis=(1, 2))]
    h, w = masks.shape[1:]
    inst = Instances(masks_to_polygons(masks, tolerance=0), None, None, (h, w))
    ds = Dataset(["cell"], [_record(1, (h, w))], {1: inst})
    out = ds.to_coco(tmp_path / "a.json", segmentation=segmentation)
    back = read_coco(out)
    assert back == ds
    np.testing.assert_array_equal(back.instances[1].masks(), masks)
    coco = COCO(str(out))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == len(masks)
    for ann, mask in zip(anns, masks, strict=True):
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
        assert ann["area"] == mask.sum()


def test_area_is_mask_area_not_box_area(tmp_path):
    tri_mask = np.tri(10, dtype=bool)  # lower triangle: 55 pixels, box 10 x 10
    inst = Instances(masks_to_polygons(tri_mask, tolerance=0), [0], [1.0], (10, 10))
    (ann,) = instances_to_coco(inst, 1)
    assert ann["area"] == 55.0
    assert ann["bbox"] == [0.0, 0.0, 10.0, 10.0]


# -- files written by other tools ---------------------------------------------------------------
def test_reads_uncompressed_rle_and_crowd(tmp_path):
    # 3 x 4 image, column-major runs: 1 background, 2 object (rows 1-2 of column 0), ...
    mask = np.array([[0, 0, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0]], dtype=bool)
    counts = [1, 2, 3, 3, 3]
    crowd = {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [3, 4], "counts": counts}}  # fmt: skip
    data = _coco([_record(1, (3, 4))], [crowd, _square_ann(ann_id=3, score=0.5)])
    data["annotations"][1]["segmentation"] = [[0, 0, 1, 0, 1, 1, 0, 1]]
    ds = read_coco(_write_json(tmp_path, data))
    inst = ds.instances[1]
    np.testing.assert_array_equal(inst.masks()[0], mask)
    assert inst.extra["iscrowd"].tolist() == [True, False]
    assert inst.scores.tolist() == [1.0, 0.5]
    out = ds.to_coco(tmp_path / "again.json")
    anns = json.loads(out.read_text())["annotations"]
    assert [a["iscrowd"] for a in anns] == [1, 0]
    assert isinstance(anns[0]["segmentation"], dict)  # crowd written as RLE
    assert read_coco(out) == ds


def test_reads_compressed_rle_from_pycocotools(tmp_path):
    rng = np.random.default_rng(3)
    wrap = np.zeros((1, 30, 33), dtype=bool)
    wrap[0, -2:, 4] = wrap[0, :3, 5] = True  # one column-major run across two columns
    full = np.ones((1, 30, 33), dtype=bool)
    corner = np.zeros((1, 30, 33), dtype=bool)
    corner[0, -1, -1] = True
    masks = np.concatenate([_random_masks(rng, (30, 33), 3), wrap, full, corner])
    anns = []
    for k, m in enumerate(masks):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode()
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "segmentation": rle})
    ds = read_coco(_write_json(tmp_path, _coco([_record(1, (30, 33))], anns)))
    np.testing.assert_array_equal(ds.instances[1].masks(), masks)
    assert "iscrowd" not in ds.instances[1].extra


def test_coco_to_instances_bytes_counts_and_empty():
    m = np.zeros((5, 6), dtype=bool)
    m[1:4, 2:5] = True
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert isinstance(rle["counts"], bytes)
    ann = {"id": 1, "category_id": 4, "segmentation": rle, "score": 0.75}
    inst = coco_to_instances([ann], {"id": 1, "height": 5, "width": 6}, {4: 2})
    np.testing.assert_array_equal(inst.masks()[0], m)
    assert inst.labels.tolist() == [2] and inst.scores.tolist() == [0.75]
    empty = coco_to_instances([], {"id": 1, "height": 5, "width": 6}, {4: 0})
    assert len(empty) == 0 and empty.image_shape == (5, 6)


def test_gapped_unordered_category_ids_and_background(tmp_path):
    cats = [{"id": 7, "name": "b"}, {"id": 0, "name": "_background_"}, {"id": 3, "name": "a"}]
    anns = [_square_ann(1, category_id=7), _square_ann(2, category_id=3),
            _square_ann(3, category_id=0)]  # fmt: skip
    with pytest.warns(UserWarning, match="skipped 1 annotation.*background"):
        ds = read_coco(_write_json(tmp_path, _coco(annotations=anns, categories=cats)))
    assert ds.categories == ["a", "b"]
    assert ds.instances[1].labels.tolist() == [1, 0]
    out = ds.to_coco(tmp_path / "b.json")
    written = json.loads(out.read_text())
    assert written["categories"][0] == {"id": 1, "name": "a", "supercategory": ""}
    assert [a["category_id"] for a in written["annotations"]] == [2, 1]


@pytest.mark.parametrize("name", ["background", "Background", "__background__", " BACKGROUND "])
def test_every_background_name_of_check_classes_is_dropped_on_read(tmp_path, name):
    # one rule with projects and models (labelassist.checks.check_classes)
    cats = [{"id": 1, "name": name}, {"id": 2, "name": "cell"}]
    anns = [_square_ann(1, category_id=1), _square_ann(2, category_id=2)]
    with pytest.warns(UserWarning, match="skipped 1 annotation.*background"):
        ds = read_coco(_write_json(tmp_path, _coco(annotations=anns, categories=cats)))
    assert ds.categories == ["cell"] and ds.instances[1].labels.tolist() == [0]
    with pytest.raises(ValueError, match="background is not a class"):
        Dataset([name, "cell"], [])


def test_multi_ring_polygons_are_unioned(tmp_path):
    anns = [
        # two disjoint rings -> MultiPolygon
        {"id": 1, "image_id": 1, "category_id": 1,
         "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2], [3, 3, 5, 3, 5, 5, 3, 5]]},
        # overlapping rings -> their union
        {"id": 2, "image_id": 1, "category_id": 1,
         "segmentation": [[0, 0, 4, 0, 4, 2, 0, 2], [2, 0, 6, 0, 6, 2, 2, 2]]},
        # a self-intersecting bowtie -> two triangles
        {"id": 3, "image_id": 1, "category_id": 1,
         "segmentation": [[0, 0, 4, 4, 4, 0, 0, 4]]},
    ]  # fmt: skip
    ds = read_coco(_write_json(tmp_path, _coco([_record(1, (8, 8))], anns)))
    polys = ds.instances[1].polygons
    assert polys[0].geom_type == "MultiPolygon" and polys[0].area == 8.0
    assert polys[1].equals(shapely.box(0, 0, 6, 2))
    assert polys[2].is_valid and polys[2].area == 8.0
    assert all(p.is_valid for p in polys)


def test_read_warns_and_skips_empty_and_degenerate(tmp_path):
    anns = [
        _square_ann(1),
        _square_ann(2, segmentation=[]),
        _square_ann(3, segmentation=[[]]),
        _square_ann(4, segmentation=[[0, 0, 2, 2, 4, 4]]),  # collinear: zero area
        _square_ann(5, segmentation={"size": [6, 6], "counts": [36]}),  # no pixels
    ]
    with pytest.warns(UserWarning) as record:
        ds = read_coco(_write_json(tmp_path, _coco(annotations=anns)))
    messages = sorted(str(w.message) for w in record)
    assert any("skipped 3 annotation(s) with an empty segmentation" in m for m in messages)
    assert any("skipped 1 annotation(s) with a zero-area" in m for m in messages)
    assert len(ds.instances[1]) == 1


# -- broken input -------------------------------------------------------------------------------
def _with(data, path, value):
    """A copy of ``data`` with ``data[path[0]][path[1]]... = value`` (value _DELETE: delete)."""
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    elif isinstance(target, list) and path[-1] == len(target):
        target.append(value)
    else:
        target[path[-1]] = value
    return data


_DELETE = object()
_GOOD = _coco(annotations=[_square_ann(1)])
_IMG = ("images", 0)
_ANN = ("annotations", 0)

BROKEN = [
    ("not json", "{images: [", "not a JSON file"),
    ("list", [_square_ann(1)], "JSON list"),
    ("string", "hello", "expected a JSON object"),
    ("no images", _with(_GOOD, ("images",), _DELETE), r"missing key\(s\) \['images'\]"),
    ("no annotations", _with(_GOOD, ("annotations",), _DELETE), "missing key"),
    ("no categories", _with(_GOOD, ("categories",), _DELETE), "missing key"),
    ("images not list", _with(_GOOD, ("images",), {}), "'images' must be a list"),
    ("image not object", _with(_GOOD, _IMG, 3), r"images\[0\] must be an object"),
    ("image no file_name", _with(_GOOD, (*_IMG, "file_name"), _DELETE), "image 1: missing key"),
    ("image no id", _with(_GOOD, (*_IMG, "id"), _DELETE), r"images\[0\]'?: missing key"),
    ("image id str", _with(_GOOD, (*_IMG, "id"), "a"), "id must be an int"),
    ("image dup", _with(_GOOD, ("images", 1), _record(1, (6, 6))), "duplicate image id 1"),
    ("file_name type", _with(_GOOD, (*_IMG, "file_name"), 5), "file_name must be"),
    ("escape ..", _with(_GOOD, (*_IMG, "file_name"), "../x.png"), "leaves the image folder"),
    ("escape abs", _with(_GOOD, (*_IMG, "file_name"), "/etc/x.png"), "absolute"),
    ("escape drive", _with(_GOOD, (*_IMG, "file_name"), "C:\\x.png"), "absolute"),
    ("escape inner", _with(_GOOD, (*_IMG, "file_name"), "a/../../x.png"), "leaves"),
    ("height 0", _with(_GOOD, (*_IMG, "height"), 0), "height must be a positive int"),
    ("width neg", _with(_GOOD, (*_IMG, "width"), -3), "width must be a positive int"),
    ("width str", _with(_GOOD, (*_IMG, "width"), "6"), "width must be a positive int"),
    ("category no name", _with(_GOOD, ("categories", 0, "name"), _DELETE), "missing key"),
    ("category id str", _with(_GOOD, ("categories", 0, "id"), "1"), "id must be an int"),
    ("category name empty", _with(_GOOD, ("categories", 0, "name"), ""), "non-empty str"),
    ("category dup id", _with(_GOOD, ("categories", 1), {"id": 1, "name": "x"}),
     "duplicate category id 1"),
    ("category dup name", _with(_GOOD, ("categories", 1), {"id": 2, "name": "cell"}),
     "duplicate category names"),
    ("ann no segmentation", _with(_GOOD, (*_ANN, "segmentation"), _DELETE),
     r"annotation 1: missing key\(s\) \['segmentation'\]"),
    ("ann no image_id", _with(_GOOD, (*_ANN, "image_id"), _DELETE), "missing key"),
    ("ann id float", _with(_GOOD, (*_ANN, "id"), 1.5), "id must be an int"),
    ("ann dup", _with(_GOOD, ("annotations", 1), _square_ann(1)), "duplicate annotation id 1"),
    ("unknown image", _with(_GOOD, (*_ANN, "image_id"), 9), "unknown image_id 9"),
    ("unknown category", _with(_GOOD, (*_ANN, "category_id"), 9), "unknown category_id 9"),
    ("seg number", _with(_GOOD, (*_ANN, "segmentation"), 5), "segmentation must be a list"),
    ("seg flat", _with(_GOOD, (*_ANN, "segmentation"), [0, 0, 2, 0, 2, 2]), "list of rings"),
    ("seg text", _with(_GOOD, (*_ANN, "segmentation"), [[0, "a", 2, 0, 2, 2]]),
     "must be numbers"),
    ("seg nan", _with(_GOOD, (*_ANN, "segmentation"), [[0, float("nan"), 2, 0, 2, 2]]),
     "annotation 1 \\(image 1\\): polygon has NaN"),
    ("seg inf", _with(_GOOD, (*_ANN, "segmentation"), [[0, 0, 2, float("inf"), 2, 2]]),
     "NaN or infinite"),
    ("seg odd", _with(_GOOD, (*_ANN, "segmentation"), [[0, 0, 2, 0, 2, 2, 5]]),
     r"odd number of coordinates \(7\)"),
    ("seg 2 points", _with(_GOOD, (*_ANN, "segmentation"), [[0, 0, 2, 0]]), "fewer than 3"),
    ("rle size", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 5], "counts": [30]}),
     r"RLE size \[6, 5\] does not match .* \[6, 6\]"),
    ("rle no counts", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6]}),
     "needs 'size' and 'counts'"),
    ("rle sum", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6], "counts": [3, 4]}),
     "RLE counts sum to 7, expected height\\*width = 36"),
    ("rle negative", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6], "counts": [-1, 37]}),
     "non-negative ints"),
    ("rle string sum", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6], "counts": "12"}),
     "RLE counts sum to 3"),
    ("rle string bad", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6], "counts": "0 "}),
     "malformed"),
    ("rle string cut", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6], "counts": "R"}),
     "malformed"),
    ("rle unicode", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6], "counts": "é"}),
     "not ASCII"),
    ("rle counts type", _with(_GOOD, (*_ANN, "segmentation"), {"size": [6, 6], "counts": 36}),
     "RLE counts must be"),
    ("score", _with(_GOOD, (*_ANN, "score"), 1.5), r"score must be a number in \[0, 1\]"),
    ("score text", _with(_GOOD, (*_ANN, "score"), "high"), "score must be"),
    ("iscrowd", _with(_GOOD, (*_ANN, "iscrowd"), 2), "iscrowd must be 0 or 1"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "match"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_input(tmp_path, data, match):
    path = tmp_path / "broken.json"
    path.write_text(data if isinstance(data, str) and data.startswith("{") else json.dumps(data))
    with pytest.raises(CocoFormatError, match=match) as info:
        read_coco(path)
    assert str(path) in str(info.value)


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO file not found"):
        read_coco(tmp_path / "nope.json")


def test_read_not_utf8(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(CocoFormatError, match="not a JSON file"):
        read_coco(path)


def test_coco_to_instances_errors():
    record = {"id": 1, "height": 6, "width": 6}
    with pytest.raises(CocoFormatError, match="image_record must be a dict"):
        coco_to_instances([], {"height": 6}, {1: 0})
    with pytest.raises(CocoFormatError, match="height must be a positive int"):
        coco_to_instances([], {"id": 1, "height": 0, "width": 6}, {1: 0})
    with pytest.raises(CocoFormatError, match=r"annotations\[0\] must be a dict"):
        coco_to_instances([[1, 2]], record, {1: 0})
    with pytest.raises(CocoFormatError, match="unknown category_id 1"):
        coco_to_instances([_square_ann(1)], record, {2: 0})
    with pytest.raises(CocoFormatError, match="missing 'segmentation'"):
        coco_to_instances([{"id": 1, "category_id": 1}], record, {1: 0})
    with pytest.warns(UserWarning, match="empty segmentation"):
        inst = coco_to_instances([_square_ann(1, segmentation=[])], record, {1: 0})
    assert len(inst) == 0


# -- writing ------------------------------------------------------------------------------------
def test_write_warns_on_empty_geometry(tmp_path):
    inst = Instances(
        [shapely.box(0, 0, 2, 2), shapely.Polygon(), shapely.box(20, 20, 30, 30)],
        [0, 0, 0], None, (8, 8),
    )  # fmt: skip
    for segmentation in ("polygon", "rle"):  # empty, and outside the image: no pixel
        with pytest.warns(UserWarning, match="skipped 2 empty instance"):
            (ann,) = instances_to_coco(inst, 1, segmentation=segmentation)
        assert ann["area"] == 4.0
    ds = Dataset(["cell"], [_record(1, (8, 8))], {1: inst})
    with pytest.warns(UserWarning, match="skipped 2 empty instance"):
        out = ds.to_coco(tmp_path / "a.json")
    assert len(json.loads(out.read_text())["annotations"]) == 1
    umask = os.umask(0o022)
    os.umask(umask)
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~umask)  # not mkstemp's 0600
    out.chmod(0o640)
    with pytest.warns(UserWarning, match="skipped 2 empty instance"):
        ds.to_coco(out)
    assert oct(out.stat().st_mode & 0o777) == oct(0o640)  # an existing file keeps its mode


def test_instances_to_coco_ids_and_empty():
    inst = _instances(4)
    anns = instances_to_coco(inst, 12, first_id=100)
    assert [a["id"] for a in anns] == list(range(100, 100 + len(inst)))
    assert {a["image_id"] for a in anns} == {12}
    assert instances_to_coco(Instances.empty((5, 5)), 1) == []


def test_instances_to_coco_errors():
    inst = Instances.empty((4, 4))
    with pytest.raises(TypeError, match="instances must be an Instances"):
        instances_to_coco([], 1)
    with pytest.raises(TypeError, match="image_id must be an int"):
        instances_to_coco(inst, "1")
    with pytest.raises(ValueError, match="first_id must be an int >= 1"):
        instances_to_coco(inst, 1, first_id=0)
    with pytest.raises(ValueError, match="segmentation must be 'polygon' or 'rle'"):
        instances_to_coco(inst, 1, segmentation="mask")


def test_streaming_write_from_generator(tmp_path):
    n_images = 300
    base = _instances(7, shape=(24, 24), n=1)

    def items():
        for i in range(1, n_images + 1):
            keep = np.arange(len(base)) < (i % 4)  # 0..3 instances per image
            yield _record(i, (24, 24)), (base[keep] if i % 5 else None)

    out = write_coco(tmp_path / "many.json", ["cell", "debris"], items(), info={"v": 1})
    data = json.loads(out.read_text())
    assert data["info"] == {"v": 1}
    assert len(data["images"]) == n_images
    expected = sum(i % 4 for i in range(1, n_images + 1) if i % 5)
    assert [a["id"] for a in data["annotations"]] == list(range(1, expected + 1))
    ds = read_coco(out)
    assert len(ds) == n_images
    assert sum(len(v) for v in ds.instances.values()) == expected


def test_streaming_write_memory_does_not_grow_with_images(tmp_path):
    inst = _instances(8, shape=(40, 48), n=4)

    def peak(n_images: int) -> tuple[int, int]:
        items = ((_record(i, inst.image_shape), inst) for i in range(1, n_images + 1))
        tracemalloc.start()
        out = write_coco(tmp_path / f"{n_images}.json", ["cell", "debris"], items)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, out.stat().st_size

    # annotations are converted a chunk of images at a time: memory holds one chunk
    chunk = _coco_write._CHUNK_IMAGES
    small, _ = peak(2 * chunk)
    large, size = peak(24 * chunk)  # 12x the images
    assert large < 1.5 * small  # flat: one chunk's annotations and a copy buffer
    assert large < size / 2  # far less than the file (its dict would be ~10x the file)


def test_atomic_write_keeps_target_when_generator_fails(tmp_path):
    target = tmp_path / "labels.json"
    _dataset().to_coco(target)
    before = target.read_bytes()

    def items():
        yield _record(1, (8, 8)), Instances([shapely.box(0, 0, 2, 2)], [0], None, (8, 8))
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_coco(target, ["cell"], items())
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["labels.json"]  # no temp files left behind


def test_write_refuses_a_folder(tmp_path):
    with pytest.raises(ValueError, match="is a folder; give a .json file name"):
        write_coco(tmp_path, ["cell"], [])


@pytest.mark.timeout(20)
def test_write_refuses_a_fifo_and_cleans_temp_files_of_killed_writers(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(ValueError, match="not a regular file"):
        write_coco(tmp_path / "pipe.json", ["cell"], [])
    # what a writer killed in the middle leaves: its two unlocked temp files
    folder = tmp_path / "out"
    folder.mkdir()
    stale = [folder / f".labels.json.{k}abcdefg.labelassist.tmp" for k in range(2)]
    for leftover in stale:
        leftover.write_text("half a file")
    write_coco(folder / "labels.json", ["cell"], [])
    assert os.listdir(folder) == ["labels.json"]


def test_write_creates_nothing_when_failing_on_new_target(tmp_path):
    with pytest.raises(ValueError, match="duplicate image id 1"):
        write_coco(tmp_path / "x.json", ["cell"], [(_record(1, (4, 4)), None)] * 2)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"segmentation": "poly"}, ValueError, "segmentation must be 'polygon' or 'rle'"),
        ({"info": "x"}, TypeError, "info must be a dict"),
        ({"categories": "cell"}, TypeError, "categories must be a list of class names"),
        ({"categories": ["a", "a"]}, ValueError, "duplicates"),
        ({"items": [(_record(1, (4, 4)),)]}, TypeError, r"items\[0\] must be a pair"),
        ({"items": [([1], None)]}, TypeError, "image record must be a dict"),
        ({"items": [({"id": 1}, None)]}, ValueError, "is missing"),
        ({"items": [(_record(True, (4, 4)), None)]}, TypeError, "id must be an int"),
        ({"items": [({**_record(1, (4, 4)), "file_name": "/a.png"}, None)]}, ValueError,
         "relative to the image root"),
        ({"items": [({**_record(1, (4, 4)), "file_name": ""}, None)]}, ValueError,
         "file_name must be a non-empty str"),
        ({"items": [(_record(1, (4, 0)), None)]}, ValueError, "width must be a positive int"),
        ({"items": [(_record(1, (4, 4)), "x")]}, TypeError, "must be an Instances or None"),
        ({"items": [(_record(1, (4, 5)), Instances.empty((5, 4)))]}, ValueError,
         r"image_shape \(5, 4\), but image 1 is \(height, width\) = \(4, 5\)"),
        ({"items": [(_record(1, (4, 4)), Instances([shapely.box(0, 0, 1, 1)], [3], None,
                                                   (4, 4)))]}, ValueError,
         "label 3, but there are only 1 categories"),
        ({"items": [({**_record(1, (4, 4)), "x": float("nan")}, None)]}, ValueError,
         "not JSON compliant"),
    ],
)  # fmt: skip
def test_write_coco_errors(tmp_path, kwargs, error, match):
    args = {"categories": ["cell"], "items": [], **kwargs}
    with pytest.raises(error, match=match):
        write_coco(tmp_path / "x.json", args.pop("categories"), args.pop("items"), **args)
    assert os.listdir(tmp_path) == []


# -- Dataset ------------------------------------------------------------------------------------
def test_empty_dataset(tmp_path):
    ds = Dataset(["cell"], [])
    assert len(ds) == 0 and ds.instances == {} and ds.image_ids == []
    out = ds.to_coco(tmp_path / "empty.json")
    back = read_coco(out)
    assert back == ds
    assert COCO(str(out)).getImgIds() == []


def test_images_without_annotations_read_as_empty(tmp_path):
    ds = Dataset(["cell"], [_record(1, (6, 7)), _record(2, (6, 7))])
    assert list(ds.items()) == [(ds.images[0], None), (ds.images[1], None)]
    back = read_coco(ds.to_coco(tmp_path / "a.json"))
    assert back.instances.keys() == {1, 2}
    assert back.instances[2] == Instances.empty((6, 7))


def test_dataset_conveniences(tmp_path):
    ds = _dataset()
    assert len(ds) == 3 and ds.image_ids == [1, 5, 9]
    assert len(ds.subset([])) == 0
    sub = ds.subset([9, 1])
    assert sub.image_ids == [9, 1] and sub.instances.keys() == {9, 1}
    assert sub.instances[1] == ds.instances[1]
    assert ds.image(5)["height"] == 32
    assert "images=3" in repr(ds)
    assert ds != Dataset(["cell", "debris"], ds.images)
    assert ds.image_path(5) == Path("img/5.png")  # no image_root: the file name as it is
    rooted = Dataset(["a"], [_record(1, (2, 2)), {**_record(2, (2, 2)), "file_name": "../x"}],
                     image_root=tmp_path)  # fmt: skip
    assert rooted.image_path(1) == tmp_path / "img" / "1.png"
    with pytest.raises(ValueError, match="leaves image_root"):
        rooted.image_path(2)
    with pytest.raises(KeyError, match="no image with id 3"):
        rooted.image_path(3)
    with pytest.raises(ValueError, match=r"unknown image ids \[4\]"):
        ds.subset([1, 4])


def test_dataset_does_not_alias_inputs():
    images = [_record(1, (4, 4))]
    ds = Dataset(["cell"], images)
    ds.images[0]["height"] = 99
    assert images[0]["height"] == 4


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("cell", []), {}, TypeError, "categories must be a list"),
        ((["cell", ""], []), {}, ValueError, r"categories\[1\] must be a non-empty str"),
        ((["a", "b", "a"], []), {}, ValueError, r"duplicates \['a'\]"),
        ((["_background_", "a"], []), {}, ValueError, "background is not a class"),
        ((["a"], {"id": 1}), {}, TypeError, "images must be a list"),
        ((["a"], [_record(1, (4, 4)), _record(1, (4, 4))]), {}, ValueError,
         r"image ids must be unique, got duplicates \[1\]"),
        ((["a"], [{"id": 1, "file_name": "a"}]), {}, ValueError, r"images\[0\] is missing"),
        ((["a"], [_record(1.0, (4, 4))]), {}, TypeError, "id must be an int"),
        ((["a"], [_record(1, (-4, 4))]), {}, ValueError, "height must be a positive int"),
        ((["a"], [_record(1, (4, 4))], []), {}, TypeError, "instances must be a dict"),
        ((["a"], [_record(1, (4, 4))], {2: Instances.empty((4, 4))}), {}, ValueError,
         "key 2, which is not an image id"),
        ((["a"], [_record(1, (4, 4))], {1: None}), {}, TypeError, "leave the image out"),
        ((["a"], [_record(1, (4, 4))], {1: "x"}), {}, TypeError, "must be an Instances"),
        ((["a"], [_record(1, (4, 6))], {1: Instances.empty((6, 4))}), {}, ValueError,
         r"image_shape \(6, 4\), but image 1 is \(height, width\) = \(4, 6\)"),
        ((["a"], [_record(1, (4, 4))], {1: Instances([shapely.box(0, 0, 1, 1)], [1], None,
                                                     (4, 4))}), {}, ValueError,
         "label 1, but there are only 1 categories"),
    ],
)  # fmt: skip
def test_dataset_validation(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Dataset(*args, **kwargs)


# -- label images -------------------------------------------------------------------------------
def _label_image(dtype) -> np.ndarray:
    labels = np.zeros((20, 24), dtype=dtype)
    labels[2:6, 3:9] = 1000  # gapped, unordered ids
    labels[10:15, 12:20] = 3
    labels[10:12, 1:3] = 70
    labels[16:18, 1:3] = 70  # id 70 in two parts
    labels[11:14, 14:17] = 0  # a hole in 3
    return labels


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.uint32])
def test_from_label_images_arrays(dtype):
    labels = _label_image(dtype)
    ds = Dataset.from_label_images([labels, np.zeros((5, 5), dtype)], categories=["nucleus"])
    assert ds.categories == ["nucleus"] and ds.image_ids == [1, 2]
    assert ds.images[0] == {"id": 1, "file_name": "image_0001.png", "height": 20, "width": 24}
    inst = ds.instances[1]
    masks = inst.masks()
    ids = [3, 70, 1000]  # ascending
    np.testing.assert_array_equal(masks, np.stack([labels == i for i in ids]))
    np.testing.assert_array_equal(inst.areas, [(labels == i).sum() for i in ids])
    assert inst.polygons[1].geom_type == "MultiPolygon"
    assert len(inst.polygons[0].interiors) == 1
    assert inst.scores.tolist() == [1.0, 1.0, 1.0] and inst.labels.tolist() == [0, 0, 0]
    assert len(ds.instances[2]) == 0


def test_from_label_images_empty():
    ds = Dataset.from_label_images([], categories=["nucleus"])
    assert len(ds) == 0 and ds.categories == ["nucleus"]


def test_from_label_images_files(tmp_path):
    labels = _label_image(np.uint16)
    tifffile.imwrite(tmp_path / "a_masks.tif", labels)
    iio.imwrite(tmp_path / "b_masks.png", labels)
    ds = Dataset.from_label_images(
        [tmp_path / "a_masks.tif", str(tmp_path / "b_masks.png")],
        categories=["cell", "nucleus"],
        label=1,
        image_root=tmp_path,
    )
    assert [r["file_name"] for r in ds.images] == ["a_masks.tif", "b_masks.png"]
    assert ds.image_path(2) == tmp_path / "b_masks.png"
    assert ds.instances[1] == ds.instances[2]
    assert ds.instances[1].labels.tolist() == [1, 1, 1]
    named = Dataset.from_label_images([labels], file_names=["x/raw.tif"], tolerance=0.5)
    assert named.images[0]["file_name"] == "x/raw.tif"
    assert len(named.instances[1]) == 3


def test_from_label_images_round_trip_through_coco(tmp_path):
    ds = Dataset.from_label_images([_label_image(np.uint16)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert read_coco(ds.to_coco(tmp_path / "a.json")) == ds


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros((4, 4), int),), {}, TypeError, "wrap it in a list"),
        (("labels.tif",), {}, TypeError, "wrap it in a list"),
        (([np.zeros((4, 4), np.float32)],), {}, TypeError, "must hold integer ids"),
        (([np.zeros((2, 4, 4), int)],), {}, ValueError, r"label_images\[0\] must be an \(H, W\)"),
        (([np.zeros((4, 4), int)],), {"label": 1}, ValueError, r"label must be a class index"),
        (([np.zeros((4, 4), int)],), {"file_names": ["a", "b"]}, ValueError,
         "2 names for 1 label images"),
        (([np.full((4, 4), -1)],), {}, ValueError, "negative ids"),
        ((["/nonexistent/labels.tif"],), {}, FileNotFoundError, "not found"),
    ],
)  # fmt: skip
def test_from_label_images_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Dataset.from_label_images(*args, **kwargs)


# -- the batched conversion equals a per-instance reference ---------------------------------------
def _reference_annotations(inst: Instances, image_id: int, segmentation: str) -> list[dict]:
    """Per-instance COCO conversion written directly with shapely and pycocotools."""
    h, w = inst.image_shape
    crowd = np.asarray(inst.extra.get("iscrowd", np.zeros(len(inst))), dtype=bool)
    anns = []
    for k, geom in enumerate(inst.polygons):
        if geom.is_empty:
            continue
        parts = [p for p in shapely.get_parts(geom) if not p.is_empty]
        holes = any(len(p.interiors) for p in parts)
        if segmentation == "rle" or crowd[k] or holes:
            full = polygons_to_masks([geom], (h, w))[0]  # the whole image, no box
            rle = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
            seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        else:
            seg = [[float(v) for xy in p.exterior.coords[:-1] for v in xy] for p in parts]
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        area = int(mask_utils.area(rle))
        if area == 0:
            continue
        anns.append({
            "id": len(anns) + 1, "image_id": image_id,
            "category_id": int(inst.labels[k]) + 1, "segmentation": seg,
            "area": float(area), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": int(crowd[k]), "score": float(str(np.float32(inst.scores[k]))),
        })  # fmt: skip
    return anns


def _random_geometry(rng: np.random.Generator, shape: tuple[int, int]) -> shapely.Geometry:
    """A random polygon with float vertices: plain, holey, multi-part, or partly outside."""
    h, w = shape
    kind = rng.integers(0, 6)
    cx, cy = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5)
    blob = shapely.Point(cx, cy).buffer(rng.uniform(0.3, 9), quad_segs=int(rng.integers(1, 6)))
    blob = shapely.affinity.rotate(shapely.affinity.scale(blob, rng.uniform(0.4, 1.6)), 30)
    if kind == 0:
        return shapely.Polygon()
    if kind == 1:  # a hole
        return blob.difference(shapely.Point(cx, cy).buffer(rng.uniform(0.2, 2)))
    if kind == 2:  # two parts, one maybe holey
        other = shapely.box(*sorted(rng.uniform(0, w, 2)), *sorted(rng.uniform(0, h, 2)))
        other = other.difference(blob.buffer(0.7))
        parts = [blob, *shapely.get_parts(other)]
        return shapely.MultiPolygon([p for p in parts if p.geom_type == "Polygon"][:3])
    if kind == 3:  # far outside the image: covers no pixel
        return shapely.affinity.translate(blob, 3 * w, 0)
    return blob


@pytest.mark.parametrize("segmentation", ["polygon", "rle"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_conversion_equals_per_instance_reference(
    tmp_path, monkeypatch, segmentation, seed
):
    if seed == 2:  # rasterize RLE instances in many small batches
        monkeypatch.setattr(_convert, "_BATCH_PIXELS", 60)
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
    geoms = [shapely.make_valid(_random_geometry(rng, shape)) for _ in range(40)]
    geoms = [g if g.geom_type in ("Polygon", "MultiPolygon") else shapely.Polygon() for g in geoms]
    # whole, half, negative-zero and far-away coordinates next to the random float ones
    geoms += [shapely.box(-0.0, 0.5, 3.5, 3.0), shapely.Polygon([(0, 0), (20000.5, 0), (0, 9.25)])]
    inst = Instances(
        geoms,
        rng.integers(0, 3, len(geoms)),
        rng.uniform(0, 1, len(geoms)),
        shape,
        extra={"iscrowd": rng.random(len(geoms)) < 0.15},
    )
    before = [g.wkb for g in inst.polygons]
    expected = _reference_annotations(inst, 4, segmentation)
    assert len(expected) > 10  # enough non-trivial cases
    assert any(isinstance(a["segmentation"], dict) for a in expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the empty/outside ones are skipped
        got = instances_to_coco(inst, 4, segmentation=segmentation)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # same types, same order of keys
    assert [g.wkb for g in inst.polygons] == before  # input geometry untouched
    # the writer builds the JSON text itself: the same bytes as json.dumps of the reference
    out = tmp_path / "a.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        write_coco(out, ["a", "b", "c"], [(_record(4, shape), inst)], segmentation=segmentation)
    text = out.read_text()
    expected_text = ",\n".join(json.dumps(a, separators=(",", ":")) for a in expected)
    assert text.split('"annotations":[\n')[1] == expected_text + "\n]}\n"


def test_batched_rle_of_a_large_image_and_big_boxes():
    # boxes far bigger than the batch limit go one by one; the full-image RLE stays exact
    shape = (2100, 2100)
    geoms = [shapely.box(0, 0, 2100, 2100).difference(shapely.box(5.2, 5.7, 2000.2, 2090.1)),
             shapely.box(2098.6, 2099.2, 2200, 2300), shapely.box(0.4, 0.6, 1.6, 1.55)]  # fmt: skip
    inst = Instances(geoms, None, None, shape)
    got = instances_to_coco(inst, 1, segmentation="rle")
    assert got == _reference_annotations(inst, 1, "rle")
    assert [a["area"] for a in got] == [2100 * 2100 - 1995 * 2084, 1.0, 2.0]


@pytest.mark.parametrize(
    ("name", "escapes"),
    [("a.png", False), ("img/a.png", False), ("a\\b.png", False), ("..a.png", False),
     ("a..b/c.png", False), ("\\\\server\\share\\a.png", True), ("//server/share/a", True),
     ("/abs.png", True), ("\\abs.png", True), ("C:\\x.png", True), ("C:/x.png", True),
     ("a/../b.png", True), ("a\\..\\b.png", True),
     # a drive-relative name is an ordinary file name on POSIX (issue #12 item 15)
     ("C:x.png", os.name == "nt"), ("a:b.png", os.name == "nt"), ("a:b/c:d.png", os.name == "nt"), ("img/a:b.png", False)],
)  # fmt: skip
def test_file_names_leaving_the_root(name, escapes):
    assert _rules._escapes_root(name) is escapes


@pytest.mark.parametrize("segmentation", ["polygon", "rle"])
def test_more_than_255_instances_in_one_image(segmentation):
    # pycocotools' area() overflows past 255 RLEs in one call; dense microscopy has more
    boxes = [shapely.box(x, y, x + 2, y + 2) for y in range(0, 60, 3) for x in range(0, 45, 3)]
    inst = Instances(boxes, None, None, (64, 64))
    assert len(inst) == 300
    anns = instances_to_coco(inst, 1, segmentation=segmentation)
    assert len(anns) == 300
    assert [a["area"] for a in anns] == [4.0] * 300


# -- chunked conversion --------------------------------------------------------------------
@pytest.mark.parametrize("segmentation", ["polygon", "rle"])
def test_chunked_conversion_equals_per_image(segmentation):
    items = [(r["id"], inst) for r, inst in mixed_coco_items(12) if inst is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_image, next_id = [], 1
        for image_id, inst in items:
            anns = instances_to_coco(inst, image_id, first_id=next_id, segmentation=segmentation)
            per_image += anns
            next_id += len(anns)
    converted, skipped = _convert._convert_chunk(items, 1, segmentation)
    assert converted.dicts() == per_image
    assert converted.json() == ",\n".join(json.dumps(a, separators=(",", ":")) for a in per_image)
    assert skipped == sum(len(inst) for _, inst in items) - len(per_image) > 0
    kinds = {type(a["segmentation"]).__name__ for a in per_image}
    assert kinds == ({"dict"} if segmentation == "rle" else {"dict", "list"})
    assert {a["iscrowd"] for a in per_image} == {0, 1}


def test_chunked_conversion_of_images_without_instances():
    items = [(1, Instances.empty((8, 8))), (2, Instances.empty((4, 6)))]
    converted, skipped = _convert._convert_chunk(items, 5, "polygon")
    assert (converted.dicts(), converted.json(), skipped) == ([], "", 0)
    converted, skipped = _convert._convert_chunk([], 1, "rle")
    assert (converted.dicts(), skipped) == ([], 0)


def test_write_coco_is_the_same_whatever_the_chunks(tmp_path):
    """Many chunks (more images than a chunk holds) give the per-image annotations."""
    base = mixed_coco_items(12)
    items = [(_record(k + 1, (r["height"], r["width"])), inst)
             for k, (r, inst) in enumerate(base * 30)]  # fmt: skip
    assert len(items) > 2 * _coco_write._CHUNK_IMAGES
    with pytest.warns(UserWarning, match="skipped .* empty instance"):
        out = write_coco(tmp_path / "many.json", ["cell", "debris"], items)
    anns = json.loads(out.read_text())["annotations"]
    expected, next_id = [], 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for record, inst in items:
            if inst is not None:
                expected += instances_to_coco(inst, record["id"], first_id=next_id)
                next_id = len(expected) + 1
    assert anns == expected


@pytest.mark.parametrize("segmentation", ["polygon", "rle"])
def test_instance_covering_no_pixel_centre_is_skipped(segmentation):
    """A hole-less sliver between pixel centres has no RLE pixel (was an IndexError)."""
    inst = Instances([shapely.box(1.1, 1.1, 1.3, 1.3), shapely.box(0, 0, 2, 2)], [0, 0],
                     [1.0, 1.0], (8, 8), extra={"iscrowd": np.array([True, False])})  # fmt: skip
    with pytest.warns(UserWarning, match="skipped 1 empty instance"):
        anns = instances_to_coco(inst, 1, segmentation=segmentation)
    assert [a["area"] for a in anns] == [4.0]


@settings(max_examples=300, deadline=None)
@given(
    arrays(
        np.float32,
        st.integers(1, 64),
        elements=st.one_of(
            st.floats(0, 1, width=32),
            st.floats(width=32, allow_nan=False),
            st.sampled_from([0.0, -0.0, 1.0, 2.0**-10, 1e-8, 1e-45, 0.1, 0.5]),
        ),
    )
)
def test_score_text_is_numpys_shortest_float32_repr(values):

    assert _emit._floats32(values) == [float(str(v)) for v in values]


def test_score_text_on_dense_float32_runs():

    for start in (2.0**-10, 0.1, 0.5, 1.0):  # consecutive float32 values around each
        below = np.float32(start).view(np.uint32) - np.arange(20_000, dtype=np.uint32)
        values = np.concatenate([below, below + np.uint32(20_000)]).view(np.float32)
        assert _emit._floats32(values) == values.astype(str).astype(np.float64).tolist()


def test_polygons_reaching_outside_the_image_are_clipped_with_a_warning():
    record = {"id": 1, "height": 6, "width": 6}
    anns = [_square_ann(1, segmentation=[[-2, 1, 4, 1, 4, 3, -2, 3]]),  # partly outside
            _square_ann(2, segmentation=[[1, 1, 9, 1, 9, 9, 1, 9]]),  # over two edges
            _square_ann(3, segmentation=[[7, 7, 9, 7, 9, 9]]),  # wholly outside
            _square_ann(4)]  # fmt: skip
    with pytest.warns(UserWarning) as record_:
        inst = coco_to_instances(anns, record, {1: 0})
    messages = sorted(str(w.message) for w in record_)
    assert messages == [
        "annotations: clipped 2 polygon annotation(s) to their image (the parts outside it dropped)",
        "annotations: skipped 1 annotation(s) with a polygon outside the image",
    ]
    assert [p.bounds for p in inst.polygons] == [(0, 1, 4, 3), (1, 1, 6, 6), (1, 1, 4, 3)]
