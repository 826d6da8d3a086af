"""Tests for labelassist.bulk: image sources, local and Dask runs, failures, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from labelassist import bulk
from labelassist.bulk import PreannotateWarning, preannotate

SCORE = 0.05  # untrained models score low; this keeps a few detections per image


# -- helpers ---------------------------------------------------------------------------------


def _blobs(seed: int, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A small uint8 image with a few bright discs on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.normal(30, 5, shape)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    for _ in range(3):
        r, c = rng.integers(10, min(shape) - 10, 2)
        image[(rows - r) ** 2 + (cols - c) ** 2 < rng.integers(16, 60)] += 150
    return np.clip(image, 0, 255).astype(np.uint8)


def _write_images(folder: Path, n: int, *, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(start, start + n):
        path = folder / f"img_{k:02d}.png"
        iio.imwrite(path, _blobs(k))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model():
    import torch

    from labelassist.models import load_model

    torch.manual_seed(0)
    return load_model(None, classes=["nucleus"], device="cpu")


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _coco_content(path: Path) -> dict:
    """The parts of a COCO file that results are made of (``info`` holds a timestamp)."""
    data = json.loads(Path(path).read_text())
    return {key: data[key] for key in ("categories", "images", "annotations")}


# -- image sources --------------------------------------------------------------------------


def test_folder_is_sorted_and_filtered_by_suffix(tmp_path):
    for name in ("b.png", "a.TIF", "c.jpeg", "notes.txt", "d.tiff", "e.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.png").write_bytes(b"x")
    sources, root = bulk._resolve_sources(tmp_path)
    assert [s.name for s in sources] == ["a.TIF", "b.png", "c.jpeg", "d.tiff", "e.jpg"]
    assert [s.index for s in sources] == [0, 1, 2, 3, 4]
    assert root == str(tmp_path)
    assert all(Path(s.path).is_absolute() and s.array is None for s in sources)


def test_glob_pattern_and_nested_paths(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        for name in ("2.png", "1.png"):
            (tmp_path / sub / name).write_bytes(b"x")
    sources, root = bulk._resolve_sources(str(tmp_path / "*" / "*.png"))
    assert [s.name for s in sources] == ["x/1.png", "x/2.png", "y/1.png", "y/2.png"]
    assert root == str(tmp_path)
    recursive, _ = bulk._resolve_sources(str(tmp_path / "**" / "2.png"))
    assert [s.name for s in recursive] == ["x/2.png", "y/2.png"]


def test_list_keeps_order_names_arrays_and_drops_duplicates(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    image = np.zeros((8, 8), np.uint8)
    with pytest.warns(PreannotateWarning, match=r"1 duplicate path.*sub/b\.png"):
        sources, root = bulk._resolve_sources([b, image, str(a), b])
    assert [s.name for s in sources] == ["sub/b.png", "array_0001", "a.png"]
    assert sources[1].array is image
    assert root == str(tmp_path)


def test_only_arrays_have_no_root():
    sources, root = bulk._resolve_sources([np.zeros((4, 4)), np.ones((4, 4))])
    assert [s.name for s in sources] == ["array_0000", "array_0001"]
    assert root is None


def test_empty_list_gives_no_sources():
    assert bulk._resolve_sources([]) == ([], None)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        ("{tmp}/missing", FileNotFoundError, "does not exist"),
        ("{tmp}/empty", ValueError, "holds no image files"),
        ("{tmp}/*.nothing", ValueError, "matches no files"),
        (["{tmp}/*.nothing"], ValueError, r"images\[0\].*matches no files"),
        (np.zeros((4, 4)), TypeError, "single array"),
        (3, TypeError, "images must be a folder"),
        ([np.zeros((4, 4)), 3], TypeError, r"images\[1\] is int"),
    ],
)
def test_bad_images_argument(tmp_path, images, error, match):
    (tmp_path / "empty").mkdir()
    if isinstance(images, str):
        images = images.format(tmp=tmp_path)
    elif isinstance(images, list):
        images = [i.format(tmp=tmp_path) if isinstance(i, str) else i for i in images]
    with pytest.raises(error, match=match):
        bulk._resolve_sources(images)


def test_load_reports_each_kind_of_unreadable_image(tmp_path):
    (tmp_path / "corrupt.png").write_bytes(b"not a png at all")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 6, 7), np.uint8))
    iio.imwrite(tmp_path / "good.png", _blobs(0))
    cases = {
        "corrupt.png": "cannot read",
        "stack.tif": "3-D stack",
        "gone.png": "file not found",
    }
    for name, reason in cases.items():
        image, error = bulk._load(bulk._Source(0, name, path=str(tmp_path / name)))
        assert image is None and reason in error, (name, error)
    image, error = bulk._load(bulk._Source(0, "good.png", path=str(tmp_path / "good.png")))
    assert error is None and image.shape == (64, 64)
    for array, reason in [
        (np.zeros((2, 3, 4, 5)), "got shape"),
        (np.zeros((0, 5)), "empty"),
        (np.array([["a"]]), "unsupported pixel type"),
    ]:
        image, error = bulk._load(bulk._Source(0, "array_0000", array=array))
        assert image is None and reason in error


def test_assign_ids_keeps_taken_ids_and_avoids_clashes():
    sources = [bulk._Source(k, name) for k, name in enumerate("abcd")]
    assert bulk._assign_ids(sources, {}) == {"a": 1, "b": 2, "c": 3, "d": 4}
    # an earlier run (with other inputs) gave "c" id 1 and "x" id 4
    ids = bulk._assign_ids(sources, {"c": 1, "x": 4})
    assert ids["c"] == 1 and ids["x"] == 4 and ids["b"] == 2
    assert len(set(ids.values())) == len(ids)
    assert {ids["a"], ids["d"]} == {5, 6}
