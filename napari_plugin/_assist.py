"""The Assist panel of the Review widget: box and point prompts and edge refinement.

When the Review widget shows an image, the panel loads the chosen model and encodes the
image (`labelassist.model.Model.encode`) in a background worker, so the first prompt does
not wait; a new image cancels and replaces that job (its result is dropped). Then:

* **box prompt** (``Shift-B``): a rectangle drawn in the image's Shapes layer is replaced
  by the object `Model.segment` finds in it, an editable polygon of provenance
  ``"prompted"``;
* **point prompt** (``Shift-C``): a click adds the object at the point; an Alt-click adds
  a negative point (shown in a small Points layer) that excludes the candidates covering it
  at the next click;
* **extreme points** (``Shift-X``): four clicks on the object's leftmost, topmost, rightmost
  and bottommost pixels (any order; shown until the fourth) give a tight box, segmented
  with ``Model.segment(..., tight=True)``: the mask is made to touch all four sides
  (extreme clicking takes about 7 s an object: Papadopoulos et al., ICCV 2017);
* **Keep off existing shapes** (on by default): a prompted object never takes the pixels
  of the shapes already in the layer (`Model.segment`'s ``exclude``), so an object next to
  annotated neighbours stops at them (extreme clicks take the pixels of a shape they are
  clicked on);
* **Refine edges** (``Shift-R``): `labelassist.refine_edges` on the selected shapes in a
  worker; their outlines are replaced and the save records a ``"refined"`` action;
* **Shrink** (``Shift-S``) and **Grow** (``Shift-G``): the selected outlines move inwards or
  outwards by the step (`labelassist.refine.offset_edges`, default 1 px) and stay selected
  for the next press; saved as a refinement. An outline a fraction of a pixel too large all
  the way round (the usual error of a proposal on real nuclei) is fixed by one press;
* **Undo refine** (``Shift-U``): the outlines the last refinement (or series of Shrink /
  Grow presses) replaced go back as they were (class, score, provenance), except those
  edited or deleted since. GrabCut makes some outlines worse (``docs/refine.md``); undoing
  one is a key press, not a redraw.

The shapes change through the layer's ordinary events, so the Review widget's tracker and
autosave handle them like any edit. The conversions are in `._prompts` (no Qt).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    Widget,
)
from napari.utils import notifications
from qtpy.QtCore import QTimer

from ._convert import layer_to_instances
from ._prompts import (
    add_object,
    click_to_point,
    extreme_clicks_to_xy,
    prompt_message,
    rectangle_to_box,
    replace_objects,
    restore_objects,
    selected_instances,
)
from ._widgets import import_torch, path_value

__all__ = [
    "ASSIST_MODELS",
    "BOX_KEY",
    "EXTREME_KEY",
    "GROW_KEY",
    "NUDGE_STEP",
    "POINT_KEY",
    "REFINE_KEY",
    "SHRINK_KEY",
    "UNDO_REFINE_KEY",
    "AssistPanel",
    "assist_model_spec",
    "encode_image",
]

BOX_KEY = "Shift-B"  # napari's Shapes layer already uses B, P and R
POINT_KEY = "Shift-C"
EXTREME_KEY = "Shift-X"
REFINE_KEY = "Shift-R"
UNDO_REFINE_KEY = "Shift-U"
SHRINK_KEY = "Shift-S"
GROW_KEY = "Shift-G"
NUDGE_STEP = 1.0  # px per Shrink / Grow press (bench/bench_effort.py: 1 px saves the most)
# label shown -> how the model is found
ASSIST_MODELS = {
    "project's latest round": "latest",
    "starter (shipped)": "starter",
    "checkpoint file": "checkpoint",
}


def assist_model_spec(
    kind: str, *, latest: Path | None = None, checkpoint: Path | None = None
) -> tuple[str, str]:
    """``(source, note)`` for `labelassist.load_model`: the model the panel uses.

    ``kind`` is a value of `ASSIST_MODELS`; ``latest`` the project's latest checkpoint
    (None before the first round: the starter is used, and the note says so).

    Examples
    --------
    >>> assist_model_spec("latest")
    ('starter', 'the project has no trained round yet: using the starter')
    >>> assist_model_spec("starter")
    ('starter', '')
    """
    if kind == "latest":
        if latest is None:
            return "starter", "the project has no trained round yet: using the starter"
        return str(latest), ""
    if kind == "checkpoint":
        if checkpoint is None or not Path(checkpoint).is_file():
            raise ValueError(f"checkpoint {str(checkpoint)!r} is not a file; choose a .pt file")
        return str(checkpoint), ""
    if kind == "starter":
        return "starter", ""
    raise ValueError(f"model must be one of {list(ASSIST_MODELS.values())}, got {kind!r}")


def encode_image(source: str, image: np.ndarray, cache: dict[str, Any]) -> tuple[Any, Any]:
    """Load the model ``source`` (cached) and encode ``image``; returns ``(model, features)``."""
    import labelassist as la

    model = cache.get(source)
    if model is None:
        model = la.load_model(source)
    return model, model.encode(image)


def _same(a: Any, b: Any) -> bool:
    """Whether two `Instances` hold the same instance ids with the same outlines."""
    if len(a) != len(b) or set(a.extra["instance_id"]) != set(b.extra["instance_id"]):
        return False
    order = {int(i): k for k, i in enumerate(a.extra["instance_id"])}
    return all(
        a.polygons[order[int(i)]].equals_exact(p, 1e-6)
        for i, p in zip(b.extra["instance_id"], b.polygons, strict=True)
    )


def _image_data(layer: Any) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


class AssistPanel(Container):
    """Prompts and edge refinement for the Review widget's current image (see the module).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (shortcuts are bound to it).
    on_refined : callable
        Called with the instance ids whose edges were refined (the review widget passes
        ``extra["refined"]`` for them at the next save).
    on_unrefined : callable, optional
        Called with the instance ids whose refinement was undone (not yet saved ones are
        no longer marked refined).
    """

    def __init__(
        self,
        viewer: Any,
        *,
        on_refined: Callable[[list[int]], None],
        on_unrefined: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.viewer = viewer
        self.on_refined = on_refined
        self.on_unrefined = on_unrefined
        self.model_box = ComboBox(label="prompt model", choices=list(ASSIST_MODELS))
        self.model_box.value = "starter (shipped)"
        self.checkpoint = FileEdit(
            label="checkpoint", mode=FileDialogMode.EXISTING_FILE, filter="*.pt", visible=False
        )
        self.box_mode = CheckBox(text=f"Box prompt ({BOX_KEY})", value=False)
        self.point_mode = CheckBox(text=f"Point prompt ({POINT_KEY}; Alt: exclude)", value=False)
        self.extreme_mode = CheckBox(text=f"Extreme points, 4 clicks ({EXTREME_KEY})", value=False)
        self.keep_apart = CheckBox(text="Keep off existing shapes", value=True)
        self.refine_button = PushButton(text=f"Refine edges ({REFINE_KEY})")
        self.undo_button = PushButton(text=f"Undo refine ({UNDO_REFINE_KEY})", enabled=False)
        self.shrink_button = PushButton(text=f"Shrink ({SHRINK_KEY})")
        self.grow_button = PushButton(text=f"Grow ({GROW_KEY})")
        self.nudge_step = FloatSpinBox(
            value=NUDGE_STEP,
            min=0.25,
            max=5.0,
            step=0.25,
            tooltip="pixels the outlines move per Shrink / Grow press",
        )
        nudge_widgets: list[Widget] = [
            self.shrink_button,
            self.grow_button,
            self.nudge_step,
            Label(value="px"),
        ]
        nudge_row = Container(
            widgets=nudge_widgets,
            layout="horizontal",
            labels=False,
        )
        self.assist_status = Label(value="")
        super().__init__(
            widgets=[
                self.model_box,
                self.checkpoint,
                self.box_mode,
                self.point_mode,
                self.extreme_mode,
                self.keep_apart,
                self.refine_button,
                nudge_row,
                self.undo_button,
                self.assist_status,
            ],
            labels=False,
        )
        self._alive = True  # False once the Qt widgets are deleted
        self.model: Any = None
        self.features: Any = None
        self.layer: Any = None
        self.image: np.ndarray | None = None
        self.classes: list[str] = []
        self.negatives: list[np.ndarray] = []  # napari (row, col) of Alt-clicks
        self.points_layer: Any = None
        self.extremes: list[np.ndarray] = []  # napari (row, col) of extreme clicks so far
        self.extremes_layer: Any = None
        self._latest: Path | None = None
        self._key: tuple | None = None  # (model source, image key) of the features
        self._image_key: tuple | None = None  # (project folder, image id) of self.image
        self._tokens = itertools.count()
        self._token = -1
        self._pending: list[Callable[[], object]] = []
        self._models: dict[str, Any] = {}
        self.encode_worker: Any = None
        self.refine_worker: Any = None
        self._last_refine: tuple[Any, Any, Any] | None = None  # (layer, before, after)
        self.model_box.changed.connect(self._on_model)
        self.checkpoint.changed.connect(self._on_model)
        self.box_mode.changed.connect(self._on_box_mode)
        self.point_mode.changed.connect(self._on_point_mode)
        self.extreme_mode.changed.connect(self._on_extreme_mode)
        self.refine_button.changed.connect(lambda _v=None: self.refine())
        self.undo_button.changed.connect(lambda _v=None: self.undo_refine())
        self.shrink_button.changed.connect(lambda _v=None: self.nudge(-1))
        self.grow_button.changed.connect(lambda _v=None: self.nudge(1))
        viewer.bind_key(BOX_KEY, lambda _v: self._toggle(self.box_mode), overwrite=True)
        viewer.bind_key(POINT_KEY, lambda _v: self._toggle(self.point_mode), overwrite=True)
        viewer.bind_key(EXTREME_KEY, lambda _v: self._toggle(self.extreme_mode), overwrite=True)
        viewer.bind_key(REFINE_KEY, lambda _v: self.refine(), overwrite=True)
        viewer.bind_key(UNDO_REFINE_KEY, lambda _v: self.undo_refine(), overwrite=True)
        viewer.bind_key(SHRINK_KEY, lambda _v: self.nudge(-1), overwrite=True)
        viewer.bind_key(GROW_KEY, lambda _v: self.nudge(1), overwrite=True)
        self.native.destroyed.connect(self._on_destroyed)

    def _on_destroyed(self, *_args: Any) -> None:
        """The panel's Qt widgets are gone (viewer closed): drop any result still coming."""
        self._alive = False
        self._token = next(self._tokens)

    # -- state ---------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether the current image is encoded (prompts run at once)."""
        return self.features is not None and self._key is not None

    def set_project(self, latest: Path | None) -> None:
        """A project was opened: default to its latest checkpoint (the starter before any)."""
        self._latest = latest
        self.model_box.value = "project's latest round" if latest else "starter (shipped)"

    def attach(self, layer: Any, image_layer: Any, key: tuple, classes: list[str]) -> None:
        """Work on ``layer`` (the Shapes layer of the image shown in ``image_layer``);
        encode the image in the background unless it is encoded already (same ``key``)."""
        self.detach()
        self.layer, self.classes = layer, list(classes)
        layer.events.data.connect(self._on_data)
        layer.events.mode.connect(self._on_layer_mode)
        layer.mouse_drag_callbacks.append(self._on_click)
        if image_layer is None:
            return
        image = _image_data(image_layer)
        if self.image is None or key != self._image_key or image.shape != self.image.shape:
            self.image, self._image_key = image, key
            self.start_encode()

    def detach(self) -> None:
        """Stop listening to the current layer (the encoded image is kept)."""
        layer, self.layer = self.layer, None
        self._set_undo(None)
        if layer is None:
            return
        layer.events.data.disconnect(self._on_data)
        layer.events.mode.disconnect(self._on_layer_mode)
        if self._on_click in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.remove(self._on_click)
        self.box_mode.value = self.point_mode.value = self.extreme_mode.value = False

    def reset(self) -> None:
        """Forget the image (a project was closed): drop its features and pending prompts."""
        self.detach()
        self._token = next(self._tokens)
        self.features, self._key, self.image, self._pending = None, None, None, []
        self._image_key = None
        self._clear_negatives()
        self._clear_extremes()

    # -- encoding ------------------------------------------------------------------------
    def start_encode(self) -> Any:
        """Load the model and encode the current image in a worker (replacing any running
        encode: its result is dropped); returns the worker."""
        from napari.qt.threading import create_worker

        if self.image is None:
            return None
        try:
            source, note = self._source()
        except ValueError as exc:
            self._report(str(exc), error=True)
            return None
        self._token = token = next(self._tokens)
        self.features, self._key = None, None
        self._clear_negatives()
        if self.encode_worker is not None:
            self.encode_worker.quit()  # it cannot stop mid-call; its result is dropped
        import_torch()
        worker = create_worker(encode_image, source, self.image, self._models, _start_thread=False)
        worker.returned.connect(lambda result: self._on_encoded(token, source, result))
        worker.errored.connect(lambda exc: self._on_failed(token, "encoding", exc))
        self.encode_worker = worker
        self._set_status(f"{note + '; ' if note else ''}encoding the image for prompts...")
        worker.start()
        return worker

    def _source(self) -> tuple[str, str]:
        kind = ASSIST_MODELS[self.model_box.value]
        checkpoint = path_value(self.checkpoint) if kind == "checkpoint" else None
        return assist_model_spec(kind, latest=self._latest, checkpoint=checkpoint)

    def _on_encoded(self, token: int, source: str, result: tuple[Any, Any]) -> None:
        if token != self._token:
            return  # the image or the model changed meanwhile
        self.encode_worker = None
        self.model, self.features = result
        self._models = {source: self.model}  # keep one model in memory
        self._key = (source, self._image_key)
        self._set_status("ready for prompts")
        pending, self._pending = self._pending, []
        for prompt in pending:
            prompt()

    def _on_failed(self, token: int, what: str, exc: BaseException) -> None:
        if token == self._token:
            self.encode_worker = None
            self._report(f"{what} failed: {exc}", error=True)

    def _on_model(self, _value: Any = None) -> None:
        self.checkpoint.visible = ASSIST_MODELS[self.model_box.value] == "checkpoint"
        if self.image is not None:
            self.start_encode()

    def _when_ready(self, prompt: Callable[[], object]) -> None:
        if self.ready:
            prompt()
        else:
            self._pending.append(prompt)
            self._set_status("the image is still being encoded; the prompt runs when ready")

    # -- modes ---------------------------------------------------------------------------
    def _toggle(self, box: CheckBox) -> None:
        box.value = not box.value

    def _on_box_mode(self, on: bool) -> None:
        if on:
            self.point_mode.value = self.extreme_mode.value = False
            if self.layer is not None:
                self.layer.mode = "add_rectangle"
                self.viewer.layers.selection.active = self.layer
        elif self.layer is not None and self.layer.mode == "add_rectangle":
            self.layer.mode = "select"

    def _on_point_mode(self, on: bool) -> None:
        if on:
            self.box_mode.value = self.extreme_mode.value = False
            self._click_mode()
        else:
            self._clear_negatives()
            self._leave_click_mode()

    def _on_extreme_mode(self, on: bool) -> None:
        if on:
            self.box_mode.value = self.point_mode.value = False
            self._click_mode()
            self._set_status("click the object's leftmost, topmost, rightmost, bottommost pixels")
        else:
            self._clear_extremes()
            self._leave_click_mode()

    def _click_mode(self) -> None:
        if self.layer is not None:
            self.layer.mode = "pan_zoom"
            self.viewer.layers.selection.active = self.layer

    def _leave_click_mode(self) -> None:
        if self.point_mode.value or self.extreme_mode.value:
            return  # the other click mode took over
        if self.layer is not None and self.layer.mode == "pan_zoom":
            self.layer.mode = "select"

    def _on_layer_mode(self, event: Any) -> None:
        mode = str(getattr(event, "mode", self.layer.mode if self.layer else ""))
        if self.box_mode.value and mode != "add_rectangle":
            self.box_mode.value = False
        if self.point_mode.value and mode != "pan_zoom":
            self.point_mode.value = False
        if self.extreme_mode.value and mode != "pan_zoom":
            self.extreme_mode.value = False

    # -- box prompts ---------------------------------------------------------------------
    def _on_data(self, event: Any) -> None:
        layer = self.layer
        if not self.box_mode.value or layer is None or str(getattr(event, "action", "")) != "added":
            return
        index = len(layer.data) - 1
        if index < 0 or layer.shape_type[index] != "rectangle":
            return
        corners = np.array(layer.data[index], dtype=np.float64)
        # the layer is still emitting this event: change it once its listeners are done
        QTimer.singleShot(0, lambda: self._take_rectangle(layer, index, corners))

    def _take_rectangle(self, layer: Any, index: int, corners: np.ndarray) -> None:
        if layer is not self.layer or index >= len(layer.data):
            return
        if layer.shape_type[index] != "rectangle" or not np.allclose(layer.data[index], corners):
            return
        layer.selected_data = {index}
        layer.remove_selected()
        try:
            box = rectangle_to_box(corners)
        except ValueError as exc:
            self._report(str(exc), error=True)
            return
        self._when_ready(lambda: self.prompt(boxes=[box], loose=True))

    # -- point prompts -------------------------------------------------------------------
    def _on_click(self, layer: Any, event: Any) -> Any:
        if not (self.point_mode.value or self.extreme_mode.value) or layer is not self.layer:
            return
        position = np.asarray(event.position, dtype=np.float64)[-2:]
        alt = "Alt" in event.modifiers
        yield
        moved = False
        while event.type == "mouse_move":  # a drag pans: not a click
            moved = True
            yield
        if moved:
            return
        if self.extreme_mode.value:
            self.extreme_click(position)
        else:
            self.click(position, negative=alt)

    def extreme_click(self, position: Any) -> None:
        """One of the four extreme clicks at napari ``(row, col)``; the fourth prompts the
        tight box they span."""
        self.extremes.append(np.asarray(position, dtype=np.float64)[-2:])
        if len(self.extremes) < 4:
            self.extremes_layer = self._show_clicks(
                self.extremes_layer, self.extremes, "extreme points", "yellow"
            )
            self._set_status(f"extreme points: {len(self.extremes)} of 4")
            return
        clicks = extreme_clicks_to_xy(self.extremes)
        self._clear_extremes()
        self._when_ready(lambda: self.prompt(extreme_points=[clicks]))

    def click(self, position: Any, *, negative: bool = False) -> None:
        """A click at napari ``(row, col)``: a negative point, or the object at the point."""
        rowcol = np.asarray(position, dtype=np.float64)[-2:]
        if negative:
            self.negatives.append(rowcol)
            self._show_negatives()
            return
        point = click_to_point(rowcol)
        negatives = [click_to_point(p) for p in self.negatives]
        self._clear_negatives()
        self._when_ready(lambda: self.prompt(points=[point], negative_points=negatives or None))

    def _show_negatives(self) -> None:
        self.points_layer = self._show_clicks(
            self.points_layer, self.negatives, "negative points", "red"
        )

    def _show_clicks(self, layer: Any, clicks: list[np.ndarray], name: str, color: str) -> Any:
        """Show ``clicks`` in a small Points layer (``layer``, or a new one); returns it."""
        data = np.array(clicks).reshape(-1, 2)
        if layer is None or layer not in self.viewer.layers:
            active = self.viewer.layers.selection.active
            layer = self.viewer.add_points(data, name=name, face_color=color, size=5, symbol="x")
            self.viewer.layers.selection.active = active  # keep clicking in the shapes
        else:
            layer.data = data
        return layer

    def _clear_extremes(self) -> None:
        self.extremes = []
        layer, self.extremes_layer = self.extremes_layer, None
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    def _clear_negatives(self) -> None:
        self.negatives = []
        layer, self.points_layer = self.points_layer, None
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    # -- the prompt ----------------------------------------------------------------------
    def prompt(
        self,
        *,
        boxes: Any = None,
        points: Any = None,
        negative_points: Any = None,
        tight: bool = False,
        loose: bool = False,
        extreme_points: Any = None,
    ) -> list[int]:
        """Segment one box or point prompt on the encoded image and add the object to the
        layer as a ``"prompted"`` shape; returns its rows (none when nothing was found).
        ``tight``: the box touches the object on all four sides (extreme clicks);
        ``loose``: a dragged rectangle, segmented again in its mask's bounds where that
        covers less than 70 % of it; ``extreme_points``: the four extreme clicks on one
        object, x, y (``Model.segment``)."""
        layer = self.layer
        if layer is None or not self.ready:
            raise ValueError("open a project image and wait until it is encoded")
        class_name = str(layer.feature_defaults["class"].iloc[0])
        label = class_name if class_name in self.model.classes else None
        exclude = None
        if self.keep_apart.value and len(layer.data):
            exclude = layer_to_instances(layer, classes=self.classes or None).polygons
        found = self.model.segment(
            self.features,
            boxes=boxes,
            points=points,
            negative_points=negative_points,
            label=label,
            exclude=exclude,
            tight=tight,
            loose=loose,
            extreme_points=extreme_points,
        )
        if len(found) == 0 or found.polygons[0].is_empty:
            self._report("nothing found at this prompt; draw it by hand or try again")
            return []
        rows = add_object(layer, found, provenance="prompted", class_name=class_name)
        self._set_status(prompt_message(class_name, found.scores[0]))
        return rows

    # -- refinement ----------------------------------------------------------------------
    def refine(self) -> Any:
        """Refine the edges of the selected shapes in a worker; returns it (or None)."""
        from napari.qt.threading import create_worker

        import labelassist as la

        layer = self.layer
        if layer is None or self.image is None:
            self._report("open a project image first", error=True)
            return None
        if self.refine_worker is not None:
            self._report("edges are being refined already")
            return None
        chosen = selected_instances(layer, self.classes)
        if len(chosen) == 0:
            self._report("select the shapes to refine first")
            return None
        normalization = self.model.normalization if self.model is not None else None
        worker = create_worker(
            la.refine_edges, self.image, chosen, normalization=normalization, _start_thread=False
        )
        worker.returned.connect(lambda refined: self._on_refined(layer, refined, chosen))
        worker.errored.connect(lambda exc: self._report(f"refinement failed: {exc}", error=True))
        worker.finished.connect(self._refine_finished)
        self.refine_worker = worker
        self._set_status(f"refining {len(chosen)} outlines...")
        worker.start()
        return worker

    def _refine_finished(self) -> None:
        self.refine_worker = None

    def _on_refined(self, layer: Any, refined: Any, before: Any) -> None:
        if layer is not self.layer or not self._alive:
            return  # the image changed meanwhile, or the viewer was closed
        ids = replace_objects(layer, refined)
        self.on_refined(ids)
        now = layer_to_instances(layer, classes=self.classes)
        self._set_undo(
            (
                layer,
                before[np.isin(before.extra["instance_id"], ids)],
                now[np.isin(now.extra["instance_id"], ids)],
            )
            if ids
            else None
        )
        kept = len(refined) - len(ids)
        self._set_status(
            f"refined {len(ids)} outlines" + (f" ({kept} kept as they were)" if kept else "")
        )

    def nudge(self, direction: int) -> list[int]:
        """Shrink (``direction < 0``) or grow the selected outlines by the step; returns
        their instance ids. They stay selected for the next press; *Undo refine* undoes a
        series of presses on the same shapes at once."""
        from labelassist.refine import offset_edges

        layer = self.layer
        if layer is None:
            self._report("open a project image first", error=True)
            return []
        chosen = selected_instances(layer, self.classes)
        if len(chosen) == 0:
            self._report("select the shapes to shrink or grow first")
            return []
        distance = float(np.sign(direction)) * float(self.nudge_step.value)
        moved = offset_edges(chosen, distance)
        changed = ~shapely.equals_exact(moved.polygons, chosen.polygons, 1e-9)
        ids = replace_objects(layer, moved.replace(extra={**moved.extra, "refined": changed}))
        rows = np.flatnonzero(
            np.isin(layer.features["instance"].to_numpy(), chosen.extra["instance_id"])
        )
        layer.selected_data = set(rows.tolist())
        if not ids:
            self._report("too thin to shrink further" if distance < 0 else "nothing to grow")
            return []
        self.on_refined(ids)
        before = chosen[np.isin(chosen.extra["instance_id"], ids)]
        last = self._last_refine
        if last is not None and last[0] is layer and _same(last[2], before):
            before = last[1]  # a series of presses: undo them all at once
        now = layer_to_instances(layer, classes=self.classes)
        self._set_undo((layer, before, now[np.isin(now.extra["instance_id"], ids)]))
        word = "shrank" if distance < 0 else "grew"
        self._set_status(f"{word} {len(ids)} outlines by {abs(distance):g} px")
        return ids

    def undo_refine(self) -> list[int]:
        """Put back the outlines the last refinement replaced (those not edited or deleted
        since); returns their instance ids. With some of those shapes selected, only the
        selected ones go back and the rest stay undoable (refine a whole image, then undo
        the few it made worse); otherwise all go back. One level: what is undone is gone
        from the record."""
        last = self._last_refine
        self._set_undo(None)
        if last is None or self.layer is None or last[0] is not self.layer:
            self._report("no refinement to undo on this image")
            return []
        layer, before, after = last
        picked = layer.features["instance"].to_numpy()[sorted(layer.selected_data)]
        chosen = np.isin(after.extra["instance_id"], picked)
        if chosen.any() and not chosen.all():
            rest = ~np.isin(before.extra["instance_id"], picked)
            self._set_undo((layer, before[rest], after[~chosen]))
            before, after = before[~rest], after[chosen]
        ids = restore_objects(layer, before, after)
        if self.on_unrefined is not None:
            self.on_unrefined(ids)
        left = len(before) - len(ids)
        self._set_status(
            f"undid the refinement of {len(ids)} outlines"
            + (f" ({left} edited or deleted since: kept)" if left else "")
        )
        return ids

    # -- helpers -------------------------------------------------------------------------
    def _set_undo(self, last: tuple[Any, Any, Any] | None) -> None:
        """Remember what the last refinement replaced (None: nothing to undo)."""
        self._last_refine = last
        if self._alive:
            self.undo_button.enabled = last is not None

    def _set_status(self, text: str) -> None:
        if self._alive:
            self.assist_status.value = text

    def _report(self, text: str, *, error: bool = False) -> None:
        if not self._alive:
            return
        self._set_status(text)
        if error:
            notifications.show_error(f"labelassist: {text}")
        else:
            notifications.show_info(f"labelassist: {text}")
