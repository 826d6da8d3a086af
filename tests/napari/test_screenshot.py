"""Polygon outlines are drawn where the objects are (pixel statistics of a real screenshot).

The viewer must be shown (screenshots of hidden viewers are black): run under
``xvfb-run -a``.
"""

from __future__ import annotations

import numpy as np
import pytest
from labelassist_napari._style import shapes_layer_kwargs
from scipy import ndimage

import labelassist as la

pytestmark = pytest.mark.gui


def _screen_to_data(viewer, shot_shape):
    """(row, col) data coordinates of every screenshot pixel centre (2D view, no scale)."""
    canvas_h, canvas_w = viewer.window._qt_viewer.canvas.size
    ratio = shot_shape[0] / canvas_h
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    zoom = camera.zoom * ratio
    centre = np.asarray(camera.center[-2:])
    rows = (np.arange(shot_shape[0]) + 0.5 - shot_shape[0] / 2) / zoom + centre[0]
    cols = (np.arange(shot_shape[1]) + 0.5 - shot_shape[1] / 2) / zoom + centre[1]
    assert abs(canvas_w * ratio - shot_shape[1]) <= 2
    return rows, cols


def test_outlines_are_drawn_on_the_object_borders(make_napari_viewer):
    image, truth, labels = la.synthetic_nuclei((96, 96), n=6, seed=4, return_labels=True)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros_like(image), name="black", colormap="gray")
    layer = viewer.add_shapes(**shapes_layer_kwargs(truth, classes=["nucleus"], low_score=0.0))
    viewer.reset_view()
    with_outlines = viewer.screenshot(canvas_only=True, flash=False)
    layer.visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)
    drawn = np.abs(with_outlines[..., :3].astype(int) - without[..., :3].astype(int)).sum(-1) > 60
    assert drawn.sum() > 200  # something was drawn

    rows, cols = _screen_to_data(viewer, drawn.shape)
    # napari's pixel (i, j) is centred on integer coordinates; outlines on the image
    # border are drawn half a line width beyond it, so pad the label image by 2 px
    pad = 2
    labels = np.pad(labels, pad)
    r = np.floor(rows + 0.5).astype(int) + pad
    c = np.floor(cols + 0.5).astype(int) + pad
    ys, xs = np.nonzero(drawn)
    ok = (r[ys] >= 0) & (r[ys] < labels.shape[0]) & (c[xs] >= 0) & (c[xs] < labels.shape[1])
    assert ok.mean() > 0.99  # nothing drawn away from the image
    border = labels != ndimage.grey_erosion(labels, size=3)  # outline pixels of every object
    border |= labels != ndimage.grey_dilation(labels, size=3)
    near_border = ndimage.binary_dilation(border, iterations=1)
    on_border = near_border[r[ys[ok]], c[xs[ok]]]
    assert on_border.mean() > 0.95, on_border.mean()
    # no object is left without an outline
    hit = set(ndimage.grey_dilation(labels, size=3)[r[ys[ok]], c[xs[ok]]].tolist()) - {0}
    assert hit == set(np.unique(labels[labels > 0]).tolist())
    # and the outlines really follow the borders: most border pixels are covered
    covered = np.zeros_like(border)
    covered[r[ys[ok]], c[xs[ok]]] = True
    assert (covered & border).sum() / border.sum() > 0.5
