"""The Pre-annotate dock widget: a model's proposals for an image layer as editable polygons.

Besides the model and thresholds it sets the input options of `labelassist.Model.predict`:
the objects' size (the model's default, ``"auto"`` or a number of pixels; images are
rescaled to the model's object size and the proposals come back on the image's pixels)
and, for RGB layers, the channels to use (one: gray; two, e.g. cytoplasm + nucleus; see
docs/object_size.md).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Image
from napari.utils import notifications

from ._style import shapes_layer_kwargs
from ._tracker import tracker_for
from ._widgets import (
    JobWidget,
    Progress,
    find_linked_layer,
    import_torch,
    layer_link,
    path_value,
    report_error,
)

__all__ = ["CHANNEL_CHOICES", "MODEL_SOURCES", "SIZE_MODES", "PreannotateWidget", "predict_job"]

# label shown -> how the model is found
MODEL_SOURCES = {
    "starter (shipped)": "starter",
    "torchvision COCO": "torchvision-coco",
    "checkpoint file": "checkpoint",
    "project's latest round": "latest",
    "untrained (testing)": "untrained",
}

# object size: label shown -> mode
SIZE_MODES = {
    "model's default": "default",
    "auto (measure it)": "auto",
    "set (px)": "set",
}
#: channels of an RGB layer: label shown -> ``channels`` (None: the model's, else as it is)
CHANNEL_CHOICES: dict[str, tuple[int, ...] | None] = {
    "model's default / as is": None,
    **{f"{c} (gray)": (c,) for c in range(3)},
    **{f"{a},{b}": (a, b) for a in range(3) for b in range(3) if a != b},
}


def predict_job(
    spec: tuple,
    image: np.ndarray,
    *,
    score_threshold: float,
    tile_size: int | None,
    cache: dict[tuple, Any],
    object_size: float | str | None = None,
    channels: tuple[int, ...] | None = None,
    mirror: bool = True,
) -> Generator[Progress, None, tuple[Any, Any]]:
    """Load the model (cached by ``spec``) and predict ``image``; yields progress.

    ``spec`` is ``(source, classes, device)`` with ``source`` a path, ``"starter"``,
    ``"torchvision-coco"`` or None (untrained, needs ``classes``). ``object_size``,
    ``channels`` and ``mirror`` go to `labelassist.Model.predict`. Returns
    ``(model, instances)``.
    """
    import labelassist as la

    model = cache.get(spec)
    if model is None:
        yield (0, 0, "loading the model...")
        source, classes, device = spec
        model = la.load_model(source, classes=classes, device=device)
    yield (0, 0, f"predicting a {image.shape[0]} x {image.shape[1]} image...")
    instances = model.predict(
        image,
        score_threshold=score_threshold,
        tile_size=tile_size,
        object_size=object_size,
        channels=channels,
        mirror=mirror,
    )
    yield (1, 1, f"{len(instances)} instances")
    return model, instances


class PreannotateWidget(JobWidget):
    """Pre-annotate the chosen image layer with a model; the proposals become a Shapes
    layer (coloured by class, low scores filled red) with a ``features`` table.

    When the image layer belongs to a labelassist project (opened by the Review widget or
    the reader), the proposals are also saved to the project as model output.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it).
    """

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=self._image_choices, nullable=True)
        self.model = ComboBox(label="model", choices=list(MODEL_SOURCES), value="starter (shipped)")
        self.checkpoint = FileEdit(
            label="checkpoint", mode=FileDialogMode.EXISTING_FILE, filter="*.pt", visible=False
        )
        self.classes = LineEdit(label="classes", value="nucleus", visible=False)
        self.threshold = FloatSpinBox(
            label="score threshold", value=0.5, min=0.0, max=1.0, step=0.05
        )
        self.low_score = FloatSpinBox(label="flag below", value=0.7, min=0.0, max=1.0, step=0.05)
        self.tile_size = SpinBox(label="tile size (0: off)", value=0, min=0, max=16384, step=256)
        self.size_mode = ComboBox(
            label="object size", choices=list(SIZE_MODES), value="model's default"
        )
        self.object_size = FloatSpinBox(
            label="object size (px)", value=30.0, min=1.0, max=2000.0, step=1.0, visible=False
        )
        self.channels = ComboBox(
            label="channels", choices=list(CHANNEL_CHOICES), value="model's default / as is"
        )
        self.mirror = CheckBox(
            text="mirrored mask pass (closer edges, ~1.5x the time)",
            value=True,
            tooltip="average each mask with the one predicted on the mirrored image",
        )
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto")
        self.run_button = PushButton(text="Pre-annotate")
        self._models: dict[tuple, Any] = {}
        super().__init__(
            napari_viewer,
            [
                self.image,
                self.model,
                self.checkpoint,
                self.classes,
                self.threshold,
                self.low_score,
                self.tile_size,
                self.size_mode,
                self.object_size,
                self.channels,
                self.mirror,
                self.device,
                self.run_button,
            ],
            name="pre-annotation",
        )
        self.model.changed.connect(self._on_model_changed)
        self.size_mode.changed.connect(self._on_size_mode_changed)
        self.run_button.changed.connect(self.run)
        events = napari_viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self._refresh_images)
        self._refresh_images()
        self._on_model_changed()

    # -- inputs ----------------------------------------------------------------------------
    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_images(self, _event: Any = None) -> None:
        current = self.image.value
        self.image.reset_choices()
        choices = [layer for _, layer in self._image_choices()]
        if current in choices:
            self.image.value = current
        elif choices:
            self.image.value = choices[-1]

    def _on_model_changed(self, _value: Any = None) -> None:
        kind = MODEL_SOURCES[self.model.value]
        self.checkpoint.visible = kind == "checkpoint"
        self.classes.visible = kind == "untrained"

    def _on_size_mode_changed(self, _value: Any = None) -> None:
        self.object_size.visible = SIZE_MODES[self.size_mode.value] == "set"

    def input_options(self) -> dict[str, Any]:
        """``object_size``, ``channels`` and ``mirror`` for `labelassist.Model.predict` from
        the inputs."""
        mode = SIZE_MODES[self.size_mode.value]
        size = {"default": None, "auto": "auto"}.get(mode, float(self.object_size.value))
        return {
            "object_size": size,
            "channels": CHANNEL_CHOICES[self.channels.value],
            "mirror": bool(self.mirror.value),
        }

    def _set_enabled(self, enabled: bool) -> None:
        self.run_button.enabled = enabled

    def model_spec(self, layer: Any) -> tuple:
        """``(source, classes, device)`` for `labelassist.load_model` from the inputs."""
        kind = MODEL_SOURCES[self.model.value]
        device = None if self.device.value == "auto" else self.device.value
        if kind == "checkpoint":
            path = path_value(self.checkpoint)
            if not path.is_file():
                raise ValueError(f"checkpoint {str(path)!r} is not a file; choose a .pt checkpoint")
            return (str(path), None, device)
        if kind == "latest":
            import labelassist as la

            folder = layer_link(layer).get("project")
            if folder is None:
                raise ValueError(
                    "this image is not part of a project: open the project in the Review "
                    "widget to use its latest round"
                )
            with la.Project.open(folder) as project:
                checkpoint = project.latest_checkpoint()
            if checkpoint is None:
                raise ValueError("the project has no trained round yet; train one first")
            return (str(checkpoint), None, device)
        if kind == "untrained":
            names = tuple(c.strip() for c in self.classes.value.split(",") if c.strip())
            if not names:
                raise ValueError("classes is empty: name at least one class, e.g. 'nucleus'")
            return (None, names, device)
        return (kind, None, device)

    # -- running ---------------------------------------------------------------------------
    def run(self, _value: Any = None) -> Any:
        """Start pre-annotating the chosen image layer; returns the worker (None if not
        started)."""
        layer = self.image.value
        if layer is None:
            notifications.show_warning("Add or choose an image layer to pre-annotate")
            return None
        try:
            spec = self.model_spec(layer)
            image = _image_array(layer)
            options = self.input_options()
            if options["channels"] is not None and image.ndim != 3:
                raise ValueError(
                    f"channels {self.channels.value} need an RGB image layer; "
                    f'{layer.name!r} is gray: choose "model\'s default / as is"'
                )
        except ValueError as exc:
            report_error(self.status, str(exc))
            return None
        import_torch()
        return self.start_job(
            predict_job,
            spec,
            image,
            score_threshold=float(self.threshold.value),
            tile_size=int(self.tile_size.value) or None,
            cache=self._models,
            # the job's errors go to the status line (JobWidget._on_error), not re-raised
            # in the Qt event loop (create_worker's default without an errored handler)
            _ignore_errors=True,
            **options,
            on_done=lambda result: self._show(layer, spec, result),
        )

    def _show(self, image_layer: Any, spec: tuple, result: tuple[Any, Any]) -> None:
        model, instances = result
        self._models = {spec: model}  # keep one model in memory
        link = layer_link(image_layer)
        classes = list(model.classes)
        metadata: dict[str, Any] = {"image_layer": image_layer.name}
        if link.get("project") is not None and link.get("image") is not None:
            # remove the image's old layer first: the Review widget saves its pending
            # edits, then the proposals become the newest version (the history keeps both)
            old = find_linked_layer(self.viewer, "shapes", link["project"], link["image"])
            if old is not None:
                self.viewer.layers.remove(old)
            revision, classes = _save_to_project(
                link,
                instances,
                list(model.classes),
                model_id=str(spec[0]),
                keypoints=model.meta.get("keypoints"),
                skeleton=model.meta.get("skeleton"),
            )
            instances = revision.instances
            metadata.update(project=link["project"], image=link["image"], version=revision.version)
        kwargs = shapes_layer_kwargs(
            instances,
            classes=classes,
            low_score=float(self.low_score.value),
            name=f"{image_layer.name} proposals",
            metadata=metadata,
        )
        layer = self.viewer.add_shapes(**kwargs)
        tracker_for(layer)
        flagged = int((instances.scores < self.low_score.value).sum())
        self._set_status(
            f"{len(instances)} instances ({flagged} flagged below {self.low_score.value:.2f})"
        )
        notifications.show_info(f"labelassist: {len(instances)} instances proposed")


def _image_array(layer: Any) -> np.ndarray:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    image = np.asarray(data)
    if image.ndim == 3 and not layer.rgb or image.ndim > 3:
        raise ValueError(
            f"image layer {layer.name!r} has shape {image.shape}; pre-annotation needs one 2-D "
            "plane (H, W) or RGB (H, W, 3)"
        )
    return image


def _save_to_project(
    link: dict[str, Any],
    instances: Any,
    model_classes: list[str],
    *,
    model_id: str,
    keypoints: list[str] | None = None,
    skeleton: list[Any] | None = None,
) -> tuple[Any, list[str]]:
    """Save model output to the project (a new version, whatever was there: the history
    keeps it); return the saved revision (instances with ids, version) and the classes.

    Keypoints of a keypoint model name the project's keypoints when it has none, else go
    to the project's columns of the same names (names it lacks are appended)."""
    import labelassist as la

    with la.Project.open(link["project"]) as project:
        instances = _to_project_classes(instances, model_classes, project.classes)
        if instances.keypoints is not None and keypoints:
            instances = _to_project_keypoints(project, instances, keypoints, skeleton)
        revision = project.save_instances(
            link["image"], instances, source="model", model_id=model_id
        )
        return revision, list(project.classes)


def _to_project_classes(instances: Any, model_classes: list[str], classes: list[str]) -> Any:
    """Relabel by class name; drop instances of classes the project does not have."""
    index = {name: k for k, name in enumerate(classes)}
    mapping = np.array([index.get(name, -1) for name in model_classes], dtype=np.int64)
    labels = mapping[instances.labels] if len(instances) else instances.labels
    keep = labels >= 0
    if not keep.all():
        missing = sorted({model_classes[k] for k in instances.labels[~keep]})
        notifications.show_warning(
            f"dropped {int((~keep).sum())} instances of classes {missing} that the project lacks"
        )
    return instances[keep].replace(labels=labels[keep])


def _to_project_keypoints(
    project: Any, instances: Any, names: list[str], skeleton: list[Any] | None
) -> Any:
    """``instances``' keypoints (columns ``names``) in the project's keypoint columns."""
    if project.keypoints is None:
        project.set_keypoints(names, skeleton=[tuple(p) for p in skeleton or []])
    missing = [n for n in names if n not in project.keypoints]
    if missing:
        project.set_keypoints(list(project.keypoints) + missing, skeleton=project.skeleton)
    order = list(project.keypoints)
    points = np.zeros((len(instances), len(order), 3))
    for j, name in enumerate(names):
        points[:, order.index(name)] = instances.keypoints[:, j]
    return instances.replace(keypoints=points)
