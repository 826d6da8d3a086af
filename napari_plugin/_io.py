"""Reader and writer contributions.

The reader opens a labelassist project folder (the image next in the review queue) or a
COCO ``.json`` with its images (an image layer and one Shapes layer per image; with
keypoints also a Points layer and a skeleton layer, `._keypoints_layer`). The writer
saves Shapes layers, and the Points layers of their keypoints, as one COCO file. Both are
thin: the work is `labelassist.Project`, `labelassist.read_coco` and
`labelassist.Dataset.to_coco`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._convert import METADATA_KEY, layer_to_instances, rowcol_to_xy
from ._keypoints_layer import (
    points_layer_kwargs,
    points_to_keypoints,
    skeleton_layer_kwargs,
    skeleton_lines,
)
from ._style import image_layer_kwargs, shapes_layer_kwargs

__all__ = ["MAX_COCO_IMAGES", "get_reader", "project_layer_data", "read_coco_layers", "write_coco"]

logger = logging.getLogger(__name__)

MAX_COCO_IMAGES = 16  # more images than this are not opened as layers (use a project)
LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """The reader for `path`, or None when it is neither a project folder nor COCO json.

    Examples
    --------
    >>> get_reader("image.png") is None
    True
    """
    item = path[0] if isinstance(path, (list, tuple)) and len(path) == 1 else path
    if not isinstance(item, (str, os.PathLike)):
        return None  # several paths: not one project or COCO file
    target = Path(item)
    if target.is_dir():
        from labelassist.project import DB_NAME

        return _read_project if (target / DB_NAME).is_file() else None
    if target.suffix.lower() == ".json" and _looks_like_coco(target):
        return _read_coco
    return None


def _looks_like_coco(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    return '"images"' in head or '"annotations"' in head or '"categories"' in head


def _read_project(path: Any) -> list[LayerData]:
    import labelassist as la

    path = path[0] if isinstance(path, (list, tuple)) else path
    with la.Project.open(path) as project:
        record = project.next_image(strategy="order") or next(iter(project.images()), None)
        if record is None:
            raise ValueError(f"project {path} has no images yet; add some with project.add_images")
        return project_layer_data(project, record)


def project_layer_data(
    project: Any,
    record: dict,
    *,
    low_score: float = 0.5,
    revision: Any = None,
    keypoints: bool = True,
) -> list[LayerData]:
    """Image and Shapes layer data of one project image (linked by layer metadata).

    Parameters
    ----------
    project : labelassist.Project
        An open project.
    record : dict
        The image record (from ``project.images()``).
    low_score : float
        Instances scoring below it are flagged.
    revision : labelassist.project.Revision, optional
        The instances to show and their version; default: the current ones, read in one
        transaction (``project.instances(record, with_version=True)``).
    keypoints : bool
        Also the keypoint layers when the project names keypoints.

    Returns
    -------
    list of (data, kwargs, layer_type)
        The image layer and its Shapes layer; both carry ``metadata["labelassist"]`` with
        ``project`` (folder, str) and ``image`` (id); the Shapes layer's also holds
        ``version``, the image's version its shapes show (what a save must expect). In a
        project with keypoints (and ``keypoints=True``) then the Points layer of the
        keypoints (linked the same way, ``kind="keypoints"``) and the skeleton's Shapes
        layer (``kind="skeleton"``, linked by ``skeleton_of`` only).
    """
    import labelassist as la

    link = {"project": str(project.folder), "image": int(record["id"])}
    image = la.read_image(project.image_path(record))
    if revision is None:
        revision = project.instances(record, with_version=True)
    name = Path(record["file_name"]).name
    shapes = shapes_layer_kwargs(
        revision.instances,
        classes=project.classes,
        low_score=low_score,
        name=f"{name} instances",
        metadata={**link, "file_name": record["file_name"], "version": revision.version},
    )
    layers = [_image_data(image, name, link), _shapes_data(shapes)]
    names = project.keypoints if keypoints else None
    if names is not None:
        meta = {**link, "file_name": record["file_name"], "version": revision.version}
        layers += _keypoint_data(revision.instances, names, project.skeleton, name, meta)
    return layers


def _keypoint_data(
    instances: Any, names: list[str], skeleton: list, name: str, link: dict[str, Any]
) -> list[LayerData]:
    """The Points layer of ``instances``' keypoints and the skeleton layer."""
    kwargs = points_layer_kwargs(
        instances, names, skeleton=skeleton, name=f"{name} keypoints", metadata=link
    )
    kwargs.pop("feature_defaults")
    data = kwargs.pop("data")

    class _View:  # skeleton_lines reads the data and features of a layer
        pass

    view = _View()
    view.data, view.features = data, kwargs["features"]  # type: ignore[attr-defined]
    lines = skeleton_lines(view, skeleton)
    bones = skeleton_layer_kwargs(
        lines, name=f"{name} skeleton", metadata={"skeleton_of": dict(link)}
    )
    return [(bones.pop("data"), bones, "shapes"), (data, kwargs, "points")]


def _image_data(image: np.ndarray, name: str, link: dict[str, Any]) -> LayerData:
    kwargs = image_layer_kwargs(image, name=name, metadata=link)
    return kwargs.pop("data"), kwargs, "image"


def _shapes_data(kwargs: dict[str, Any]) -> LayerData:
    kwargs = dict(kwargs)
    data = kwargs.pop("data")
    kwargs.pop("feature_defaults")  # not a layer-data attribute; the widgets set it
    return data, kwargs, "shapes"


def _read_coco(path: Any) -> list[LayerData]:
    path = path[0] if isinstance(path, (list, tuple)) else path
    return read_coco_layers(path)


def read_coco_layers(
    path: str | os.PathLike, *, max_images: int = MAX_COCO_IMAGES
) -> list[LayerData]:
    """Layer data of a COCO file: per image, an image layer (when the file exists) and a
    Shapes layer. Only the first image is visible.

    Parameters
    ----------
    path : str or os.PathLike
        A COCO ``.json``; images resolve relative to its folder (or its
        ``info["image_root"]``, see `labelassist.read_coco`).
    max_images : int
        Open at most this many images (a warning names the rest).

    Returns
    -------
    list of (data, kwargs, layer_type)
    """
    import labelassist as la

    dataset = la.read_coco(path)
    records = dataset.images
    if len(records) > max_images:
        logger.warning(
            "%s has %d images; opening the first %d (import it into a project to review all)",
            path,
            len(records),
            max_images,
        )
        records = records[:max_images]
    layers: list[LayerData] = []
    for k, record in enumerate(records):
        name = Path(record["file_name"]).name
        link = {"coco": str(path), "image": int(record["id"]), "file_name": record["file_name"]}
        image_path = dataset.image_path(record["id"])
        if Path(image_path).is_file():
            data, kwargs, kind = _image_data(la.read_image(image_path), name, link)
            kwargs["visible"] = k == 0
            layers.append((data, kwargs, kind))
        else:
            logger.warning(
                "image %s of %s not found; opening its annotations only", image_path, path
            )
        shape = (record["height"], record["width"])
        instances = dataset.instances.get(record["id"]) or la.Instances.empty(shape)
        data, kwargs, kind = _shapes_data(
            shapes_layer_kwargs(
                instances, classes=dataset.categories, name=f"{name} instances", metadata=link
            )
        )
        kwargs["visible"] = k == 0
        layers.append((data, kwargs, kind))
        if dataset.keypoints is not None:
            for data, kwargs, kind in _keypoint_data(
                instances, dataset.keypoints, dataset.skeleton, name, link
            ):
                kwargs["visible"] = k == 0
                layers.append((data, kwargs, kind))
    return layers


def write_coco(path: str, layer_data: list[LayerData]) -> list[str]:
    """Write Shapes layers as one COCO file (one image per layer), with keypoints.

    The image size, file name and class names come from the layer metadata the plugin
    writes; for a layer drawn from scratch the size is the shapes' extent, the file name
    the layer name and the classes the ``class`` feature (or ``"object"``). A Points
    layer of keypoints (`._keypoints_layer`) goes with the Shapes layer linked to the same
    image (or the only one); its names and skeleton are written as COCO keypoints, and
    each point counts for its instance (see `points_to_keypoints`). Skeleton layers are
    skipped.

    Parameters
    ----------
    path : str
        The ``.json`` file to write (atomically).
    layer_data : list of (data, attributes, layer_type)
        What napari hands a writer.

    Returns
    -------
    list of str
        ``[path]``.
    """
    import labelassist as la

    shapes = [(d, a) for d, a, kind in layer_data if kind == "shapes" and _kind(a) != "skeleton"]
    if not shapes:
        raise ValueError("write_coco needs at least one Shapes layer")
    points = [(d, a) for d, a, kind in layer_data if kind == "points"]
    names, skeleton = _keypoint_names(points)
    classes = _merged_classes(a for _, a in shapes)
    images, instances = [], {}
    for image_id, (data, attrs) in enumerate(shapes, start=1):
        layer = _LayerView(data, attrs, classes)
        meta = layer.metadata[METADATA_KEY]
        inst = layer_to_instances(layer, image_shape=meta["image_shape"], classes=classes)
        if names is not None:
            inst = _with_keypoints(inst, _points_of(attrs, points, len(shapes)), names)
        images.append(
            {
                "id": image_id,
                "file_name": str(meta.get("file_name") or attrs.get("name") or f"image{image_id}"),
                "height": int(inst.image_shape[0]),
                "width": int(inst.image_shape[1]),
            }
        )
        instances[image_id] = inst.replace(extra={})
    data = la.Dataset(classes, images, instances, keypoints=names, skeleton=skeleton)
    return [str(data.to_coco(path))]


def _kind(attrs: dict[str, Any]) -> Any:
    return ((attrs.get("metadata") or {}).get(METADATA_KEY) or {}).get("kind")


def _keypoint_names(points: list[tuple[Any, dict]]) -> tuple[list[str] | None, list]:
    """The keypoint names and skeleton of the Points layers (None: no keypoint layer)."""
    found = [
        (meta["keypoints"], [tuple(e) for e in meta.get("skeleton", [])])
        for _, attrs in points
        if (meta := (attrs.get("metadata") or {}).get(METADATA_KEY) or {}).get("keypoints")
    ]
    if not found:
        return None, []
    if any(f[0] != found[0][0] for f in found):
        raise ValueError(
            "the Points layers name different keypoints "
            f"({[f[0] for f in found]}); save the layers of one project or file together"
        )
    return list(found[0][0]), found[0][1]


def _points_of(
    attrs: dict[str, Any], points: list[tuple[Any, dict]], n_shapes: int
) -> tuple[Any, dict] | None:
    """The Points layer linked to the same image as a Shapes layer (or the only one)."""
    link = (attrs.get("metadata") or {}).get(METADATA_KEY) or {}
    for item in points:
        other = (item[1].get("metadata") or {}).get(METADATA_KEY) or {}
        same_image = other.get("image") is not None and other.get("image") == link.get("image")
        if same_image and other.get("project", other.get("coco")) == link.get(
            "project", link.get("coco")
        ):
            return item
    return points[0] if len(points) == 1 and n_shapes == 1 else None


def _with_keypoints(inst: Any, item: tuple[Any, dict] | None, names: list[str]) -> Any:
    """``inst`` with the keypoints of the Points layer data ``item`` (none: v = 0)."""
    import pandas as pd

    if item is None:
        return inst.replace(keypoints=np.zeros((len(inst), len(names), 3)))

    class _Points:
        pass

    view = _Points()
    view.data = np.asarray(item[0], dtype=np.float64).reshape(-1, 2)  # type: ignore[attr-defined]
    features = item[1].get("features")
    view.features = pd.DataFrame(features if features is not None else {})  # type: ignore[attr-defined]
    keypoints, _, _ = points_to_keypoints(view, inst, names)
    return inst.replace(keypoints=keypoints)


def _merged_classes(attrs_list: Any) -> list[str]:
    classes: list[str] = []
    for attrs in attrs_list:
        meta = (attrs.get("metadata") or {}).get(METADATA_KEY, {})
        names = meta.get("classes")
        if names is None:
            features = attrs.get("features") if _has(attrs, "features") else {}
            col = features["class"] if "class" in features else []
            names = [str(c) for c in dict.fromkeys(col)]
        for name in names:
            if name not in classes:
                classes.append(name)
    return classes or ["object"]


def _has(attrs: dict[str, Any], key: str) -> bool:
    value = attrs.get(key)
    return value is not None and len(value) > 0


class _LayerView:
    """The parts of a Shapes layer `layer_to_instances` reads, from writer layer data."""

    def __init__(self, data: list[np.ndarray], attrs: dict[str, Any], classes: list[str]) -> None:
        import pandas as pd

        self.data = list(data)
        n = len(self.data)
        kinds = attrs.get("shape_type", "polygon")
        self.shape_type = [kinds] * n if isinstance(kinds, str) else list(kinds)
        features = pd.DataFrame(attrs.get("features") if _has(attrs, "features") else {})
        if len(features) != n:
            features = pd.DataFrame(index=range(n))
        if "class" not in features:
            features["class"] = classes[0]
        self.features = features
        meta = dict((attrs.get("metadata") or {}).get(METADATA_KEY, {}))
        if meta.get("image_shape") is None:
            meta["image_shape"] = _extent(self.data)
        self.metadata = {METADATA_KEY: meta}


def _extent(data: list[np.ndarray]) -> tuple[int, int]:
    """(height, width) that holds every vertex (napari pixel centres are integers)."""
    if not data:
        return (1, 1)
    high = np.max([np.asarray(d)[:, -2:].max(axis=0) for d in data], axis=0)
    x, y = rowcol_to_xy(high[None])[0]  # the far edge of the last pixel
    return (max(1, int(np.ceil(y))), max(1, int(np.ceil(x))))
