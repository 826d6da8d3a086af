"""Mask R-CNN models: building, loading, saving, and the `Model` wrapper.

torchvision's background class 0 lives only here: a `Model` exposes 0-based ``classes``
(no background) and `Model.predict` returns `Instances` whose labels index ``classes``.

Checkpoints are a plain, safe format written by `Model.save`::

    {"format": "labelassist", "format_version": 1,
     "state_dict": {name: tensor}, "meta": {JSON-able}}

and read with ``torch.load(path, map_location="cpu", weights_only=True)``.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..io.atomic import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..instances import Instances

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "DEFAULT_NORMALIZATION",
    "SOURCES",
    "Model",
    "build_maskrcnn",
    "load_model",
    "pick_device",
]

#: Architectures `build_maskrcnn` knows. The first one is the light CPU default.
ARCHITECTURES: tuple[str, ...] = (
    "maskrcnn_resnet18_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_resnet50_fpn",
)
DEFAULT_ARCH = "maskrcnn_resnet18_fpn"
#: Named sources `load_model` accepts besides a checkpoint path.
SOURCES: tuple[str | None, ...] = ("starter", "torchvision-coco", None)
#: Image normalisation recorded in new models (see `labelassist.predict.to_tensor`).
DEFAULT_NORMALIZATION: dict[str, Any] = {"mode": "auto", "percentiles": [1.0, 99.8]}

FORMAT = "labelassist"
FORMAT_VERSION = 1
STARTER_PATH = Path(__file__).resolve().parents[1] / "data" / "starter.pt"

# defaults of the light architecture (small objects, native resolution, dense images)
_LIGHT_DEFAULTS: dict[str, Any] = {
    "returned_layers": [1, 2, 3],
    "fpn_channels": 128,
    "anchor_sizes": [8, 16, 32, 64],
    "aspect_ratios": [0.5, 1.0, 2.0],
    "representation_size": 512,
    "mask_channels": 128,
    "mask_layers": 4,
    "box_detections_per_img": 300,
}


# -- architectures ----------------------------------------------------------------------


def _native_transform_class() -> type:
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    class NativeResolutionTransform(GeneralizedRCNNTransform):
        """`GeneralizedRCNNTransform` that normalises and batches but never resizes.

        Microscopy objects have a physical size in pixels; resizing a 256 px image to
        800 px (torchvision's default) only costs time and shifts object scales.
        """

        def resize(self, image, target=None):  # noqa: D102 - same contract as parent
            return image, target

        def __repr__(self) -> str:
            return (
                f"{type(self).__name__}(Normalize(mean={self.image_mean}, std={self.image_std}), "
                "no resize)"
            )

    return NativeResolutionTransform


_NATIVE_TRANSFORM: type | None = None


def _native_transform(image_mean: Sequence[float], image_std: Sequence[float]) -> nn.Module:
    global _NATIVE_TRANSFORM
    if _NATIVE_TRANSFORM is None:
        _NATIVE_TRANSFORM = _native_transform_class()
    return _NATIVE_TRANSFORM(1, 1, list(image_mean), list(image_std))


def _resolve_weights(weights: Any, param: str) -> Any:
    """A torchvision WeightsEnum from ``None``, an enum member, or a name like
    ``"ResNet18_Weights.IMAGENET1K_V1"``."""
    if weights is None or not isinstance(weights, str):
        return weights
    from torchvision.models import get_weight

    try:
        return get_weight(weights)
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"{param}={weights!r} is not a torchvision weights name; use e.g. "
            "'ResNet18_Weights.IMAGENET1K_V1' or None"
        ) from exc


def _build_light(
    num_classes: int,
    *,
    weights_backbone: Any = None,
    returned_layers: Sequence[int] = (1, 2, 3),
    fpn_channels: int = 128,
    anchor_sizes: Sequence[int] = (8, 16, 32, 64),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    representation_size: int = 512,
    mask_channels: int = 128,
    mask_layers: int = 4,
    image_mean: Sequence[float] = (0.485, 0.456, 0.406),
    image_std: Sequence[float] = (0.229, 0.224, 0.225),
    **kwargs: Any,
) -> nn.Module:
    from torchvision.models import resnet18
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.detection.rpn import RPNHead
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    returned_layers = sorted(int(k) for k in returned_layers)
    if not returned_layers or returned_layers[0] < 1 or returned_layers[-1] > 4:
        raise ValueError(f"returned_layers must be a subset of 1..4, got {returned_layers}")
    n_levels = len(returned_layers) + 1  # + the max-pool level of the FPN
    if len(anchor_sizes) != n_levels:
        raise ValueError(
            f"anchor_sizes needs one size per feature level ({n_levels} for returned_layers "
            f"{returned_layers}), got {len(anchor_sizes)}: {list(anchor_sizes)}"
        )
    # trainable BatchNorm: FrozenBatchNorm diverges when training from random init
    trunk = resnet18(weights=weights_backbone, norm_layer=nn.BatchNorm2d)
    return_layers = {f"layer{k}": str(i) for i, k in enumerate(returned_layers)}
    in_channels = [64 * 2 ** (k - 1) for k in returned_layers]
    backbone = BackboneWithFPN(
        trunk, return_layers, in_channels, fpn_channels, extra_blocks=LastLevelMaxPool()
    )
    anchors = AnchorGenerator(
        tuple((int(s),) for s in anchor_sizes),
        (tuple(float(a) for a in aspect_ratios),) * n_levels,
    )
    names = [str(i) for i in range(len(returned_layers))]
    net = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(fpn_channels, anchors.num_anchors_per_location()[0]),
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(fpn_channels * 7 * 7, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(fpn_channels, [mask_channels] * mask_layers, 1),
        mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, num_classes),
        image_mean=list(image_mean),
        image_std=list(image_std),
        **kwargs,
    )
    net.transform = _native_transform(image_mean, image_std)
    return net


def _build_resnet50_v1(
    num_classes: int,
    *,
    weights_backbone: Any = None,
    trainable_layers: int | None = None,
    frozen_bn: bool = False,
    bn_eps: float | None = None,
    **kwargs: Any,
) -> nn.Module:
    # torchvision's maskrcnn_resnet50_fpn picks FrozenBatchNorm only when loading weights;
    # here it is an option so that a fine-tuned COCO model rebuilds with the same layers.
    from torchvision.models import resnet50
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d

    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    trunk = resnet50(weights=weights_backbone, norm_layer=norm)
    if trainable_layers is None:
        trainable_layers = 3 if (frozen_bn or weights_backbone is not None) else 5
    net = MaskRCNN(
        _resnet_fpn_extractor(trunk, trainable_layers), num_classes=num_classes, **kwargs
    )
    if frozen_bn and bn_eps is not None:
        for module in net.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.eps = float(bn_eps)
    return net


def _build_resnet50_v2(
    num_classes: int,
    *,
    weights_backbone: Any = None,
    trainable_layers: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2

    return maskrcnn_resnet50_fpn_v2(
        weights=None,
        weights_backbone=weights_backbone,
        num_classes=num_classes,
        trainable_backbone_layers=trainable_layers,
        **kwargs,
    )


_BUILDERS = {
    "maskrcnn_resnet18_fpn": _build_light,
    "maskrcnn_resnet50_fpn_v2": _build_resnet50_v2,
    "maskrcnn_resnet50_fpn": _build_resnet50_v1,
}


def build_maskrcnn(
    arch: str = DEFAULT_ARCH,
    num_classes: int = 2,
    *,
    weights_backbone: Any = None,
    **options: Any,
) -> nn.Module:
    """Build an untrained torchvision Mask R-CNN.

    Parameters
    ----------
    arch : str
        One of `ARCHITECTURES`. ``"maskrcnn_resnet18_fpn"`` (default) is a light model that
        trains from scratch on a CPU: ResNet-18 layers 1-3 with trainable BatchNorm, a
        128-channel FPN, anchors 8-64 px, a 512-d box head, 128-channel mask head, up to
        300 detections, and no resizing (native resolution). The ResNet-50 models keep
        torchvision's configuration (images resized to 800-1333 px).
    num_classes : int
        Number of classes **including** torchvision's background class 0.
    weights_backbone : torchvision WeightsEnum or str, optional
        ImageNet weights for the trunk (downloaded by torchvision); default random init.
    **options
        Light arch: ``returned_layers``, ``fpn_channels``, ``anchor_sizes`` (one per level),
        ``aspect_ratios``, ``representation_size``, ``mask_channels``, ``mask_layers``,
        ``image_mean``, ``image_std``. ResNet-50 archs: ``trainable_layers``; v1 also
        ``frozen_bn`` and ``bn_eps``. Any other keyword goes to torchvision's ``MaskRCNN``
        (e.g. ``box_detections_per_img``, ``min_size``, ``rpn_post_nms_top_n_test``).

    Returns
    -------
    torch.nn.Module
        A ``torchvision.models.detection.MaskRCNN`` in training mode.

    Examples
    --------
    >>> net = build_maskrcnn("maskrcnn_resnet18_fpn", 2)
    >>> sum(p.numel() for p in net.parameters()) < 9_000_000
    True
    >>> net.roi_heads.detections_per_img
    300
    """
    if arch not in _BUILDERS:
        raise ValueError(f"arch={arch!r} is unknown; choose one of {list(ARCHITECTURES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes={num_classes!r} must be an int >= 2 (background + at least one class)"
        )
    weights_backbone = _resolve_weights(weights_backbone, "weights_backbone")
    unknown = sorted(set(options) - _allowed_options(arch))
    if unknown:
        raise TypeError(
            f"build_maskrcnn({arch!r}) got unknown options {unknown}; valid: "
            f"{sorted(_allowed_options(arch))}"
        )
    if arch == "maskrcnn_resnet18_fpn":
        options = {**_LIGHT_DEFAULTS, **options}
    return _BUILDERS[arch](num_classes, weights_backbone=weights_backbone, **options)


def _allowed_options(arch: str) -> set[str]:
    """Keyword options of the arch's builder plus those of torchvision's ``MaskRCNN``
    (which silently ignores unknown keywords, so they are checked here)."""
    import inspect

    from torchvision.models.detection import FasterRCNN, MaskRCNN

    names = set()
    for func in (_BUILDERS[arch], MaskRCNN.__init__, FasterRCNN.__init__):
        for param in inspect.signature(func).parameters.values():
            if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                names.add(param.name)
    names |= {"size_divisible", "fixed_size"}  # GeneralizedRCNNTransform keywords
    return names - {"self", "backbone", "num_classes", "weights_backbone"}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to use: ``device`` if given, else CUDA, then MPS, then CPU.

    Examples
    --------
    >>> pick_device("cpu")
    device(type='cpu')
    """
    if device is not None:
        try:
            return torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"device={device!r} is not a torch device (try 'cpu', 'cuda')"
            ) from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# -- the Model wrapper ------------------------------------------------------------------


def _jsonable(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must be JSON-serialisable: {exc}") from exc


class Model:
    """A Mask R-CNN with its class names and metadata.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN`` (e.g. from `build_maskrcnn`).
    classes : sequence of str
        Class names without background; network label ``label_ids[k]`` is ``classes[k]``.
    arch : str
        The `ARCHITECTURES` name ``net`` was built with.
    options : dict, optional
        The `build_maskrcnn` options ``net`` was built with (to rebuild it on load).
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
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"classes must be a list of class names (str), got {classes!r}")
        classes = list(classes)
        if not classes:
            raise ValueError("classes must name at least one class (background is implicit)")
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch={arch!r} is unknown; choose one of {list(ARCHITECTURES)}")
        num_classes = int(net.roi_heads.box_predictor.cls_score.out_features)
        meta = dict(_jsonable(dict(meta or {}), "meta"))
        label_ids = meta.get("label_ids") or list(range(1, len(classes) + 1))
        if len(label_ids) != len(classes) or not all(0 < int(i) < num_classes for i in label_ids):
            raise ValueError(
                f"net predicts {num_classes - 1} classes (+ background) but classes has "
                f"{len(classes)} names; build the net with num_classes=len(classes) + 1"
            )
        meta.setdefault("normalization", copy.deepcopy(DEFAULT_NORMALIZATION))
        meta.setdefault("history", [])
        meta.update(
            arch=arch,
            options=_jsonable(dict(options or meta.get("options") or {}), "options"),
            num_classes=num_classes,
            classes=classes,
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
        """Architecture name, one of `ARCHITECTURES`."""
        return self.meta["arch"]

    @property
    def normalization(self) -> dict[str, Any]:
        """How images become network input (see `labelassist.predict.to_tensor`)."""
        return self.meta["normalization"]

    def __repr__(self) -> str:
        return f"Model(arch={self.arch!r}, classes={self.classes!r}, device={self.device})"

    def to(self, device: str | torch.device | None) -> Model:
        """Move the network to ``device`` (None: best available); returns ``self``."""
        self.device = pick_device(device)
        self.net.to(self.device)
        return self

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
    ) -> Instances | list[Instances]:
        """Predict instances on one image or a list of images.

        See `labelassist.predict.predict` for the parameters.

        Returns
        -------
        Instances or list of Instances
            One per image: polygons in ``(x, y)`` pixel coordinates, 0-based ``labels``
            into `classes`, ``scores``.

        Examples
        --------
        >>> import numpy as np
        >>> model = load_model(None, classes=["nucleus"], device="cpu")
        >>> model.predict(np.zeros((64, 64), np.uint8), score_threshold=0.99).image_shape
        (64, 64)
        """
        from .predict import predict

        with self._lock:
            return predict(
                self,
                image_or_list,
                score_threshold=score_threshold,
                mask_threshold=mask_threshold,
                tile_size=tile_size,
                tile_overlap=tile_overlap,
                batch_size=batch_size,
                tolerance=tolerance,
            )

    def checkpoint(self, *, half: bool = False) -> dict[str, Any]:
        """The checkpoint dictionary `save` writes (tensors on CPU; fp16 if ``half``)."""
        state = {}
        for name, tensor in self.net.state_dict().items():
            tensor = tensor.detach().to("cpu")
            if half and tensor.is_floating_point():
                tensor = tensor.half()
            state[name] = tensor.clone()
        meta = _jsonable(self.meta, "Model.meta")
        meta["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        from .._version import __version__

        meta["labelassist_version"] = __version__
        meta["stored_half"] = bool(half)
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "state_dict": state,
            "meta": meta,
        }

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
        data = self.checkpoint(half=half)
        with atomic_write(path) as fh:
            torch.save(data, fh)
        return path


# -- loading ----------------------------------------------------------------------------


def _coco_weights(arch: str | None) -> tuple[str, Any]:
    from torchvision.models.detection import (
        MaskRCNN_ResNet50_FPN_V2_Weights,
        MaskRCNN_ResNet50_FPN_Weights,
    )

    arch = arch or "maskrcnn_resnet50_fpn_v2"
    if arch == "maskrcnn_resnet50_fpn_v2":
        return arch, MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT
    if arch == "maskrcnn_resnet50_fpn":
        return arch, MaskRCNN_ResNet50_FPN_Weights.DEFAULT
    raise ValueError(
        f"arch={arch!r} has no torchvision COCO weights; use 'maskrcnn_resnet50_fpn_v2' "
        "(default) or 'maskrcnn_resnet50_fpn'"
    )


def coco_weights_path(arch: str | None = None) -> tuple[Path, str]:
    """Where torchvision caches the COCO weights of ``arch``, and their URL.

    Examples
    --------
    >>> path, url = coco_weights_path("maskrcnn_resnet50_fpn_v2")
    >>> path.name == url.rsplit("/", 1)[1]
    True
    """
    from urllib.parse import urlparse

    _, weights = _coco_weights(arch)
    name = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name, weights.url


def _load_torchvision_coco(arch: str | None, device: Any) -> Model:
    arch, weights = _coco_weights(arch)
    path, url = coco_weights_path(arch)
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise RuntimeError(
            f"could not get the torchvision COCO weights for {arch} ({type(exc).__name__}: "
            f"{exc}). Offline? Download {url} on a connected machine and place the file at "
            f"{path} (set TORCH_HOME to change the folder)."
        ) from exc
    categories = list(weights.meta["categories"])
    options: dict[str, Any] = {}
    if arch == "maskrcnn_resnet50_fpn":  # torchvision's v1 recipe: frozen BN with eps 0
        options = {"frozen_bn": True, "bn_eps": 0.0}
    net = build_maskrcnn(arch, len(categories), **options)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"the file at {path} is not the torchvision COCO checkpoint of {arch}; delete it "
            f"and download {url} again ({str(exc).splitlines()[0]})"
        ) from exc
    keep = [
        i for i, name in enumerate(categories) if i > 0 and name not in ("N/A", "__background__")
    ]
    return Model(
        net,
        [categories[i] for i in keep],
        arch=arch,
        options=options,
        meta={"label_ids": keep, "normalization": {"mode": "scale"}, "weights": str(weights)},
        device=device,
    )


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():
            raise ValueError(
                f"{path} is not a torch checkpoint (unreadable: {str(exc).splitlines()[0]}); "
                "give a file written by Model.save"
            ) from exc
        raise ValueError(
            f"{path} holds pickled Python objects that labelassist refuses to load (unsafe). "
            "Only load checkpoints written by Model.save; re-save trusted files with it."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ValueError(
            f"{path} is not a torch checkpoint ({type(exc).__name__}); give a file written "
            "by Model.save"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if (
            isinstance(data, dict)
            and data
            and all(isinstance(v, torch.Tensor) for v in data.values())
        ):
            raise ValueError(
                f"{path} is a plain state dict (e.g. torchvision's), not a labelassist "
                "checkpoint; wrap it: net = build_maskrcnn(arch, num_classes); "
                "net.load_state_dict(state); Model(net, classes, arch=arch).save(path)"
            )
        raise ValueError(f"{path} is not a labelassist checkpoint (no format='labelassist' key)")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format_version {version!r}; this labelassist reads up to "
            f"{FORMAT_VERSION}: upgrade labelassist"
        )
    meta, state = data.get("meta"), data.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise ValueError(f"{path} is a damaged labelassist checkpoint (no meta or state_dict)")
    for key in ("arch", "classes", "num_classes"):
        if key not in meta:
            raise ValueError(f"{path} is a damaged labelassist checkpoint (meta lacks {key!r})")
    return data


def _load_checkpoint(path: Path, *, device: Any, arch: str | None) -> Model:
    data = _read_checkpoint(path)
    meta = data["meta"]
    if arch is not None and arch != meta["arch"]:
        raise ValueError(
            f"arch={arch!r} conflicts with the checkpoint's {meta['arch']!r}; omit arch"
        )
    if meta["arch"] not in ARCHITECTURES:
        raise ValueError(
            f"{path} uses architecture {meta['arch']!r}, unknown to this labelassist "
            f"(knows {list(ARCHITECTURES)})"
        )
    net = build_maskrcnn(meta["arch"], int(meta["num_classes"]), **meta.get("options", {}))
    try:
        net.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise ValueError(
            f"{path}: the state dict does not fit architecture {meta['arch']!r} with "
            f"{meta['num_classes']} classes ({str(exc).splitlines()[0]}); the file is damaged "
            "or was edited"
        ) from exc
    meta = {k: v for k, v in meta.items() if k not in ("stored_half",)}
    return Model(
        net,
        meta["classes"],
        arch=meta["arch"],
        options=meta.get("options"),
        meta=meta,
        device=device,
    )


def load_model(
    source: str | os.PathLike | None = "starter",
    *,
    classes: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    arch: str | None = None,
) -> Model:
    """Load or create a `Model`.

    Parameters
    ----------
    source : {"starter", "torchvision-coco", None} or path
        ``"starter"``: the small nuclei model shipped in ``labelassist/data/starter.pt``
        (offline). ``"torchvision-coco"``: torchvision's COCO weights (80 classes; downloaded
        to ``torch.hub.get_dir()/checkpoints`` like torchvision does). A path: a checkpoint
        written by `Model.save`. ``None``: an untrained model for ``classes``.
    classes : sequence of str, optional
        Class names (no background); required with ``source=None``.
    device : str or torch.device, optional
        Default: CUDA, then MPS, then CPU.
    arch : str, optional
        With ``None``: one of `ARCHITECTURES` (default the light ``maskrcnn_resnet18_fpn``);
        with ``"torchvision-coco"``: ``maskrcnn_resnet50_fpn_v2`` (default) or
        ``maskrcnn_resnet50_fpn``.

    Returns
    -------
    Model

    Examples
    --------
    >>> model = load_model(None, classes=["nucleus", "debris"], device="cpu")
    >>> model.classes, model.arch
    (['nucleus', 'debris'], 'maskrcnn_resnet18_fpn')
    """
    if source is None:
        if classes is None:
            raise ValueError("source=None builds an untrained model and needs classes=[...names]")
        classes = [classes] if isinstance(classes, str) else list(classes)
        arch = arch or DEFAULT_ARCH
        net = build_maskrcnn(arch, len(classes) + 1)
        return Model(net, classes, arch=arch, device=device)
    if classes is not None:
        raise ValueError(
            f"classes= is only used with source=None; the {source!r} model brings its own "
            "classes (fine-tune it with new classes through labelassist.finetune)"
        )
    if isinstance(source, str) and source == "torchvision-coco":
        return _load_torchvision_coco(arch, device)
    if isinstance(source, str) and source == "starter":
        if not STARTER_PATH.exists():
            raise FileNotFoundError(
                f"the starter model is not shipped in this build ({STARTER_PATH} is missing); "
                "use load_model(None, classes=[...]) and finetune it, or a checkpoint path"
            )
        return _load_checkpoint(STARTER_PATH, device=device, arch=arch)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_file():
            return _load_checkpoint(path, device=device, arch=arch)
        if path.suffix or os.sep in str(source) or path.exists():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist (or is not a file)")
    raise ValueError(
        f"source={source!r} is not valid; use 'starter', 'torchvision-coco', None (with "
        "classes=[...]) or the path of a checkpoint written by Model.save"
    )
