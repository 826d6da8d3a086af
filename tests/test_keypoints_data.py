"""Keypoints in `Instances` and COCO files: every operation keeps them; files of other tools read."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import shapely
from pycocotools.coco import COCO

from labelassist.coco import (
    CocoFormatError,
    Dataset,
    coco_to_instances,
    instances_to_coco,
    read_coco,
    write_coco,
)
from labelassist.instances import Instances, check_keypoint_names, check_skeleton

SHAPE = (32, 40)
RECORD = {"id": 1, "file_name": "a.png", "height": 32, "width": 40}


def _worms(n: int = 3, k: int = 2) -> Instances:
    """``n`` boxes along x with keypoints at their ends (x, y at pixel centres)."""
    polys = [shapely.box(2 + 12 * i, 4, 10 + 12 * i, 9) for i in range(n)]
    points = np.zeros((n, k, 3))
    for i in range(n):
        points[i, 0] = (2.5 + 12 * i, 6.5, 2)
        points[i, 1:] = (9.5 + 12 * i, 6.5, 1)
    return Instances(polys, [0] * n, np.linspace(1, 0.5, n), SHAPE, keypoints=points)


# -- Instances -------------------------------------------------------------------------------


def test_keypoints_follow_indexing_concat_replace_and_pickling():
    inst = _worms(3)
    assert inst.keypoints.dtype == np.float64 and inst.keypoints.shape == (3, 2, 3)
    np.testing.assert_array_equal(inst[1].keypoints[0], [[14.5, 6.5, 2], [21.5, 6.5, 1]])
    np.testing.assert_array_equal(inst[[2, 0]].keypoints[:, 0, 0], [26.5, 2.5])
    np.testing.assert_array_equal(inst[inst.scores > 0.7].keypoints[:, 0, 0], [2.5, 14.5])
    np.testing.assert_array_equal(inst[1:].keypoints[:, 0, 0], [14.5, 26.5])
    both = Instances.concat([inst, inst[:1], Instances.empty(SHAPE)])
    assert both.keypoints.shape == (4, 2, 3)
    np.testing.assert_array_equal(both.keypoints[3], inst.keypoints[0])
    assert pickle.loads(pickle.dumps(inst)) == inst
    assert inst.replace(labels=[1, 1, 1]).keypoints is not None
    assert inst.replace(keypoints=None).keypoints is None
    assert "keypoints=2" in repr(inst)


def test_keypoints_in_equality_and_empty():
    inst = _worms(2)
    moved = inst.keypoints.copy()
    moved[0, 0, 0] += 0.25
    assert inst != inst.replace(keypoints=moved)
    assert inst != inst.replace(keypoints=None)
    assert inst == inst.replace(keypoints=inst.keypoints.copy())
    empty = Instances.empty(SHAPE, keypoints=2)
    assert len(empty) == 0 and empty.keypoints.shape == (0, 2, 3)
    assert empty != Instances.empty(SHAPE)
    assert inst[[]].keypoints.shape == (0, 2, 3)


BAD_INSTANCES = [
    ("shape", {"keypoints": np.zeros((2, 2))}, ValueError, r"keypoints must have shape \(2, K, 3\)"),
    ("count", {"keypoints": np.zeros((1, 2, 3))}, ValueError, "to match 2 polygons"),
    ("no keypoint", {"keypoints": np.zeros((2, 0, 3))}, ValueError, "K >= 1"),
    ("nan", {"keypoints": np.full((2, 1, 3), np.nan)}, ValueError, "must be finite"),
    ("visibility", {"keypoints": np.full((2, 1, 3), 3.0)}, ValueError, "visibility must be 0"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), [c[1:] for c in BAD_INSTANCES],
                         ids=[c[0] for c in BAD_INSTANCES])  # fmt: skip
def test_bad_keypoints_are_refused(kwargs, error, match):
    polys = [shapely.box(0, 0, 2, 2), shapely.box(3, 3, 5, 5)]
    with pytest.raises(error, match=match):
        Instances(polys, None, None, SHAPE, **kwargs)


def test_concat_refuses_mixed_keypoints():
    with pytest.raises(ValueError, match="different numbers of keypoints"):
        Instances.concat([_worms(1, k=2), _worms(1, k=3)])
    plain = Instances([shapely.box(0, 0, 1, 1)], None, None, SHAPE)
    with pytest.raises(ValueError, match=r"items\[1\] has no keypoints"):
        Instances.concat([_worms(1), plain])


BAD_NAMES = [
    ("str", lambda: check_keypoint_names("head"), TypeError, "list of keypoint names"),
    ("empty", lambda: check_keypoint_names([]), ValueError, "at least one keypoint"),
    ("blank", lambda: check_keypoint_names(["head", " "]), ValueError, r"keypoints\[1\]"),
    ("dupe", lambda: check_keypoint_names(["a", "a"]), ValueError, "'a' twice"),
    ("edge self", lambda: check_skeleton([(1, 1)], 2), ValueError, "two different"),
    ("edge range", lambda: check_skeleton([(0, 5)], 2), ValueError, r"in \[0, 2\)"),
    ("edge form", lambda: check_skeleton([(0,)], 2), ValueError, "pair of int"),
    ("edge twice", lambda: check_skeleton([(0, 1), (0, 1)], 2), ValueError, "twice"),
    ("edge str", lambda: check_skeleton("01", 2), TypeError, "list of"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in BAD_NAMES],
                         ids=[c[0] for c in BAD_NAMES])  # fmt: skip
def test_bad_names_and_skeletons(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- writing and reading -----------------------------------------------------------------------


def test_round_trip_keeps_keypoints_and_pycocotools_reads_them(tmp_path):
    inst = _worms(3)
    ds = Dataset(["worm"], [RECORD, {**RECORD, "id": 2, "file_name": "b.png"}], {1: inst, 2: Instances.empty(SHAPE)},
                 keypoints=["head", "tail"], skeleton=[(0, 1)])  # fmt: skip
    path = ds.to_coco(tmp_path / "k.json")
    back = read_coco(path)
    assert back == ds
    assert back.keypoints == ["head", "tail"] and back.skeleton == [(0, 1)]
    data = json.loads(path.read_text())
    assert data["categories"][0]["keypoints"] == ["head", "tail"]
    assert data["categories"][0]["skeleton"] == [[1, 2]]  # COCO: 1-based
    first = data["annotations"][0]
    assert first["keypoints"] == [2.5, 6.5, 2, 9.5, 6.5, 1] and first["num_keypoints"] == 2
    coco = COCO(str(path))
    assert coco.loadCats(1)[0]["keypoints"] == ["head", "tail"]
    assert coco.loadAnns(coco.getAnnIds(imgIds=1))[2]["keypoints"][0] == 26.5


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_writer_text_equals_json_dumps_of_dicts(tmp_path, workers):
    inst = _worms(4)
    points = inst.keypoints.copy()
    points[1, 1] = (0, 0, 0)  # not labelled
    points[2, 0, :2] = (3.1234567, 1e-7)  # not half-integers: the JSON encoder's text
    inst = inst.replace(keypoints=points)
    path = write_coco(tmp_path / "k.json", ["worm"], [(RECORD, inst)], keypoints=["h", "t"],
                      workers=workers)  # fmt: skip
    expected = instances_to_coco(inst, 1)
    assert [a["num_keypoints"] for a in expected] == [2, 1, 2, 2]
    text = path.read_text().split('"annotations":[\n')[1]
    assert text == ",\n".join(json.dumps(a, separators=(",", ":")) for a in expected) + "\n]}\n"
    assert json.loads(path.read_text())["annotations"] == expected


def test_empty_image_of_a_keypoint_dataset(tmp_path):
    ds = Dataset(["worm"], [RECORD], {1: Instances.empty(SHAPE)}, keypoints=["head"])
    assert ds.instances[1].keypoints.shape == (0, 1, 3)
    assert read_coco(ds.to_coco(tmp_path / "e.json")) == ds


BAD_WRITES = [
    ("no names", {}, _worms(1), ValueError, "no keypoint names were given"),
    ("wrong K", {"keypoints": ["a", "b", "c"]}, _worms(1), ValueError, "3 keypoint names"),
    ("none given", {"keypoints": ["a"]}, Instances([shapely.box(0, 0, 2, 2)], None, None, SHAPE),
     ValueError, "has keypoints none"),
    ("skeleton alone", {"skeleton": [(0, 1)]}, None, ValueError, "skeleton needs keypoints"),
    ("skeleton range", {"keypoints": ["a", "b"], "skeleton": [(0, 2)]}, None, ValueError,
     "two different"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "inst", "error", "match"), [c[1:] for c in BAD_WRITES],
                         ids=[c[0] for c in BAD_WRITES])  # fmt: skip
def test_bad_keypoint_writes(tmp_path, kwargs, inst, error, match):
    target = tmp_path / "k.json"
    with pytest.raises(error, match=match):
        write_coco(target, ["worm"], [(RECORD, inst)], **kwargs)
    with pytest.raises(error, match=match):
        Dataset(["worm"], [RECORD], {} if inst is None else {1: inst}, **kwargs)
    assert not target.exists()


# -- files written by others (hand-written from the tools' documented formats) --------------

# pycocotools / COCO person_keypoints style: integer coordinates, v=0 points at (0, 0),
# polygon segmentation, 1-based skeleton
PYCOCOTOOLS_STYLE = {
    "images": [{"id": 7, "file_name": "p.jpg", "height": 50, "width": 60}],
    "categories": [{"id": 1, "name": "fish", "supercategory": "animal",
                    "keypoints": ["snout", "fin", "tail"], "skeleton": [[1, 2], [2, 3]]}],
    "annotations": [{"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 200.0,
                     "bbox": [10, 10, 20, 10], "num_keypoints": 2,
                     "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]],
                     "keypoints": [11, 15, 2, 0, 0, 0, 29, 15, 1]}],
}  # fmt: skip

# CVAT / Datumaro "COCO Keypoints": every category has keypoints/skeleton lists (empty for
# those without), a skeleton annotation without outline ("segmentation": []), bbox from
# the points, area w * h, float coordinates, an "attributes" dict
CVAT_STYLE = {
    "licenses": [{"name": "", "id": 0, "url": ""}],
    "info": {"contributor": "", "date_created": "", "description": "", "url": "",
             "version": "", "year": ""},
    "categories": [{"id": 1, "name": "cell", "supercategory": "", "keypoints": [],
                    "skeleton": []},
                   {"id": 2, "name": "worm", "supercategory": "",
                    "keypoints": ["head", "tail"], "skeleton": [[1, 2]]}],
    "images": [{"id": 1, "width": 60, "height": 50, "file_name": "frame_000000.png",
                "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "segmentation": [],
                     "area": 300.0, "bbox": [5.0, 8.0, 30.0, 10.0], "iscrowd": 0,
                     "attributes": {"occluded": False},
                     "keypoints": [5.2, 13.0, 2, 35.0, 17.9, 2], "num_keypoints": 2},
                    {"id": 2, "image_id": 1, "category_id": 1,
                     "segmentation": [[40.0, 30.0, 50.0, 30.0, 50.0, 40.0, 40.0, 40.0]],
                     "area": 100.0, "bbox": [40.0, 30.0, 10.0, 10.0], "iscrowd": 0,
                     "attributes": {"occluded": False}}],
}  # fmt: skip

# Label Studio (KeyPointLabels exported to COCO through a converter): no skeleton key, no
# segmentation key at all, the bbox padded around the points
LABEL_STUDIO_STYLE = {
    "images": [{"width": 60, "height": 50, "id": 0, "file_name": "images/x.png"}],
    "categories": [{"id": 0, "name": "larva", "keypoints": ["head", "tail"]}],
    "annotations": [{"id": 0, "image_id": 0, "category_id": 0, "iscrowd": 0,
                     "bbox": [8, 18, 26, 14], "area": 364, "num_keypoints": 2,
                     "keypoints": [10.6, 20.4, 2, 31.3, 29.9, 2]}],
    "info": {"year": 2024, "version": "1.0", "contributor": "Label Studio"},
}  # fmt: skip


def _write(tmp_path, data):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data))
    return path


def test_reads_pycocotools_style(tmp_path):
    ds = read_coco(_write(tmp_path, PYCOCOTOOLS_STYLE))
    assert ds.keypoints == ["snout", "fin", "tail"] and ds.skeleton == [(0, 1), (1, 2)]
    np.testing.assert_array_equal(
        ds.instances[7].keypoints[0], [[11, 15, 2], [0, 0, 0], [29, 15, 1]]
    )
    assert ds.instances[7].areas.tolist() == [200.0]


def test_reads_cvat_style_skeletons_without_outline(tmp_path):
    with pytest.warns(UserWarning, match="used the bbox as the outline of 1 keypoint"):
        ds = read_coco(_write(tmp_path, CVAT_STYLE))
    assert ds.categories == ["cell", "worm"] and ds.keypoints == ["head", "tail"]
    inst = ds.instances[1]
    assert inst.labels.tolist() == [1, 0]
    assert inst.polygons[0].bounds == (5.0, 8.0, 35.0, 18.0)
    np.testing.assert_array_equal(inst.keypoints[0], [[5.2, 13.0, 2], [35.0, 17.9, 2]])
    np.testing.assert_array_equal(inst.keypoints[1], np.zeros((2, 3)))  # the cell: none


def test_reads_label_studio_style_without_segmentation(tmp_path):
    with pytest.warns(UserWarning, match="bbox as the outline"):
        ds = read_coco(_write(tmp_path, LABEL_STUDIO_STYLE))
    assert ds.skeleton == []
    np.testing.assert_array_equal(ds.instances[0].keypoints[0, :, :2], [[10.6, 20.4], [31.3, 29.9]])


def test_categories_with_different_keypoints_are_joined(tmp_path):
    data = json.loads(json.dumps(PYCOCOTOOLS_STYLE))
    data["categories"].append({"id": 2, "name": "worm", "keypoints": ["tail", "head"],
                               "skeleton": [[2, 1]]})  # fmt: skip
    data["annotations"].append({"id": 4, "image_id": 7, "category_id": 2,
                                "segmentation": [[40, 30, 50, 30, 50, 40]],
                                "keypoints": [41, 31, 2, 49, 31, 2]})  # fmt: skip
    ds = read_coco(_write(tmp_path, data))
    assert ds.keypoints == ["snout", "fin", "tail", "head"]
    assert ds.skeleton == [(0, 1), (1, 2), (3, 2)]
    np.testing.assert_array_equal(ds.instances[7].keypoints[1], [[0, 0, 0], [0, 0, 0],
                                                                  [41, 31, 2], [49, 31, 2]])  # fmt: skip


def test_keypoints_of_a_category_without_names_are_dropped(tmp_path):
    data = json.loads(json.dumps(CVAT_STYLE))
    data["annotations"][1]["keypoints"] = [41, 31, 2, 49, 31, 2]
    with pytest.warns(UserWarning) as record:
        ds = read_coco(_write(tmp_path, data))
    assert any("dropped the keypoints of 1 annotation" in str(w.message) for w in record)
    assert (ds.instances[1].keypoints[1] == 0).all()


def _broken(path, value):
    data = json.loads(json.dumps(PYCOCOTOOLS_STYLE))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


BROKEN = [
    ("names type", ("categories", 0, "keypoints"), "snout", "list of keypoint names"),
    ("names dupe", ("categories", 0, "keypoints"), ["a", "a"], "'a' twice"),
    ("skeleton 0-based", ("categories", 0, "skeleton"), [[0, 1]], r"1-based indices in \[1, 3\]"),
    ("skeleton type", ("categories", 0, "skeleton"), {"a": 1}, "skeleton must be a list"),
    ("length", ("annotations", 0, "keypoints"), [1, 2, 2], "3 x 3 numbers"),
    ("text", ("annotations", 0, "keypoints"), ["1"] * 9, "flat list"),
    ("visibility", ("annotations", 0, "keypoints"), [1, 1, 5] * 3, "visibility v of 0, 1 or 2"),
    ("nan", ("annotations", 0, "keypoints"), [1e400, 1, 2] * 3, "finite x, y"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "match"), [c[1:] for c in BROKEN],
                         ids=[c[0] for c in BROKEN])  # fmt: skip
def test_broken_keypoint_files(tmp_path, path, value, match):
    with pytest.raises(CocoFormatError, match=match):
        read_coco(_write(tmp_path, _broken(path, value)))


def test_coco_to_instances_reads_keypoints():
    ann = PYCOCOTOOLS_STYLE["annotations"][0]
    inst = coco_to_instances([ann], PYCOCOTOOLS_STYLE["images"][0], {1: 0}, keypoints=3)
    assert inst.keypoints.shape == (1, 3, 3) and inst.keypoints[0, 2].tolist() == [29, 15, 1]
    assert coco_to_instances([ann], PYCOCOTOOLS_STYLE["images"][0], {1: 0}).keypoints is None
