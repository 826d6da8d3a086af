"""Fixtures for the napari plugin tests (run GUI tests under ``xvfb-run -a``)."""

from __future__ import annotations

import sys
from pathlib import Path

# the shared shape gallery lives in tests/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torchvision imports torch._dynamo, which loads triton's LLVM when triton is installed.
# Loaded after a viewer created its OpenGL context, that crashes with Mesa's llvmpipe
# (Xvfb). Import it once here, before any viewer exists, so that the test order does not
# matter; the plugin's own guard for late imports is tested in a subprocess
# (test_plugin.py::test_late_torch_import_next_to_a_viewer_does_not_crash).
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torchvision.ops  # noqa: E402, F401

import labelassist as la  # noqa: E402


@pytest.fixture
def review_project(tmp_path):
    """A project with 3 synthetic 64 x 64 images pre-annotated with their true outlines."""
    import imageio.v3 as iio

    folder = tmp_path / "proj"
    with la.Project.create(folder, classes=["nucleus", "debris"]) as project:
        for seed in range(3):
            image, truth = la.synthetic_nuclei((64, 64), n=4, seed=seed)[:2]
            iio.imwrite(tmp_path / f"img{seed}.png", image)
            [image_id] = project.add_images(tmp_path / f"img{seed}.png")
            scores = np.linspace(0.4, 0.95, len(truth))
            project.save_instances(image_id, truth.replace(scores=scores), source="model")
    return folder


@pytest.fixture
def review_widget(make_napari_viewer, review_project):
    """A Review widget docked in a viewer, with `review_project` open at its first image."""
    from labelassist_napari._review import ReviewWidget

    viewer = make_napari_viewer()
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_project(review_project)
    return widget
