"""Reader, writer, sample data and the manifest (no display needed)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely
from labelassist_napari import _io, _sample_data
from labelassist_napari._convert import layer_to_instances
from napari.layers import Shapes

import labelassist as la

MANIFEST = Path(__file__).resolve().parents[2] / "napari_plugin" / "napari.yaml"


# -- manifest -------------------------------------------------------------------------------------
def test_manifest_validates_and_every_python_name_imports():
    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    names = [c.python_name for c in manifest.contributions.commands]
    assert len(names) == 9
    for name in names:
        module, attr = name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), name
    assert {w.display_name for w in manifest.contributions.widgets} == {
        "Pre-annotate",
        "Review",
        "Review stacks",
        "Train rounds",
    }


def test_npe2_validate_command():
    npe2_cli = Path(sys.executable).with_name("npe2")
    result = subprocess.run(
        [str(npe2_cli), "validate", str(MANIFEST)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()


def test_plugin_is_registered_with_npe2():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    assert "labelassist" in pm.iter_manifests.__self__._manifests


# -- helpers -----------------------------------------------------------------------------------------
def _write_images(folder: Path, n: int = 2, shape=(24, 32)) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        path = folder / f"img{k}.png"
        iio.imwrite(path, rng.integers(0, 255, shape, dtype=np.uint8))
        paths.append(path)
    return paths


def _dataset(folder: Path) -> la.Dataset:
    paths = _write_images(folder)
    records = [
        {"id": k + 1, "file_name": p.name, "height": 24, "width": 32} for k, p in enumerate(paths)
    ]
    donut = shapely.box(2, 2, 10, 10).difference(shapely.box(4, 4, 6, 6))
    instances = {
        1: la.Instances([donut, shapely.box(12, 3, 20, 9)], [0, 1], [0.9, 0.3], (24, 32)),
        2: la.Instances([shapely.box(1, 1, 5, 7)], [1], [1.0], (24, 32)),
    }
    return la.Dataset(["cell", "debris"], records, instances, image_root=folder)


def _layers(layer_data):
    return [Shapes(d, **k) for d, k, kind in layer_data if kind == "shapes"]


# -- reader ----------------------------------------------------------------------------------------
def test_get_reader_declines_other_paths(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    assert _io.get_reader(str(tmp_path / "a.png")) is None
    assert _io.get_reader(str(tmp_path / "other.json")) is None
    assert _io.get_reader(str(tmp_path)) is None  # a folder that is no project
    assert _io.get_reader([str(tmp_path / "x.json"), str(tmp_path / "y.json")]) is None
    assert _io.get_reader(str(tmp_path / "missing.json")) is None


def test_coco_reader_gives_image_and_shapes_per_image(tmp_path):
    dataset = _dataset(tmp_path)
    path = dataset.to_coco(tmp_path / "labels.json")
    reader = _io.get_reader([str(path)])
    assert reader is not None
    layer_data = reader([str(path)])
    assert [kind for _, _, kind in layer_data] == ["image", "shapes", "image", "shapes"]
    assert [k["visible"] for _, k, _ in layer_data] == [True, True, False, False]
    image = layer_data[0][0]
    np.testing.assert_array_equal(image, iio.imread(tmp_path / "img0.png"))
    for layer, image_id in zip(_layers(layer_data), (1, 2), strict=True):
        back = layer_to_instances(layer)
        assert back.replace(extra={}) == dataset.instances[image_id]


def test_coco_reader_caps_images_and_tolerates_missing_files(tmp_path, caplog):
    dataset = _dataset(tmp_path)
    path = dataset.to_coco(tmp_path / "labels.json")
    (tmp_path / "img1.png").unlink()
    layer_data = _io.read_coco_layers(path, max_images=5)
    assert [kind for _, _, kind in layer_data] == ["image", "shapes", "shapes"]
    assert "not found" in caplog.text
    layer_data = _io.read_coco_layers(path, max_images=1)
    assert [kind for _, _, kind in layer_data] == ["image", "shapes"]
    assert "opening the first 1" in caplog.text


def test_project_reader_opens_the_next_image(tmp_path):
    paths = _write_images(tmp_path)
    with la.Project.create(tmp_path / "proj", classes=["cell"]) as project:
        ids = project.add_images(paths)
        project.set_status(ids[0], "reviewed")
        inst = la.Instances([shapely.box(2, 2, 8, 8)], [0], [0.7], (24, 32))
        project.save_instances(ids[1], inst, source="model")
    reader = _io.get_reader(str(tmp_path / "proj"))
    assert reader is not None
    image_data, shapes_data = reader(str(tmp_path / "proj"))
    meta = shapes_data[1]["metadata"]["labelassist"]
    assert meta["image"] == ids[1] and meta["project"] == str((tmp_path / "proj").resolve())
    assert image_data[1]["metadata"]["labelassist"]["image"] == ids[1]
    back = layer_to_instances(_layers([shapes_data])[0])
    assert back.replace(extra={}) == inst


def test_project_reader_empty_project(tmp_path):
    la.Project.create(tmp_path / "proj", classes=["cell"]).close()
    reader = _io.get_reader(str(tmp_path / "proj"))
    with pytest.raises(ValueError, match="has no images yet"):
        reader(str(tmp_path / "proj"))


# -- writer ----------------------------------------------------------------------------------------
def test_writer_roundtrip_through_coco(tmp_path):
    dataset = _dataset(tmp_path)
    layer_data = _io.read_coco_layers(dataset.to_coco(tmp_path / "in.json"))
    shapes = [(layer.data, layer._get_state(), "shapes") for layer in _layers(layer_data)]
    [out] = _io.write_coco(str(tmp_path / "out.json"), shapes)
    written = la.read_coco(out)
    assert written.categories == ["cell", "debris"]
    assert [r["file_name"] for r in written.images] == ["img0.png", "img1.png"]
    for image_id in (1, 2):
        assert written.instances[image_id] == dataset.instances[image_id]


def test_writer_scratch_layer_without_metadata(tmp_path):
    layer = Shapes([np.array([[-0.5, -0.5], [-0.5, 3.5], [1.5, 3.5], [1.5, -0.5]])], name="drawn")
    [out] = _io.write_coco(str(tmp_path / "s.json"), [(layer.data, layer._get_state(), "shapes")])
    written = la.read_coco(out)
    assert written.categories == ["object"]
    assert written.images[0]["file_name"] == "drawn"
    assert (written.images[0]["height"], written.images[0]["width"]) == (2, 4)
    assert written.instances[1].polygons[0].equals(shapely.box(0, 0, 4, 2))


def test_writer_needs_shapes(tmp_path):
    with pytest.raises(ValueError, match="needs at least one Shapes layer"):
        _io.write_coco(str(tmp_path / "x.json"), [(np.zeros((4, 4)), {}, "image")])


# -- sample data -----------------------------------------------------------------------------------
def test_synthetic_sample_outlines_match_the_generator():
    (image, image_kwargs, _), (data, kwargs, _) = _sample_data.synthetic_nuclei_sample(seed=2)
    _, truth = la.synthetic_nuclei((256, 256), seed=2)
    back = layer_to_instances(Shapes(data, **kwargs))
    assert len(back) == len(truth)
    np.testing.assert_allclose(back.areas, truth.areas, rtol=1e-4)
    assert set(back.extra["provenance"]) == {"human"}
    low, high = image_kwargs["contrast_limits"]
    assert image.min() <= low < high <= image.max()


def test_real_and_coins_samples():
    (image, image_kwargs, _), (data, _, _) = _sample_data.real_nuclei_sample()
    assert image.dtype == np.uint16 and len(data) >= 125
    low, high = image_kwargs["contrast_limits"]
    assert high < np.iinfo(np.uint16).max and high - low > 10
    [(coins, _, kind)] = _sample_data.coins_sample()
    assert kind == "image" and coins.shape == (303, 384)
