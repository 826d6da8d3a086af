"""The plugin through napari itself: npe2 widgets, sample data, reader and writer (xvfb)."""

from __future__ import annotations

import napari
import numpy as np
import pytest
import shapely
from labelassist_napari._convert import layer_to_instances

import labelassist as la

pytestmark = pytest.mark.gui


def test_widgets_dock_through_npe2(make_napari_viewer):
    viewer = make_napari_viewer()
    names = []
    for title in ("Pre-annotate", "Review", "Train rounds"):
        _, widget = viewer.window.add_plugin_dock_widget("labelassist", title)
        names.append(type(widget).__name__)
    assert names == ["PreannotateWidget", "ReviewWidget", "TrainWidget"]


def test_sample_data_opens_with_sensible_contrast(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("labelassist", "real_nuclei")
    image, shapes = viewer.layers
    assert image.data.dtype == np.uint16
    low, high = image.contrast_limits
    assert 0 < high - low < 0.5 * np.iinfo(np.uint16).max  # percentiles, not the dtype range
    assert len(layer_to_instances(shapes)) == 125


def test_reader_and_writer_through_napari(make_napari_viewer, tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "a.png", np.zeros((20, 30), np.uint8))
    inst = la.Instances([shapely.box(2, 3, 9, 12)], [0], [0.8], (20, 30))
    dataset = la.Dataset(
        ["cell"], [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}], {1: inst}
    )
    path = dataset.to_coco(tmp_path / "in.json")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="labelassist")
    assert [type(layer) for layer in layers] == [napari.layers.Image, napari.layers.Shapes]
    out = tmp_path / "out.json"
    written = viewer.layers[1].save(str(out), plugin="labelassist")
    assert written == [str(out)]
    assert la.read_coco(out).instances[1] == inst


def test_late_torch_import_next_to_a_viewer_does_not_crash(tmp_path):
    """A fresh process: the viewer exists before torch is imported (as for a user)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "late_torch.py"
    script.write_text(
        "import numpy as np, napari\n"
        "viewer = napari.Viewer(show=True)\n"
        "viewer.add_image(np.zeros((64, 64), np.uint8))\n"
        "from labelassist_napari._widgets import import_torch\n"
        "import_torch()\n"
        "import labelassist as la\n"
        "model = la.load_model(None, classes=['nucleus'], device='cpu')\n"
        "print(model.predict(np.zeros((64, 64), np.uint8), score_threshold=0.99).image_shape)\n"
        "viewer.close()\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(64, 64)" in result.stdout


def test_layers_use_the_compiled_triangulation_backend(make_napari_viewer):
    from labelassist_napari._style import shapes_layer_kwargs

    viewer = make_napari_viewer()
    inst = la.Instances([shapely.box(1, 1, 5, 4)], [0], [0.9], (8, 8))
    layer = viewer.add_shapes(**shapes_layer_kwargs(inst, classes=["cell"]))
    # napari's default setting ("fastest available") picks bermuda when installed
    assert type(layer._data_view.shapes[0])._set_meshes.__name__ == "_set_meshes_compiled_bermuda"
