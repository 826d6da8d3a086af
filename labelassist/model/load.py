"""Loading models: `load_model` from its sources, and `model_from_bytes`.

Sources: ``"starter"`` (the small nuclei model shipped in ``labelassist/data/starter.pt``,
offline), ``"torchvision-coco"`` (torchvision's COCO weights, from its download cache; a
clear message offline), ``"torchvision-keypoints"`` (torchvision's COCO person keypoint
R-CNN, likewise), a checkpoint path (`labelassist.model.checkpoint`), or ``None`` (an
untrained model for given classes, with keypoint names for a keypoint head).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from ..checks import check_classes
from .build import DEFAULT_ARCH, build_maskrcnn, pick_device
from .checkpoint import read_checkpoint
from .keypoints import attach_keypoint_head, configure_heads, keypoint_meta, remove_mask_head
from .model import Model

__all__ = [
    "COCO_PERSON_SKELETON",
    "SOURCES",
    "STARTER_PATH",
    "coco_weights_path",
    "keypoint_weights_path",
    "load_model",
    "model_from_bytes",
]

#: Named sources `load_model` accepts besides a checkpoint path.
SOURCES: tuple[str | None, ...] = ("starter", "torchvision-coco", "torchvision-keypoints", None)

#: COCO's person skeleton (``person_keypoints`` category), 0-based keypoint indices.
COCO_PERSON_SKELETON: tuple[tuple[int, int], ...] = tuple(
    (a - 1, b - 1)
    for a, b in (
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
        (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    )
)  # fmt: skip
#: The shipped starter model.
STARTER_PATH = Path(__file__).resolve().parents[1] / "data" / "starter.pt"


# -- torchvision's COCO weights ---------------------------------------------------------


def _coco_weights(arch: str | None) -> tuple[str, Any]:
    from torchvision.models.detection import (  # heavy: torchvision
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
    _, weights = _coco_weights(arch)
    name = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name, weights.url


def _load_torchvision_coco(arch: str | None, device: Any) -> Model:
    arch, weights = _coco_weights(arch)
    path, url = coco_weights_path(arch)
    try:
        state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
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


def _keypoint_weights() -> Any:
    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights  # heavy

    return KeypointRCNN_ResNet50_FPN_Weights.COCO_V1


def keypoint_weights_path() -> tuple[Path, str]:
    """Where torchvision caches its COCO person keypoint R-CNN weights, and their URL.

    Examples
    --------
    >>> path, url = keypoint_weights_path()
    >>> path.name == url.rsplit("/", 1)[1]
    True
    """
    weights = _keypoint_weights()
    name = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name, weights.url


def _load_torchvision_keypoints(arch: str | None, device: Any) -> Model:
    """torchvision's ``keypointrcnn_resnet50_fpn`` COCO weights (person, 17 keypoints) in a
    ``maskrcnn_resnet50_fpn`` without mask head (the same layers, FrozenBatchNorm)."""
    if arch not in (None, "maskrcnn_resnet50_fpn"):
        raise ValueError(
            f"arch={arch!r}: torchvision's keypoint weights are a ResNet-50 FPN v1; omit arch"
        )
    weights = _keypoint_weights()
    path, url = keypoint_weights_path()
    try:
        state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise RuntimeError(
            f"could not get the torchvision COCO keypoint weights ({type(exc).__name__}: "
            f"{exc}). Offline? Download {url} on a connected machine and place the file at "
            f"{path} (set TORCH_HOME to change the folder)."
        ) from exc
    categories = list(weights.meta["categories"])
    names = list(weights.meta["keypoint_names"])
    options: dict[str, Any] = {"frozen_bn": True}
    net = build_maskrcnn("maskrcnn_resnet50_fpn", len(categories), **options)
    remove_mask_head(net)
    head = attach_keypoint_head(net, len(names), channels=512, layers=8)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"the file at {path} is not torchvision's COCO keypoint R-CNN checkpoint; delete "
            f"it and download {url} again ({str(exc).splitlines()[0]})"
        ) from exc
    meta = keypoint_meta(names, COCO_PERSON_SKELETON, masks=False, head=head)
    meta.update(label_ids=[1], normalization={"mode": "scale"}, weights=str(weights))
    return Model(
        net, [categories[1]], arch="maskrcnn_resnet50_fpn", options=options, meta=meta,
        device=device,
    )  # fmt: skip


# -- checkpoints --------------------------------------------------------------------------


def _from_checkpoint(
    source: str | os.PathLike | bytes, *, device: Any, arch: str | None = None
) -> Model:
    """A `Model` from a checkpoint file or its bytes (validated by `read_checkpoint`)."""
    device = pick_device(device)
    data = read_checkpoint(source)
    where = "checkpoint bytes" if isinstance(source, bytes) else str(source)
    meta = data["meta"]
    if arch is not None and arch != meta["arch"]:
        raise ValueError(
            f"arch={arch!r} conflicts with the checkpoint's {meta['arch']!r}; omit arch"
        )
    try:
        net = build_maskrcnn(meta["arch"], meta["num_classes"], **(meta.get("options") or {}))
        configure_heads(net, meta)  # a keypoint head, no mask head: as meta says
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is a damaged labelassist checkpoint: {exc}") from exc
    try:
        net.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise ValueError(
            f"{where}: the state dict does not fit architecture {meta['arch']!r} with "
            f"{meta['num_classes']} classes ({str(exc).splitlines()[0]}); the file is damaged "
            "or was edited"
        ) from exc
    meta = {k: v for k, v in meta.items() if k not in ("stored_half",)}
    try:
        return Model(
            net,
            meta["classes"],
            arch=meta["arch"],
            options=meta.get("options"),
            meta=meta,
            device=device,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is a damaged labelassist checkpoint: {exc}") from exc


def model_from_bytes(data: bytes, *, device: str | torch.device | None = None) -> Model:
    """A `Model` from checkpoint bytes (`labelassist.model.checkpoint_to_bytes`).

    Nothing is written to disk; the bytes are read with ``torch.load(...,
    weights_only=True)`` and validated like a checkpoint file (a `ValueError` says what is
    wrong).

    Parameters
    ----------
    data : bytes
        The content of a checkpoint file.
    device : str or torch.device, optional
        Default: CUDA, then MPS, then CPU.

    Returns
    -------
    Model

    Examples
    --------
    >>> from labelassist.model import checkpoint_to_bytes
    >>> model = load_model(None, classes=["cell", "debris"], device="cpu")
    >>> model_from_bytes(checkpoint_to_bytes(model), device="cpu").classes
    ['cell', 'debris']
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(
            f"data must be checkpoint bytes (from checkpoint_to_bytes or a .pt file's "
            f"content), got {type(data).__name__}"
        )
    return _from_checkpoint(data, device=device)


def load_model(
    source: str | os.PathLike | None = "starter",
    *,
    classes: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    arch: str | None = None,
    keypoints: Sequence[str] | None = None,
    skeleton: Sequence[tuple[int, int]] | None = None,
    masks: bool = True,
) -> Model:
    """Load or create a `Model`.

    Parameters
    ----------
    source : {"starter", "torchvision-coco", "torchvision-keypoints", None} or path
        ``"starter"``: the small nuclei model shipped in ``labelassist/data/starter.pt``
        (offline). ``"torchvision-coco"``: torchvision's COCO weights (80 classes; downloaded
        to ``torch.hub.get_dir()/checkpoints`` like torchvision does).
        ``"torchvision-keypoints"``: torchvision's COCO person keypoint R-CNN (class
        ``person``, COCO's 17 keypoints and skeleton, no mask head; from the same cache).
        A path: a checkpoint written by `Model.save` (its keypoint names, skeleton and
        heads come back). ``None``: an untrained model for ``classes``.
    classes : sequence of str, optional
        Class names (no background); required with ``source=None``.
    device : str or torch.device, optional
        Default: CUDA, then MPS, then CPU.
    arch : str, optional
        With ``None``: one of `labelassist.model.ARCHITECTURES` (default the light
        ``maskrcnn_resnet18_fpn``); with ``"torchvision-coco"``: ``maskrcnn_resnet50_fpn_v2``
        (default) or ``maskrcnn_resnet50_fpn``.
    keypoints : sequence of str, optional
        With ``None``: keypoint (landmark) names; the model gets torchvision's keypoint
        head too (Mask R-CNN's pose variant: masks and keypoints per object). Kept in
        ``model.meta["keypoints"]``.
    skeleton : sequence of (int, int), optional
        Edges between keypoints (0-based indices into ``keypoints``), kept in
        ``model.meta["skeleton"]`` as ``[a, b]`` lists (for drawing and COCO files).
    masks : bool
        With ``keypoints``: False builds a keypoints-only model (no mask head, like
        torchvision's ``KeypointRCNN``).

    Returns
    -------
    Model

    Raises
    ------
    FileNotFoundError
        A checkpoint path that does not exist (or the starter missing from this build).
    ValueError
        A file that is not a labelassist checkpoint (empty, text, random bytes, another
        zip, a dict with other keys, a plain state dict, damaged metadata): one line naming
        the file and what was expected.

    Examples
    --------
    >>> model = load_model(None, classes=["nucleus", "debris"], device="cpu")
    >>> model.classes, model.arch
    (['nucleus', 'debris'], 'maskrcnn_resnet18_fpn')
    >>> worms = load_model(None, classes=["worm"], keypoints=["head", "tail"],
    ...                    skeleton=[(0, 1)], device="cpu")
    >>> worms.meta["keypoints"], worms.meta["skeleton"]
    (['head', 'tail'], [[0, 1]])
    """
    if not isinstance(masks, bool):
        raise TypeError(f"masks must be True or False, got {masks!r}")
    if source is None:
        if classes is None:
            raise ValueError("source=None builds an untrained model and needs classes=[...names]")
        names = check_classes([classes] if isinstance(classes, str) else classes)
        if keypoints is None and (skeleton or not masks):
            what = "skeleton=" if skeleton else "masks=False"
            raise ValueError(f"{what} needs keypoints=[...names] (a keypoint model)")
        arch = arch or DEFAULT_ARCH
        net = build_maskrcnn(arch, len(names) + 1)
        meta: dict[str, Any] = {}
        if keypoints is not None:
            meta = keypoint_meta(keypoints, skeleton, masks=masks)
            meta["keypoint_head"] = attach_keypoint_head(net, len(meta["keypoints"]))
            if not masks:
                remove_mask_head(net)
        return Model(net, names, arch=arch, meta=meta, device=device)
    if classes is not None:
        raise ValueError(
            f"classes= is only used with source=None; the {source!r} model brings its own "
            "classes (fine-tune it with new classes through labelassist.finetune)"
        )
    if keypoints is not None or skeleton is not None or not masks:
        raise ValueError(
            f"keypoints=, skeleton= and masks= are only used with source=None; the "
            f"{source!r} model brings its own heads (model.meta['keypoints'])"
        )
    if isinstance(source, str) and source == "torchvision-keypoints":
        return _load_torchvision_keypoints(arch, device)
    if isinstance(source, str) and source == "torchvision-coco":
        return _load_torchvision_coco(arch, device)
    if isinstance(source, str) and source == "starter":
        if not STARTER_PATH.exists():
            raise FileNotFoundError(
                f"the starter model is not shipped in this build ({STARTER_PATH} is missing); "
                "use load_model(None, classes=[...]) and finetune it, or a checkpoint path"
            )
        return _from_checkpoint(STARTER_PATH, device=device, arch=arch)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_file():
            return _from_checkpoint(path, device=device, arch=arch)
        if path.suffix or os.sep in str(source) or path.exists():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist (or is not a file)")
    raise ValueError(
        f"source={source!r} is not valid; use 'starter', 'torchvision-coco', "
        "'torchvision-keypoints', None (with classes=[...]) or the path of a checkpoint "
        "written by Model.save"
    )
