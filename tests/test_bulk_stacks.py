"""`preannotate` on stack files: one item each, linked, saved beside ``out``, resumed per plane."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

import labelassist as la
from labelassist.bulk.sources import ImageSource
from labelassist.bulk.stacks import PROGRESS_KEY, is_stack, stack_file
from labelassist.geometry import polygons_to_masks
from labelassist.stacks import StackInstances, read_coco_video
from labelassist.synthetic import synthetic_nuclei
from labelassist.synthetic_stacks import synthetic_zstack


@pytest.fixture(scope="module")
def starter():
    return la.load_model("starter", device="cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder with a 2-D PNG, a 6-plane z-stack (ImageJ axes) and a 2-D TIFF."""
    root = tmp_path_factory.mktemp("bulk_stacks")
    image, _ = synthetic_nuclei((96, 96), seed=3)
    Image.fromarray(image).save(root / "a.png")
    stack, _, _ = synthetic_zstack((6, 96, 96), n=5, radius=(14.0, 18.0), seed=4)
    tifffile.imwrite(root / "b.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(root / "c.tif", image)
    return root, stack


def same_objects(a: StackInstances, b: StackInstances) -> bool:
    """Equal stacks up to the outline of objects with holes, which the COCO video file keeps
    as RLE (COCO rings cannot hold a hole): the same classes, scores, ids, parents and
    masks per plane."""
    if (a.axes, a.shape, a.parents) != (b.axes, b.shape, b.parents):
        return False
    for p, q in zip(a.planes, b.planes, strict=True):
        if len(p) != len(q) or not (
            np.array_equal(p.labels, q.labels)
            and np.allclose(p.scores, q.scores)
            and np.array_equal(p.extra["object_id"], q.extra["object_id"])
            and np.array_equal(
                polygons_to_masks(p.polygons, p.image_shape),
                polygons_to_masks(q.polygons, q.image_shape),
            )
        ):
            return False
    return True


def test_only_tiffs_with_a_t_or_z_axis_are_stacks(files, tmp_path):
    root, _ = files
    flags = [is_stack(ImageSource(0, n, path=str(root / n))) for n in ("a.png", "b.tif", "c.tif")]
    assert flags == [False, True, False]
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.zeros((3, 16, 16), np.uint8), imagej=True, metadata={"axes": "TYX"})
    assert is_stack(ImageSource(0, "movie.tif", path=str(movie)))


def test_a_stack_is_one_item_linked_and_saved_beside_out(files, starter, tmp_path):
    root, stack = files
    out = tmp_path / "proposals.json"
    result = la.preannotate(root, starter, out=out, batch_size=4, progress=False)
    assert [im["file_name"] for im in result.images] == ["a.png", "c.tif"]
    assert result.failed == []
    # the stack's objects are what Model.predict_stack gives with the same options
    expected = starter.predict_stack(stack, axes="ZYX", batch_size=4, progress=False)
    got = result.stacks["b.tif"]
    assert got.axes == "ZYX" and got.shape == (6, 96, 96)
    assert len(got.object_ids) > 0
    assert got == expected
    # saved as a COCO video file listed in out's info, complete
    saved = stack_file(out, "b.tif")
    info = json.loads(out.read_text())["info"]
    assert info["stacks"] == {"b.tif": "proposals.stacks/b.tif.json"}
    stack, classes = read_coco_video(saved)
    assert classes == ["object"] and same_objects(stack, expected)
    progress = json.loads(saved.read_text())["info"][PROGRESS_KEY]
    assert progress["complete"] is True and progress["planes_done"] == 6
    assert progress["object_size"] > 0  # "auto", measured once for the stack
    # a second run predicts nothing again
    calls = []
    original = starter.predict

    def counting(images, **options):
        if len(images):  # not preannotate's check of the options
            calls.append(len(images))
        return original(images, **options)

    starter.predict = counting
    try:
        again = la.preannotate(root, starter, out=out, batch_size=4, progress=False)
    finally:
        del starter.predict
    assert calls == []
    assert same_objects(again.stacks["b.tif"], expected)


def test_an_interrupted_stack_resumes_from_its_next_plane(files, starter, tmp_path):
    root, stack = files
    out = tmp_path / "run.json"
    calls: list[int] = []
    original = starter.predict

    def interrupted(images, **options):
        if len(calls) == 2:  # the third batch of planes: Ctrl-C
            raise KeyboardInterrupt
        if len(images):  # not preannotate's check of the options
            calls.append(len(images))
        return original(images, **options)

    starter.predict = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            la.preannotate([root / "b.tif"], starter, out=out, batch_size=2, progress=False)
    finally:
        del starter.predict
    saved = stack_file(out, "b.tif")
    progress = json.loads(saved.read_text())["info"][PROGRESS_KEY]
    assert progress == {**progress, "planes_done": 4, "complete": False}
    # resumed: only the last two planes are predicted, at the size the first run measured
    calls.clear()
    sizes = []

    def counting(images, **options):
        if len(images):  # not preannotate's check of the options
            calls.append(len(images))
            sizes.append(options.get("object_size"))
        return original(images, **options)

    starter.predict = counting
    try:
        result = la.preannotate([root / "b.tif"], starter, out=out, batch_size=2, progress=False)
    finally:
        del starter.predict
    assert calls == [2]
    assert sizes == [progress["object_size"]]
    fresh = la.preannotate([root / "b.tif"], starter, batch_size=2, progress=False)
    assert same_objects(result.stacks["b.tif"], fresh.stacks["b.tif"])
    assert json.loads(saved.read_text())["info"][PROGRESS_KEY]["complete"] is True


def test_a_stack_the_model_cannot_take_fails_alone(files, starter, tmp_path):
    root, _ = files
    bad = tmp_path / "two_channels.tif"
    tifffile.imwrite(bad, np.zeros((3, 2, 16, 16), np.uint8), imagej=True,
                     metadata={"axes": "ZCYX"})  # fmt: skip
    with pytest.warns(la.PreannotateWarning, match="two_channels.tif"):
        result = la.preannotate([root / "a.png", bad], starter, out=tmp_path / "o.json",
                                progress=False)  # fmt: skip
    assert [im["file_name"].split("/")[-1] for im in result.images] == ["a.png"]
    assert [name.split("/")[-1] for name, _ in result.failed] == ["two_channels.tif"]
    assert "channel" in result.failed[0][1]
    assert result.stacks == {}
    info = json.loads((tmp_path / "o.json").read_text())["info"]
    assert info["failed"] == [list(result.failed[0])] and "stacks" not in info


def test_the_command_reports_the_stacks_and_writes_their_files(files, tmp_path, capsys):
    from labelassist.cli import main

    root, _ = files
    out = tmp_path / "preds.json"
    assert main(["preannotate", str(root / "b.tif"), "--out", str(out), "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    objects = len(read_coco_video(stack_file(out, "b.tif"))[0].object_ids)
    assert objects > 0
    assert f"0 images, 0 instances, 1 stacks ({objects} objects), 0 failed" in line
