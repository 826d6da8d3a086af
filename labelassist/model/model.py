"""The `Model` wrapper: a Mask R-CNN with its class names and metadata, predicting `Instances`.

torchvision's background class 0 lives only inside `labelassist.model`: a `Model` exposes
0-based ``classes`` (no background) and `Model.predict` returns `Instances` whose labels
index ``classes``. Building networks is `labelassist.model.build`, the checkpoint format
`labelassist.model.checkpoint`, loading `labelassist.model.load`, and prediction
`labelassist.model.predict` (which takes the network, not this wrapper).
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from torch import nn

from ..checks import check_choice, check_classes
from ..instances import Instances
from ..stacks import StackInstances
from ..stacks import predict_stack as _predict_stack
from .build import ARCHITECTURES, pick_device
from .checkpoint import jsonable, make_checkpoint, save_checkpoint
from .features import DEFAULT_MAX_TILES, ImageFeatures, encode
from .inference import set_roi_scales
from .inputs import InputOptions, check_input_meta
from .normalize import DEFAULT_NORMALIZATION, select_channels
from .predict import estimate_object_sizes, predict
from .prompts import DEFAULT_SCORE_THRESHOLD, segment

__all__ = ["Model"]


class Model(InputOptions):
    """A Mask R-CNN with its class names and metadata.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN`` (e.g. from `labelassist.model.build_maskrcnn`).
    classes : sequence of str
        Class names without background (`labelassist.checks.check_classes`); network
        label ``label_ids[k]`` is ``classes[k]``.
    arch : str
        The `labelassist.model.ARCHITECTURES` name ``net`` was built with.
    options : dict, optional
        The `labelassist.model.build_maskrcnn` options ``net`` was built with (to rebuild
        it on load).
    meta : dict, optional
        More JSON-able metadata (``"history"``, ``"normalization"``, ``"label_ids"``...).
    device : str or torch.device, optional
        Where to run; default: CUDA, then MPS, then CPU.

    Attributes
    ----------
    net, classes, arch, device, meta
        ``meta`` holds everything written into checkpoints: ``arch``, ``options``,
        ``num_classes``, ``classes``, ``label_ids``, ``normalization``, ``history``,
        ``input`` (`object_size`, `data_object_size`, `channels`).

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> model = Model(build_maskrcnn(num_classes=2), ["nucleus"], arch="maskrcnn_resnet18_fpn",
    ...               device="cpu")
    >>> model
    Model(arch='maskrcnn_resnet18_fpn', classes=['nucleus'], device=cpu)
    """

    def __init__(
        self,
        net: nn.Module,
        classes: Sequence[str],
        *,
        arch: str,
        options: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(net, nn.Module) or not hasattr(net, "roi_heads"):
            raise TypeError(f"net must be a torchvision MaskRCNN module, got {type(net).__name__}")
        names = check_classes(classes)
        check_choice(arch, "arch", ARCHITECTURES)
        detector: Any = net
        num_classes = int(detector.roi_heads.box_predictor.cls_score.out_features)
        meta = dict(jsonable(dict(meta or {}), "meta"))
        label_ids = meta.get("label_ids") or list(range(1, len(names) + 1))
        if len(label_ids) != len(names) or not all(0 < int(i) < num_classes for i in label_ids):
            raise ValueError(
                f"net predicts {num_classes - 1} classes (+ background) but classes has "
                f"{len(names)} names; build the net with num_classes=len(classes) + 1"
            )
        meta.setdefault("normalization", copy.deepcopy(DEFAULT_NORMALIZATION))
        meta.setdefault("history", [])
        try:
            meta["input"] = check_input_meta(meta.get("input"))
        except ValueError as exc:
            raise ValueError(f"meta: {exc}") from None
        meta.update(
            arch=arch,
            options=jsonable(dict(options or meta.get("options") or {}), "options"),
            num_classes=num_classes,
            classes=names,
            label_ids=[int(i) for i in label_ids],
        )
        self.net = net
        self.meta: dict[str, Any] = meta
        self.device = pick_device(device)
        self._lock = threading.RLock()
        self.net.to(self.device).eval()
        set_roi_scales(self.net)

    @property
    def classes(self) -> list[str]:
        """Class names (no background); ``Instances.labels`` index this list."""
        return self.meta["classes"]

    @property
    def arch(self) -> str:
        """Architecture name, one of `labelassist.model.ARCHITECTURES`."""
        return self.meta["arch"]

    @property
    def normalization(self) -> dict[str, Any]:
        """How images become network input (see `labelassist.model.to_tensor`)."""
        return self.meta["normalization"]

    def __repr__(self) -> str:
        return f"Model(arch={self.arch!r}, classes={self.classes!r}, device={self.device})"

    def to(self, device: str | torch.device | None) -> Model:
        """Move the network to ``device`` (None: best available); returns ``self``."""
        self.device = pick_device(device)
        self.net.to(self.device)
        return self

    @overload
    def predict(
        self,
        image_or_list: np.ndarray,
        *,
        score_threshold: float = ...,
        mask_threshold: float | None = ...,
        tile_size: int | None = ...,
        tile_overlap: int | None = ...,
        batch_size: int = ...,
        tolerance: float | None = ...,
        max_detections: int | None = ...,
        object_size: float | str | Sequence[float | str | None] | None = ...,
        channels: int | Sequence[int] | None = ...,
        mirror: bool = ...,
    ) -> Instances: ...

    @overload
    def predict(
        self,
        image_or_list: Sequence[np.ndarray],
        *,
        score_threshold: float = ...,
        mask_threshold: float | None = ...,
        tile_size: int | None = ...,
        tile_overlap: int | None = ...,
        batch_size: int = ...,
        tolerance: float | None = ...,
        max_detections: int | None = ...,
        object_size: float | str | Sequence[float | str | None] | None = ...,
        channels: int | Sequence[int] | None = ...,
        mirror: bool = ...,
    ) -> list[Instances]: ...

    def predict(
        self,
        image_or_list: np.ndarray | Sequence[np.ndarray],
        *,
        score_threshold: float = 0.5,
        mask_threshold: float | None = None,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = 4,
        tolerance: float | None = None,
        max_detections: int | None = None,
        object_size: float | str | Sequence[float | str | None] | None = None,
        channels: int | Sequence[int] | None = None,
        mirror: bool = True,
    ) -> Instances | list[Instances]:
        """Predict instances on one image or a list of images.

        See `labelassist.model.predict.predict` for the parameters. Dense fields keep every
        object: the detection limit grows with the image area unless ``max_detections``
        caps it (a warning says when an image reaches its limit).

        ``object_size`` (px, the objects' median diameter in these images, or ``"auto"``)
        rescales each image by `object_size` / ``object_size`` so that its objects have
        the size the network was trained at; None uses `data_object_size` (no rescaling
        when the model knows no sizes). ``channels`` picks the channels of (H, W, C)
        images (`labelassist.model.normalize.select_channels`); None uses `channels`.
        ``mask_threshold`` None uses the model's `mask_threshold` (chosen for its edges).
        ``mirror`` (default True) averages each mask with the one predicted on the
        left-right mirrored image: closer edges for about 1.5x the time (False for speed).
        Results are always on the original pixels (see docs/object_size.md).

        Returns
        -------
        Instances or list of Instances
            One per image: polygons in ``(x, y)`` pixel coordinates, 0-based ``labels``
            into `classes`, ``scores``.

        Examples
        --------
        >>> from labelassist.model import load_model
        >>> model = load_model(None, classes=["nucleus"], device="cpu")
        >>> model.predict(np.zeros((64, 64), np.uint8), score_threshold=0.99).image_shape
        (64, 64)
        >>> model.set_input(object_size=20).predict(
        ...     np.zeros((60, 80), np.uint8), object_size=40, score_threshold=0.99).image_shape
        (60, 80)
        """
        with self._lock:
            return predict(
                self.net,
                image_or_list,
                label_ids=self.meta["label_ids"],
                normalization=self.meta.get("normalization"),
                device=self.device,
                score_threshold=score_threshold,
                mask_threshold=self.mask_threshold if mask_threshold is None else mask_threshold,
                tile_size=tile_size,
                tile_overlap=tile_overlap,
                batch_size=batch_size,
                tolerance=tolerance,
                max_detections=max_detections,
                object_size=object_size,
                channels=self.channels if channels is None else channels,
                mirror=mirror,
                net_object_size=self.object_size,
                default_object_size=self.data_object_size,
            )

    def estimate_object_size(
        self,
        image_or_list: np.ndarray | Sequence[np.ndarray],
        *,
        channels: int | Sequence[int] | None = None,
        tile_size: int | None = None,
        batch_size: int = 4,
    ) -> float | None | list[float | None]:
        """The objects' median size (px) in an image, measured on the model's detections.

        What ``predict(..., object_size="auto")`` uses: a pass at native scale, re-measured
        at the scale it implies when the model knows its `object_size`
        (`labelassist.model.predict.estimate_object_sizes`).

        Returns
        -------
        float or None, or a list of them
            None where nothing was found.

        Examples
        --------
        >>> from labelassist.model import load_model
        >>> model = load_model("starter", device="cpu")
        >>> from labelassist.synthetic import synthetic_image
        >>> image, truth = synthetic_image("nuclei", (192, 192), size=30, seed=9001)
        >>> 20 < model.estimate_object_size(image) < 45
        True
        """
        single = not isinstance(image_or_list, (list, tuple))
        images: list[Any] = [image_or_list] if single else list(image_or_list)
        with self._lock:
            sizes = estimate_object_sizes(
                self.net,
                images,
                net_object_size=self.object_size,
                label_ids=self.meta["label_ids"],
                normalization=self.meta.get("normalization"),
                device=self.device,
                channels=self.channels if channels is None else channels,
                tile_size=tile_size,
                batch_size=batch_size,
            )
        return sizes[0] if single else sizes

    def predict_stack(
        self,
        stack: Any,
        *,
        axes: str,
        score_threshold: float = 0.5,
        tile_size: int | None = None,
        stitch_threshold: float = 0.25,
        batch_size: int = 8,
        channels: int | Sequence[int] | None = None,
        division_threshold: float = 0.4,
        max_gap: int = 1,
        merge_threshold: float | None = 0.8,
        min_planes: int = 2,
        object_size: float | str | None = "auto",
        progress: bool = True,
        done: Sequence[Instances] = (),
        on_planes: Callable[[int, list[Instances]], None] | None = None,
    ) -> StackInstances:
        """Predict every plane of a z-stack or time-lapse and link them into objects and tracks.

        Planes go through the network in batches of ``batch_size``; instances of
        neighbouring planes are linked by mask IoU (Hungarian matching at
        ``stitch_threshold``): one ``extra["object_id"]`` per 3-D object (Z) or track (T).
        See `labelassist.stacks.predict_stack` for every parameter; ``object_size``
        (pixels, or ``"auto"``, the default: measured once per stack; None: the model's
        own scale, `predict`'s default) brings the objects to the model's object size as
        in `predict`; ``done`` and ``on_planes`` resume after planes already predicted and
        report each batch (what `labelassist.preannotate` saves stacks with).

        Examples
        --------
        >>> import numpy as np, labelassist as la
        >>> model = la.load_model(None, classes=["nucleus"])
        >>> result = model.predict_stack(np.zeros((2, 32, 32), np.uint8), axes="ZYX",
        ...                              progress=False)
        >>> len(result.planes)
        2
        """
        return _predict_stack(
            self,
            stack,
            axes=axes,
            score_threshold=score_threshold,
            tile_size=tile_size,
            stitch_threshold=stitch_threshold,
            batch_size=batch_size,
            channels=channels,
            division_threshold=division_threshold,
            max_gap=max_gap,
            merge_threshold=merge_threshold,
            min_planes=min_planes,
            object_size=object_size,
            progress=progress,
            done=done,
            on_planes=on_planes,
        )

    def encode(
        self,
        image: np.ndarray,
        *,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        max_tiles: int = DEFAULT_MAX_TILES,
        channels: int | Sequence[int] | None = None,
    ) -> ImageFeatures:
        """Run the backbone + FPN once, for many `segment` prompts on the same image.

        ``channels`` (default `channels`) picks the channels of an (H, W, C) image as in
        `predict`; the image is not rescaled (prompts work at its own scale).

        Parameters
        ----------
        image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
            Any dtype `predict` takes; kept by reference (do not modify it meanwhile).
        tile_size : int, optional
            For images larger than this, nothing is encoded now: each prompt encodes the
            ``tile_size`` tile that holds it (`ImageFeatures.window_for`) when first needed.
        tile_overlap : int, optional
            Overlap of the tiles (default ``min(192, tile_size * 3 // 8)``).
        max_tiles : int
            Encoded tiles kept (least recently used dropped), bounding memory.

        Returns
        -------
        ImageFeatures
            Valid for this model as it is now (encode again after training or moving it).

        Examples
        --------
        >>> from labelassist.model import load_model
        >>> model = load_model(None, classes=["nucleus"], device="cpu")
        >>> feats = model.encode(np.zeros((64, 80), np.uint8))
        >>> feats.image_shape, feats.net_size
        ((64, 80), (64, 80))
        """
        image = self._pick_channels(image, channels)
        with self._lock:
            return encode(
                self.net,
                image,
                normalization=self.meta.get("normalization"),
                device=self.device,
                tile_size=tile_size,
                tile_overlap=tile_overlap,
                max_tiles=max_tiles,
            )

    def segment(
        self,
        image_or_features: np.ndarray | ImageFeatures,
        *,
        boxes: Any = None,
        points: Any = None,
        negative_points: Any = None,
        label: str | int | None = None,
        refine_box: bool = False,
        box_scale: float | str = "auto",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        mask_threshold: float | None = None,
        tolerance: float | None = None,
        exclude: Any = None,
        tight: bool = False,
        loose: bool = False,
        extreme_points: Any = None,
    ) -> Instances:
        """Segment the objects designated by box and point prompts: one instance per prompt.

        See `labelassist.model.prompts` for how prompts reach the heads and docs/prompts.md
        for the measured behaviour.

        Parameters
        ----------
        image_or_features : ndarray or ImageFeatures
            An image (encoded whole now, its channels picked by `channels` if set) or
            `encode`'s result (encode once, prompt many).
        boxes : array-like of shape (N, 4), optional
            ``x0, y0, x1, y1`` in COCO pixel coordinates (pixel ``j`` covers ``[j, j+1]``),
            ``x1 > x0``, ``y1 > y0``; parts outside the image are clipped, a box wholly
            outside raises. The mask head segments the object in each box; the mask is
            cut to the box's pixels.
        points : array-like of shape (N, 2), optional
            ``x, y`` on the image: each selects the highest-scoring detection whose mask
            covers the point.
        negative_points : array-like of shape (M, 2), optional
            Detections whose mask covers any of these are not selected (points only).
        label : str or int, optional
            Force a class (name or 0-based index): boxes are segmented and scored as this
            class, points choose only among its detections. Default: the box head's best
            class.
        refine_box : bool
            Apply the box head's regression for the chosen class to each box before the
            mask head (helps loose boxes).
        box_scale : "auto" or float
            ``"auto"``: a box smaller than `object_size` is segmented from a crop of the
            image enlarged to that size; a number >= 1 is one factor for every box; 1 uses
            the image's own features (faster for many boxes).
        score_threshold : float
            Box and point results scoring below this are "nothing found": an empty
            polygon, score 0. Extreme-point results are kept whatever their score (the
            clicks say the object is there; the score is still the box head's).
        mask_threshold : float, optional
            Mask probability above which a pixel is inside, within (0, 1); default the
            model's `mask_threshold`.
        tolerance : float, optional
            Polygon simplification (default `labelassist.geometry.DEFAULT_TOLERANCE`).
        exclude : sequence of shapely polygons or Instances, optional
            Objects already annotated in the image: no result takes their pixels (a box's
            mask loses the pixels whose centres they cover, a point's pick loses their
            area), so a prompted object never overlaps them. On objects the starter missed,
            touching their neighbours, this is the difference between a mask that spills into
            the neighbour and one that stops at it (docs/prompts.md). An extreme-point prompt
            does not keep off the objects under its clicked pixels: the clicks say those
            pixels are the new object's (an accepted outline may cover a small neighbour).
        tight : bool
            The boxes are tight: each touches its object on all four sides, as a box from
            extreme clicking does (the napari plugin's four-click prompt). Each box's mask
            threshold is then the one among 0.1, 0.2, ..., 0.9 and ``mask_threshold``
            whose mask touches the box's sides best (ties: the nearest to
            ``mask_threshold``). Leave False for dragged boxes: on a loose box it fills the
            slack (docs/prompts.md).
        loose : bool
            The boxes hold their objects with some slack, as a quickly dragged rectangle
            does: a box whose mask's bounding box covers less than
            `labelassist.model.prompts.LOOSE_FILL` (0.7) of it is segmented again in that
            bounding box. Boxes drawn close to their objects are left as they are (the
            napari plugin's rectangles use it; docs/prompts.md). Not with ``tight``.
        extreme_points : array-like of shape (N, 4, 2), optional
            ``x, y`` of four clicks on each object's leftmost, topmost, rightmost and
            bottommost pixels, in any order (extreme clicking; the napari plugin's
            ``Shift-X``). Each click is snapped to its pixel; the box those pixels span is
            segmented as a tight box (``tight``), the threshold chosen first by how many of
            the four clicked pixels the mask keeps, then by fit; the mask keeps only pixels
            within `labelassist.model.box_prompts.HULL_MARGIN` times half the box's size of
            the clicks' convex hull (as far as a disc reaches beyond its extreme points), so
            the head's box-filling corners do not stay; with ``exclude``, a mask also takes
            the pixels of a gap at most `labelassist.model.box_prompts.NEIGHBOUR_GAP` (3)
            pixels wide between it and the annotated objects (touching objects share their
            outline). Their results come after the boxes' and before the points'.

        Returns
        -------
        Instances
            ``len(boxes) + len(extreme_points) + len(points)`` instances in prompt order:
            boxes, extreme points, points; labels
            index `classes`, scores are the box head's probability of that class (0 and an
            empty polygon where nothing was found).

        Examples
        --------
        >>> from labelassist.model import load_model
        >>> model = load_model(None, classes=["nucleus"], device="cpu")
        >>> feats = model.encode(np.zeros((64, 64), np.uint8))
        >>> result = model.segment(feats, boxes=[[10, 10, 30, 30]], points=[[40, 40]])
        >>> len(result), result.image_shape
        (2, (64, 64))
        """
        if not isinstance(image_or_features, ImageFeatures):
            image_or_features = self._pick_channels(image_or_features, None)
        with self._lock:
            return segment(
                self.net,
                image_or_features,
                label_ids=self.meta["label_ids"],
                classes=self.classes,
                normalization=self.meta.get("normalization"),
                device=self.device,
                boxes=boxes,
                points=points,
                negative_points=negative_points,
                label=label,
                refine_box=refine_box,
                score_threshold=score_threshold,
                mask_threshold=self.mask_threshold if mask_threshold is None else mask_threshold,
                tolerance=tolerance,
                object_size=self.object_size,
                box_scale=box_scale,
                exclude=exclude,
                tight=tight,
                loose=loose,
                extreme_points=extreme_points,
            )

    def _pick_channels(self, image: Any, channels: Any) -> Any:
        """``image`` with ``channels`` (default `channels`) picked, or as it is."""
        channels = self.channels if channels is None else channels
        if channels is None:
            return image
        try:
            return select_channels(image, channels)
        except ValueError as exc:
            raise ValueError(f"image: {exc}") from None

    def checkpoint(self, *, half: bool = False) -> dict[str, Any]:
        """The checkpoint dictionary `save` writes (tensors on CPU; fp16 if ``half``); see
        `labelassist.model.checkpoint`."""
        return make_checkpoint(self.net, self.meta, half=half)

    def save(self, path: str | os.PathLike, *, half: bool = False) -> Path:
        """Write a checkpoint atomically (temp file in the same folder + ``os.replace``).

        Parameters
        ----------
        path : str or PathLike
            Destination file (conventionally ``.pt``); parent folders are created.
        half : bool
            Store floating-point tensors as float16 (half the size); loading casts back.

        Returns
        -------
        Path
            The written path.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from labelassist.model import load_model
        >>> model = load_model(None, classes=["cell"], device="cpu")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = model.save(pathlib.Path(tmp) / "m.pt")
        ...     load_model(path, device="cpu").classes
        ['cell']
        """
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(
                f"path={str(path)!r} is a folder; give a file name like model.pt"
            )
        return save_checkpoint(self.checkpoint(half=half), path)
