"""Every napari private attribute the plugin uses, each behind one function.

Everything else in the plugin uses napari's public API. A private attribute is used only
where the public API has no equivalent at the same cost; each wrapper names the napari
version it was written for, and ``tests/napari/test_napari_compat.py`` fails loudly when a
napari release changes what it relies on. When the private part is missing the wrappers fall
back to the public API (slower, same result), so users of a newer napari keep a working
plugin while the test tells the maintainers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["fast_edge_colors_available", "set_edge_colors"]

logger = logging.getLogger(__name__)


def fast_edge_colors_available(layer: Any) -> bool:
    """Whether `set_edge_colors` can recolour single shapes through napari's private API.

    Examples
    --------
    >>> from napari.layers import Shapes
    >>> fast_edge_colors_available(Shapes())
    True
    """
    view = getattr(layer, "_data_view", None)
    return hasattr(view, "batched_updates") and hasattr(view, "update_edge_color")


def set_edge_colors(layer: Any, rows: Sequence[int] | np.ndarray, color: Any) -> None:
    """Give the shapes at `rows` of a Shapes `layer` the edge `color` (RGBA), others unchanged.

    napari's public ``layer.edge_color = colors`` recolours every shape of the layer one by
    one in Python, so relabelling one shape would cost time in proportion to the layer. This uses the layer's private shape list instead,
    which updates only the given shapes' mesh colours, then emits the public
    ``layer.events.edge_color`` event as napari's own ``current_edge_color`` setter does.

    Written for napari 0.9.2: ``Shapes._data_view`` is a ``ShapeList`` with the context
    manager ``batched_updates()`` and ``update_edge_color(index, color, update=True)``.

    Parameters
    ----------
    layer : napari.layers.Shapes
        The layer.
    rows : sequence of int
        Shape indices (into ``layer.data``).
    color : array-like of shape (4,)
        RGBA in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from napari.layers import Shapes
    >>> triangles = [np.array([[0.0, 0.0], [0.0, 2.0], [2.0, 2.0]]) + k for k in (0, 4)]
    >>> layer = Shapes(triangles, shape_type="polygon", edge_color="white")
    >>> set_edge_colors(layer, [1], [1.0, 0.0, 0.0, 1.0])
    >>> layer.edge_color.tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]]
    """
    rows = [int(i) for i in np.asarray(rows, dtype=np.intp).reshape(-1)]
    color = np.asarray(color, dtype=np.float64)
    if not rows:
        return
    if not fast_edge_colors_available(layer):
        logger.debug("napari has no Shapes._data_view.update_edge_color: public fallback")
        colors = np.array(layer.edge_color, dtype=np.float64)
        colors[rows] = color
        layer.edge_color = colors  # public, recolours every shape
        return
    view = layer._data_view
    with view.batched_updates():
        for i in rows:
            view.update_edge_color(i, color)
    layer.events.edge_color()
