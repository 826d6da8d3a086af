"""The Review dock widget: work through a project's images, correct, autosave, export.

Every save passes the version of the image the widget read (or last saved); when another
window or process saved the image in between, the project refuses the save and the widget
asks the user to reload theirs, keep mine or merge (see `._conflict`).

The widget also feeds the project's effort log: it measures the user's active time at each
image with `labelassist.project.ActivityClock` (events: opening the image, edits, pans
and zooms, mouse moves over the canvas; each idle gap counts at most 60 s) and reports it
with `Project.log_time` at each autosave and when leaving the image; it shows the image's
and the project's effort (`Project.effort`) after each save.

Its Assist panel (`._assist`) adds box and point prompts and edge refinement; the save
passes each shape's provenance (``"prompted"`` objects are stored so) and marks refined
outlines (``extra["refined"]``), so the effort log records those actions.

In a project that names keypoints (`labelassist.Project.keypoints`) the image's keypoints
are a Points layer next to its Shapes layer, with the skeleton drawn as lines
(`._keypoints_edit`): points can be moved, added (of the name in the keypoint box, to the
outline they fall in), deleted, and hidden or shown (``Shift-H`` on the selected points);
every such edit is autosaved with the outlines, in the same version.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
)
from napari.layers import Shapes
from napari.utils import notifications
from qtpy.QtCore import QTimer

from labelassist.instances import Instances
from labelassist.project import ActivityClock, ProjectConflictError, Revision

from ._assist import AssistPanel
from ._conflict import CONFLICT_CHOICES, instances_to_save
from ._convert import METADATA_KEY, layer_to_instances
from ._io import project_layer_data
from ._keypoints_edit import KeypointEditor
from ._prompts import sources_to_save
from ._style import shape_colors
from ._sync import restore_unchanged, sync_features
from ._tracker import tracker_for
from ._widgets import find_linked_layer, layer_link, path_value, report_error

__all__ = [
    "ACCEPT_KEY",
    "AUTOSAVE_MS",
    "CONFLICT_CHOICES",
    "HIDE_KEY",
    "Conflict",
    "ReviewWidget",
    "effort_text",
]

AUTOSAVE_MS = 300  # edits are saved this long after the last one
ACCEPT_KEY = "Shift-Enter"  # accept the image (reviewed) and open the next one
NEXT_KEY = "Shift-N"  # open the next image without changing the status
HIDE_KEY = "Shift-H"  # hide (or show again) the selected keypoints
_EXPORT_CHOICES = {"reviewed images": "reviewed", "all images": None}


class Conflict(NamedTuple):
    """A save the project refused because the image changed since the widget read it."""

    image: int  # image id
    mine: Instances  # the user's instances when the save was refused
    read_ids: frozenset[int]  # instance ids of the version the user read (or last saved)
    layer: Any  # the Shapes layer the user was editing
    theirs: Revision  # the image in the project when the user was asked


class ReviewWidget(Container):
    """Open a labelassist project, correct its images one by one, export COCO.

    Every edit of the image's Shapes layer is saved to the project ``AUTOSAVE_MS`` after the
    last change (and before switching image or exporting), so nothing is lost. Each save
    passes the version read (``expected_version``); when another window or process changed
    the image since, nothing is saved, the user is told, and `resolve_conflict` (the
    *Reload theirs* / *Keep mine* / *Merge* buttons) decides; until then the widget stays
    on the image.
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
        self.version: int | None = None  # the version of the image the layer started from
        self.conflict: Conflict | None = None
        self._held: tuple[int, Revision] | None = None  # the last revision read or saved
        self.clock = ActivityClock()  # the active time at the current image
        self._refined: set[int] = set()  # instance ids refined since the last save
        self.assist = AssistPanel(
            napari_viewer,
            on_refined=self._refined.update,
            on_unrefined=self._refined.difference_update,
        )
        self.keypoints = KeypointEditor(napari_viewer, on_change=self._schedule_save)
        self._owners = np.zeros(0, dtype=np.int64)  # the instance of each point saved
        self._dropped = 0  # points of the last save that lie in no outline
        self.folder = FileEdit(label="project", mode=FileDialogMode.EXISTING_DIRECTORY)
        self.new_classes = LineEdit(label="classes (new project)", value="nucleus")
        self.open_button = PushButton(text="Open / create project")
        self.images_folder = FileEdit(
            label="add images from", mode=FileDialogMode.EXISTING_DIRECTORY
        )
        self.add_button = PushButton(text="Add images")
        self.summary = Label(value="no project open")
        self.effort = Label(value="")
        self.next_button = PushButton(text=f"Next image ({NEXT_KEY})")
        self.accept_button = PushButton(text=f"Accept and next ({ACCEPT_KEY})")
        # a callable: napari calls reset_choices() on dock widgets when layers change
        self.class_box = ComboBox(label="class", choices=self._class_choices)
        self.keypoint_box = ComboBox(
            label="keypoint", choices=self._keypoint_choices, visible=False
        )
        self.hide_button = PushButton(text=f"Hide / show selected points ({HIDE_KEY})")
        self.hide_button.visible = False
        self.low_score = FloatSpinBox(label="flag below", value=0.7, min=0.0, max=1.0, step=0.05)
        self.export_which = ComboBox(label="export", choices=list(_EXPORT_CHOICES))
        self.export_path = FileEdit(label="to", mode=FileDialogMode.OPTIONAL_FILE, filter="*.json")
        self.export_button = PushButton(text="Export COCO")
        self.status = Label(value="")
        self.conflict_label = Label(value="", visible=False)
        self.reload_button = PushButton(text="Reload theirs", visible=False)
        self.keep_button = PushButton(text="Keep mine", visible=False)
        self.merge_button = PushButton(text="Merge (theirs + my new shapes)", visible=False)
        super().__init__(
            widgets=[
                self.folder,
                self.new_classes,
                self.open_button,
                self.images_folder,
                self.add_button,
                self.summary,
                self.effort,
                self.next_button,
                self.accept_button,
                self.class_box,
                self.keypoint_box,
                self.hide_button,
                self.low_score,
                self.assist,
                self.export_which,
                self.export_path,
                self.export_button,
                self.status,
                self.conflict_label,
                self.reload_button,
                self.keep_button,
                self.merge_button,
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
        for button, choice in zip(
            (self.reload_button, self.keep_button, self.merge_button), CONFLICT_CHOICES, strict=True
        ):
            button.changed.connect(partial(self._on_choice, choice))
        self.class_box.changed.connect(self._on_class)
        self.keypoint_box.changed.connect(self._on_keypoint)
        self.hide_button.changed.connect(lambda: self._guard(self.toggle_hidden))
        self.low_score.changed.connect(self._recolor)
        napari_viewer.layers.events.removed.connect(self._on_removed)
        # pan, zoom (napari >= 0.9 moved the camera to viewer.scene)
        scene = getattr(napari_viewer, "scene", napari_viewer)
        scene.camera.events.connect(self._on_activity)
        napari_viewer.mouse_move_callbacks.append(self._on_activity)
        napari_viewer.layers.events.inserted.connect(self._on_inserted)
        napari_viewer.bind_key(
            ACCEPT_KEY, lambda _v: self._guard(self.accept_and_next), overwrite=True
        )
        napari_viewer.bind_key(NEXT_KEY, lambda _v: self._guard(self.next_image), overwrite=True)
        napari_viewer.bind_key(HIDE_KEY, lambda _v: self._guard(self.toggle_hidden), overwrite=True)
        self._set_enabled()

    def _class_choices(self, _widget: Any = None) -> list[str]:
        project = getattr(self, "project", None)
        return list(project.classes) if project is not None else []

    def _keypoint_choices(self, _widget: Any = None) -> list[str]:
        editor = getattr(self, "keypoints", None)
        return list(editor.names) if editor is not None else []

    # -- project ---------------------------------------------------------------------------
    def open_project(
        self, folder: str | Path | None = None, *, classes: list[str] | None = None
    ) -> Any:
        """Open the project in ``folder`` (default: the folder box), creating it with
        ``classes`` (default: the classes box) when the folder holds none; then open the
        first image to review."""
        import labelassist as la
        from labelassist.project import DB_NAME

        folder = Path(folder if folder is not None else path_value(self.folder)).expanduser()
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
        self.assist.set_project(project.latest_checkpoint())
        linked = [
            layer
            for layer in self.viewer.layers
            if layer_link(layer).get("project") == str(project.folder) and isinstance(layer, Shapes)
        ]
        if linked:  # opened by the reader: continue with that image
            self._adopt(linked[0])
            self.clock.start()
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
        self._save_or_stop()
        self._log_time(stop=True)
        self._detach()
        self.assist.reset()
        if self.project is not None:
            self.project.close()
        self.project, self.record = None, None

    # -- images ----------------------------------------------------------------------------
    def next_image(self) -> dict | None:
        """Save, then open the next image of the queue (None when all are done)."""
        if self.project is None:
            raise ValueError("open a project first")
        self._save_or_stop()
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
        self._save_or_stop()
        self._log_time(stop=True)
        self.project.set_status(self.record["id"], "reviewed")
        self._set_status(f"{Path(self.record['file_name']).name} reviewed")
        return self.next_image()

    def open_image(self, record: dict | int) -> None:
        """Show one project image with its instances (replacing the previous one)."""
        self._save_or_stop()
        chosen = self.project.image(record)
        self._show(chosen, self.project.instances(chosen["id"], with_version=True))

    def _show(self, record: dict, revision: Revision) -> None:
        """Replace the layers of the current image by `record` with `revision`'s instances."""
        self._log_time(stop=True)  # the time at the image shown until now
        self._remove_own_layers()
        (image, image_kwargs, _), (data, shapes_kwargs, _) = project_layer_data(
            self.project,
            record,
            low_score=float(self.low_score.value),
            revision=revision,
            keypoints=False,  # the keypoint layers are made by self.keypoints in _adopt
        )
        self.image_layer = self.viewer.add_image(image, **image_kwargs)
        self.record = record
        self._held = (int(record["id"]), revision)
        layer = self.viewer.add_shapes(data, **shapes_kwargs)  # adopted by _on_inserted
        if self.shapes_layer is not layer:
            self._adopt(layer)
        self.viewer.layers.selection.active = layer
        layer.mode = "select"
        self.clock.start()
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
        revision = self._revision_for(link)
        self._hold(layer, revision)
        self._show_keypoints(revision, link)
        image_layer = self.image_layer
        if image_layer is None or layer_link(image_layer).get("image") != self.record["id"]:
            folder = str(self.project.folder)
            image_layer = find_linked_layer(self.viewer, "image", folder, self.record["id"])
        key = (str(self.project.folder), int(self.record["id"]))
        self.assist.attach(layer, image_layer, key, list(self.project.classes))
        self._set_enabled()

    def _revision_for(self, link: dict[str, Any]) -> Revision:
        """The revision a linked layer was made from (the version in its link)."""
        image, version = int(link["image"]), link.get("version")
        if self._held is not None and self._held[0] == image and self._held[1].version == version:
            return self._held[1]
        if version is None:  # a layer made without a version: take the current one
            return self.project.instances(image, with_version=True)
        return Revision(self.project.instances(image, version=int(version)), int(version))

    def _hold(self, layer: Any, revision: Revision) -> None:
        """Remember what the layer's image is in the project: its version and geometry."""
        assert self.record is not None  # a layer is held only for the current image
        stored = revision.instances
        self._originals = dict(
            zip(stored.extra["instance_id"].tolist(), stored.polygons, strict=True)
        )
        self.version = revision.version
        self._held = (int(self.record["id"]), revision)
        layer.metadata.setdefault(METADATA_KEY, {})["version"] = revision.version

    def _show_keypoints(self, revision: Revision, link: dict[str, Any]) -> None:
        """Show the keypoints of the adopted layer's revision (when the project has any)."""
        names = self.project.keypoints
        if names is None:
            self.keypoints.remove()
        else:
            assert self.record is not None
            link = {
                "project": str(self.project.folder),
                "image": int(self.record["id"]),
                "file_name": self.record["file_name"],
                "version": revision.version,
            }
            self.keypoints.show(revision.instances, names, self.project.skeleton, link)
            self.keypoint_box.reset_choices()
        for widget in (self.keypoint_box, self.hide_button):
            widget.visible = names is not None

    def _on_keypoint(self, name: str) -> None:
        if name:
            self.keypoints.current_keypoint = name

    def toggle_hidden(self) -> int:
        """Hide the selected keypoints (visibility 1), or show them again when all are
        hidden already; return how many changed."""
        layer = self.keypoints.points_layer
        if layer is None:
            raise ValueError("this project has no keypoints; see Project.set_keypoints")
        rows = sorted(layer.selected_data)
        if not rows:
            raise ValueError("select keypoints first (in the keypoints layer's select mode)")
        hidden = layer.features["visibility"].to_numpy()[rows] == 1
        return self.keypoints.set_visibility(2 if hidden.all() else 1, rows)

    def _detach(self) -> None:
        self._timer.stop()
        self._dirty = False
        self._refined.clear()
        self.keypoints.remove()
        self.assist.detach()
        if self.tracker is not None:
            self.tracker.on_change = None
        self.shapes_layer, self.tracker = None, None
        self._set_enabled()

    def _on_removed(self, event: Any) -> None:
        if event.value is self.shapes_layer:
            self.save_now()  # edits made just before the layer was deleted are kept
            # (on a conflict, the edits wait in self.conflict for the user's choice)
            self._detach()
        if event.value is self.image_layer:
            self.image_layer = None

    def _on_inserted(self, event: Any) -> None:
        layer = event.value
        link = layer_link(layer)
        if (
            self.project is not None
            and self.record is not None
            and isinstance(layer, Shapes)
            and link.get("project") == str(self.project.folder)
            and link.get("image") == self.record["id"]
        ):
            self._adopt(layer)  # e.g. the Pre-annotate widget replaced the layer

    # -- saving ----------------------------------------------------------------------------
    @property
    def save_pending(self) -> bool:
        """Whether edits are waiting to be saved (also while a conflict waits for a choice)."""
        return self._dirty or self.conflict is not None

    def _schedule_save(self) -> None:
        self.clock.touch()
        self._dirty = True
        self._timer.start()  # restarts: saves AUTOSAVE_MS after the last edit

    def save_now(self) -> None:
        """Save pending edits of the current image now (no-op without any).

        The save passes the version read; when the image changed since, nothing is saved
        and the widget waits for `resolve_conflict` (pending edits wait too).
        """
        self._timer.stop()
        if not self._dirty or self.conflict is not None:
            return
        self._dirty = False
        if self.project is None or self.record is None or self.shapes_layer is None:
            return
        layer = self.shapes_layer
        mine = self._mine(layer)
        sent = mine.extra["instance_id"]
        extra = {
            "instance_id": sent,
            # a prompted object keeps its provenance; refined outlines are marked
            "source": sources_to_save(mine.extra["provenance"], sent, self._originals),
            "refined": np.isin(sent, sorted(self._refined)),
        }
        try:
            revision = self.project.save_instances(
                self.record["id"],
                mine.replace(extra=extra),
                source="corrected",
                expected_version=self.version,
            )
        except ProjectConflictError:
            self._enter_conflict(mine, layer)
            return
        self._refined.clear()
        sync_features(layer, sent, revision.instances)
        if self.keypoints.active:
            self.keypoints.after_save(self._owners, sent, revision.instances)
        self._hold(layer, revision)
        if self.tracker is not None:
            self.tracker.reserve_ids(layer.features["instance"])
        dropped, self._dropped = self._dropped, 0
        lost = f"; {dropped} keypoint(s) lie in no outline: removed" if dropped else ""
        self._set_status(
            f"saved {len(revision.instances)} instances (version {revision.version}){lost}"
        )
        self._log_time(stop=False)
        self._update_effort()

    def _mine(self, layer: Any) -> Instances:
        instances = layer_to_instances(layer, classes=self.project.classes)
        instances = restore_unchanged(instances, self._originals)
        if self.keypoints.active:  # the points' keypoints; self._owners: where each went
            instances, self._owners, self._dropped = self.keypoints.keypoints_for(instances)
        return instances

    def _save_or_stop(self) -> None:
        """Save pending edits; raise when a conflict waits for the user's choice."""
        self.save_now()
        if self.conflict is not None:
            raise ValueError(
                "this image was changed by another window or process: choose Reload theirs, "
                "Keep mine or Merge first"
            )

    # -- conflicts -------------------------------------------------------------------------
    def _enter_conflict(self, mine: Instances, layer: Any) -> None:
        assert self.record is not None
        image = int(self.record["id"])
        theirs = self.project.instances(image, with_version=True)
        self.conflict = Conflict(image, mine, frozenset(self._originals), layer, theirs)
        name = Path(self.record["file_name"]).name
        message = (
            f"{name} was changed by another window or process since it was opened here; "
            "your edits are not saved yet. Reload theirs (drop your edits), Keep mine (save "
            "over theirs) or Merge (theirs plus the shapes you drew)?"
        )
        self.conflict_label.value = message
        self._show_conflict(True)
        self._set_status(f"{name}: save conflict, choose how to resolve it")
        notifications.show_warning(f"labelassist: {message}")

    def _show_conflict(self, visible: bool) -> None:
        for widget in (
            self.conflict_label,
            self.reload_button,
            self.keep_button,
            self.merge_button,
        ):
            widget.visible = visible

    def _on_choice(self, choice: str, _value: Any = None) -> None:
        self._guard(lambda: self.resolve_conflict(choice))

    def resolve_conflict(self, choice: str) -> Revision | None:
        """Resolve the pending save conflict: ``"reload"``, ``"keep mine"`` or ``"merge"``.

        ``"reload"`` drops the unsaved edits and shows the project's current version;
        ``"keep mine"`` saves the edited image over their version; ``"merge"`` saves their
        version plus the instances drawn here since the image was read (see `._conflict`).
        "Their version" is the one in the project when the conflict was reported: when the
        image changed again since, nothing is saved and the user is asked again (returns
        None). Otherwise the image is shown as saved; returns that revision.
        """
        if self.conflict is None:
            raise ValueError("there is no save conflict to resolve")
        if choice not in CONFLICT_CHOICES:
            raise ValueError(f"choice must be one of {list(CONFLICT_CHOICES)}, got {choice!r}")
        conflict = self.conflict
        layer = self.shapes_layer
        mine = self._mine(layer) if layer is not None and layer is conflict.layer else conflict.mine
        theirs = conflict.theirs
        todo = instances_to_save(
            choice, mine=mine, theirs=theirs.instances, read_ids=conflict.read_ids
        )
        if todo is None:  # reload: the current version, whatever it is now
            revision = self.project.instances(conflict.image, with_version=True)
        else:
            try:
                revision = self.project.save_instances(
                    conflict.image, todo, source="corrected", expected_version=theirs.version
                )
            except ProjectConflictError:  # saved again since the user was asked
                now = self.project.instances(conflict.image, with_version=True)
                self.conflict = conflict._replace(mine=mine, theirs=now)
                message = "the image changed again while you chose; nothing saved, choose again"
                self._set_status(message)
                notifications.show_warning(f"labelassist: {message}")
                return None
        self.conflict, self._dirty = None, False
        self._show_conflict(False)
        self._show(self.project.image(conflict.image), revision)
        self._set_status(f"{choice}: showing version {revision.version}")
        return revision

    # -- class, colours, export ----------------------------------------------------------------
    def _on_class(self, name: str) -> None:
        if self.tracker is not None and name in self.tracker.classes:
            self.tracker.current_class = name

    def _recolor(self, _value: Any = None) -> None:
        layer = self.shapes_layer
        if layer is None or self.project is None or len(layer.data) == 0:
            return
        layer.metadata.setdefault(METADATA_KEY, {})["low_score"] = float(self.low_score.value)
        edge, face = shape_colors(
            layer.features, self.project.classes, low_score=float(self.low_score.value)
        )
        layer.edge_color, layer.face_color = edge, face

    def export(self, path: str | Path | None = None, *, which: str | None = None) -> Path:
        """Save, then export the project (``which``: the export box) as COCO."""
        if self.project is None:
            raise ValueError("open a project first")
        path = Path(path if path is not None else path_value(self.export_path))
        if path.suffix.lower() != ".json":
            raise ValueError(f"export path {str(path)!r} must be a .json file")
        self._save_or_stop()
        status = _EXPORT_CHOICES[which or self.export_which.value]
        out = self.project.export_coco(path, status=status)
        self._set_status(f"exported {out.name}")
        notifications.show_info(f"labelassist: exported {out}")
        return out

    # -- effort --------------------------------------------------------------------------
    def _on_activity(self, *_args: Any) -> None:
        """A pan, zoom or mouse move: the user is at work (see `ActivityClock.touch`)."""
        self.clock.touch()

    def _log_time(self, *, stop: bool) -> None:
        """Report the active time at the current image since the last report."""
        seconds = self.clock.stop() if stop else self.clock.lap()
        if seconds > 0 and self.project is not None and self.record is not None:
            if not self.project.read_only:
                self.project.log_time(self.record["id"], seconds)

    def _update_effort(self) -> None:
        if self.project is None:
            self.effort.value = ""
            return
        image = None
        if self.record is not None:
            image = self.project.effort(image=self.record["id"])["rows"][0]
        self.effort.value = effort_text(image, self.project.effort(by="round")["total"])

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
        self._update_effort()

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _set_enabled(self) -> None:
        has_project = getattr(self, "project", None) is not None
        for button in (self.add_button, self.next_button, self.export_button):
            button.enabled = has_project
        self.accept_button.enabled = has_project and self.shapes_layer is not None


def effort_text(image: dict | None, total: dict) -> str:
    """The effort line of the widget: an image's row and the project's total of
    `Project.effort` (the image may be None).

    Examples
    --------
    >>> from labelassist.project import ACTIONS
    >>> counts = dict.fromkeys(ACTIONS, 0)
    >>> image = {"actions": {**counts, "deleted": 1, "edited": 2}, "seconds": 12.4}
    >>> total = {"images": 3, "actions": {**counts, "accepted": 20, "reviewed": 3},
    ...          "seconds": 300.0, "seconds_per_image": 100.0}
    >>> print(effort_text(image, total))
    this image: 1 deleted, 2 edited; 12 s active
    project: 3 images accepted, 20 actions, 300 s active (100 s per image)
    """
    lines = []
    if image is not None:
        done = [f"{n} {a}" for a, n in image["actions"].items() if n and a != "reviewed"]
        lines.append(
            f"this image: {', '.join(done) or 'no edits yet'}; {image['seconds']:.0f} s active"
        )
    n = sum(count for action, count in total["actions"].items() if action != "reviewed")
    per = total["seconds_per_image"]
    each = f" ({per:.0f} s per image)" if per is not None else ""
    lines.append(
        f"project: {total['images']} images accepted, {n} actions, "
        f"{total['seconds']:.0f} s active{each}"
    )
    return "\n".join(lines)
