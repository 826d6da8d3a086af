"""Bad inputs to bulk pre-annotation (`labelassist.preannotate`): one table per kind.

Each row: an input -> the exception type and a ``match=`` on its one-line message, raised
before any prediction. A second table lists images that are not errors of the call but are
reported one by one in ``dataset.failed`` (the run goes on).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import tifffile
from test_bulk import SCORE, _blobs, _write_images, tiny_model

from labelassist.bulk import PreannotateWarning, preannotate
from labelassist.coco import CocoFormatError, Dataset

pytestmark = pytest.mark.filterwarnings("ignore:.*reached the model's limit:UserWarning")

# {tmp} is the test's folder, holding: imgs/ (2 images), empty/, only_fifo/f.png (a FIFO),
# a_file (a regular file), fifo.json (a FIFO), other.json (COCO of other classes),
# broken.json (not JSON), readonly/ (mode 0o555)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture
def tmp(tmp_path):
    _write_images(tmp_path / "imgs", 2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_fifo").mkdir()
    os.mkfifo(tmp_path / "only_fifo" / "f.png")
    (tmp_path / "a_file").write_text("x")
    os.mkfifo(tmp_path / "fifo.json")
    Dataset(["cell", "debris"], []).to_coco(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "readonly").mkdir(mode=0o555)
    yield tmp_path
    (tmp_path / "readonly").chmod(0o755)


def _fill(value, tmp):
    if isinstance(value, str):
        return value.format(tmp=tmp)
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    return value


@pytest.mark.timeout(120)  # a FIFO that is opened blocks forever: fail instead of hanging
@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        ("{tmp}/missing", FileNotFoundError, r"^images: no such image file or folder: '.*missing'"),
        ("{tmp}/empty", ValueError, r"^images: folder '.*empty' holds no image files"),
        ("{tmp}/only_fifo", ValueError, r"^images: folder '.*only_fifo' holds no image files"),
        ("{tmp}/only_fifo/*.png", ValueError, r"^images: the pattern .* matches no files"),
        ("{tmp}/*.nothing", ValueError, r"^images: the pattern .* matches no files"),
        (["{tmp}/*.nothing"], ValueError, r"^images\[0\]: the pattern .* matches no files"),
        (["{tmp}/imgs", "{tmp}/empty"], ValueError, r"^images\[1\]: folder .* holds no image"),
        ("", ValueError, r"^images is an empty path; give a folder"),
        (["{tmp}/imgs", " "], ValueError, r"^images\[1\] is an empty path"),
        (np.zeros((4, 4)), TypeError, r"^images is a single array; pass a list of arrays"),
        (3, TypeError, r"^images must be a folder, a glob pattern, .* got int"),
        (None, TypeError, r"^images must be a folder, .* got NoneType"),
        (b"imgs", TypeError, r"^images must be a folder, .* got bytes"),
        ([np.zeros((4, 4)), 3], TypeError, r"^images\[1\] is int; expected a path"),
        ([{"file": "a.png"}], TypeError, r"^images\[0\] is dict; expected a path"),
    ],
)
def test_bad_images(tmp, model, images, error, match):
    with pytest.raises(error, match=match):
        preannotate(_fill(images, tmp), model, progress=False)


_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"score_threshold": 1.5}, ValueError, r"^score_threshold must be a finite number in \["),
        ({"score_threshold": "0.5"}, ValueError, r"^score_threshold must be a finite number"),
        ({"score_threshold": float("nan")}, ValueError, r"^score_threshold must be a finite"),
        ({"score_threshold": True}, ValueError, r"^score_threshold must be a finite number"),
        ({"tile_size": 0}, ValueError, r"^tile_size must be an integer >= 1 or None, got 0"),
        ({"tile_size": 8}, ValueError, r"^tile_size must be .*>= 32.*, got 8"),
        ({"tile_size": 64.0}, ValueError, r"^tile_size must be an integer"),
        ({"tile_size": 64, "tile_overlap": 40}, ValueError, r"^tile_overlap must be an int.*40"),
        ({"tile_overlap": 16}, ValueError, "tile_overlap=16 is only used with tile_size"),
        ({"batch_size": 0}, ValueError, r"^batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.0}, ValueError, r"^batch_size must be an integer >= 1, got 2\.0"),
        ({"batch_size": True}, ValueError, r"^batch_size must be an integer >= 1, got True"),
        ({"num_workers": -1}, ValueError, r"^num_workers must be an integer >= 0 or None"),
        ({"num_workers": "2"}, ValueError, r"^num_workers must be an integer >= 0 or None"),
        ({"flush_every": 0}, ValueError, r"^flush_every must be an integer >= 1"),
        ({"retry_failed": "yes"}, TypeError, r"^retry_failed must be True or False"),
        ({"client": "tcp://localhost:8786"}, TypeError, r"^client must be a dask"),
        ({"model": 3}, TypeError, r"^model must be a labelassist Model"),
        ({"model": "{tmp}/nope.pt"}, FileNotFoundError, r"nope\.pt' does not exist"),
        ({"out": "{tmp}"}, ValueError, r"^out: .* is a folder; give a \.json file path"),
        ({"out": "{tmp}/fifo.json"}, ValueError, r"^out: .*fifo\.json' is not a regular file"),
        ({"out": 3}, TypeError, r"^out must be a path to a \.json file"),
        ({"out": ""}, ValueError, r"^out must be a path to a \.json file, got ''"),
        (
            {"out": "{tmp}/a_file/preds.json"},
            ValueError,
            r"^out: .* cannot be created: '.*a_file' is a file, not a folder",
        ),
        ({"out": "{tmp}/other.json"}, ValueError, r"classes \['cell', 'debris'\].*another out"),
        ({"out": "{tmp}/broken.json"}, CocoFormatError, r"broken\.json: not a JSON file"),
        pytest.param(
            {"out": "{tmp}/readonly/preds.json"},
            PermissionError,
            r"^out: cannot write in '.*readonly' .*; choose a writable folder",
            marks=pytest.mark.skipif(_ROOT, reason="root may write into a read-only folder"),
        ),
    ],
)
def test_bad_arguments(tmp, model, kwargs, error, match):
    kwargs = {k: _fill(v, tmp) for k, v in kwargs.items()}
    kwargs.setdefault("model", model)
    with pytest.raises(error, match=match):
        preannotate(tmp / "imgs", progress=False, **kwargs)
    assert not list(tmp.glob("**/*.probe")) and not (tmp / "preds.json").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{tmp}/f.png", r"^not a regular file \(a FIFO \(named pipe\)\); give image files only$"),
        ("{tmp}/gone.png", r"^file not found$"),
        ("{tmp}/corrupt.png", r"cannot read image"),
        ("{tmp}/stack.tif", r"^prediction failed: ValueError: the stack has 2 channels"),
        (np.zeros((2, 3, 8, 8), np.uint8), r"^array_0001: a 4-D stack"),
        (np.zeros((0, 8), np.uint8), r"^array_0001: the image is empty"),
        (np.array([["a", "b"]]), r"^array_0001: unsupported pixel type"),
        (np.zeros((8, 8, 2), np.uint8), r"^array_0001: 2-channel images"),
    ],
)
def test_bad_images_are_reported_and_the_run_goes_on(tmp, model, bad, reason):
    os.mkfifo(tmp / "f.png")
    (tmp / "corrupt.png").write_bytes(b"\x89PNG not really")
    # a z-stack is predicted as one item (tests/test_bulk_stacks.py); one with two
    # channels the model cannot take fails alone
    tifffile.imwrite(tmp / "stack.tif", np.zeros((5, 2, 8, 8), np.uint8), imagej=True,
                     metadata={"axes": "ZCYX"})  # fmt: skip
    good = [_blobs(0), _blobs(1)]
    images = [good[0], _fill(bad, tmp), good[1]]
    with pytest.warns(PreannotateWarning, match="1 of 3 images"):
        ds = preannotate(images, model, score_threshold=SCORE, progress=False)
    [(name, why)] = ds.failed
    assert name == ("array_0001" if isinstance(bad, np.ndarray) else bad.split("/")[-1])
    assert re.search(reason, why), why
    assert [r["id"] for r in ds.images] == [1, 3]
    assert [ds.instances[1], ds.instances[3]] == model.predict(good, score_threshold=SCORE)
