"""Stacks out and in: label TIFFs, Cell Tracking Challenge folders, COCO video files (TAO)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
import tifffile

from labelassist import Instances
from labelassist.io import read_stack
from labelassist.stacks import (
    StackInstances,
    read_coco_video,
    read_ctc,
    read_label_volume,
    stack_to_coco_video,
    write_coco_video,
    write_ctc,
    write_label_volume,
)


def movie_with_division_and_gap():
    """5 frames: 1 divides into 2 and 3 after frame 1; 4 is missing in frame 2; 5 enters."""
    m = np.zeros((5, 16, 16), np.uint16)
    m[0:2, 2:8, 2:8] = 1
    m[2:5, 2:5, 2:8] = 2
    m[2:5, 5:8, 2:8] = 3
    m[[0, 1, 3, 4], 10:14, 10:14] = 4
    m[3:5, 0:2, 12:16] = 5
    return StackInstances.from_labels(m, "TYX", parents={2: 1, 3: 1}), m


# -- label TIFFs -----------------------------------------------------------------------------
@pytest.mark.parametrize("axes", ["ZYX", "TYX", "TZYX", "YX"])
def test_label_volume_round_trip(tmp_path, axes):
    rng = np.random.default_rng(0)
    shape = {"ZYX": (3, 9, 9), "TYX": (4, 9, 9), "TZYX": (2, 3, 9, 9), "YX": (9, 9)}[axes]
    volume = (rng.integers(0, 4, shape) * 1000).astype(np.uint32)
    stack = StackInstances.from_labels(volume, axes)
    path = write_label_volume(stack, tmp_path / "out" / "labels.tif")
    data, found = read_stack(path)
    assert (found, data.dtype) == (axes, np.uint32)
    np.testing.assert_array_equal(data, volume)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
    assert read_label_volume(path) == stack


def test_label_volume_from_other_tools(tmp_path):
    volume = np.zeros((3, 8, 8), np.uint16)
    volume[:, 2:6, 2:6] = 7
    path = tmp_path / "cellpose_masks.tif"  # 3 planes stored as planar RGB, as tifffile did
    tifffile.imwrite(path, volume, photometric="rgb", planarconfig="separate")
    assert read_stack(path)[1] == "CYX"
    stack = read_label_volume(path)
    assert stack.axes == "ZYX" and stack.object_ids.tolist() == [7]
    movie = tmp_path / "stardist.tif"
    tifffile.imwrite(movie, np.stack([volume[0]] * 6), metadata={"axes": "TYX"})
    assert read_label_volume(movie, parents=None).tracks.tolist() == [[7, 0, 5, 0]]


# -- Cell Tracking Challenge -------------------------------------------------------------------
def _check_ctc_rules(folder):
    """The format's rules (module notes of labelassist.stacks.ctc), checked independently."""
    rows = [
        list(map(int, line.split())) for line in (folder / "res_track.txt").read_text().splitlines()
    ]
    masks = sorted(folder.glob("mask*.tif"))
    frames = [tifffile.imread(p) for p in masks]
    assert [p.name for p in masks] == [f"mask{t:03d}.tif" for t in range(len(masks))]
    assert all(f.dtype == np.uint16 for f in frames)
    labels = [r[0] for r in rows]
    assert len(set(labels)) == len(labels) and min(labels) >= 1
    table = {r[0]: r for r in rows}
    for _, b, e, p in rows:
        assert 0 <= b <= e < len(frames)
        if p:
            assert table[p][2] < b
    for t, frame in enumerate(frames):
        assert set(np.unique(frame).tolist()) - {0} == {r[0] for r in rows if r[1] <= t <= r[2]}
    return rows


def test_ctc_export_follows_the_format(tmp_path):
    stack, _ = movie_with_division_and_gap()
    path = write_ctc(stack, tmp_path / "01_RES")
    assert path.name == "res_track.txt"
    rows = _check_ctc_rules(tmp_path / "01_RES")
    # 4's gap splits it in two tracks, the second (label 6) a child of the first
    assert rows == [
        [1, 0, 1, 0],
        [2, 2, 4, 1],
        [3, 2, 4, 1],
        [4, 0, 1, 0],
        [5, 3, 4, 0],
        [6, 3, 4, 4],
    ]


def test_ctc_round_trip(tmp_path):
    stack, _ = movie_with_division_and_gap()
    write_ctc(stack, tmp_path)
    assert read_ctc(tmp_path) == stack


def test_ctc_3d_time_lapse_and_renumbering(tmp_path):
    volume = np.zeros((2, 2, 6, 6), np.uint32)
    volume[:, :, 1:3, 1:3] = 100_000  # too large for 16 bits: renumbered
    stack = StackInstances.from_labels(volume, "TZYX")
    write_ctc(stack, tmp_path)
    rows = _check_ctc_rules(tmp_path)
    assert rows == [[1, 0, 1, 0]]
    assert tifffile.imread(tmp_path / "mask000.tif").shape == (2, 6, 6)
    back = read_ctc(tmp_path)
    assert back.axes == "TZYX"
    np.testing.assert_array_equal(back.to_labels() > 0, volume > 0)


@pytest.mark.parametrize(("frames", "last"), [(1000, "mask999.tif"), (1001, "mask1000.tif")])
def test_ctc_file_names_grow_a_digit_past_999(tmp_path, frames, last):
    stack = StackInstances.from_labels(np.zeros((frames, 2, 2), np.uint8), "TYX")
    write_ctc(stack, tmp_path)
    assert (tmp_path / last).is_file()
    first = "mask0000.tif" if frames > 1000 else "mask000.tif"
    assert (tmp_path / first).is_file()


def test_ctc_objects_without_pixels_are_left_out_with_a_warning(tmp_path):
    sliver = Instances([shapely.box(0, 0, 4, 0.2)], None, None, (4, 4), extra={"object_id": [3]})
    stack = StackInstances([sliver], (1, 4, 4), "TYX")
    with pytest.warns(UserWarning, match=r"objects \[3\] cover no pixel"):
        write_ctc(stack, tmp_path)
    assert (tmp_path / "res_track.txt").read_text() == ""


def test_ctc_ground_truth_folder_reads_man_track(tmp_path):
    tifffile.imwrite(tmp_path / "man_seg000.tif", np.zeros((4, 4), np.uint16))
    mask = np.zeros((4, 4), np.uint16)
    mask[1:3, 1:3] = 2
    tifffile.imwrite(tmp_path / "mask000.tif", mask)
    (tmp_path / "man_track.txt").write_text("2 0 0 0\n")
    assert read_ctc(tmp_path).tracks.tolist() == [[2, 0, 0, 0]]


# -- COCO video (TAO layout) ------------------------------------------------------------------
def test_coco_video_layout(tmp_path):
    stack, _ = movie_with_division_and_gap()
    coco = stack_to_coco_video(stack, ["nucleus"], name="movie", file_name="movie.tif")
    assert coco["videos"] == [
        {"id": 1, "name": "movie", "width": 16, "height": 16,
         "metadata": {"axes": "TYX", "shape": [5, 16, 16]}}
    ]  # fmt: skip
    assert [im["frame_index"] for im in coco["images"]] == [0, 1, 2, 3, 4]
    assert coco["images"][3] == {
        "id": 4, "video_id": 1, "frame_index": 3, "file_name": "movie.tif", "width": 16,
        "height": 16, "plane": {"T": 3},
    }  # fmt: skip
    assert [a["id"] for a in coco["annotations"]] == list(range(1, 15))
    first = dict(coco["annotations"][0])
    (ring,) = first.pop("segmentation")
    assert shapely.Polygon(np.reshape(ring, (-1, 2))).equals(shapely.box(2, 2, 8, 8))
    assert len(ring) == 8  # four corners, the closing point dropped
    assert first == {
        "image_id": 1, "video_id": 1, "track_id": 1, "category_id": 1, "area": 36,
        "bbox": [2, 2, 6, 6], "iscrowd": 0, "score": 1.0, "id": 1,
    }  # fmt: skip
    assert {t["id"]: t.get("parent_track_id") for t in coco["tracks"]} == {
        1: None,
        2: 1,
        3: 1,
        4: None,
        5: None,
    }
    assert coco["categories"] == [{"id": 1, "name": "nucleus"}]


def test_coco_video_round_trip_with_holes_and_classes(tmp_path):
    ring = shapely.Polygon([(1, 1), (7, 1), (7, 7), (1, 7)], [[(3, 3), (5, 3), (5, 5), (3, 5)]])
    p0 = Instances([ring, shapely.box(8, 8, 10, 10)], [1, 0], [0.5, 0.25], (12, 12),
                   extra={"object_id": [4, 9]})  # fmt: skip
    p1 = Instances([ring], [1], [0.75], (12, 12), extra={"object_id": [4]})
    stack = StackInstances([p0, p1], (2, 12, 12), "ZYX")
    path = write_coco_video(stack, tmp_path / "v.json", ["cell", "nucleus"])
    coco = json.loads(path.read_text())
    assert isinstance(coco["annotations"][0]["segmentation"]["counts"], str)  # hole: RLE
    assert coco["annotations"][0]["area"] == 32
    back, classes = read_coco_video(path)
    assert classes == ["cell", "nucleus"]
    assert back == stack


def test_coco_video_from_another_tool_reads_as_time_lapse(tmp_path):
    coco = {
        "videos": [{"id": 7, "name": "v"}],
        "images": [
            {"id": 11, "video_id": 7, "frame_index": 1, "width": 8, "height": 8},
            {"id": 10, "video_id": 7, "frame_index": 0, "width": 8, "height": 8},
        ],
        "tracks": [{"id": 3, "category_id": 5, "video_id": 7}],
        "annotations": [
            {"id": 1, "image_id": 11, "track_id": 3, "category_id": 5,
             "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
            {"id": 2, "image_id": 10, "track_id": 3, "category_id": 5,
             "segmentation": {"size": [8, 8], "counts": [0, 2, 6, 2, 54]}},
        ],
        "categories": [{"id": 5, "name": "cell"}],
    }  # fmt: skip
    path = tmp_path / "tao.json"
    path.write_text(json.dumps(coco))
    stack, classes = read_coco_video(path)
    assert (stack.axes, stack.shape, classes) == ("TYX", (2, 8, 8), ["cell"])
    assert stack.tracks.tolist() == [[3, 0, 1, 0]]
    assert stack.planes[0].polygons[0].area == 4.0  # RLE: 2 x 2 pixels at the top left
    assert stack.planes[1].areas.tolist() == [16.0]


def test_coco_video_leaves_out_empty_instances(tmp_path):
    sliver = Instances([shapely.box(0, 0, 4, 0.2)], None, None, (4, 4), extra={"object_id": [3]})
    stack = StackInstances([sliver], (4, 4), "YX")
    with pytest.warns(UserWarning, match="1 instances cover no pixel"):
        coco = stack_to_coco_video(stack, ["cell"])
    assert coco["annotations"] == [] and coco["tracks"] == []
