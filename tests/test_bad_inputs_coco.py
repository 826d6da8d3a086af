"""Bad COCO files given to `labelassist.read_coco`: one row per malformed-file case.

Each row: the file's content (or what stands at the path) -> the exception type and a
``match=`` on its one-line message, which names the file. Positive cases of issue #12
item 15 (a byte-order mark, ``a:b.png``) and the RLE bomb of item 1 follow the table.
"""

from __future__ import annotations

import codecs
import json
import os
import tracemalloc

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from labelassist.coco import CocoFormatError, coco_to_instances, read_coco
from labelassist.coco import read as coco_read
from labelassist.geometry import polygons_to_masks

#: the 259-byte annotation of issue #12 item 1: 10**10 pixels claimed in a few bytes
BOMB = {"size": [100000, 100000], "counts": [0, 10000000000]}


def _coco(images=None, annotations=None, categories=None) -> dict:
    return {
        "images": images if images is not None else [_image()],
        "annotations": annotations if annotations is not None else [_ann()],
        "categories": categories if categories is not None else [{"id": 1, "name": "cell"}],
    }


def _image(image_id=1, height=6, width=6, **kw) -> dict:
    return {"id": image_id, "file_name": "a.png", "height": height, "width": width, **kw}


def _ann(ann_id=1, segmentation=None, **kw) -> dict:
    seg = segmentation if segmentation is not None else [[1, 1, 4, 1, 4, 3, 1, 3]]
    return {"id": ann_id, "image_id": 1, "category_id": 1, "segmentation": seg, **kw}


def _text(data) -> bytes:
    return json.dumps(data).encode("utf-8")


def _compressed(counts: list[int]) -> str:
    """pycocotools' compressed RLE string of ``counts`` (its ``rleToString``, in Python, for
    runs beyond its 32-bit counts)."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(c + (0x20 if more else 0) + 48))
    return "".join(out)


_BIG = [_image(height=100000, width=100000)]

# (id, content: bytes, a dict to dump, or "dir"/"fifo"/"missing"), error, match
CASES = [
    # the file itself
    ("missing file", "missing", FileNotFoundError, "COCO file not found"),
    ("directory", "dir", CocoFormatError, "is a folder; give the COCO .json file inside it"),
    ("fifo", "fifo", CocoFormatError, "is not a regular file"),
    ("empty file", b"", CocoFormatError, "the file is empty"),
    ("only whitespace", b" \n\t\n", CocoFormatError, "the file is empty"),
    ("not json", b"{images: [", CocoFormatError, "not a JSON file"),
    ("truncated", _text(_coco())[:-3], CocoFormatError, "not a JSON file"),
    ("not utf-8", b'{"images": [], "x": "\xe9"}', CocoFormatError, "not UTF-8 text"),
    ("utf-16 with bom", codecs.BOM_UTF16_LE + '{"images": []}'.encode("utf-16-le"),
     CocoFormatError, "not UTF-8 text"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, CocoFormatError, "nested too deeply"),
    ("deep nesting in a record", _text(_coco())[:-1] + b', "x": ' + b"[" * 50_000
     + b"]" * 50_000 + b"}", CocoFormatError, "nested too deeply"),
    ("100,000-digit number", b'{"images": [], "annotations": [], "categories": [{"id": '
     + b"9" * 100_000 + b', "name": "c"}]}', CocoFormatError,
     "too many digits|id must be an int"),
    ("huge float coordinate", _text(_coco()).replace(b"[[1, 1,", b"[[1e400, 1,"),
     CocoFormatError, "NaN or infinite"),
    ("NaN score", _coco(annotations=[_ann(score=float("nan"))]), CocoFormatError,
     r"score must be a number in \[0, 1\], got nan"),
    # the top level
    ("top-level list", [_ann()], CocoFormatError, "JSON list"),
    ("top-level number", 3, CocoFormatError, "expected a JSON object, got int"),
    ("missing images", {"annotations": [], "categories": []}, CocoFormatError,
     r"missing key\(s\) \['images'\]"),
    ("missing annotations", {"images": [], "categories": []}, CocoFormatError,
     r"missing key\(s\) \['annotations'\]"),
    ("missing categories", {"images": [], "annotations": []}, CocoFormatError,
     r"missing key\(s\) \['categories'\]"),
    ("images a dict", {**_coco(), "images": {}}, CocoFormatError, "'images' must be a list"),
    ("annotation a string", _coco(annotations=["x"]), CocoFormatError,
     r"annotations\[0\] must be an object"),
    # image records
    ("image without id", _coco(images=[{"file_name": "a", "height": 6, "width": 6}]),
     CocoFormatError, r"image 'images\[0\]': missing key\(s\) \['id'\]"),
    ("image id a list", _coco(images=[_image(image_id=[1])]), CocoFormatError,
     r"image \[1\]: id must be an int"),
    ("image id beyond 64 bits", _coco(images=[_image(image_id=2**70)]), CocoFormatError,
     r"id must be an int \(64-bit\), got 1180591620717411303424"),
    ("duplicate image id", _coco(images=[_image(), _image()]), CocoFormatError,
     "duplicate image id 1"),
    ("height a string", _coco(images=[_image(height="6")]), CocoFormatError,
     "height must be a positive int"),
    ("height a bool", _coco(images=[_image(height=True)]), CocoFormatError,
     "height must be a positive int"),
    ("width fractional", _coco(images=[_image(width=6.5)]), CocoFormatError,
     "width must be a positive int"),
    ("width beyond 2**31", _coco(images=[_image(width=2**40)]), CocoFormatError,
     r"width must be a positive int \(at most 2147483647\)"),
    ("file_name absolute", _coco(images=[_image(file_name="/etc/passwd")]), CocoFormatError,
     "is absolute or leaves the image folder"),
    ("file_name ..", _coco(images=[_image(file_name="imgs/../../x.png")]), CocoFormatError,
     "is absolute or leaves the image folder"),
    ("file_name NUL", _coco(images=[_image(file_name="a\x00.png")]), CocoFormatError,
     "without NUL"),
    ("file_name empty", _coco(images=[_image(file_name="")]), CocoFormatError,
     "file_name must be a non-empty str"),
    # categories
    ("category id a string", _coco(categories=[{"id": "1", "name": "c"}]), CocoFormatError,
     "category '1': id must be an int"),
    ("duplicate category id", _coco(categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]),
     CocoFormatError, "duplicate category id 1"),
    ("duplicate category name", _coco(categories=[{"id": 1, "name": "a"},
                                                  {"id": 2, "name": "a"}]),
     CocoFormatError, r"duplicate category names \['a'\]"),
    ("blank category name", _coco(categories=[{"id": 1, "name": "  "}], annotations=[]),
     CocoFormatError, r"categories\[0\] must be a non-empty str"),
    ("category name a number", _coco(categories=[{"id": 1, "name": 7}]), CocoFormatError,
     "name must be a non-empty str, got 7"),
    # annotations
    ("annotation without segmentation", _coco(annotations=[{"id": 1, "image_id": 1,
                                                           "category_id": 1}]),
     CocoFormatError, r"annotation 1: missing key\(s\) \['segmentation'\]"),
    ("duplicate annotation id", _coco(annotations=[_ann(), _ann()]), CocoFormatError,
     "duplicate annotation id 1"),
    ("annotation id a float", _coco(annotations=[_ann(ann_id=1.5)]), CocoFormatError,
     "annotation 1.5: id must be an int"),
    ("image_id a list", _coco(annotations=[_ann(image_id=[1])]), CocoFormatError,
     r"unknown image_id \[1\]"),
    ("category_id a list", _coco(annotations=[_ann(category_id=[1])]), CocoFormatError,
     r"unknown category_id \[1\]"),
    ("category_id unknown", _coco(annotations=[_ann(category_id=3)]), CocoFormatError,
     "unknown category_id 3"),
    ("iscrowd 2", _coco(annotations=[_ann(iscrowd=2)]), CocoFormatError,
     "iscrowd must be 0 or 1"),
    ("score beyond float", _coco(annotations=[_ann(score=10**400)]), CocoFormatError,
     r"score must be a number in \[0, 1\]"),
    # polygon segmentations
    ("segmentation a number", _coco(annotations=[_ann(segmentation=5)]), CocoFormatError,
     "segmentation must be a list of polygons or an RLE dict"),
    ("polygon not nested", _coco(annotations=[_ann(segmentation=[0, 0, 2, 0, 2, 2])]),
     CocoFormatError, "must be a list of rings"),
    ("polygon odd", _coco(annotations=[_ann(segmentation=[[0, 0, 2, 0, 2, 2, 5]])]),
     CocoFormatError, r"odd number of coordinates \(7\)"),
    ("polygon two points", _coco(annotations=[_ann(segmentation=[[0, 0, 2, 0]])]),
     CocoFormatError, "fewer than 3"),
    ("polygon text", _coco(annotations=[_ann(segmentation=[[0, "a", 2, 0, 2, 2]])]),
     CocoFormatError, "coordinates must be numbers"),
    ("polygon nested list", _coco(annotations=[_ann(segmentation=[[[0, 0], [2, 0], [2, 2]]])]),
     CocoFormatError, "coordinates must be numbers"),
    ("polygon int beyond float", _coco(annotations=[_ann(segmentation=[[0, 0, 10**400, 0,
                                                                        2, 2]])]),
     CocoFormatError, "NaN or infinite"),
    # RLE segmentations
    ("RLE bomb", _coco(images=_BIG, annotations=[_ann(segmentation=BOMB)]), CocoFormatError,
     r"annotation 1 \(image 1\): the RLE mask spans a box of 100000 x 100000 pixels, more "
     r"than the limit of 67108864 \(labelassist.coco.read.MAX_MASK_PIXELS\)"),
    ("RLE bomb, compressed", _coco(images=_BIG, annotations=[_ann(segmentation={
        "size": [100000, 100000], "counts": _compressed([5 * 10**9, 10**9, 4 * 10**9])})]),
     CocoFormatError, "the RLE mask spans a box of 10000 x 100000 pixels"),
    ("RLE size mismatch", _coco(images=_BIG, annotations=[_ann(segmentation={
        "size": [100000, 99999], "counts": [0, 9999900000]})]), CocoFormatError,
     r"RLE size \[100000, 99999\] does not match the image's \[height, width\] = "
     r"\[100000, 100000\]"),
    ("RLE size one number", _coco(annotations=[_ann(segmentation={"size": [36],
                                                                  "counts": [36]})]),
     CocoFormatError, r"RLE size \[36\] does not match"),
    ("RLE size text", _coco(annotations=[_ann(segmentation={"size": "6x6", "counts": [36]})]),
     CocoFormatError, "RLE size '6x6' does not match"),
    ("RLE counts sum", _coco(annotations=[_ann(segmentation={"size": [6, 6],
                                                             "counts": [0, 10**30]})]),
     CocoFormatError, r"RLE counts sum to 10{30}, expected height\*width = 36"),
    ("RLE counts negative", _coco(annotations=[_ann(segmentation={"size": [6, 6],
                                                                  "counts": [40, -4]})]),
     CocoFormatError, "non-negative ints"),
    ("RLE counts bools", _coco(annotations=[_ann(segmentation={"size": [6, 6],
                                                               "counts": [True, 35]})]),
     CocoFormatError, "non-negative ints"),
    ("RLE counts huge run, compressed", _coco(annotations=[_ann(segmentation={
        "size": [6, 6], "counts": "0" + "o" * 12 + "?"})]), CocoFormatError,
     "RLE counts sum to|malformed"),
    ("RLE string malformed", _coco(annotations=[_ann(segmentation={"size": [6, 6],
                                                                   "counts": "0 "})]),
     CocoFormatError, "malformed"),
    ("RLE string not ASCII", _coco(annotations=[_ann(segmentation={"size": [6, 6],
                                                                   "counts": "é"})]),
     CocoFormatError, "not ASCII"),
    ("RLE counts a dict", _coco(annotations=[_ann(segmentation={"size": [6, 6], "counts": {}})]),
     CocoFormatError, "RLE counts must be a str"),
    ("RLE without counts", _coco(annotations=[_ann(segmentation={"size": [6, 6]})]),
     CocoFormatError, "needs 'size' and 'counts'"),
]  # fmt: skip


def _place(tmp_path, content):
    path = tmp_path / "bad.json"
    if content == "dir":
        path.mkdir()
    elif content == "fifo":
        os.mkfifo(path)
    elif content == "missing":
        pass
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(_text(content))
    return path


@pytest.mark.timeout(20)  # a FIFO that is opened blocks for ever, a bomb runs for minutes
@pytest.mark.parametrize(("content", "error", "match"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_coco_file(tmp_path, content, error, match):
    path = _place(tmp_path, content)
    with pytest.raises(error, match=match) as info:
        read_coco(path)
    message = str(info.value)
    assert str(path) in message  # the file is named
    assert "\n" not in message and len(message) < 400  # one line, huge values shortened


# -- item 15: what is valid is read --------------------------------------------------------------
def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(codecs.BOM_UTF8 + _text(_coco()))
    ds = read_coco(path)
    assert ds.categories == ["cell"] and ds.instances[1].areas.tolist() == [6.0]


@pytest.mark.parametrize("name", ["a:b.png", "img/a:b.png", "2024-01-01T10:00:00.tif"])
@pytest.mark.skipif(os.name == "nt", reason="a drive-relative name on Windows")
def test_colon_in_a_posix_file_name_is_accepted(tmp_path, name):
    path = tmp_path / "colon.json"
    path.write_bytes(_text(_coco(images=[_image(file_name=name)])))
    ds = read_coco(path)
    assert ds.image_path(1) == tmp_path / name


# -- item 1: RLE is decoded inside its box only ----------------------------------------------------
def _peak_bytes(function):
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(20)
def test_rle_bomb_is_refused_without_allocating(tmp_path):
    path = tmp_path / "b.json"
    path.write_bytes(_text(_coco(images=_BIG, annotations=[_ann(segmentation=BOMB)])))
    info, peak = _peak_bytes(lambda: pytest.raises(CocoFormatError, read_coco, path))
    assert str(path) in str(info.value) and "MAX_MASK_PIXELS" in str(info.value)
    assert peak < 1 << 20  # the 9.3 GiB mask is never allocated


@pytest.mark.timeout(20)
def test_small_object_in_a_huge_image_is_decoded_in_its_box(tmp_path):
    # 3 rows x 3000 columns at row 50000 of a 100000 x 100000 image: the column band the
    # reader used to expand is 3000 x 100000 = 300 MB; the object's box is 9000 pixels
    h = w = 100000
    counts = [50000 * 1 + 1000 * h]  # background up to (row 50000, column 1000)
    for _ in range(2999):
        counts += [3, h - 3]
    counts += [3, h * w - sum(counts) - 3]
    path = tmp_path / "small.json"
    path.write_bytes(_text(_coco(images=_BIG, annotations=[_ann(segmentation={
        "size": [h, w], "counts": counts})])))  # fmt: skip
    ds, peak = _peak_bytes(lambda: read_coco(path))
    (polygon,) = ds.instances[1].polygons
    assert polygon.equals(shapely.box(1000, 50000, 4000, 50003))
    assert peak < 32 << 20


def test_mask_pixel_limit_is_a_module_setting(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    path.write_bytes(
        _text(_coco(annotations=[_ann(segmentation={"size": [6, 6], "counts": [7, 4, 2, 4, 19]})]))
    )
    assert read_coco(path).instances[1].areas.tolist() == [8.0]  # a 2 x 4 box
    monkeypatch.setattr(coco_read, "MAX_MASK_PIXELS", 7)
    with pytest.raises(
        CocoFormatError, match="spans a box of 2 x 4 pixels, more than the limit of 7"
    ):
        read_coco(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask=arrays(bool, st.tuples(st.integers(1, 9), st.integers(1, 9))), compressed=st.booleans())
def test_any_rle_decodes_to_its_exact_pixels(mask, compressed):
    h, w = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        seg = {"size": [h, w], "counts": rle["counts"].decode()}
    else:  # the runs of the column-major pixels, background first
        flat = mask.ravel(order="F")
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
        seg = {"size": [h, w], "counts": [0, *runs] if flat[0] else runs}
    ann = {"id": 1, "category_id": 1, "segmentation": seg}
    if not mask.any():
        with pytest.warns(UserWarning, match="empty segmentation"):
            assert len(coco_to_instances([ann], {"id": 1, "height": h, "width": w}, {1: 0})) == 0
        return
    (polygon,) = coco_to_instances([ann], {"id": 1, "height": h, "width": w}, {1: 0}).polygons
    assert (polygons_to_masks([polygon], (h, w))[0] == mask).all()
    assert polygon.area == mask.sum()
