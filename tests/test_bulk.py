"""Tests for labelassist.bulk: image sources, local and Dask runs, failures, resume.

Bad arguments are in test_bad_inputs_bulk.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from labelassist.bulk import (
    ImageSource,
    PreannotateResult,
    PreannotateWarning,
    cluster,
    collect_sources,
    preannotate,
)
from labelassist.bulk.batch import Outcome
from labelassist.bulk.local import default_num_workers
from labelassist.bulk.output import Collector, Previous, assign_ids
from labelassist.bulk.sources import load_source

SCORE = 0.05  # untrained models score low; this keeps a few detections per image

# the tiny test model keeps at most 4 detections per image, on purpose
pytestmark = pytest.mark.filterwarnings("ignore:.*reached the model's limit:UserWarning")


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


# a small untrained Mask R-CNN: few detections per image keep the tests fast
TINY = {
    "box_detections_per_img": 4,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 20,
    "fpn_channels": 32,
    "representation_size": 64,
    "mask_channels": 16,
    "mask_layers": 1,
}


def tiny_model(seed: int = 0):
    import torch

    from labelassist.model import Model, build_maskrcnn

    torch.manual_seed(seed)
    net = build_maskrcnn("maskrcnn_resnet18_fpn", 2, **TINY)
    return Model(net, ["nucleus"], arch="maskrcnn_resnet18_fpn", options=TINY, device="cpu")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


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
    sources, root = collect_sources(tmp_path)
    assert [s.name for s in sources] == ["a.TIF", "b.png", "c.jpeg", "d.tiff", "e.jpg"]
    assert [s.index for s in sources] == [0, 1, 2, 3, 4]
    assert root == str(tmp_path)
    assert all(Path(s.path).is_absolute() and s.array is None for s in sources)


def test_glob_pattern_and_nested_paths(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        for name in ("2.png", "1.png"):
            (tmp_path / sub / name).write_bytes(b"x")
    sources, root = collect_sources(str(tmp_path / "*" / "*.png"))
    assert [s.name for s in sources] == ["x/1.png", "x/2.png", "y/1.png", "y/2.png"]
    assert root == str(tmp_path)
    recursive, _ = collect_sources(str(tmp_path / "**" / "2.png"))
    assert [s.name for s in recursive] == ["x/2.png", "y/2.png"]


def test_list_keeps_order_names_arrays_and_drops_duplicates(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    image = np.zeros((8, 8), np.uint8)
    with pytest.warns(PreannotateWarning, match=r"1 duplicate path.*sub/b\.png"):
        sources, root = collect_sources([b, image, str(a), b])
    assert [s.name for s in sources] == ["sub/b.png", "array_0001", "a.png"]
    assert sources[1].array is image
    assert root == str(tmp_path)


def test_only_arrays_have_no_root():
    sources, root = collect_sources([np.zeros((4, 4)), np.ones((4, 4))])
    assert [s.name for s in sources] == ["array_0000", "array_0001"]
    assert root is None


def test_empty_list_gives_no_sources():
    assert collect_sources([]) == ([], None)


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
        image, error = load_source(ImageSource(0, name, path=str(tmp_path / name)))
        assert image is None and reason in error, (name, error)
    image, error = load_source(ImageSource(0, "good.png", path=str(tmp_path / "good.png")))
    assert error is None and image.shape == (64, 64)
    for array, reason in [
        (np.zeros((2, 3, 4, 5)), "4-D stack"),
        (np.zeros((0, 5)), "empty"),
        (np.array([["a"]]), "unsupported pixel type"),
    ]:
        image, error = load_source(ImageSource(0, "array_0000", array=array))
        assert image is None and reason in error


def test_assign_ids_keeps_taken_ids_and_avoids_clashes():
    sources = [ImageSource(k, name) for k, name in enumerate("abcd")]
    assert assign_ids(sources, {}) == {"a": 1, "b": 2, "c": 3, "d": 4}
    # an earlier run (with other inputs) gave "c" id 1 and "x" id 4
    ids = assign_ids(sources, {"c": 1, "x": 4})
    assert ids["c"] == 1 and ids["x"] == 4 and ids["b"] == 2
    assert len(set(ids.values())) == len(ids)
    assert {ids["a"], ids["d"]} == {5, 6}


def _reference(model, images, batch_size):
    """What `Model.predict` gives on the same batches (the thing preannotate must match)."""
    out = []
    for i in range(0, len(images), batch_size):
        out += model.predict(
            images[i : i + batch_size], score_threshold=SCORE, batch_size=batch_size
        )
    return out


class _StopAfter:
    """Make a real model stop (raise, or kill its process) once it has predicted ``limit``."""

    @staticmethod
    def wrap(model, limit, action):
        from labelassist.model import Model

        class Stopping(Model):
            seen = 0

            def predict(self, images, **kwargs):
                if len(images) and self.seen + len(images) > limit:
                    action()
                self.seen += len(images)
                return super().predict(images, **kwargs)

        return Stopping(model.net, model.classes, arch=model.arch, meta=model.meta, device="cpu")


def _raise_interrupt():
    raise KeyboardInterrupt


class _FailsOnSize(torch.nn.Module):
    """A real backbone that raises for a batch of one padded size (``error``), as a
    forward pass that runs out of memory on one huge image does; else the wrapped one."""

    def __init__(self, backbone: torch.nn.Module, size: tuple[int, int], error: type) -> None:
        super().__init__()
        self.inner = backbone
        self.size = tuple(size)
        self.error = error
        self.out_channels = backbone.out_channels

    def forward(self, x):
        if tuple(x.shape[-2:]) == self.size:
            raise self.error(f"simulated: not enough memory for a {tuple(x.shape)} input")
        return self.inner(x)


def _failing(model, size, error=RuntimeError):
    """A copy of ``model`` whose forward pass raises ``error`` on inputs padded to ``size``."""
    from labelassist.model import Model

    net = copy.deepcopy(model.net)
    net.backbone = _FailsOnSize(net.backbone, size, error)
    return Model(net, model.classes, arch=model.arch, meta=model.meta, device="cpu")


def _recording(model, stop_on=None):
    """``model`` that records the image shapes of each `predict` call and raises
    KeyboardInterrupt when asked to predict an image of shape ``stop_on``."""
    from labelassist.model import Model

    class Recording(Model):
        def predict(self, images, **kwargs):
            if len(images):
                shapes = [tuple(im.shape[:2]) for im in images]
                self.calls.append(shapes)
                if stop_on in shapes:
                    raise KeyboardInterrupt
            return super().predict(images, **kwargs)

    recording = Recording(model.net, model.classes, arch=model.arch, meta=model.meta, device="cpu")
    recording.calls = []
    return recording


def _write_sized(folder: Path, shapes: list[tuple[int, int]]) -> list[Path]:
    """``img_00.png``, ``img_01.png``, ... with the given shapes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, shape in enumerate(shapes):
        paths.append(folder / f"img_{k:02d}.png")
        iio.imwrite(paths[-1], _blobs(k, shape))
    return paths


def _info_failed(path: Path) -> list:
    return json.loads(Path(path).read_text())["info"]["failed"]


# -- preannotate, one machine -------------------------------------------------------------------


def test_arrays_match_model_predict(model):
    images = [_blobs(k) for k in range(4)] + [np.stack([_blobs(9, (48, 80))] * 3, axis=-1)]
    ds = preannotate(images, model, score_threshold=SCORE, batch_size=2, progress=False)
    assert ds.categories == ["nucleus"]
    assert ds.images == [
        {"id": k + 1, "file_name": f"array_{k:04d}", "height": im.shape[0], "width": im.shape[1]}
        for k, im in enumerate(images)
    ]
    expected = _reference(model, images, 2)
    assert [ds.instances[k + 1] for k in range(5)] == expected
    assert sum(len(e) for e in expected) > 0  # the comparison is not between empty results
    assert ds.failed == []


def test_tile_options_reach_model_predict(model):
    images = [_blobs(k, (96, 160)) for k in range(2)]
    tiles = {"tile_size": 64, "tile_overlap": 8}  # the default for 64 px tiles is 24
    ds = preannotate(images, model, score_threshold=SCORE, progress=False, **tiles)
    expected = model.predict(images, score_threshold=SCORE, **tiles)
    default_overlap = model.predict(images, score_threshold=SCORE, tile_size=64)
    assert [ds.instances[k + 1] for k in range(2)] == expected
    assert expected != default_overlap  # the overlap changes the result, so it was passed


def test_folder_with_decoding_workers_equals_in_process(tmp_path, model):
    paths = _write_images(tmp_path / "imgs", 5)
    ds0 = preannotate(
        tmp_path / "imgs", model, score_threshold=SCORE, num_workers=0, progress=False
    )
    ds2 = preannotate(
        tmp_path / "imgs", model, score_threshold=SCORE, num_workers=2, progress=False
    )
    assert ds0 == ds2
    assert [r["file_name"] for r in ds2.images] == [p.name for p in paths]
    assert ds2.image_root == tmp_path / "imgs"
    expected = _reference(model, [iio.imread(p) for p in paths], 4)
    assert [ds2.instances[i] for i in ds2.image_ids] == expected


def test_unreadable_files_are_reported_and_skipped(tmp_path, model):
    good = _write_images(tmp_path, 3)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG truncated")
    # a stack the model cannot take (two channels): it fails alone, like a bad image
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 2, 16, 16), np.uint16), imagej=True,
                     metadata={"axes": "ZCYX"})  # fmt: skip
    images = [good[0], tmp_path / "corrupt.png", good[1], tmp_path / "gone.png"]
    images += [tmp_path / "stack.tif", good[2]]
    with pytest.warns(PreannotateWarning, match="3 of 6 images") as record:
        ds = preannotate(images, model, score_threshold=SCORE, batch_size=1, progress=False)
    [message] = [str(w.message) for w in record if w.category is PreannotateWarning]
    for name in ("corrupt.png", "gone.png: file not found", "stack.tif"):
        assert name in message
    assert [name for name, _ in ds.failed] == ["corrupt.png", "gone.png", "stack.tif"]
    assert [(r["id"], r["file_name"]) for r in ds.images] == [
        (1, "img_00.png"),
        (3, "img_01.png"),
        (6, "img_02.png"),
    ]
    expected = _reference(model, [iio.imread(p) for p in good], 1)
    assert [ds.instances[i] for i in (1, 3, 6)] == expected


def test_empty_input_gives_an_empty_dataset(tmp_path, model):
    ds = preannotate([], model, out=tmp_path / "none.json", progress=False)
    assert (len(ds), ds.categories, ds.failed) == (0, ["nucleus"], [])
    assert json.loads((tmp_path / "none.json").read_text())["images"] == []


def test_model_source_string_is_loaded(tmp_path, checkpoint):
    ds = preannotate([_blobs(1)], str(checkpoint), score_threshold=SCORE, progress=False)
    assert ds.categories == ["nucleus"] and len(ds) == 1


def test_out_of_another_model_is_refused(tmp_path, model):
    from labelassist.coco import Dataset

    Dataset(["cell", "debris"], []).to_coco(tmp_path / "other.json")
    with pytest.raises(ValueError, match=r"classes \['cell', 'debris'\].*another out path"):
        preannotate([_blobs(0)], model, out=tmp_path / "other.json", progress=False)


# -- one bad image does not stop the run (issue #12, item 5) --------------------------------------


@pytest.mark.parametrize("error", [RuntimeError, MemoryError])
def test_an_image_whose_prediction_fails_is_recorded_and_the_rest_saved(tmp_path, model, error):
    # img_02 is the "huge" image: the forward pass fails on it (and on a batch holding it)
    paths = _write_sized(tmp_path / "imgs", [(64, 64)] * 2 + [(96, 96)] + [(64, 64)] * 3)
    failing = _failing(model, (96, 96), error)
    out = tmp_path / "run.json"
    options = {"score_threshold": SCORE, "batch_size": 4, "flush_every": 100, "progress": False}
    reason = rf"prediction failed: {error.__name__}: simulated: not enough memory for a \(1, 3"
    with pytest.warns(PreannotateWarning, match=rf"1 of 6 images.*\n  imgs/img_02\.png: {reason}"):
        ds = preannotate(tmp_path / "imgs", failing, out=out, **options)
    assert isinstance(ds, PreannotateResult)
    [(name, why)] = ds.failed
    assert name == "imgs/img_02.png" and re.match(reason, why), why
    # the rest of the batch in flight is done (one by one) and saved, and the next batch too
    images = [iio.imread(p) for p in paths]
    expected = [model.predict(images[k], score_threshold=SCORE) for k in (0, 1, 3)]
    expected += model.predict(images[4:], score_threshold=SCORE)
    assert [(r["id"], r["file_name"]) for r in ds.images] == [
        (k + 1, f"imgs/img_{k:02d}.png") for k in (0, 1, 3, 4, 5)
    ]
    assert [ds.instances[i] for i in ds.image_ids] == expected
    assert sum(len(e) for e in expected) > 0
    from labelassist.coco import read_coco

    assert read_coco(out) == ds
    assert _info_failed(out) == [["imgs/img_02.png", why]]


def test_a_resume_goes_past_a_failed_image_and_retries_it_only_when_asked(tmp_path, model):
    shapes = [(64, 64 + 4 * k) for k in range(6)]
    shapes[2] = (96, 96)  # the image the failing model cannot predict
    _write_sized(tmp_path / "imgs", shapes)
    failing = _failing(model, (96, 96))
    options = {"score_threshold": SCORE, "batch_size": 1, "flush_every": 1, "progress": False}
    preannotate(tmp_path / "imgs", model, out=tmp_path / "ref.json", **options)
    out = tmp_path / "run.json"

    # the run fails on img_02, goes on, and is stopped (Ctrl-C) at img_04
    stopping = _recording(failing, stop_on=shapes[4])
    with pytest.raises(KeyboardInterrupt):
        preannotate(tmp_path / "imgs", stopping, out=out, **options)
    assert stopping.calls == [[s] for s in shapes[:5]]
    saved = [r["file_name"] for r in _coco_content(out)["images"]]
    assert saved == ["imgs/img_00.png", "imgs/img_01.png", "imgs/img_03.png"]
    assert [name for name, _ in _info_failed(out)] == ["imgs/img_02.png"]

    # a resume does the rest and does not try img_02 again
    resumed = _recording(failing)
    with pytest.warns(PreannotateWarning, match=r"failed in an earlier run.*retry_failed=True"):
        ds = preannotate(tmp_path / "imgs", resumed, out=out, **options)
    assert resumed.calls == [[shapes[4]], [shapes[5]]]
    assert [name for name, _ in ds.failed] == ["imgs/img_02.png"]
    assert len(ds) == 5 and [name for name, _ in _info_failed(out)] == ["imgs/img_02.png"]

    # asked to, it retries img_02 alone (now with a model that can): the same as one run
    retried = _recording(model)
    ds = preannotate(tmp_path / "imgs", retried, out=out, retry_failed=True, **options)
    assert retried.calls == [[shapes[2]]]
    assert ds.failed == [] and _info_failed(out) == []
    assert _coco_content(out) == _coco_content(tmp_path / "ref.json")


@pytest.mark.timeout(120)  # opening a FIFO blocks until a writer comes: fail, do not hang
@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_fifo_named_like_an_image_is_reported_not_opened(tmp_path, model, num_workers):
    paths = _write_images(tmp_path / "imgs", 2)
    os.mkfifo(tmp_path / "imgs" / "f.png")
    with pytest.warns(PreannotateWarning, match=r"f\.png: not a regular file \(a FIFO"):
        ds = preannotate(
            [paths[0], tmp_path / "imgs" / "f.png", paths[1]],
            model,
            score_threshold=SCORE,
            num_workers=num_workers,
            progress=False,
        )
    assert [name for name, _ in ds.failed] == ["f.png"]
    assert [r["file_name"] for r in ds.images] == ["img_00.png", "img_01.png"]
    # in a folder or a pattern, only regular files are images: the FIFO is not listed
    sources, _ = collect_sources(tmp_path / "imgs")
    assert [s.name for s in sources] == ["img_00.png", "img_01.png"]
    sources, _ = collect_sources(str(tmp_path / "imgs" / "*.png"))
    assert [s.name for s in sources] == ["img_00.png", "img_01.png"]


# -- flushing and resuming -------------------------------------------------------------------------


def test_out_file_names_are_relative_to_its_folder(tmp_path, model):
    _write_images(tmp_path / "data" / "a", 1)
    _write_images(tmp_path / "data" / "b", 1, start=1)
    ds = preannotate(
        tmp_path / "data" / "*" / "*.png", model, out=tmp_path / "preds.json", progress=False
    )
    assert [r["file_name"] for r in ds.images] == ["data/a/img_00.png", "data/b/img_01.png"]
    from labelassist.coco import read_coco

    back = read_coco(tmp_path / "preds.json")  # image_root defaults to the json's folder
    assert all(back.image_path(i).is_file() for i in back.image_ids)
    assert back == read_coco(tmp_path / "preds.json") and back.categories == ["nucleus"]


def test_resume_after_an_interrupt_only_predicts_the_rest(tmp_path, model):
    _write_images(tmp_path / "imgs", 8)
    options = {"score_threshold": SCORE, "batch_size": 2, "flush_every": 4, "progress": False}
    preannotate(tmp_path / "imgs", model, out=tmp_path / "ref.json", **options)

    # stopped (Ctrl-C) in the 4th batch: 6 images done, 2 of them not flushed yet
    stopping = _StopAfter.wrap(model, 6, _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        preannotate(tmp_path / "imgs", stopping, out=tmp_path / "run.json", **options)
    partial = json.loads((tmp_path / "run.json").read_text())
    assert [r["file_name"] for r in partial["images"]] == [
        f"imgs/img_{k:02d}.png" for k in range(6)
    ]

    counting = _StopAfter.wrap(model, 10**9, _raise_interrupt)
    ds = preannotate(tmp_path / "imgs", counting, out=tmp_path / "run.json", **options)
    assert counting.seen == 2
    assert len(ds) == 8
    assert _coco_content(tmp_path / "run.json") == _coco_content(tmp_path / "ref.json")

    again = _StopAfter.wrap(model, 0, _raise_interrupt)  # nothing left: must not predict
    assert preannotate(tmp_path / "imgs", again, out=tmp_path / "run.json", **options) == ds


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from test_bulk import SCORE, _StopAfter
    from labelassist.bulk import preannotate
    from labelassist.model import load_model

    model = load_model(sys.argv[2], device="cpu")
    dying = _StopAfter.wrap(model, 5, lambda: os.kill(os.getpid(), signal.SIGKILL))
    preannotate(sys.argv[3], dying, out=sys.argv[4], score_threshold=SCORE, batch_size=2,
                flush_every=2, num_workers=0, progress=False)
    """
)


@pytest.mark.slow
def test_resume_after_the_process_is_killed(tmp_path, checkpoint):
    from labelassist.model import load_model

    _write_images(tmp_path / "imgs", 9)
    out = tmp_path / "run.json"
    args = [str(Path(__file__).parent), str(checkpoint), str(tmp_path / "imgs"), str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # flushed after 2 and 4 images (a flush may be skipped if it was slow: then 2)
    names = [r["file_name"] for r in json.loads(out.read_text())["images"]]
    assert names in ([f"imgs/img_{k:02d}.png" for k in range(n)] for n in (2, 4)), names
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    model = load_model(checkpoint, device="cpu")
    options = {"score_threshold": SCORE, "batch_size": 2, "flush_every": 2, "progress": False}
    counting = _StopAfter.wrap(model, 10**9, _raise_interrupt)
    preannotate(tmp_path / "imgs", counting, out=out, **options)
    assert counting.seen == 9 - len(names)
    preannotate(tmp_path / "imgs", model, out=tmp_path / "ref.json", **options)
    assert _coco_content(out) == _coco_content(tmp_path / "ref.json")


# -- Dask -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _worker_loads():
    from labelassist.bulk import cluster

    return cluster._WORKER_LOADS


@pytest.fixture
def one_thread():
    """Dask workers run torch with one thread (OMP_NUM_THREADS=1); match it here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_dask_gives_the_local_result_and_loads_the_model_once_per_worker(
    tmp_path, dask_client, one_thread
):
    model = tiny_model(seed=4)  # new weights: no worker has this model cached yet
    _write_images(tmp_path / "imgs", 7)
    (tmp_path / "imgs" / "img_03.png").write_bytes(b"corrupt")
    options = {"score_threshold": 0.0, "batch_size": 2, "progress": False}
    with pytest.warns(PreannotateWarning, match="img_03.png"):
        local = preannotate(tmp_path / "imgs", model, num_workers=0, **options)
    before = dask_client.run(_worker_loads)
    with pytest.warns(PreannotateWarning, match="img_03.png"):
        remote = preannotate(tmp_path / "imgs", model, client=dask_client, **options)
    with pytest.warns(PreannotateWarning, match="img_03.png"):
        again = preannotate(tmp_path / "imgs", model, client=dask_client, **options)
    after = dask_client.run(_worker_loads)
    assert remote == local and again == local
    assert remote.failed == local.failed == [(n, r) for n, r in local.failed if n == "img_03.png"]
    assert len(local) == 6 and sum(len(i) for i in local.instances.values()) > 0
    loads = [after[w] - before[w] for w in after]
    assert max(loads) == 1  # two runs, 8 tasks: each worker that worked loaded it once


@pytest.mark.slow
def test_dask_run_resumes_and_writes_the_same_file(tmp_path, dask_client, model, one_thread):
    _write_images(tmp_path / "imgs", 6)
    options = {"score_threshold": SCORE, "batch_size": 2, "flush_every": 2, "progress": False}
    preannotate(tmp_path / "imgs", model, out=tmp_path / "ref.json", num_workers=0, **options)
    stopping = _StopAfter.wrap(model, 2, _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        preannotate(
            tmp_path / "imgs", stopping, out=tmp_path / "run.json", num_workers=0, **options
        )
    ds = preannotate(
        tmp_path / "imgs", model, out=tmp_path / "run.json", client=dask_client, **options
    )
    assert len(ds) == 6
    assert _coco_content(tmp_path / "run.json") == _coco_content(tmp_path / "ref.json")


def _install_failing_model(key: str, checkpoint: bytes, size, error) -> None:
    """On a Dask worker: cache a failing copy of the model as the model for ``key``."""
    from labelassist.model import model_from_bytes

    cluster._WORKER_MODELS[key] = _failing(model_from_bytes(checkpoint, device="cpu"), size, error)


def _forget_model(key: str) -> None:
    cluster._WORKER_MODELS.pop(key, None)


class _WorkerCrash(BaseException):
    """Not an `Exception`: nothing in the task catches it, so the task fails as a whole, as
    when its worker is killed (out of memory)."""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RuntimeError, r"prediction failed: RuntimeError: simulated"),
        (_WorkerCrash, r"prediction failed on a Dask worker: _WorkerCrash: simulated"),
    ],
)
def test_dask_records_a_failing_image_and_does_the_rest(
    tmp_path, dask_client, one_thread, error, reason
):
    from labelassist.model import checkpoint_to_bytes

    model = tiny_model(seed=6)
    _write_sized(tmp_path / "imgs", [(64, 64)] * 2 + [(96, 96)] + [(64, 64)] * 3)
    options = {"score_threshold": SCORE, "batch_size": 2, "progress": False}
    with pytest.warns(PreannotateWarning, match="img_02.png: prediction failed"):
        local = preannotate(tmp_path / "imgs", _failing(model, (96, 96)), num_workers=0, **options)
    model.predict([], score_threshold=SCORE)  # as preannotate does first (sets the CPU layout)
    data = checkpoint_to_bytes(model)
    key = cluster.model_key(data)  # the key preannotate ships the model under
    dask_client.run(_install_failing_model, key, data, (96, 96), error)
    try:
        with pytest.warns(PreannotateWarning, match="img_02.png: prediction failed"):
            remote = preannotate(
                tmp_path / "imgs",
                model,
                client=dask_client,
                out=tmp_path / "imgs" / "r.json",
                **options,
            )
    finally:
        dask_client.run(_forget_model, key)
    assert remote == local and len(remote) == 5
    [(name, why)] = remote.failed
    assert name == "img_02.png" and re.match(reason, why), why
    assert _info_failed(tmp_path / "imgs" / "r.json") == [["img_02.png", why]]


def test_missing_dask_names_the_extra(monkeypatch, model):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    client = distributed.Client.__new__(distributed.Client)  # never connected: not used
    with pytest.raises(ImportError, match=r"pip install labelassist\[dask\]"):
        preannotate([_blobs(0)], model, client=client, progress=False)


def test_default_decoding_workers(model):
    arrays = [ImageSource(k, f"array_{k:04d}", array=np.zeros((4, 4))) for k in range(3)]
    paths = [ImageSource(k, f"{k}.png", path=f"/x/{k}.png") for k in range(3)]
    assert default_num_workers(arrays, model) == 0
    assert default_num_workers(paths, model) == 0  # the CPU model uses every core


def test_flushes_are_spaced_out_when_writing_is_slow(tmp_path):
    from tqdm import tqdm

    from labelassist.instances import Instances

    out = tmp_path / "out.json"
    with tqdm(disable=True) as bar:
        order = {"a": 0, "b": 1}
        collector = Collector(["n"], None, {"a": 1, "b": 2}, order, Previous(), out, 1, bar)
        collector.flush_seconds = 3600.0  # as if the last write had taken an hour
        collector.emit([Outcome(ImageSource(0, "a"), (4, 4), Instances.empty((4, 4)))])
        assert not out.exists() and collector.unflushed == 1
        collector.flush_seconds = 0.0
        collector.emit([Outcome(ImageSource(1, "b"), (4, 4), Instances.empty((4, 4)))])
    assert collector.unflushed == 0
    assert [r["file_name"] for r in json.loads(out.read_text())["images"]] == ["a", "b"]
