"""Helpers of the Review widget tests: edit a shape as napari's tools do, wait for autosave."""

from __future__ import annotations

from napari.layers.base._base_constants import ActionType


def edit_shape(layer, index, vertices):
    """Change one shape the way napari's vertex tools do (events around one edit)."""
    kwargs = {"data_indices": (index,), "vertex_indices": ((),)}
    layer.events.data(value=layer.data, action=ActionType.CHANGING, **kwargs)
    layer._data_view.edit(index, vertices)
    layer.events.data(value=layer.data, action=ActionType.CHANGED, **kwargs)


def wait_saved(qtbot, widget):
    """Wait until the widget's autosave saved every edit."""
    qtbot.waitUntil(lambda: not widget.save_pending, timeout=10_000)
