"""Head surgery: predictors extended for new classes and keypoints (matched by name), freezing.

Classes are matched by name: data classes the model lacks get new predictor heads for the
union of both class lists (torchvision's fine-tuning idiom, extended so that the rows of
the classes the model already knew are kept); all other weights stay as they are.

One exception: a one-class model meeting one-class data of another name (the one-class
starter, "nucleus", fine-tuned on "cell" annotations) is **renamed**: the data's class
takes over the model's class rows, which already detect "an object", instead of fresh
rows being added next to a class the data never shows.

Keypoint names are matched the same way (`keypoint_mapping`, `with_keypoints`): data
keypoints the model lacks get new heatmaps appended to its keypoint predictor (a model
without a keypoint head gets torchvision's, untrained), and `keypoint_columns` puts the
data's points into the model's keypoint order (v = 0 for keypoints an image does not
label), so that every training target carries (N, K, 3) keypoints.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..instances import Instances, check_keypoint_names
from ..model import Model

if TYPE_CHECKING:  # pragma: no cover - torchvision is untyped (Any) for mypy
    from torchvision.models.detection import MaskRCNN

__all__ = [
    "class_mapping",
    "extend_heads",
    "fit_keypoints",
    "freeze",
    "keypoint_columns",
    "keypoint_mapping",
    "pair_keypoints",
    "relabel",
    "with_classes",
    "with_keypoints",
]

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


def keypoint_mapping(
    model_names: Sequence[str] | None, data_names: Sequence[str] | None
) -> tuple[list[str] | None, np.ndarray | None]:
    """The keypoint names the trained model needs and the model column of each data keypoint.

    The model's names come first, data names it lacks are appended (like classes, see
    `class_mapping`); without data names (a list of pairs, a dataset without keypoints) the
    mapping is None and the model's names stay.

    Examples
    --------
    >>> names, columns = keypoint_mapping(["head", "tail"], ["tail", "middle"])
    >>> names, columns.tolist()
    (['head', 'tail', 'middle'], [1, 2])
    >>> keypoint_mapping(None, ["head"])[0], keypoint_mapping(["head"], None)
    (['head'], (['head'], None))
    """
    names = None if model_names is None else [str(n) for n in model_names]
    if data_names is None:
        return names, None
    names = list(names or [])
    for name in data_names:
        if str(name) not in names:
            names.append(str(name))
    return names, np.array([names.index(str(n)) for n in data_names], dtype=np.int64)


def with_keypoints(
    model: Model,
    names: Sequence[str] | None,
    skeleton: Sequence[tuple[int, int]] | None = None,
    *,
    margin: float = 0.0,
) -> Model:
    """``model`` (changed in place: pass the copy `with_classes` returns) with a keypoint head
    for ``names``: attached (untrained) when it has none, extended when ``names`` adds to its
    keypoints (the old heatmaps keep their weights). ``skeleton`` edges (0-based indices into
    ``names``) are added to the model's. ``names`` None: the model as it is.
    """
    from ..model.keypoints import (  # heavy: torchvision
        attach_keypoint_head,
        extend_keypoint_head,
        has_mask_head,
        keypoint_meta,
    )

    if names is None:
        return model
    old = model.meta.get("keypoints")
    edges = [tuple(e) for e in model.meta.get("skeleton") or []]
    for a, b in skeleton or []:
        if (a, b) not in edges and (b, a) not in edges:
            edges.append((int(a), int(b)))
    if old is None:
        head = attach_keypoint_head(model.net, len(names), margin=margin)
        logger.info("keypoints %s: keypoint head attached (untrained)", list(names))
    else:
        head = dict(model.meta.get("keypoint_head") or {})
        if len(names) > len(old):
            extend_keypoint_head(model.net, len(names))
            logger.info("new keypoints %s: keypoint head extended", list(names[len(old) :]))
    model.meta.update(keypoint_meta(names, edges, masks=has_mask_head(model.net), head=head))
    return model


def keypoint_columns(
    pairs: Sequence[tuple[object, Instances]],
    n_keypoints: int | None,
    columns: np.ndarray | None,
    name: str = "train",
) -> list[tuple[object, Instances]]:
    """``pairs`` with keypoints in the model's order: (N, ``n_keypoints``, 3), data keypoint
    ``j`` in column ``columns[j]`` (``columns`` None: the same order), v = 0 where the data
    labels none (instances without keypoints are then mask-only examples). ``n_keypoints``
    None: a model without keypoints, the pairs must have none.

    Raises ``ValueError`` naming the image when its keypoints do not fit.

    Examples
    --------
    >>> import shapely
    >>> inst = Instances([shapely.box(0, 0, 4, 4)], [0], None, (8, 8),
    ...                  keypoints=[[[1.5, 2.5, 2]]])
    >>> (_, out), = keypoint_columns([(None, inst)], 2, np.array([1]))
    >>> out.keypoints.tolist()
    [[[0.0, 0.0, 0.0], [1.5, 2.5, 2.0]]]
    """
    out = []
    for k, (source, instances) in enumerate(pairs):
        points = instances.keypoints
        if n_keypoints is None:
            if points is not None:
                raise ValueError(
                    f"{name} image {k} has keypoints but neither the model nor the data "
                    "names them; give their names (finetune(keypoints=['head', ...]))"
                )
            out.append((source, instances))
            continue
        full = np.zeros((len(instances), n_keypoints, 3))
        if points is not None:
            cols = np.arange(points.shape[1]) if columns is None else columns
            if points.shape[1] != len(cols):
                raise ValueError(
                    f"{name} image {k} has {points.shape[1]} keypoints per instance but "
                    f"{len(cols)} keypoint names are known; give the names of its keypoints "
                    "(finetune(keypoints=[...]) or the dataset's keypoints)"
                )
            full[:, cols] = points
        out.append((source, instances.replace(keypoints=full)))
    return out


def pair_keypoints(
    names: Sequence[str] | None,
    data_points: tuple[list[str], list[tuple[int, int]]] | None,
    train: object,
) -> tuple[list[str], list[tuple[int, int]]] | None:
    """The keypoint names (and skeleton) of the training data: a dataset's own
    (``data_points``), or ``names`` (`finetune`'s ``keypoints=``) for a list of pairs."""
    if names is None:
        return data_points
    if data_points is not None or not isinstance(train, Sequence) or isinstance(train, str):
        raise ValueError(
            "keypoints= names the keypoint columns of a list of (image, Instances) pairs; "
            "a Dataset or COCO file brings its own keypoint names: leave keypoints= out"
        )
    return check_keypoint_names(names), []


def fit_keypoints(
    model: Model,
    pairs: Sequence[tuple[object, Instances]],
    data_points: tuple[list[str], list[tuple[int, int]]] | None,
    *,
    margin: float = 0.0,
) -> tuple[Model, list[tuple[object, Instances]]]:
    """``model`` (the copy to train, changed in place) with a keypoint head for its and the
    data's keypoint names (`keypoint_mapping`, `with_keypoints`; the data's skeleton added;
    a head attached here gets the RoI ``margin``) and ``pairs`` with their keypoints in its
    order (`keypoint_columns`)."""
    from ..model.keypoints import num_keypoints  # heavy: torchvision

    names, columns = keypoint_mapping(
        model.meta.get("keypoints"), None if data_points is None else data_points[0]
    )
    edges = []
    if data_points is not None and columns is not None:
        edges = [(int(columns[a]), int(columns[b])) for a, b in data_points[1]]
    model = with_keypoints(model, names, edges, margin=margin)
    return model, keypoint_columns(pairs, num_keypoints(model.net), columns)


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
