"""Head surgery: predictors extended for new classes (matched by name), parts frozen.

Classes are matched by name: data classes the model lacks get new predictor heads for the
union of both class lists (torchvision's fine-tuning idiom, extended so that the rows of
the classes the model already knew are kept); all other weights stay as they are.

One exception: a one-class model meeting one-class data of another name (the one-class
starter, "nucleus", fine-tuned on "cell" annotations) is **renamed**: the data's class
takes over the model's class rows, which already detect "an object", instead of fresh
rows being added next to a class the data never shows.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..instances import Instances
from ..model import Model

if TYPE_CHECKING:  # pragma: no cover - torchvision is untyped (Any) for mypy
    from torchvision.models.detection import MaskRCNN

__all__ = ["class_mapping", "extend_heads", "freeze", "relabel", "with_classes"]

logger = logging.getLogger(__name__)


def class_mapping(
    model_classes: Sequence[str], data_classes: Sequence[str] | None
) -> tuple[list[str], np.ndarray]:
    """The class list the trained model needs and the map data label -> model class index.

    Examples
    --------
    >>> classes, mapping = class_mapping(["nucleus"], ["debris", "nucleus"])
    >>> classes, mapping.tolist()
    (['nucleus', 'debris'], [1, 0])
    >>> class_mapping(["nucleus"], ["cell"])[0]  # one class each: renamed, rows reused
    ['cell']
    """
    classes = [str(c) for c in model_classes]
    if data_classes is None:
        return classes, np.arange(len(classes))
    if len(classes) == 1 and len(data_classes) == 1 and str(data_classes[0]) != classes[0]:
        logger.info(
            "one-class model %r renamed to the data's class %r", classes[0], data_classes[0]
        )
        return [str(data_classes[0])], np.zeros(1, dtype=np.int64)
    for name in data_classes:
        if name not in classes:
            classes.append(name)
    return classes, np.array([classes.index(n) for n in data_classes], dtype=np.int64)


def relabel(
    pairs: Sequence[tuple[object, Instances]], mapping: np.ndarray, name: str = "train"
) -> list[tuple[object, Instances]]:
    """``pairs`` with their labels mapped from data class indices to model class indices."""
    out = []
    for k, (source, instances) in enumerate(pairs):
        if len(instances):
            if instances.labels.max() >= len(mapping):
                raise ValueError(
                    f"{name} image {k} has an instance with label "
                    f"{int(instances.labels.max())} but there are only {len(mapping)} classes; "
                    "fix the labels or categories"
                )
            instances = instances.replace(labels=mapping[instances.labels])
        out.append((source, instances))
    return out


def extend_heads(net: MaskRCNN, n_old: int, n_new: int) -> None:
    """Replace the box and mask predictors of ``net`` by ones with ``n_new`` outputs
    (background included), copying the ``n_old`` outputs the old predictors had."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor  # heavy: torchvision
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    heads = net.roi_heads
    old_box, old_mask = heads.box_predictor, heads.mask_predictor
    new_box = FastRCNNPredictor(old_box.cls_score.in_features, n_new)
    new_mask = MaskRCNNPredictor(
        old_mask.conv5_mask.in_channels, old_mask.conv5_mask.out_channels, n_new
    )
    with torch.no_grad():
        new_box.cls_score.weight[:n_old] = old_box.cls_score.weight
        new_box.cls_score.bias[:n_old] = old_box.cls_score.bias
        new_box.bbox_pred.weight[: 4 * n_old] = old_box.bbox_pred.weight
        new_box.bbox_pred.bias[: 4 * n_old] = old_box.bbox_pred.bias
        new_mask.conv5_mask.load_state_dict(old_mask.conv5_mask.state_dict())
        new_mask.mask_fcn_logits.weight[:n_old] = old_mask.mask_fcn_logits.weight
        new_mask.mask_fcn_logits.bias[:n_old] = old_mask.mask_fcn_logits.bias
    device = old_box.cls_score.weight.device
    heads.box_predictor = new_box.to(device)
    heads.mask_predictor = new_mask.to(device)


def with_classes(model: Model, classes: list[str]) -> Model:
    """A copy of ``model`` to train (the input stays as it is), with predictor heads for
    ``classes``: classes it lacks get new network label ids after the existing ones. As
    many ``classes`` as the model has (a rename, see `class_mapping`): the model's rows
    are kept under the new names.

    New rows are drawn from torch's global random generator (seed it first).
    """
    net: MaskRCNN = copy.deepcopy(model.net)
    meta = copy.deepcopy(model.meta)
    added = len(classes) - len(model.classes)
    if added:
        n_out = int(net.roi_heads.box_predictor.cls_score.out_features)
        extend_heads(net, n_out, n_out + added)
        meta["label_ids"] = list(meta["label_ids"]) + list(range(n_out, n_out + added))
        meta["classes"] = list(classes)
        logger.info("new classes %s: predictor heads extended", classes[len(model.classes) :])
    elif list(classes) != list(model.classes):
        meta["classes"] = list(classes)
    return Model(
        net, classes, arch=model.arch, options=meta.get("options"), meta=meta, device=model.device
    )


def freeze(net: MaskRCNN, mode: str) -> list[torch.nn.Module]:
    """Turn off gradients for the frozen part (see `TrainConfig.freeze`); return the frozen
    modules (kept in eval mode while training so their normalisation statistics stay fixed)."""
    frozen: list[torch.nn.Module]
    if mode == "none":
        frozen = []
    elif mode == "backbone":
        frozen = [net.backbone.body]
    elif mode == "features":
        frozen = [net.backbone]
    else:  # heads: only the predictors train
        frozen = [m for name, m in net.named_children() if name != "roi_heads"] + [
            m for name, m in net.roi_heads.named_children() if not name.endswith("_predictor")
        ]
    for p in net.parameters():
        p.requires_grad_(True)
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen
