"""Bad inputs to the stacks package and synthetic stacks: each row input -> exception + message.

`labelassist.io.read_stack`'s refusals are in tests/test_read_stack.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
import tifffile

from labelassist import Instances
from labelassist.stacks import (
    StackInstances,
    link_planes,
    predict_stack,
    read_coco_video,
    read_ctc,
    read_label_volume,
    stack_to_coco_video,
    write_coco_video,
    write_ctc,
    write_label_volume,
)
from labelassist.stacks.tracking_metrics import tracking_scores
from labelassist.synthetic_stacks import synthetic_timelapse, synthetic_zstack

S = (8, 8)


def inst(n=1, shape=S, ids=None, **extra):
    polygons = [shapely.box(k, 0, k + 1, 1) for k in range(n)]
    cols = dict(extra)
    if ids is not None:
        cols["object_id"] = ids
    return Instances(polygons, None, None, shape, extra=cols)


def movie():
    m = np.zeros((3, 8, 8), np.uint8)
    m[0, 0:2, 0:2] = 1
    m[1:, 0:2, 0:2] = 2
    return StackInstances.from_labels(m, "TYX")


class Model:
    """Real duck-typed model whose predict returns one empty Instances per image."""

    def predict(self, images, **options):
        return [Instances([], None, None, im.shape[:2]) for im in images]


class WrongModel:
    def predict(self, images, **options):
        return Instances([], None, None, S)


def ctc_folder(tmp_path, tracks="1 0 0 0\n", masks=None):
    masks = masks if masks is not None else [np.pad(np.ones((2, 2), np.uint16), (0, 6))]
    for t, mask in enumerate(masks):
        tifffile.imwrite(tmp_path / f"mask{t:03d}.tif", mask)
    if tracks is not None:
        (tmp_path / "res_track.txt").write_text(tracks)
    return tmp_path


def coco_file(tmp_path, **changes):
    coco = {
        "videos": [{"id": 1, "name": "v"}],
        "images": [{"id": 1, "video_id": 1, "frame_index": 0, "width": 8, "height": 8}],
        "annotations": [
            {"id": 1, "image_id": 1, "track_id": 1, "category_id": 1,
             "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}
        ],
        "categories": [{"id": 1, "name": "cell"}],
    }  # fmt: skip
    coco.update(changes)
    path = tmp_path / "v.json"
    path.write_text(json.dumps(coco))
    return path


def _ann(**changes):
    ann = {"id": 1, "image_id": 1, "track_id": 1, "category_id": 1,
           "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}  # fmt: skip
    ann.update(changes)
    return [ann]


def too_many_tracks(tmp_path):
    """65,536 one-pixel objects: one more than 16-bit labels hold."""
    x, y = (g.ravel() for g in np.meshgrid(np.arange(256), np.arange(256)))
    boxes = shapely.box(x, y, x + 1, y + 1)
    plane = Instances(boxes, None, None, (256, 256), extra={"object_id": np.arange(1, 65537)})
    write_ctc(StackInstances([plane], (1, 256, 256), "TYX"), tmp_path)


CASES = [
    # StackInstances
    ("layout", lambda p: StackInstances([inst(ids=[1])], S, "XY"), ValueError, "axes must be one of"),
    ("shape", lambda p: StackInstances([inst(ids=[1])], (0, 8, 8), "ZYX"), ValueError, "shape must be 3 integers >= 1"),
    ("shape type", lambda p: StackInstances([inst(ids=[1])], 8, "YX"), ValueError, "shape must be 2 integers"),
    ("plane count", lambda p: StackInstances([inst(ids=[1])], (2, 8, 8), "ZYX"), ValueError, "planes has 1 entries, but shape"),
    ("plane type", lambda p: StackInstances(["x"], S, "YX"), TypeError, r"planes\[0\] is str, expected Instances"),
    ("plane shape", lambda p: StackInstances([inst(ids=[1], shape=(4, 4))], S, "YX"), ValueError, r"planes\[0\] has image_shape \(4, 4\)"),
    ("no ids", lambda p: StackInstances([inst()], S, "YX"), ValueError, "has no extra\\['object_id'\\] column; link the planes"),
    ("id zero", lambda p: StackInstances([inst(ids=[0])], S, "YX"), ValueError, "must hold integer ids >= 1"),
    ("float ids", lambda p: StackInstances([inst(ids=[1.5])], S, "YX"), ValueError, "must hold integer ids >= 1"),
    ("repeated id", lambda p: StackInstances([inst(2, ids=[3, 3])], S, "YX"), ValueError, "has an object id twice"),
    ("parents type", lambda p: StackInstances(movie().planes, (3, 8, 8), "TYX", [(2, 1)]), TypeError, "parents must be a dict"),
    ("parents no T", lambda p: StackInstances([inst(ids=[1])] * 2, (2, 8, 8), "ZYX", {2: 1}), ValueError, "parents \\(divisions\\) need a time axis"),
    ("parent unknown", lambda p: StackInstances(movie().planes, (3, 8, 8), "TYX", {2: 9}), ValueError, "names object 9, which is in no plane"),
    ("parent late", lambda p: StackInstances(movie().planes, (3, 8, 8), "TYX", {1: 2}), ValueError, "a mother must end before its daughters begin"),
    ("parent key type", lambda p: StackInstances(movie().planes, (3, 8, 8), "TYX", {"2": 1}), TypeError, "parents key must be an int object id"),
    ("parent zero", lambda p: StackInstances(movie().planes, (3, 8, 8), "TYX", {2: 0}), ValueError, r"parents\[2\] must be an object id >= 1"),
    ("labels axes", lambda p: StackInstances.from_labels(np.zeros((2, 4, 4), int), "ZXY"), ValueError, "axes must be one of"),
    ("labels ndim", lambda p: StackInstances.from_labels(np.zeros((4, 4), int), "ZYX"), ValueError, "volume has 2 dimensions"),
    ("labels float", lambda p: StackInstances.from_labels(np.zeros((2, 4, 4)), "ZYX"), ValueError, "volume must hold integer labels"),
    ("labels negative", lambda p: StackInstances.from_labels(-np.ones((2, 4, 4), int), "ZYX"), ValueError, r"volume\[0\] holds negative labels"),
    ("to_labels dtype", lambda p: movie().to_labels(np.float32), ValueError, "dtype must be an integer type"),
    # link_planes
    ("link axes", lambda p: link_planes([inst()], axes="Z"), ValueError, "axes must be one of"),
    ("link empty", lambda p: link_planes([], axes="ZYX"), ValueError, "planes is empty"),
    ("link type", lambda p: link_planes([inst(), 3], axes="ZYX"), TypeError, r"planes\[1\] is int, expected Instances"),
    ("link shapes", lambda p: link_planes([inst(), inst(shape=(4, 4))], axes="ZYX"), ValueError, r"planes\[1\] has image_shape \(4, 4\)"),
    ("link tz shape", lambda p: link_planes([inst()] * 4, axes="TZYX"), ValueError, "needs stack_shape=\\(T, Z\\)"),
    ("link shape type", lambda p: link_planes([inst()] * 4, axes="TZYX", stack_shape="ab"), ValueError, "stack_shape must be a tuple of ints"),
    ("link shape len", lambda p: link_planes([inst()] * 4, axes="TZYX", stack_shape=(4,)), ValueError, "stack_shape must have 2 entries"),
    ("link shape fill", lambda p: link_planes([inst()] * 4, axes="TZYX", stack_shape=(3, 2)), ValueError, "4 planes do not fill stack_shape"),
    ("link merge zero", lambda p: link_planes([inst()], axes="ZYX", merge_threshold=0), ValueError, "merge_threshold must be within"),
    ("link merge big", lambda p: link_planes([inst()], axes="ZYX", merge_threshold=1.5), ValueError, "merge_threshold"),
    ("link min planes", lambda p: link_planes([inst()], axes="ZYX", min_planes=0), ValueError, "min_planes"),
    ("tra type", lambda p: tracking_scores(movie(), "x"), TypeError, "truth must be a StackInstances"),
    ("tra axes", lambda p: tracking_scores(StackInstances.from_labels(np.ones((2, 4, 4), np.uint32), "ZYX"), movie()), ValueError, "tracking measures need a time-lapse"),
    ("tra shape", lambda p: tracking_scores(movie(), StackInstances.from_labels(np.ones((2, 8, 8), np.uint32), "TYX")), ValueError, "must have the same axes and shape"),
    ("link yx", lambda p: link_planes([inst()] * 2, axes="YX"), ValueError, "2 planes do not fill stack_shape \\(\\)"),
    ("stitch 0", lambda p: link_planes([inst()], stitch_threshold=0), ValueError, "stitch_threshold must be within \\(0, 1\\]"),
    ("stitch 2", lambda p: link_planes([inst()], stitch_threshold=2), ValueError, "stitch_threshold must be a finite number in \\[0, 1\\]"),
    ("division 0", lambda p: link_planes([inst()], division_threshold=0), ValueError, "division_threshold must be within"),
    ("tip 0", lambda p: link_planes([inst()], tip_threshold=0), ValueError, "tip_threshold must be within"),
    ("gap", lambda p: link_planes([inst()], max_gap=-1), ValueError, "max_gap must be an integer >= 0"),
    # predict_stack
    ("no model", lambda p: predict_stack(object(), np.zeros((2, 8, 8)), axes="ZYX"), TypeError, "model must have a predict"),
    ("model output", lambda p: predict_stack(WrongModel(), np.zeros((2, 8, 8)), axes="ZYX", progress=False), TypeError, "model.predict returned Instances for a list of 2"),
    ("threshold", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="ZYX", score_threshold=2), ValueError, "score_threshold must be"),
    ("batch", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="ZYX", batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    ("not array", lambda p: predict_stack(Model(), [[1]], axes="YX"), TypeError, "stack must be an array"),
    ("axes type", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes=None), ValueError, "axes must be a str"),
    ("axes fit", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="TZYX"), ValueError, "does not fit a stack of shape \\(2, 8, 8\\)"),
    ("axes letters", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="QYX"), ValueError, "letters of 'TZCYX'"),
    ("no Y", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="ZCX"), ValueError, "\\(Y and X included\\)"),
    ("empty stack", lambda p: predict_stack(Model(), np.zeros((0, 8, 8)), axes="ZYX"), ValueError, "the stack is empty"),
    ("2 channels", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="CYX"), ValueError, "the stack has 2 channels; models take 1"),
    ("channels no C", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="ZYX", channels=0), ValueError, "channels=0 needs a C axis"),
    ("channel range", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="CYX", channels=2), ValueError, r"channels must be indices in \[0, 1\]"),
    ("channel count", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="CYX", channels=[0, 1]), ValueError, "must pick 1 \\(gray\\) or 3 \\(RGB\\) channels, got 2"),
    ("object size 0", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="ZYX", object_size=0), ValueError, "object_size must be a positive number of pixels .* got 0"),
    ("object size nan", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="ZYX", object_size=float("nan")), ValueError, "object_size must be a positive number"),
    ("object size word", lambda p: predict_stack(Model(), np.zeros((2, 8, 8)), axes="ZYX", object_size="big"), ValueError, "object_size must be .*\"auto\" .* got 'big'"),
    # label TIFFs
    ("write type", lambda p: write_label_volume(np.zeros(S), p / "l.tif"), TypeError, "stack must be a StackInstances"),
    ("write suffix", lambda p: write_label_volume(movie(), p / "l.png"), ValueError, "path must end with .tif or .tiff"),
    ("write folder", lambda p: write_label_volume(movie(), p.joinpath("d.tif").mkdir() or p / "d.tif"), IsADirectoryError, "is a folder"),
    ("read channels", lambda p: read_label_volume(_tif(p / "c.tif", np.zeros((2, 3, 8, 8), np.uint16), axes="ZCYX")), ValueError, "has a channel axis \\(axes 'ZCYX'\\)"),
    ("read float", lambda p: read_label_volume(_tif(p / "f.tif", np.zeros((5, 8, 8), np.float32))), ValueError, "holds float32 values, not integer labels"),
    # CTC
    ("ctc type", lambda p: write_ctc(np.zeros(S), p), TypeError, "stack must be a StackInstances"),
    ("ctc no T", lambda p: write_ctc(StackInstances.from_labels(np.zeros((2, 4, 4), int), "ZYX"), p), ValueError, "the CTC format is for time-lapse"),
    ("ctc file", lambda p: write_ctc(movie(), _touch(p / "f")), NotADirectoryError, "is a file; give a folder"),
    ("ctc 16 bits", too_many_tracks, ValueError, "65536 tracks do not fit the CTC format's 16-bit labels"),
    ("ctc missing", lambda p: read_ctc(p / "nope"), FileNotFoundError, "CTC folder not found"),
    ("ctc no masks", lambda p: read_ctc(p), FileNotFoundError, "has no mask files"),
    ("ctc frame gap", lambda p: read_ctc(_touch(p / "mask001.tif").parent), ValueError, r"mask files of frames \[0\] are missing"),
    ("ctc no tracks", lambda p: read_ctc(ctc_folder(p, tracks=None)), FileNotFoundError, "has no res_track.txt"),
    ("ctc bad line", lambda p: read_ctc(ctc_folder(p, "1 0 0\n")), ValueError, r"res_track.txt:1: expected four integers 'L B E P', got '1 0 0'"),
    ("ctc words", lambda p: read_ctc(ctc_folder(p, "a b c d\n")), ValueError, "expected four integers"),
    ("ctc mask shape", lambda p: read_ctc(ctc_folder(p, masks=[np.zeros((8, 8), np.uint16), np.zeros((4, 4), np.uint16)])), ValueError, "mask001.tif: expected an integer label image of shape \\(8, 8\\)"),
    ("ctc unique", lambda p: read_ctc(ctc_folder(p, "1 0 0 0\n1 0 0 0\n")), ValueError, "track labels are not unique"),
    ("ctc frames", lambda p: read_ctc(ctc_folder(p, "1 0 3 0\n")), ValueError, "needs a label in \\[1, 65535\\] and frames 0 <= B <= E < 1"),
    ("ctc parent", lambda p: read_ctc(ctc_folder(p, "1 0 0 7\n")), ValueError, "track 1 has parent 7, which is no track"),
    ("ctc parent late", lambda p: read_ctc(ctc_folder(p, "1 0 1 0\n2 1 1 1\n", [np.pad(np.ones((2, 2), np.uint16), (0, 6))] * 2)), ValueError, "parent 1 ends at frame 1, not before its child 2 begins"),
    ("ctc mismatch", lambda p: read_ctc(ctc_folder(p, "2 0 0 0\n")), ValueError, r"labels \[1\] are in the mask but not listed for this frame, labels \[2\] are listed"),
    # COCO video
    ("coco type", lambda p: stack_to_coco_video(np.zeros(S), ["cell"]), TypeError, "stack must be a StackInstances"),
    ("coco classes", lambda p: stack_to_coco_video(movie(), ["background"]), ValueError, "background is not a class"),
    ("coco name", lambda p: stack_to_coco_video(movie(), ["cell"], name=""), ValueError, "name must be a non-empty str"),
    ("coco file name", lambda p: stack_to_coco_video(movie(), ["cell"], file_name=3), ValueError, "file_name must be a non-empty str"),
    ("coco label", lambda p: write_coco_video(StackInstances([Instances([shapely.box(0, 0, 2, 2)], [1], None, S, extra={"object_id": [1]})], S, "YX"), p / "v.json", ["cell"]), ValueError, r"planes\[0\] has label 1, but classes has only 1 names"),
    ("coco not json", lambda p: read_coco_video(_text(p / "v.json", "{")), ValueError, "is not JSON"),
    ("coco layout", lambda p: read_coco_video(_text(p / "v.json", '{"images": []}')), ValueError, "is not a COCO video file"),
    ("coco videos", lambda p: read_coco_video(coco_file(p, videos=[{"id": 1}, {"id": 2}])), ValueError, "holds 2 videos \\[1, 2\\]; pick one: video_id="),
    ("coco video id", lambda p: read_coco_video(coco_file(p), video_id=5), ValueError, "has no video with id 5"),
    ("coco no images", lambda p: read_coco_video(coco_file(p, images=[])), ValueError, "video 1 has no images"),
    ("coco meta", lambda p: read_coco_video(coco_file(p, videos=[{"id": 1, "metadata": {"axes": "ZYX", "shape": [2, 8, 8]}}])), ValueError, "has axes 'ZYX' and shape \\[2, 8, 8\\] for 1 images"),
    ("coco category", lambda p: read_coco_video(coco_file(p, annotations=_ann(category_id=4))), ValueError, "annotation 1 needs a known category_id and a track_id"),
    ("coco segmentation", lambda p: read_coco_video(coco_file(p, annotations=_ann(segmentation=[[0, 0]]))), ValueError, "segmentation must be polygon rings or an RLE dict"),
    ("coco rle size", lambda p: read_coco_video(coco_file(p, annotations=_ann(segmentation={"size": [4, 4], "counts": [16]}))), ValueError, r"RLE size \[4, 4\] is not the image's \(8, 8\)"),
    ("coco background", lambda p: read_coco_video(coco_file(p, categories=[{"id": 1, "name": "background"}])), ValueError, "background is not a class"),
    # synthetic stacks
    ("z shape", lambda p: synthetic_zstack((8, 8)), ValueError, "shape must be three integers >= 1"),
    ("z radius", lambda p: synthetic_zstack(radius=(5, 2)), ValueError, "radius must satisfy 1.0 <= low <= high"),
    ("z radius type", lambda p: synthetic_zstack(radius=3), ValueError, "radius must be a \\(low, high\\) pair"),
    ("z elongation", lambda p: synthetic_zstack(elongation=(0.5, 2)), ValueError, "elongation must satisfy 1.0 <= low <= high"),
    ("z tilt", lambda p: synthetic_zstack(tilt=100), ValueError, "tilt must be a finite number in \\[0, 90\\]"),
    ("z falloff", lambda p: synthetic_zstack(depth_falloff=1.0), ValueError, "depth_falloff must be a finite number in \\[0, 0.99\\]"),
    ("z dtype", lambda p: synthetic_zstack(dtype=np.int8), ValueError, "dtype must be np.uint8, np.uint16 or np.float32"),
    ("z n", lambda p: synthetic_zstack(n=-1), ValueError, "n must be an integer >= 0"),
    ("t rate", lambda p: synthetic_timelapse(division_rate=2), ValueError, "division_rate must be a finite number in \\[0, 1\\]"),
    ("t shape", lambda p: synthetic_timelapse((0, 8, 8)), ValueError, "shape must be three integers >= 1"),
]  # fmt: skip


def _tif(path, data, **metadata):
    tifffile.imwrite(path, data, metadata=metadata or None, photometric="minisblack")
    return path


def _touch(path):
    path.write_bytes(b"x")
    return path


def _text(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(("case", "call", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, case, call, error, message):
    with pytest.raises(error, match=message):
        call(tmp_path)
