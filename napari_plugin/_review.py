"""The Review dock widget: work through a project's images, correct, autosave, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import shapely
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
)
from napari.utils import notifications
from qtpy.QtCore import QTimer

from ._io import project_layer_data
from ._layers import layer_to_instances, shape_colors, tracker_for
from ._widgets import layer_link, report_error

__all__ = ["ACCEPT_KEY", "AUTOSAVE_MS", "ReviewWidget", "restore_unchanged"]

AUTOSAVE_MS = 300  # edits are saved this long after the last one
ACCEPT_KEY = "Shift-Enter"  # accept the image (reviewed) and open the next one
NEXT_KEY = "Shift-N"  # open the next image without changing the status
_EXPORT_CHOICES = {"reviewed images": "reviewed", "all images": None}


def restore_unchanged(instances: Any, originals: dict[int, Any], *, tolerance: float = 1e-3) -> Any:
    """Put back the stored geometry of instances the user did not change.

    napari keeps vertices in float32, so an untouched polygon comes back from the layer a
    few 1e-5 px off. Within ``tolerance`` (pixels, per vertex) of its stored geometry an
    instance gets that geometry back, and the project sees it unchanged.

    Parameters
    ----------
    instances : Instances
        From `layer_to_instances`, with ``extra["instance_id"]``.
    originals : dict of int to shapely geometry
        Stored geometry by instance id.

    Examples
    --------
    >>> import shapely
    >>> from labelassist import Instances
    >>> stored = shapely.box(0, 0, 2.1, 2)
    >>> edited = Instances([shapely.box(0, 0, 2.1000001, 2)], [0], [1.0], (4, 4),
    ...                    extra={"instance_id": [7]})
    >>> restore_unchanged(edited, {7: stored}).polygons[0] is stored
    True
    """
    ids = np.asarray(instances.extra.get("instance_id", []))
    rows = [k for k, i in enumerate(ids.tolist()) if i in originals]
    if not rows:
        return instances
    polys = instances.polygons.copy()
    stored = np.empty(len(rows), dtype=object)
    stored[:] = [originals[ids[k]] for k in rows]
    same = shapely.equals_exact(
        shapely.normalize(polys[rows]), shapely.normalize(stored), tolerance=tolerance
    )
    polys[np.asarray(rows)[same]] = stored[same]
    return instances.replace(polygons=polys)


class ReviewWidget(Container):
    """Open a labelassist project, correct its images one by one, export COCO.

    Every edit of the image's Shapes layer is saved to the project ``AUTOSAVE_MS`` after the
    last change (and before switching image or exporting), so nothing is lost.
    ``Shift-Enter`` accepts the image (status ``reviewed``) and opens the next one of the
    queue; ``Shift-N`` opens the next one without accepting. The class box sets the class
    of the selected shapes and of the shapes drawn next.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it).
    """

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.project: Any = None
        self.record: dict | None = None
        self.image_layer: Any = None
        self.shapes_layer: Any = None
        self.tracker: Any = None
        self._originals: dict[int, Any] = {}
        self._dirty = False
        self.folder = FileEdit(label="project", mode="d")
        self.new_classes = LineEdit(label="classes (new project)", value="nucleus")
        self.open_button = PushButton(text="Open / create project")
        self.images_folder = FileEdit(label="add images from", mode="d")
        self.add_button = PushButton(text="Add images")
        self.summary = Label(value="no project open")
        self.next_button = PushButton(text=f"Next image ({NEXT_KEY})")
        self.accept_button = PushButton(text=f"Accept and next ({ACCEPT_KEY})")
        # a callable: napari calls reset_choices() on dock widgets when layers change
        self.class_box = ComboBox(label="class", choices=self._class_choices)
        self.low_score = FloatSpinBox(label="flag below", value=0.7, min=0.0, max=1.0, step=0.05)
        self.export_which = ComboBox(label="export", choices=list(_EXPORT_CHOICES))
        self.export_path = FileEdit(label="to", mode="w", filter="*.json")
        self.export_button = PushButton(text="Export COCO")
        self.status = Label(value="")
        super().__init__(
            widgets=[
                self.folder,
                self.new_classes,
                self.open_button,
                self.images_folder,
                self.add_button,
                self.summary,
                self.next_button,
                self.accept_button,
                self.class_box,
                self.low_score,
                self.export_which,
                self.export_path,
                self.export_button,
                self.status,
            ]
        )
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_MS)
        self._timer.timeout.connect(self.save_now)
        self.open_button.changed.connect(lambda: self._guard(self.open_project))
        self.add_button.changed.connect(lambda: self._guard(self.add_images))
        self.next_button.changed.connect(lambda: self._guard(self.next_image))
        self.accept_button.changed.connect(lambda: self._guard(self.accept_and_next))
        self.export_button.changed.connect(lambda: self._guard(self.export))
        self.class_box.changed.connect(self._on_class)
        self.low_score.changed.connect(self._recolor)
        napari_viewer.layers.events.removed.connect(self._on_removed)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)
        napari_viewer.bind_key(
            ACCEPT_KEY, lambda _v: self._guard(self.accept_and_next), overwrite=True
        )
        napari_viewer.bind_key(NEXT_KEY, lambda _v: self._guard(self.next_image), overwrite=True)
        self._set_enabled()

    def _class_choices(self, _widget: Any = None) -> list[str]:
        project = getattr(self, "project", None)
        return list(project.classes) if project is not None else []

    # -- project ---------------------------------------------------------------------------
    def open_project(
        self, folder: str | Path | None = None, *, classes: list[str] | None = None
    ) -> Any:
        """Open the project in ``folder`` (default: the folder box), creating it with
        ``classes`` (default: the classes box) when the folder holds none; then open the
        first image to review."""
        import labelassist as la
        from labelassist.project import DB_NAME

        folder = Path(folder if folder is not None else self.folder.value).expanduser()
        if str(folder) in ("", "."):
            raise ValueError("choose a project folder first")
        self._close_project()
        if (folder / DB_NAME).is_file():
            project = la.Project.open(folder)
        else:
            names = classes or [c.strip() for c in self.new_classes.value.split(",") if c.strip()]
            if not names:
                raise ValueError("name the classes of the new project, e.g. 'nucleus, debris'")
            project = la.Project.create(folder, classes=names)
        self.project = project
        self.folder.value = project.folder
        self.class_box.reset_choices()
        self.class_box.value = project.classes[0]
        linked = [
            layer
            for layer in self.viewer.layers
            if layer_link(layer).get("project") == str(project.folder)
            and layer._type_string == "shapes"
        ]
        if linked:  # opened by the reader: continue with that image
            self._adopt(linked[0])
        else:
            self.next_image()
        self._update_summary()
        return project

    def add_images(self, source: Any = None) -> list[int]:
        """Add images (a folder, glob or paths; default: the folder box) to the project."""
        if self.project is None:
            raise ValueError("open a project first")
        source = source if source is not None else self.images_folder.value
        ids = self.project.add_images(source)
        self._set_status(f"added {len(ids)} images")
        if self.record is None:
            self.next_image()
        self._update_summary()
        return ids

    def _close_project(self) -> None:
        self.save_now()
        self._detach()
        if self.project is not None:
            self.project.close()
        self.project, self.record = None, None

    # -- images ----------------------------------------------------------------------------
    def next_image(self) -> dict | None:
        """Save, then open the next image of the queue (None when all are done)."""
        if self.project is None:
            raise ValueError("open a project first")
        self.save_now()
        exclude = [self.record["id"]] if self.record is not None else []
        record = self.project.next_image(exclude=exclude)
        if record is None:
            self._set_status("no image left to review")
            notifications.show_info("labelassist: every image is reviewed or skipped")
            self._update_summary()
            return None
        self.open_image(record)
        return record

    def accept_and_next(self) -> dict | None:
        """Save, mark the current image reviewed, open the next one."""
        if self.project is None or self.record is None:
            raise ValueError("open a project image first")
        self.save_now()
        self.project.set_status(self.record["id"], "reviewed")
        self._set_status(f"{Path(self.record['file_name']).name} reviewed")
        return self.next_image()

    def open_image(self, record: dict | int) -> None:
        """Show one project image with its instances (replacing the previous one)."""
        self.save_now()
        record = self.project.image(record)
        self._remove_own_layers()
        (image, image_kwargs, _), (data, shapes_kwargs, _) = project_layer_data(
            self.project, record, low_score=float(self.low_score.value)
        )
        self.image_layer = self.viewer.add_image(image, **image_kwargs)
        self.record = record
        layer = self.viewer.add_shapes(data, **shapes_kwargs)  # adopted by _on_inserted
        if self.shapes_layer is not layer:
            self._adopt(layer)
        self.viewer.layers.selection.active = layer
        layer.mode = "select"
        self._update_summary()

    def _remove_own_layers(self) -> None:
        self._detach()
        for layer in [self.image_layer]:
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        if self.record is not None:
            for layer in list(self.viewer.layers):
                link = layer_link(layer)
                if (
                    link.get("project") == str(self.project.folder)
                    and link.get("image") == self.record["id"]
                ):
                    self.viewer.layers.remove(layer)
        self.image_layer = None

    def _adopt(self, layer: Any) -> None:
        """Track and autosave ``layer`` (the Shapes layer of the current image)."""
        self._detach()
        link = layer_link(layer)
        if self.record is None or self.record["id"] != link.get("image"):
            self.record = self.project.image(link["image"])
        self.shapes_layer = layer
        self.tracker = tracker_for(layer)
        self.tracker.on_change = self._schedule_save
        self.tracker.current_class = self.class_box.value
        stored = self.project.instances(self.record["id"])
        self._originals = dict(
            zip(stored.extra["instance_id"].tolist(), stored.polygons, strict=True)
        )
        self._set_enabled()

    def _detach(self) -> None:
        self._timer.stop()
        self._dirty = False
        if self.tracker is not None:
            self.tracker.on_change = None
        self.shapes_layer, self.tracker = None, None
        self._set_enabled()

    def _on_removed(self, event: Any) -> None:
        if event.value is self.shapes_layer:
            self.save_now()  # edits made just before the layer was deleted are kept
            self._detach()
        if event.value is self.image_layer:
            self.image_layer = None

    def _on_inserted(self, event: Any) -> None:
        layer = event.value
        link = layer_link(layer)
        if (
            self.project is not None
            and self.record is not None
            and layer._type_string == "shapes"
            and link.get("project") == str(self.project.folder)
            and link.get("image") == self.record["id"]
        ):
            self._adopt(layer)  # e.g. the Pre-annotate widget replaced the layer

    # -- saving ----------------------------------------------------------------------------
    @property
    def save_pending(self) -> bool:
        """Whether edits are waiting to be saved."""
        return self._dirty

    def _schedule_save(self) -> None:
        self._dirty = True
        self._timer.start()  # restarts: saves AUTOSAVE_MS after the last edit

    def save_now(self) -> None:
        """Save pending edits of the current image now (no-op without any)."""
        self._timer.stop()
        if not self._dirty:
            return
        self._dirty = False
        if self.project is None or self.record is None or self.shapes_layer is None:
            return
        layer = self.shapes_layer
        instances = layer_to_instances(layer, classes=self.project.classes)
        instances = restore_unchanged(instances, self._originals)
        sent = instances.extra["instance_id"]
        self.project.save_instances(
            self.record["id"], instances.replace(extra={"instance_id": sent}), source="corrected"
        )
        saved = self.project.instances(self.record["id"])
        _sync_features(layer, sent, saved.extra["instance_id"], saved.extra["source"])
        self._originals = dict(
            zip(saved.extra["instance_id"].tolist(), saved.polygons, strict=True)
        )
        if self.tracker is not None:
            self.tracker._next_id = max(
                self.tracker._next_id,
                int(layer.features["instance"].to_numpy().max(initial=-1)) + 1,
            )
        self._set_status(f"saved {len(saved)} instances")

    # -- class, colours, export ----------------------------------------------------------------
    def _on_class(self, name: str) -> None:
        if self.tracker is not None and name in self.tracker.classes:
            self.tracker.current_class = name

    def _recolor(self, _value: Any = None) -> None:
        layer = self.shapes_layer
        if layer is None or self.project is None or len(layer.data) == 0:
            return
        layer.metadata.setdefault("labelassist", {})["low_score"] = float(self.low_score.value)
        edge, face = shape_colors(
            layer.features, self.project.classes, low_score=float(self.low_score.value)
        )
        layer.edge_color, layer.face_color = edge, face

    def export(self, path: str | Path | None = None, *, which: str | None = None) -> Path:
        """Save, then export the project (``which``: the export box) as COCO."""
        if self.project is None:
            raise ValueError("open a project first")
        path = Path(path if path is not None else self.export_path.value)
        if path.suffix.lower() != ".json":
            raise ValueError(f"export path {str(path)!r} must be a .json file")
        self.save_now()
        status = _EXPORT_CHOICES[which or self.export_which.value]
        out = self.project.export_coco(path, status=status)
        self._set_status(f"exported {out.name}")
        notifications.show_info(f"labelassist: exported {out}")
        return out

    # -- helpers ---------------------------------------------------------------------------
    def _guard(self, action: Any) -> Any:
        try:
            return action()
        except (ValueError, FileNotFoundError, FileExistsError, TypeError) as exc:
            report_error(self.status, str(exc))
            return None

    def _update_summary(self) -> None:
        if self.project is None:
            self.summary.value = "no project open"
            return
        counts = self.project.stats()["status"]
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        current = f" | {Path(self.record['file_name']).name}" if self.record else ""
        self.summary.value = f"{sum(counts.values())} images: {text or 'none'}{current}"

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _set_enabled(self) -> None:
        has_project = getattr(self, "project", None) is not None
        for button in (self.add_button, self.next_button, self.export_button):
            button.enabled = has_project
        self.accept_button.enabled = has_project and self.shapes_layer is not None


def _sync_features(
    layer: Any, sent: np.ndarray, saved_ids: np.ndarray, sources: np.ndarray
) -> None:
    """Give the layer's shapes the ids and provenance the project stored (same order)."""
    features = layer.features
    if len(features) == 0 or len(sent) == 0:
        return
    ids = features["instance"].to_numpy()
    mapping = {int(a): k for k, a in enumerate(np.asarray(sent).tolist())}
    rows = np.array([mapping.get(int(i), -1) for i in ids])
    ok = rows >= 0
    new_ids = ids.copy()
    new_ids[ok] = np.asarray(saved_ids)[rows[ok]]
    provenance = features["provenance"].to_numpy().copy()
    provenance[ok] = np.asarray(sources, dtype=object)[rows[ok]]
    features.iloc[:, features.columns.get_loc("instance")] = new_ids
    features.iloc[:, features.columns.get_loc("provenance")] = provenance
