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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from torch import nn

from ..checks import check_choice, check_classes
from ..instances import Instances
from .build import ARCHITECTURES, pick_device
from .checkpoint import jsonable, make_checkpoint, save_checkpoint
from .normalize import DEFAULT_NORMALIZATION
from .predict import predict

__all__ = ["Model"]


class Model:
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
        ``num_classes``, ``classes``, ``label_ids``, ``normalization``, ``history``.

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
        mask_threshold: float = ...,
        tile_size: int | None = ...,
        tile_overlap: int | None = ...,
        batch_size: int = ...,
        tolerance: float | None = ...,
        max_detections: int | None = ...,
    ) -> Instances: ...

    @overload
    def predict(
        self,
        image_or_list: Sequence[np.ndarray],
        *,
        score_threshold: float = ...,
        mask_threshold: float = ...,
        tile_size: int | None = ...,
        tile_overlap: int | None = ...,
        batch_size: int = ...,
        tolerance: float | None = ...,
        max_detections: int | None = ...,
    ) -> list[Instances]: ...

    def predict(
        self,
        image_or_list: np.ndarray | Sequence[np.ndarray],
        *,
        score_threshold: float = 0.5,
        mask_threshold: float = 0.5,
        tile_size: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = 4,
        tolerance: float | None = None,
        max_detections: int | None = None,
    ) -> Instances | list[Instances]:
        """Predict instances on one image or a list of images.

        See `labelassist.model.predict.predict` for the parameters. Dense fields keep every
        object: the detection limit grows with the image area unless ``max_detections``
        caps it (a warning says when an image reaches its limit).

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
        """
        with self._lock:
            return predict(
                self.net,
                image_or_list,
                label_ids=self.meta["label_ids"],
                normalization=self.meta.get("normalization"),
                device=self.device,
                score_threshold=score_threshold,
                mask_threshold=mask_threshold,
                tile_size=tile_size,
                tile_overlap=tile_overlap,
                batch_size=batch_size,
                tolerance=tolerance,
                max_detections=max_detections,
            )

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
