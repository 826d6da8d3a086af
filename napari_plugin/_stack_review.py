"""The Review stacks dock widget: correct a z-stack or time-lapse plane by plane in napari.

A project stack (`labelassist.Project.add_stack`) opens as one image layer with its axes
(``t``, ``z``, ``y``, ``x``) and one Shapes layer holding every plane's polygons in nD: each
vertex has the plane's index over the stack axes first, then ``(row, col)``
(`._convert.planes_to_layer_data`), so napari's sliders show each plane's objects. Each
shape shows its object (track) id as text and in its colour.

Edits are saved per plane, ``AUTOSAVE_MS`` after the last one: a plane is a project image,
so each save is a new version of that plane (``expected_version``, provenance, undo and
the effort log as in the Review widget). Shapes drawn without an object get a new id at
the save. *Copy to next plane* puts the selected object on the next plane along the last
stack axis (``z``, or ``t`` for a time-lapse): with a prompt model loaded, its bounding
box is a box prompt (`labelassist.Model.segment`) on the next plane's pixels; otherwise,
or when the prompt finds nothing, the outline is copied. *Export label volume* writes the
stack's objects as a uint32 label TIFF (`Project.export_label_volume`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from napari.utils import notifications
from qtpy.QtCore import QTimer

from labelassist.instances import Instances
from labelassist.project import ProjectConflictError

from ._assist import ASSIST_MODELS, assist_model_spec
from ._convert import METADATA_KEY, feature_defaults, shape_planes
from ._stack_layer import (
    apply_saved,
    next_plane_object,
    object_colors,
    plane_to_save,
    stack_shapes_kwargs,
)
from ._style import NO_FACE, class_colors, image_layer_kwargs
from ._widgets import import_torch, path_value, report_error

__all__ = ["AUTOSAVE_MS", "COPY_KEY", "StackReviewWidget"]

AUTOSAVE_MS = 300
COPY_KEY = "Shift-J"  # copy the selected object to the next plane


class StackReviewWidget(Container):
    """Open a project's stack, correct its planes in nD, copy objects, export labels.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it).
    """

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.project: Any = None
        self.stack_record: dict | None = None
        self.image_layer: Any = None
        self.shapes_layer: Any = None
        self.model: Any = None
        self.planes: list[dict] = []  # image records of the planes
        self.versions: dict[int, int] = {}  # plane -> version shown
        self._originals: dict[int, dict[int, Any]] = {}  # plane -> instance id -> geometry
        self._dirty: set[int] = set()
        self._removing: set[int] = set()  # planes of the shapes being removed
        self._next_instance = 0
        self.folder = FileEdit(label="project", mode=FileDialogMode.EXISTING_DIRECTORY)
        self.open_button = PushButton(text="Open project")
        self.stack_box = ComboBox(label="stack", choices=self._stack_choices)
        self.show_button = PushButton(text="Show stack")
        self.next_stack_button = PushButton(text="Next stack to review")
        self.class_box = ComboBox(label="class", choices=self._class_choices)
        self.model_box = ComboBox(label="prompt model", choices=list(ASSIST_MODELS))
        self.model_box.value = "starter (shipped)"
        self.model_button = PushButton(text="Load prompt model")
        self.copy_button = PushButton(text=f"Copy to next plane ({COPY_KEY})")
        self.accept_button = PushButton(text="Accept plane")
        self.export_path = FileEdit(
            label="labels to", mode=FileDialogMode.OPTIONAL_FILE, filter="*.tif"
        )
        self.export_button = PushButton(text="Export label volume")
        self.status = Label(value="no project open")
        super().__init__(
            widgets=[
                self.folder,
                self.open_button,
                self.stack_box,
                self.show_button,
                self.next_stack_button,
                self.class_box,
                self.model_box,
                self.model_button,
                self.copy_button,
                self.accept_button,
                self.export_path,
                self.export_button,
                self.status,
            ]
        )
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_MS)
        self._timer.timeout.connect(lambda: self._guard(self.save_now))
        self.open_button.changed.connect(lambda: self._guard(self.open_project))
        self.show_button.changed.connect(lambda: self._guard(self.open_stack))
        self.next_stack_button.changed.connect(lambda: self._guard(self.next_stack))
        self.model_button.changed.connect(lambda: self._guard(self.load_model))
        self.copy_button.changed.connect(lambda: self._guard(self.copy_to_next_plane))
        self.accept_button.changed.connect(lambda: self._guard(self.accept_plane))
        self.export_button.changed.connect(lambda: self._guard(self.export_labels))
        self.class_box.changed.connect(self._on_class)
        napari_viewer.bind_key(
            COPY_KEY, lambda _v: self._guard(self.copy_to_next_plane), overwrite=True
        )

    # -- choices -----------------------------------------------------------------------------
    def _stack_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        project = getattr(self, "project", None)
        if project is None:
            return []
        return [(f"{s['id']}: {s['name']} ({s['axes']})", s["id"]) for s in project.stacks()]

    def _class_choices(self, _widget: Any = None) -> list[str]:
        project = getattr(self, "project", None)
        return list(project.classes) if project is not None else []

    # -- project and stack -------------------------------------------------------------------
    def open_project(self, folder: str | Path | None = None) -> Any:
        """Open the project in ``folder`` (default: the folder box) and show its next stack."""
        import labelassist as la

        folder = Path(folder if folder is not None else path_value(self.folder)).expanduser()
        self.close_project()
        self.project = la.Project.open(folder)
        self.folder.value = self.project.folder
        self.stack_box.reset_choices()
        self.class_box.reset_choices()
        if not self.project.stacks():
            self._set_status("the project has no stack; add one with Project.add_stack")
            return self.project
        self.next_stack()
        return self.project

    def close_project(self) -> None:
        """Save pending edits, remove the stack's layers, close the project."""
        if self.project is None:
            return
        self.save_now()
        self._remove_layers()
        self.project.close()
        self.project, self.stack_record = None, None

    def next_stack(self) -> dict | None:
        """Show the stack the project's queue gives next (or the first one)."""
        self._require_project()
        self.save_now()
        exclude = [self.stack_record["id"]] if self.stack_record is not None else []
        chosen = self.project.next_stack(exclude=exclude) or self.project.next_stack()
        if chosen is None:
            chosen = self.project.stacks()[0]
        self.open_stack(chosen["id"])
        return chosen

    def open_stack(self, stack: int | None = None) -> None:
        """Show a stack (default: the stack box's) with every plane's instances."""
        self._require_project()
        number = int(stack if stack is not None else self.stack_box.value)
        self.save_now()
        self._remove_layers()
        record = self.project.stack(number)
        self.stack_record = record
        self.stack_box.reset_choices()
        self.stack_box.value = number
        lead = tuple(record["shape"][:-2])
        image = self.project.stack_image(number)
        self.planes = self.project.planes(number)
        revisions = [self.project.instances(p, with_version=True) for p in self.planes]
        self.versions = {k: r.version for k, r in enumerate(revisions)}
        self._originals = {k: _originals(r.instances) for k, r in enumerate(revisions)}
        self._dirty.clear()
        labels = [a.lower() for a in record["axes"]]
        kwargs = image_layer_kwargs(image[(0,) * len(lead)], name=record["name"])
        kwargs.pop("data")
        kwargs["metadata"] = {METADATA_KEY: {"project": str(self.project.folder), "stack": number}}
        self.image_layer = self.viewer.add_image(image, **kwargs)
        kwargs = stack_shapes_kwargs(
            [r.instances for r in revisions],
            lead,
            classes=self.project.classes,
            name=f"{record['name']} objects",
            metadata={"project": str(self.project.folder), "stack": number},
        )
        ids = kwargs["features"]["instance"].to_numpy()
        self._next_instance = int(ids.max()) + 1 if len(ids) else 1
        layer = self.viewer.add_shapes(kwargs.pop("data"), **kwargs)
        self.shapes_layer = layer
        self._set_defaults(self.class_box.value or self.project.classes[0])
        layer.current_face_color = NO_FACE
        layer.events.data.connect(self._on_data)
        self.viewer.dims.axis_labels = labels
        self.viewer.layers.selection.active = layer
        layer.mode = "select"
        self._set_status(
            f"stack {record['name']}: {len(self.planes)} planes, axes {record['axes']}"
        )

    def _remove_layers(self) -> None:
        self._timer.stop()
        for layer in (self.shapes_layer, self.image_layer):
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.shapes_layer, self.image_layer = None, None

    # -- where the user is ---------------------------------------------------------------------
    @property
    def stack_shape(self) -> tuple[int, ...]:
        """The sizes of the stack axes of the stack shown."""
        if self.stack_record is None:
            return ()
        return tuple(self.stack_record["shape"][:-2])

    @property
    def current_plane(self) -> int:
        """The plane the sliders show (its position in C order over the stack axes)."""
        lead = self.stack_shape
        step = tuple(int(s) for s in self.viewer.dims.current_step[: len(lead)])
        clipped = tuple(min(max(s, 0), n - 1) for s, n in zip(step, lead, strict=True))
        return int(np.ravel_multi_index(clipped, lead))

    def show_plane(self, plane: int) -> None:
        """Move the sliders to ``plane``."""
        index = np.unravel_index(int(plane), self.stack_shape)
        for axis, value in enumerate(index):
            self.viewer.dims.set_current_step(axis, int(value))

    # -- edits and saving ------------------------------------------------------------------------
    def _on_data(self, event: Any) -> None:
        """An edit: new shapes get instance ids, edited model shapes become corrected,
        and the planes of the shapes concerned are saved soon (the plane shown when the
        event names no shape)."""
        action = str(getattr(event, "action", ""))
        layer = self.shapes_layer
        n = len(layer.data)
        rows = [i % n for i in getattr(event, "data_indices", ()) or () if n and -n <= i < n]
        if action == "removing":  # the shapes still exist: remember their planes
            self._removing = self._planes_of(rows)
            return
        if action not in ("added", "changed", "removed"):
            return
        features = layer.features
        if action == "added":
            ids = features["instance"].to_numpy()
            new = np.flatnonzero(ids < 0)
            if new.size:
                start = max(self._next_instance, int(ids.max()) + 1)
                features.iloc[new, features.columns.get_loc("instance")] = np.arange(
                    start, start + new.size
                )
                self._next_instance = start + new.size
        elif action == "changed":
            prov = features["provenance"].to_numpy()
            edited = [i for i in rows if prov[i] in ("model", "prompted")]
            if edited:
                features.iloc[edited, features.columns.get_loc("provenance")] = "corrected"
        planes = self._removing if action == "removed" else self._planes_of(rows)
        self._removing = set()
        for plane in planes or {self.current_plane}:
            self.mark_dirty(plane)

    def _planes_of(self, rows: list[int]) -> set[int]:
        """The planes of the layer's shapes at ``rows``."""
        data = [self.shapes_layer.data[i] for i in rows]
        return {int(p) for p in shape_planes(data, self.stack_shape) if p >= 0}

    def mark_dirty(self, plane: int) -> None:
        """Save ``plane`` ``AUTOSAVE_MS`` after the last edit."""
        self._dirty.add(int(plane))
        self._timer.start()

    @property
    def save_pending(self) -> bool:
        """Whether edited planes wait to be saved."""
        return bool(self._dirty)

    def save_now(self) -> list[int]:
        """Save every edited plane now (a new version each); return the planes saved.

        A plane another window saved since it was shown is not saved (the user is told:
        show the stack again to see theirs)."""
        self._timer.stop()
        saved: list[int] = []
        if self.project is None or self.shapes_layer is None:
            self._dirty.clear()
            return saved
        for plane in sorted(self._dirty):
            try:
                self._save_plane(plane)
            except ProjectConflictError as exc:
                self._dirty.discard(plane)
                report_error(self.status, f"plane {plane}: {exc}")
                notifications.show_warning(f"labelassist: plane {plane} changed elsewhere")
                continue
            self._dirty.discard(plane)
            saved.append(plane)
        if saved:
            self._recolor()
            self._set_status(f"saved plane(s) {saved}")
        return saved

    def _save_plane(self, plane: int) -> None:
        assert self.stack_record is not None
        layer = self.shapes_layer
        mine, rows = plane_to_save(
            layer,
            plane,
            self.stack_shape,
            image_shape=tuple(self.stack_record["shape"][-2:]),
            classes=list(self.project.classes),
            originals=self._originals.get(plane, {}),
        )
        revision = self.project.save_instances(
            self.planes[plane]["id"],
            mine,
            source="corrected",
            expected_version=self.versions[plane],
        )
        self.versions[plane] = revision.version
        self._originals[plane] = _originals(revision.instances)
        apply_saved(layer, rows, mine.extra["instance_id"], revision.instances)
        stored = revision.instances.extra["instance_id"]
        self._next_instance = max(self._next_instance, int(np.max(stored, initial=0)) + 1)

    def accept_plane(self) -> None:
        """Save, then mark the plane shown reviewed."""
        self._require_stack()
        self.save_now()
        plane = self.current_plane
        self.project.set_status(self.planes[plane]["id"], "reviewed")
        self._set_status(f"plane {plane} reviewed")

    # -- copy to the next plane ----------------------------------------------------------------
    def load_model(self, model: Any = None) -> Any:
        """Use ``model`` for box prompts (default: load the prompt-model box's choice)."""
        if model is None:
            import labelassist as la

            import_torch()
            latest = self.project.latest_checkpoint() if self.project is not None else None
            source, note = assist_model_spec(ASSIST_MODELS[self.model_box.value], latest=latest)
            model = la.load_model(source)
            if note:
                self._set_status(note)
        self.model = model
        return model

    def copy_to_next_plane(self) -> int:
        """Put the selected object on the next plane along the last stack axis; return
        that plane. A box prompt there with the prompt model, else (or when it finds
        nothing) a copy of the outline."""
        self._require_stack()
        layer = self.shapes_layer
        selected = sorted(layer.selected_data)
        if not selected:
            raise ValueError("select an object (a shape) on this plane first")
        assert self.stack_record is not None
        image = self.image_layer.data
        lead = self.stack_shape
        target, data, new = next_plane_object(
            layer,
            selected[0],
            lead,
            image_shape=tuple(self.stack_record["shape"][-2:]),
            classes=list(self.project.classes),
            model=self.model,
            pixels=lambda k: np.asarray(image[np.unravel_index(k, lead)]),
        )
        new = new.assign(instance=self._next_instance)
        self._next_instance += 1
        name = str(new["class"].iloc[0])
        provenance = str(new["provenance"].iloc[0])
        self._set_defaults(name)
        layer.events.data.disconnect(self._on_data)
        try:
            layer.add(data, shape_type="polygon")
        finally:
            layer.events.data.connect(self._on_data)
        n = len(data)
        for column in new.columns:
            layer.features.iloc[-n:, layer.features.columns.get_loc(column)] = new[
                column
            ].to_numpy()
        self._recolor()
        self.mark_dirty(target)
        self.show_plane(target)
        layer.selected_data = set(range(len(layer.data) - n, len(layer.data)))
        how = "box prompt" if provenance == "prompted" else "copy"
        self._set_status(f"object {new['object'].iloc[0]} -> plane {target} ({how})")
        return target

    # -- export --------------------------------------------------------------------------------
    def export_labels(self, path: str | Path | None = None) -> Path:
        """Save, then write the stack's label volume (uint32 TIFF with its axes)."""
        self._require_stack()
        path = Path(path if path is not None else path_value(self.export_path))
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise ValueError(f"export path {str(path)!r} must be a .tif file")
        self.save_now()
        assert self.stack_record is not None
        out = self.project.export_label_volume(self.stack_record["id"], path)
        self._set_status(f"exported {out.name}")
        notifications.show_info(f"labelassist: exported {out}")
        return Path(out)

    # -- helpers -------------------------------------------------------------------------------
    def _set_defaults(self, name: str) -> None:
        layer = self.shapes_layer
        if layer is None or name not in self.project.classes:
            return
        defaults = feature_defaults(name, list(self.project.classes))
        layer.feature_defaults = {**defaults, "object": 0}
        layer.current_edge_color = class_colors(list(self.project.classes))[name]

    def _on_class(self, name: str) -> None:
        if self.project is not None and name:
            self._set_defaults(name)

    def _recolor(self) -> None:
        layer = self.shapes_layer
        if layer is None or len(layer.data) == 0:
            return
        layer.edge_color = object_colors(layer.features["object"])
        layer.refresh_text()

    def _require_project(self) -> None:
        if self.project is None:
            raise ValueError("open a project first")

    def _require_stack(self) -> None:
        self._require_project()
        if self.shapes_layer is None or self.stack_record is None:
            raise ValueError("show a stack first")

    def _guard(self, action: Any) -> Any:
        try:
            return action()
        except (ValueError, FileNotFoundError, TypeError) as exc:
            report_error(self.status, str(exc))
            return None

    def _set_status(self, text: str) -> None:
        self.status.value = text


def _originals(instances: Instances) -> dict[int, Any]:
    return dict(zip(instances.extra["instance_id"].tolist(), instances.polygons, strict=True))
