"""The napari private API the plugin relies on still exists and behaves (no display).

These tests fail loudly when a napari release changes a private attribute that
``labelassist_napari._napari_compat`` wraps: update the wrapper (and its version note).
"""

from __future__ import annotations

import inspect

import napari
import numpy as np
import pytest
from labelassist_napari._napari_compat import fast_edge_colors_available, set_edge_colors
from napari.layers import Shapes

WRITTEN_FOR = "0.9.2"  # the napari version the wrappers were written and checked against

RED = np.array([1.0, 0.0, 0.0, 1.0])
WHITE = np.array([1.0, 1.0, 1.0, 1.0])


def _layer(n=3):
    data = [np.array([[0.0, 0.0], [0.0, 4.0], [4.0, 4.0]]) + 6 * k for k in range(n)]
    return Shapes(data, shape_type="polygon", edge_color="white")


def test_shape_list_private_api_exists():
    """Shapes._data_view.batched_updates() and update_edge_color(index, color, update)."""
    layer = _layer()
    assert fast_edge_colors_available(layer), (
        f"napari {napari.__version__}: Shapes._data_view lost batched_updates/update_edge_color "
        f"(wrapper written for napari {WRITTEN_FOR}); update _napari_compat.set_edge_colors"
    )
    view = layer._data_view
    params = list(inspect.signature(view.update_edge_color).parameters)
    assert params[:3] == ["index", "edge_color", "update"], params
    with view.batched_updates():  # a context manager
        pass


def test_set_edge_colors_touches_only_the_given_shapes_and_their_mesh():
    layer = _layer(3)
    events = []
    layer.events.edge_color.connect(lambda event: events.append(event))
    set_edge_colors(layer, np.array([2, 0]), RED)
    np.testing.assert_array_equal(layer.edge_color, [RED, WHITE, RED])
    assert len(events) == 1  # the public event fires once, so views redraw
    # the mesh napari draws took the colour too (what the private call is for)
    view = layer._data_view
    for index, colour in ((0, RED), (1, WHITE), (2, RED)):
        triangles = view._mesh_triangles_edge_slice(index)
        np.testing.assert_array_equal(
            view._mesh.triangles_colors[triangles],
            [colour] * len(view._mesh.triangles_colors[triangles]),
        )


def test_set_edge_colors_public_fallback_gives_the_same_colours():
    """Without the private shape list (a future napari), the public setter does the job."""

    class _PublicOnly:  # the public attributes of a Shapes layer the fallback uses
        def __init__(self, layer):
            self._layer = layer

        @property
        def edge_color(self):
            return self._layer.edge_color

        @edge_color.setter
        def edge_color(self, value):
            self._layer.edge_color = value

    layer = _layer(3)
    wrapped = _PublicOnly(layer)
    assert not fast_edge_colors_available(wrapped)
    set_edge_colors(wrapped, [1], RED)
    np.testing.assert_array_equal(layer.edge_color, [WHITE, RED, WHITE])


@pytest.mark.parametrize("rows", [[], np.zeros(0, dtype=int)])
def test_set_edge_colors_without_rows_changes_nothing(rows):
    layer = _layer(2)
    set_edge_colors(layer, rows, RED)
    np.testing.assert_array_equal(layer.edge_color, [WHITE, WHITE])
