"""The Pre-annotate widget's input options, object size and channels, in a real viewer
(run under ``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from labelassist_napari._convert import layer_to_instances
from labelassist_napari._preannotate import (
    CHANNEL_CHOICES,
    SIZE_MODES,
    PreannotateWidget,
    predict_job,
)
from napari.layers import Shapes

import labelassist as la
from labelassist.synthetic import synthetic_image

pytestmark = [
    pytest.mark.gui,
    pytest.mark.filterwarnings("ignore:.*reached the model's limit:UserWarning"),
]


@pytest.fixture
def viewer(make_napari_viewer):
    import torch

    torch.manual_seed(0)
    return make_napari_viewer()


@pytest.fixture
def widget(viewer):
    w = PreannotateWidget(viewer)
    viewer.window.add_dock_widget(w)
    return w


@pytest.fixture
def sized_checkpoint(tmp_path):
    """An untrained model that knows its object size (20 px), saved."""
    import torch

    torch.manual_seed(0)
    model = la.load_model(None, classes=["cell"], device="cpu").set_input(object_size=20)
    return model.save(tmp_path / "sized.pt")


def _run(widget, qtbot):
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    [layer] = [x for x in widget.viewer.layers if isinstance(x, Shapes)]
    return layer


def _use_checkpoint(widget, path):
    widget.model.value = "checkpoint file"
    widget.checkpoint.value = path
    widget.threshold.value = 0.0
    widget.device.value = "cpu"


def test_defaults_change_nothing(widget):
    assert widget.input_options() == {"object_size": None, "channels": None, "mirror": True}
    assert widget.object_size.native.isHidden()
    widget.size_mode.value = "set (px)"
    assert not widget.object_size.native.isHidden()
    widget.size_mode.value = "auto (measure it)"
    assert widget.object_size.native.isHidden()
    assert set(SIZE_MODES.values()) == {"default", "auto", "set"}
    assert CHANNEL_CHOICES["1,2"] == (1, 2) and CHANNEL_CHOICES["2 (gray)"] == (2,)


def test_a_set_object_size_rescales_and_proposals_stay_on_the_image_pixels(
    viewer, widget, qtbot, sized_checkpoint
):
    image, _ = la.synthetic_nuclei((96, 128), seed=1)
    viewer.add_image(image, name="nuclei")
    _use_checkpoint(widget, sized_checkpoint)
    widget.size_mode.value = "set (px)"
    widget.object_size.value = 40.0
    assert widget.input_options() == {"object_size": 40.0, "channels": None, "mirror": True}
    layer = _run(widget, qtbot)
    [model] = widget._models.values()
    expected = model.predict(image, score_threshold=0.0, object_size=40.0)
    native = model.predict(image, score_threshold=0.0)
    got = layer_to_instances(layer)
    assert got.image_shape == (96, 128) and len(got) == len(expected) > 0
    np.testing.assert_allclose(np.sort(got.scores), np.sort(expected.scores), rtol=1e-6)
    assert not np.allclose(np.sort(got.scores)[-5:], np.sort(native.scores)[-5:])


def test_auto_and_channels_reach_the_model(viewer, widget, qtbot, sized_checkpoint):
    rgb, _ = synthetic_image("cells", (80, 96), size=24, seed=2)
    viewer.add_image(rgb, name="cells", rgb=True)
    _use_checkpoint(widget, sized_checkpoint)
    widget.size_mode.value = "auto (measure it)"
    widget.channels.value = "2,1"
    layer = _run(widget, qtbot)
    [model] = widget._models.values()
    swapped = np.zeros_like(rgb)
    swapped[..., 1], swapped[..., 2] = rgb[..., 2], rgb[..., 1]
    expected = model.predict(swapped, score_threshold=0.0, object_size="auto")
    got = layer_to_instances(layer)
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose(np.sort(got.scores), np.sort(expected.scores), rtol=1e-6)


def test_the_mirrored_pass_can_be_turned_off(viewer, widget, qtbot):
    """Unchecked, the proposals are `predict(mirror=False)`'s: the starter's masks differ from
    the default's, its detections do not."""
    image, _ = la.synthetic_nuclei((96, 128), n=8, seed=3)
    viewer.add_image(image, name="nuclei")
    widget.device.value = "cpu"
    widget.mirror.value = False
    assert widget.input_options()["mirror"] is False
    layer = _run(widget, qtbot)
    [model] = widget._models.values()
    got = layer_to_instances(layer)
    single = model.predict(image, mirror=False)
    mirrored = model.predict(image)
    assert len(got) == len(single) > 3

    def areas(inst):
        return np.sort([p.area for p in inst.polygons])

    np.testing.assert_allclose(areas(got), areas(single))
    assert not np.allclose(areas(single), areas(mirrored))


def test_bad_options_are_reported_not_raised(viewer, widget, qtbot):
    viewer.add_image(np.zeros((64, 64), np.uint8), name="gray")
    widget.model.value = "untrained (testing)"
    widget.device.value = "cpu"
    widget.channels.value = "1,2"
    assert widget.run() is None
    assert "need an RGB image layer" in widget.status.value
    widget.channels.value = "model's default / as is"
    # an untrained model knows no object size: the job fails and says how to fix it
    widget.size_mode.value = "set (px)"
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    assert "needs the object size the model was trained at" in widget.status.value
    assert not [x for x in viewer.layers if isinstance(x, Shapes)]


def test_predict_job_passes_the_options():
    model = la.load_model(None, classes=["cell"], device="cpu").set_input(object_size=10)
    spec = (None, ("cell",), "cpu")
    two = np.zeros((40, 48, 2), np.uint16)
    job = predict_job(
        spec,
        two,
        score_threshold=0.99,
        tile_size=None,
        cache={spec: model},
        object_size=20.0,
        channels=(0, 1),
    )
    with pytest.raises(StopIteration) as stop:
        while True:
            next(job)
    got_model, instances = stop.value.value
    assert got_model is model and instances.image_shape == (40, 48)
