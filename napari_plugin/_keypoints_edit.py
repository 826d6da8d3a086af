"""The Review widget's keypoint editing: a Points layer and a skeleton layer per image.

`KeypointEditor` shows an image's keypoints (`._keypoints_layer`) next to its Shapes
layer, redraws the skeleton after each edit of the points, reports each finished edit
(``on_change``, the widget's autosave), gives the widget the keypoints to save
(`KeypointEditor.keypoints_for`) and takes back the instance ids the project stored
(`KeypointEditor.after_save`). The Points layer carries the image's link (``project``,
``image``, ``version``) with ``kind = "keypoints"``; the skeleton layer only
``skeleton_of`` (it is a Shapes layer, and must not pass for the image's instances).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from labelassist.instances import Instances

from ._convert import METADATA_KEY
from ._keypoints_layer import (
    points_layer_kwargs,
    points_to_keypoints,
    set_visibility,
    skeleton_layer_kwargs,
    skeleton_lines,
)
from ._sync import restore_unchanged_points

__all__ = ["KeypointEditor", "is_keypoint_layer"]


def is_keypoint_layer(layer: Any) -> bool:
    """Whether ``layer`` is a keypoints or skeleton layer of this plugin."""
    meta = getattr(layer, "metadata", {}).get(METADATA_KEY, {}) or {}
    return meta.get("kind") in ("keypoints", "skeleton")


class KeypointEditor:
    """The keypoints of the image the Review widget shows (see the module docstring).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    on_change : callable, optional
        Called after every finished edit of the points (add, move, delete, hide).
    """

    def __init__(self, viewer: Any, on_change: Callable[[], None] | None = None) -> None:
        self.viewer = viewer
        self.on_change = on_change
        self.points_layer: Any = None
        self.skeleton_layer: Any = None
        self.names: list[str] = []
        self.skeleton: list[tuple[int, int]] = []
        self._originals: dict[int, np.ndarray] = {}
        self._quiet = False
        self._keypoint = ""

    # -- showing -------------------------------------------------------------------------------
    def show(
        self,
        revision_instances: Instances,
        names: list[str],
        skeleton: list[tuple[int, int]],
        link: dict[str, Any],
    ) -> None:
        """Replace the keypoint layers by those of ``revision_instances`` (as stored);
        keypoint layers of the same image made elsewhere (the reader) go too."""
        self.remove()
        key = (link.get("project"), link.get("image"))
        for layer in list(self.viewer.layers):
            meta = getattr(layer, "metadata", {}).get(METADATA_KEY, {}) or {}
            owner = meta.get("skeleton_of", meta)
            if is_keypoint_layer(layer) and (owner.get("project"), owner.get("image")) == key:
                self.viewer.layers.remove(layer)
        self.names, self.skeleton = list(names), [tuple(e) for e in skeleton]  # type: ignore[misc]
        name = str(link.get("file_name", "image")).rsplit("/", 1)[-1]
        kwargs = points_layer_kwargs(
            revision_instances,
            self.names,
            skeleton=self.skeleton,
            name=f"{name} keypoints",
            metadata=link,
        )
        defaults = kwargs.pop("feature_defaults")
        self.remember(revision_instances)
        lines = skeleton_lines_from(kwargs, self.skeleton)
        self.skeleton_layer = self.viewer.add_shapes(
            **skeleton_layer_kwargs(
                lines, name=f"{name} skeleton", metadata={"skeleton_of": dict(link)}
            )
        )
        self.points_layer = self.viewer.add_points(**kwargs)
        self.points_layer.feature_defaults = {**defaults, "keypoint": self.current_keypoint}
        self.points_layer.events.data.connect(self._on_data)

    def remember(self, instances: Instances) -> None:
        """Hold the stored keypoints by instance id (to restore untouched ones at a save)."""
        self._originals = {}
        if instances.keypoints is not None:
            ids = instances.extra["instance_id"].tolist()
            self._originals = dict(zip(ids, instances.keypoints, strict=True))

    def remove(self) -> None:
        """Remove the keypoint layers from the viewer."""
        if self.points_layer is not None:
            self.points_layer.events.data.disconnect(self._on_data)
        for layer in (self.points_layer, self.skeleton_layer):
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.points_layer = self.skeleton_layer = None

    @property
    def active(self) -> bool:
        """Whether keypoints are shown (the project names keypoints)."""
        return self.points_layer is not None

    @property
    def current_keypoint(self) -> str:
        """The name new points get (the widget's keypoint box)."""
        return self._keypoint if self._keypoint in self.names else (self.names or [""])[0]

    @current_keypoint.setter
    def current_keypoint(self, name: str) -> None:
        self._keypoint = name
        if self.points_layer is not None and name in self.names:
            self.points_layer.feature_defaults = {
                **self.points_layer.feature_defaults.iloc[0].to_dict(),
                "keypoint": name,
                "instance": 0,
            }

    # -- editing -------------------------------------------------------------------------------
    def set_visibility(self, visibility: int, indices: Any = None) -> int:
        """Mark points hidden (1) or visible (2): ``indices`` or the selected points;
        return how many."""
        if self.points_layer is None:
            return 0
        rows = sorted(self.points_layer.selected_data if indices is None else indices)
        set_visibility(self.points_layer, rows, visibility)
        if rows and self.on_change is not None:
            self.on_change()
        return len(rows)

    def _on_data(self, event: Any) -> None:
        action = str(getattr(event, "action", "changed"))
        if self._quiet or action.endswith("ing"):  # adding, changing, removing: not finished
            return
        self.redraw()
        if self.on_change is not None:
            self.on_change()

    def redraw(self) -> None:
        """Draw the skeleton of the points as they are now."""
        if self.skeleton_layer is None or self.points_layer is None:
            return
        lines = skeleton_lines(self.points_layer, self.skeleton)
        self.skeleton_layer.data = []
        if lines:
            self.skeleton_layer.add_lines(lines, edge_color="yellow", edge_width=0.5)

    # -- saving --------------------------------------------------------------------------------
    def keypoints_for(self, instances: Instances) -> tuple[Instances, np.ndarray, int]:
        """``instances`` (from the Shapes layer) with the layer's keypoints; the instance
        id each point counted for; the number of points outside every instance."""
        keypoints, owners, dropped = points_to_keypoints(self.points_layer, instances, self.names)
        ids = np.asarray(instances.extra["instance_id"], dtype=np.int64)
        keypoints = restore_unchanged_points(keypoints, ids, self._originals)
        return instances.replace(keypoints=keypoints), owners, dropped

    def after_save(self, owners: np.ndarray, sent: np.ndarray, saved: Instances) -> None:
        """Give the points the instance ids the project stored (``sent`` -> saved), drop
        the points that belong to no instance, and hold the saved keypoints."""
        layer = self.points_layer
        if layer is None:
            return
        mapping = dict(
            zip(np.asarray(sent).tolist(), saved.extra["instance_id"].tolist(), strict=True)
        )
        new = np.array([mapping.get(int(o), 0) for o in owners], dtype=np.int64)
        if len(new) == len(layer.features):
            column = layer.features.columns.get_loc("instance")
            layer.features.iloc[:, column] = new
        orphans = set(np.flatnonzero(new == 0).tolist())
        if orphans:
            self._quiet = True
            try:
                layer.selected_data = orphans
                layer.remove_selected()
            finally:
                self._quiet = False
        self.remember(saved)
        self.redraw()


def skeleton_lines_from(kwargs: dict[str, Any], skeleton: list[tuple[int, int]]) -> list:
    """`skeleton_lines` of a Points layer not made yet (its ``data`` and ``features``)."""

    class _View:
        data = kwargs["data"]
        features = kwargs["features"]

    return skeleton_lines(_View(), skeleton)
