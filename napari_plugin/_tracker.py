"""Keep a Shapes layer's features (instance id, class, provenance) right while the user edits.

`EditTracker` listens to the layer's public ``events.data``; `tracker_for` gives each layer
exactly one tracker (held in a weak dictionary, so the tracker goes with its layer).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ._convert import METADATA_KEY, feature_defaults
from ._napari_compat import set_edge_colors
from ._style import NO_FACE, class_colors

__all__ = ["EDITED_PROVENANCES", "EditTracker", "tracker_for"]

#: Provenances of shapes that become ``"corrected"`` when the user changes them.
EDITED_PROVENANCES = ("model", "prompted")


class EditTracker:
    """Keep a Shapes layer's ``features`` consistent while the user edits it.

    * added shapes get a fresh ``instance`` id, provenance ``"human"``, score 1 and the
      current class (``layer.feature_defaults``) and its edge colour;
    * a changed model or prompted shape becomes ``"corrected"``;
    * `set_class` relabels shapes (a model or prompted shape becomes ``"corrected"``).

    Only the affected rows are touched, so one edit costs the same in a layer of 10 or
    10,000 shapes. ``on_change()`` is called after every finished edit (the review
    widget uses it for autosave).

    Parameters
    ----------
    layer : napari.layers.Shapes
        A layer made with `labelassist_napari._style.shapes_layer_kwargs`.
    on_change : callable, optional
        Called without arguments after each edit.
    """

    def __init__(self, layer: Any, on_change: Callable[[], None] | None = None) -> None:
        self.layer = layer
        self.on_change = on_change
        meta = layer.metadata.setdefault(METADATA_KEY, {})
        self.classes: list[str] = list(meta.get("classes") or ["class 0"])
        self.colors = class_colors(self.classes)
        ids = layer.features["instance"].to_numpy() if "instance" in layer.features else []
        self._next_id = int(np.max(ids)) + 1 if len(ids) else 0
        layer.events.data.connect(self._on_data)
        layer.selected_data = set()
        layer.current_face_color = NO_FACE
        self.current_class = self.classes[0]

    @property
    def next_id(self) -> int:
        """The ``instance`` id the next drawn shape gets (at least)."""
        return self._next_id

    def reserve_ids(self, ids: Iterable[int]) -> None:
        """Never give a drawn shape any of `ids` (or a smaller id) from now on.

        The review widget calls it with the ids the project assigned on saving, so that a
        shape drawn next is never taken for an edit of a stored (or deleted) instance.

        Examples
        --------
        >>> from napari.layers import Shapes
        >>> from labelassist import Instances
        >>> from labelassist_napari._style import shapes_layer_kwargs
        >>> tracker = EditTracker(Shapes(**shapes_layer_kwargs(Instances.empty((4, 4)))))
        >>> tracker.reserve_ids([41, 7]); tracker.next_id
        42
        """
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size:
            self._next_id = max(self._next_id, int(ids.max()) + 1)

    @property
    def current_class(self) -> str:
        """The class given to shapes drawn next."""
        return self._current_class

    @current_class.setter
    def current_class(self, name: str) -> None:
        if name not in self.classes:
            raise ValueError(f"class {name!r} is not one of {self.classes}")
        self._current_class = name
        layer = self.layer
        layer.feature_defaults = feature_defaults(name, self.classes)
        # napari applies current colours to the selected shapes too, so relabel them
        selected = sorted(layer.selected_data)
        layer.current_edge_color = self.colors[name]
        if selected:
            self.set_class(selected, name)

    def disconnect(self) -> None:
        """Stop tracking the layer."""
        self.layer.events.data.disconnect(self._on_data)

    def _on_data(self, event: Any) -> None:
        action = str(getattr(event, "action", ""))
        if action == "added":
            self._fill_new_rows()
        elif action == "changed":
            self._mark_corrected(list(getattr(event, "data_indices", ())))
        elif action != "removed":
            return
        if self.on_change is not None:
            self.on_change()

    def _fill_new_rows(self) -> None:
        features = self.layer.features
        ids = features["instance"].to_numpy()
        new = np.flatnonzero(ids < 0)
        if new.size == 0:
            return
        # never reuse the id of a deleted shape: the project would take the new shape
        # for an edit of the deleted one
        start = max(self._next_id, int(ids.max()) + 1)
        col = features.columns.get_loc("instance")
        features.iloc[new, col] = np.arange(start, start + new.size)
        self._next_id = start + new.size

    def _mark_corrected(self, indices: list[int]) -> None:
        features = self.layer.features
        n = len(features)
        indices = [i if i >= 0 else n + i for i in indices if -n <= i < n]
        if not indices:
            return
        prov = features["provenance"].to_numpy()
        rows = [i for i in indices if prov[i] in EDITED_PROVENANCES]
        if rows:
            features.iloc[rows, features.columns.get_loc("provenance")] = "corrected"

    def set_class(self, indices: Sequence[int], name: str) -> None:
        """Set the class of the shapes at `indices` (and the other parts of their instances).

        Examples
        --------
        >>> import shapely
        >>> from napari.layers import Shapes
        >>> from labelassist import Instances
        >>> from labelassist_napari._style import shapes_layer_kwargs
        >>> inst = Instances([shapely.box(0, 0, 2, 2)], [0], [0.9], (4, 4))
        >>> layer = Shapes(**shapes_layer_kwargs(inst, classes=["a", "b"]))
        >>> EditTracker(layer).set_class([0], "b")
        >>> layer.features[["class", "provenance"]].values.tolist()
        [['b', 'corrected']]
        """
        if name not in self.classes:
            raise ValueError(f"class {name!r} is not one of {self.classes}; pick one of them")
        layer = self.layer
        features = layer.features
        picked = np.asarray(sorted(indices), dtype=np.intp)
        if picked.size == 0:
            return
        if (picked < 0).any() or (picked >= len(features)).any():
            raise IndexError(
                f"shape indices must be within [0, {len(features)}), got {picked.tolist()}"
            )
        ids = features["instance"].to_numpy()
        rows = np.flatnonzero(np.isin(ids, ids[picked]) & (ids >= 0))
        rows = np.union1d(rows, picked)
        features.iloc[rows, features.columns.get_loc("class")] = name
        prov = features["provenance"].to_numpy()
        model_rows = rows[np.isin(prov[rows], EDITED_PROVENANCES)]
        if model_rows.size:
            features.iloc[model_rows, features.columns.get_loc("provenance")] = "corrected"
        set_edge_colors(layer, rows, self.colors[name])
        if self.on_change is not None:
            self.on_change()


_TRACKERS: weakref.WeakKeyDictionary[Any, EditTracker] = weakref.WeakKeyDictionary()


def tracker_for(layer: Any) -> EditTracker:
    """The `EditTracker` of a layer, created on first use (one per layer).

    Examples
    --------
    >>> from napari.layers import Shapes
    >>> from labelassist import Instances
    >>> from labelassist_napari._style import shapes_layer_kwargs
    >>> layer = Shapes(**shapes_layer_kwargs(Instances.empty((4, 4)), classes=["a"]))
    >>> tracker_for(layer) is tracker_for(layer)
    True
    """
    tracker = _TRACKERS.get(layer)
    if tracker is None:
        tracker = _TRACKERS[layer] = EditTracker(layer)
    return tracker
