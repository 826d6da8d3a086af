"""Bad inputs to the model package: each a clear one-line error naming the problem (issue #12).

Not-a-checkpoint files reaching `load_model`, `model_from_bytes` and the ``info``,
``evaluate`` and ``preannotate`` commands; damaged checkpoints; bad prediction arguments.
Each row: input -> exception type + ``match`` on the message.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import TINY, one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.cli import main
from labelassist.instances import Instances
from labelassist.model import build_maskrcnn, checkpoint_to_bytes, load_model, model_from_bytes

EXPECTED = (
    r"expected a labelassist checkpoint \(written by Model\.save or labelassist train\) or a "
    r"torchvision Mask R-CNN state dict"
)


@pytest.fixture(scope="module")
def good() -> dict:
    """A valid checkpoint dictionary of a tiny model (edited by the damaged rows)."""
    return tiny_model(("nucleus", "debris")).checkpoint()


def _torch_file(obj):
    def write(path: Path, good: dict) -> None:
        torch.save(obj(good) if callable(obj) else obj, path)

    return write


def _bytes(data: bytes):
    def write(path: Path, good: dict) -> None:
        path.write_bytes(data)

    return write


def _zip_not_torch(path: Path, good: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "a zip, but no torch data")


def _truncated(path: Path, good: dict) -> None:
    buffer = io.BytesIO()
    torch.save(good, buffer)
    path.write_bytes(buffer.getvalue()[:5000])


def _legacy_pickle(path: Path, good: dict) -> None:
    with open(path, "wb") as fh:
        pickle.dump({"obj": Instances.empty((2, 2))}, fh, protocol=2)


def _edit_meta(**changes):
    def edit(good: dict) -> dict:
        return {**good, "meta": {**good["meta"], **changes}}

    return edit


def _edit(**changes):
    return lambda good: {**good, **changes}


FILES = [
    # (id, writer, exception, match)
    ("text", _bytes(b"this is not a checkpoint\n"), ValueError,
     r"bad\.pt is not a torch checkpoint \(neither a torch zip archive nor a pickle\); " + EXPECTED),
    ("5 kB random bytes", _bytes(np.random.default_rng(0).bytes(5000)), ValueError,
     r"bad\.pt is not a torch checkpoint \(neither a torch zip archive nor a pickle\); " + EXPECTED),
    ("empty file", _bytes(b""), ValueError,
     r"bad\.pt is not a torch checkpoint \(it is empty: 0 bytes\); " + EXPECTED),
    ("zip, not torch", _zip_not_torch, ValueError,
     r"bad\.pt is not a torch checkpoint \(a zip archive that holds no torch data"),
    ("truncated checkpoint", _truncated, ValueError,
     r"bad\.pt is not a torch checkpoint \(a truncated or damaged zip archive of 5000 bytes\)"),
    ("dict with wrong keys", _torch_file({"model": torch.zeros(2), "epoch": 3}), ValueError,
     r"bad\.pt is not a labelassist checkpoint \(it holds a dict with keys \['epoch', 'model'\], "
     r"no format='labelassist'\); " + EXPECTED),
    ("empty dict", _torch_file({}), ValueError, r"holds an empty dict"),
    ("a list", _torch_file([1, 2, 3]), ValueError, r"not a labelassist checkpoint \(it holds a list"),
    ("a tensor", _torch_file(torch.zeros(3)), ValueError, r"it holds a Tensor"),
    ("torchvision state dict", _torch_file(lambda g: build_maskrcnn(num_classes=2, **TINY).state_dict()),
     ValueError, r"bad\.pt is a torchvision Mask R-CNN plain state dict, not a labelassist "
     r"checkpoint; wrap it: net = build_maskrcnn"),
    ("other state dict", _torch_file(torch.nn.Linear(2, 2).state_dict()), ValueError,
     r"bad\.pt is a plain state dict, not a labelassist checkpoint"),
    ("pickled objects", _torch_file({"format": "labelassist", "obj": Instances.empty((2, 2))}),
     ValueError, r"bad\.pt holds pickled Python objects that labelassist refuses to load"),
    ("legacy pickle", _legacy_pickle, ValueError, r"refuses to load \(unsafe\)"),
    ("format_version str", _torch_file(_edit(format_version="1")), ValueError,
     r"damaged labelassist checkpoint \(format_version must be an int >= 1, got '1'\)"),
    ("format_version future", _torch_file(_edit(format_version=99)), ValueError,
     r"format_version 99; this labelassist reads up to 1: upgrade labelassist"),
    ("no meta", _torch_file(_edit(meta=None)), ValueError, r"damaged .* \(no meta or state_dict\)"),
    ("meta lacks classes", _torch_file(lambda g: {**g, "meta": {"arch": "x", "num_classes": 2}}),
     ValueError, r"meta lacks 'classes'"),
    ("unknown arch", _torch_file(_edit_meta(arch="maskrcnn_swin")), ValueError,
     r"uses architecture 'maskrcnn_swin', unknown to this labelassist"),
    ("classes not a list", _torch_file(_edit_meta(classes=5)), ValueError,
     r"damaged labelassist checkpoint: meta\['classes'\] must be a list of class names"),
    ("class called background", _torch_file(_edit_meta(classes=["nucleus", "background"])),
     ValueError, r"damaged labelassist checkpoint: meta\['classes'\]\[1\] is 'background'"),
    ("num_classes str", _torch_file(_edit_meta(num_classes="3")), ValueError,
     r"damaged labelassist checkpoint: meta\['num_classes'\] must be an integer >= 2"),
    ("options not a dict", _torch_file(_edit_meta(options=[1])), ValueError,
     r"damaged labelassist checkpoint: meta\['options'\] must be a dict"),
    ("unknown option", _torch_file(_edit_meta(options={"warp": 9})), ValueError,
     r"damaged labelassist checkpoint: .*unknown options \['warp'\]"),
    ("label_ids wrong", _torch_file(_edit_meta(label_ids=[1, 7])), ValueError,
     r"damaged labelassist checkpoint: net predicts 2 classes"),
    ("state_dict non-tensor", _torch_file(lambda g: {**g, "state_dict": {"w": 1}}), ValueError,
     r"damaged labelassist checkpoint: state_dict must map names to tensors"),
    ("state_dict of another size", _torch_file(
        lambda g: {**g, "state_dict": build_maskrcnn(num_classes=2, **TINY).state_dict()}),
     ValueError, r"bad\.pt: the state dict does not fit architecture 'maskrcnn_resnet18_fpn' "
     r"with 3 classes"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("writer", "exc", "match"), [row[1:] for row in FILES], ids=[row[0] for row in FILES]
)
def test_load_model_refuses_bad_files(tmp_path, good, writer, exc, match):
    path = tmp_path / "bad.pt"
    writer(path, good)
    with pytest.raises(exc, match=match) as info:
        load_model(path, device="cpu")
    assert "\n" not in str(info.value)  # one line
    # the same file content given as bytes: the same error, naming "checkpoint bytes"
    with pytest.raises(exc, match=match.replace(r"bad\.pt", "checkpoint bytes")):
        model_from_bytes(path.read_bytes(), device="cpu")


@pytest.mark.parametrize(
    ("source", "exc", "match"),
    [
        ("missing/model.pt", FileNotFoundError, r"checkpoint 'missing/model\.pt' does not exist"),
        ("FOLDER", FileNotFoundError, r"does not exist \(or is not a file\)"),
        ("imagenet", ValueError, r"source='imagenet' is not valid; use 'starter'"),
        (42, ValueError, r"source=42 is not valid"),
    ],
)
def test_load_model_bad_sources(tmp_path, source, exc, match):
    if source == "FOLDER":
        source = tmp_path / "folder.pt"
        source.mkdir()
    with pytest.raises(exc, match=match):
        load_model(source, device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"classes": ["cell", "background"]}, ValueError, r"classes\[1\] is 'background'"),
        ({"classes": ["cell", "cell"]}, ValueError, r"classes must be unique"),
        ({"classes": []}, ValueError, r"classes must name at least one class"),
        ({"classes": [""]}, ValueError, r"classes\[0\] must be a non-empty str"),
        ({"classes": None}, ValueError, r"source=None builds an untrained model and needs classes"),
        ({"classes": ["a"], "device": "gpu-please"}, ValueError, "not a torch device"),
        ({"classes": ["a"], "arch": "vit"}, ValueError, r"arch must be one of \["),
    ],
)
def test_untrained_model_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_model(None, **kwargs)


@pytest.mark.parametrize(
    ("data", "exc", "match"),
    [
        (b"", ValueError, r"checkpoint bytes is not a torch checkpoint \(it is empty: 0 bytes\)"),
        ("model.pt", TypeError, r"data must be checkpoint bytes .* got str"),
        (None, TypeError, r"data must be checkpoint bytes .* got NoneType"),
    ],
)
def test_model_from_bytes_bad_data(data, exc, match):
    with pytest.raises(exc, match=match):
        model_from_bytes(data, device="cpu")


def test_model_from_bytes_bad_device():
    data = checkpoint_to_bytes(tiny_model())
    with pytest.raises(ValueError, match="device='gpu-please' is not a torch device"):
        model_from_bytes(data, device="gpu-please")


# -- the commands that take --model -------------------------------------------------------


def _not_a_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "t.pt"
    path.write_text("this is not a checkpoint\n")
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


def test_info_with_a_bad_or_missing_model_exits_nonzero(tmp_path, capsys):
    bad = _not_a_checkpoint(tmp_path)
    assert main(["info", "--model", str(bad)]) == 1
    err = _one_error_line(capsys)
    assert str(bad) in err and "expected a labelassist checkpoint" in err
    missing = tmp_path / "missing.pt"
    assert main(["info", "--model", str(missing)]) == 1
    err = _one_error_line(capsys)
    assert f"checkpoint {str(missing)!r} does not exist" in err


def test_info_describes_a_good_model(tmp_path, capsys):
    path = tiny_model(("cell",)).save(tmp_path / "m.pt")
    assert main(["info", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "maskrcnn_resnet18_fpn" in out and "classes" in out and "cell" in out


def test_evaluate_and_preannotate_with_a_bad_model(tmp_path, capsys):
    from labelassist.synthetic import synthetic_dataset

    synthetic_dataset(1, out=tmp_path / "data", shape=(32, 32), n=2, seed=0)
    [coco] = (tmp_path / "data").glob("*.json")
    bad = _not_a_checkpoint(tmp_path)
    assert main(["evaluate", str(coco), "--model", str(bad), "--no-progress"]) == 1
    err = _one_error_line(capsys)
    assert str(bad) in err and "is not a torch checkpoint" in err
    images = [p for p in (tmp_path / "data").rglob("*.png")]
    assert images
    out = tmp_path / "preds.json"
    code = main(["preannotate", str(images[0]), "--out", str(out), "--model", str(bad)])
    assert code == 1
    err = _one_error_line(capsys)
    assert str(bad) in err and "expected a labelassist checkpoint" in err
    assert not out.exists()


# -- prediction arguments -------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"score_threshold": 1.5}, ValueError, r"score_threshold must be a finite number in \[0, 1\]"),
        ({"score_threshold": float("nan")}, ValueError, r"score_threshold must be a finite number"),
        ({"mask_threshold": 0.0}, ValueError, r"mask_threshold must be within \(0, 1\)"),
        ({"mask_threshold": 2.0}, ValueError, r"mask_threshold must be a finite number in \[0, 1\]"),
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1, got 0"),
        ({"tile_size": 8}, ValueError, r"tile_size must be an integer >= 32 or None, got 8"),
        ({"tile_size": 64, "tile_overlap": 40}, ValueError,
         r"tile_overlap must be an integer in \[0, 32\], got 40 \(tile_size // 2 at most"),
        ({"tile_overlap": 16}, ValueError, r"tile_overlap=16 is only used with tile_size"),
        ({"max_detections": 0}, ValueError, r"max_detections must be an integer >= 1 or None"),
        ({"max_detections": 2.5}, ValueError, r"max_detections must be an integer"),
    ],
)  # fmt: skip
def test_predict_bad_arguments(model, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        model.predict(np.zeros((32, 32), np.uint8), **kwargs)


@pytest.mark.parametrize(
    ("image", "exc", "match"),
    [
        (np.zeros((3, 8, 8), np.uint8), ValueError, r"image: a 3-D stack of shape \(3, 8, 8\)"),
        (np.zeros((8, 8, 2), np.uint8), ValueError, r"2-channel images"),
        (np.zeros((0, 8), np.uint8), ValueError, r"the image is empty"),
        (np.zeros((4, 4), complex), ValueError, r"unsupported pixel type complex128"),
        (torch.zeros(8, 8), TypeError, r"image must be a numpy array .* got a torch\.Tensor"),
        ([[1, 2]], TypeError, r"images\[0\] must be a numpy array .* got list"),
        ("image.png", TypeError, r"image must be a numpy array .* got str"),
    ],
)
def test_predict_bad_images(model, image, exc, match):
    with pytest.raises(exc, match=match):
        model.predict(image)
