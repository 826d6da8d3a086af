"""Benchmark: how exact are the proposals' outlines? Mask fidelity against ground truth.

Each true object is matched to the proposal with the highest mask IoU (both rasterized
with `labelassist.geometry.polygons_to_masks`, COCO pixel convention). Reported per data
set, over the objects found at IoU >= 0.5: the median IoU, the share of objects whose
proposal reaches IoU >= 0.9 (accepted as it is by an annotator), and the median area bias
``(proposal area - true area) / true area`` (positive: masks too large).

Three pipelines run on the same images with the same network and score threshold:

- ``labelassist``: ``Model.predict`` with its defaults (RoI masks placed at their exact box
  coordinates, see `labelassist.model.roi_masks.rois_to_polygons`, at the model's mask
  threshold, each averaged with the mirrored image's, traced to polygons at the default
  tolerance);
- ``la, no mirror``: the same with ``mirror=False`` (one pass, as up to this version);
- ``torchvision``: the network's own ``forward`` (``paste_masks_in_image``: box grown by
  one pixel, truncated to integers), masks thresholded at 0.5 — the placement labelassist
  used up to v1.

Data: held-out synthetic nuclei (`labelassist.synthetic.synthetic_nuclei`, seeds 9000+,
never used to train the starter: its images come from ``SeedSequence(0)``), 8- and 16-bit
alternating like the starter's training set; and the real hand-labelled fluorescence image
`labelassist.samples.real_nuclei` (never trained on).

Annotator cost model (issue #10 item 0, seconds): drawing an object by hand costs one click
per outline vertex (its true polygon at the default tolerance, at least 4), accepting a
proposal 0.5, deleting one 1.5. With pre-annotation a proposal at IoU >= 0.9 is accepted;
a worse one is deleted and the object drawn; an object with no proposal is drawn; a proposal
matching no object is deleted. The speed-up is manual time / pre-annotated time.

Run::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_fidelity.py [--images 24] [--size 256]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import shapely
import torch

from labelassist import Instances, load_model, masks_to_polygons, polygons_to_masks
from labelassist.geometry import DEFAULT_TOLERANCE
from labelassist.model.predict import to_tensor
from labelassist.samples import real_nuclei
from labelassist.synthetic import synthetic_nuclei

CLICK, ACCEPT, DELETE = 1.0, 0.5, 1.5


def _real() -> list[tuple[np.ndarray, Instances]]:
    image, labels = real_nuclei(labels=True)
    ids = [i for i in np.unique(labels) if i]
    polygons = masks_to_polygons(np.stack([labels == i for i in ids]), tolerance=0)
    return [(image, Instances(polygons, [0] * len(ids), [1.0] * len(ids), labels.shape))]


def _synthetic(n: int, size: int) -> list[tuple[np.ndarray, Instances]]:
    return [
        synthetic_nuclei((size, size), seed=9000 + k, dtype=np.uint16 if k % 2 else np.uint8)
        for k in range(n)
    ]


def _torchvision_masks(model, image: np.ndarray, threshold: float) -> np.ndarray:
    """The network's own forward: pasted full-image masks > 0.5."""
    net = model.net.eval()
    tensor = to_tensor(image, normalization=model.normalization).to(model.device)
    old = net.roi_heads.score_thresh
    net.roi_heads.score_thresh = threshold
    try:
        with torch.inference_mode():
            out = net([tensor])[0]
    finally:
        net.roi_heads.score_thresh = old
    return (out["masks"][:, 0] > 0.5).cpu().numpy()


def _match(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per true object: best IoU, area bias of that proposal, and per proposal whether it is
    any object's best match at IoU >= 0.5."""
    t = truth.reshape(len(truth), -1).astype(np.float32)
    if len(pred) == 0:
        return np.zeros(len(truth)), np.full(len(truth), np.nan), np.zeros(0, bool)
    p = pred.reshape(len(pred), -1).astype(np.float32)
    inter = t @ p.T
    union = t.sum(1)[:, None] + p.sum(1)[None] - inter
    iou = inter / np.maximum(union, 1)
    best = iou.argmax(1)
    best_iou = iou[np.arange(len(truth)), best]
    bias = (p.sum(1)[best] - t.sum(1)) / t.sum(1)
    used = np.zeros(len(pred), bool)
    used[best[best_iou >= 0.5]] = True
    return best_iou, bias, used


def _vertices(polygon) -> int:
    simple = shapely.simplify(polygon, DEFAULT_TOLERANCE)
    return max(4, len(shapely.get_coordinates(simple)) - 1)


def _run(name: str, data, predict) -> dict:
    ious, biases, manual, assisted, seconds = [], [], 0.0, 0.0, 0.0
    for image, truth in data:
        t0 = time.perf_counter()
        pred = predict(image)
        seconds += time.perf_counter() - t0
        true_masks = polygons_to_masks(truth.polygons, truth.image_shape)
        best, bias, used = _match(pred, true_masks)
        ious.append(best)
        biases.append(bias)
        draw = np.array([_vertices(p) for p in truth.polygons]) * CLICK
        manual += draw.sum()
        accepted = best >= 0.9
        matched = best >= 0.5
        assisted += ACCEPT * accepted.sum() + (draw[~accepted]).sum()
        assisted += DELETE * ((matched & ~accepted).sum() + (~used).sum())
    iou, bias = np.concatenate(ious), np.concatenate(biases)
    found = iou >= 0.5
    return {
        "pipeline": name,
        "objects": len(iou),
        "found": found.mean(),
        "median_iou": float(np.median(iou[found])),
        "iou90": float((iou >= 0.9).mean()),
        "bias": float(np.median(bias[found])),
        "speedup": manual / assisted,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24, help="held-out synthetic images")
    parser.add_argument("--size", type=int, default=256, help="synthetic image size")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--model", default="starter", help="model name or file")
    parser.add_argument(
        "--object-size",
        default=None,
        help="predict's object_size: a number (px), 'auto', or leave out for the default",
    )
    parser.add_argument(
        "--mask-thresholds",
        default=None,
        metavar="T,...",
        help="also run the labelassist pipeline at these mask thresholds, e.g. 0.55,0.6",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    object_size = args.object_size
    if object_size not in (None, "auto"):
        object_size = float(object_size)
    model = load_model(args.model)
    sets = {"synthetic": _synthetic(args.images, args.size), "real": _real()}

    def ours(image, mask_threshold=None, **extra):
        if mask_threshold is not None:
            extra["mask_threshold"] = mask_threshold
        inst = model.predict(
            image, score_threshold=args.score_threshold, object_size=object_size, **extra
        )
        return polygons_to_masks(inst.polygons, inst.image_shape)

    def theirs(image):
        return _torchvision_masks(model, image, args.score_threshold)

    print(
        f"{'data':10s} {'pipeline':14s} {'objects':>7s} {'found':>6s} {'med IoU':>8s} "
        f"{'IoU>=.9':>8s} {'area bias':>9s} {'speed-up':>8s} {'s':>6s}"
    )
    pipelines = [
        ("torchvision", theirs),
        ("labelassist", ours),
        ("la, no mirror", partial(ours, mirror=False)),
    ]
    for t in (args.mask_thresholds or "").split(","):
        if t.strip():
            pipelines.append((f"la@{float(t):g}", partial(ours, mask_threshold=float(t))))
    for data_name, data in sets.items():
        for name, fn in pipelines:
            r = _run(name, data, fn)
            print(
                f"{data_name:10s} {name:14s} {r['objects']:7d} {r['found']:6.3f} "
                f"{r['median_iou']:8.3f} {r['iou90']:8.3f} {r['bias']:+9.3f} "
                f"{r['speedup']:7.2f}x {r['seconds']:6.1f}"
            )


if __name__ == "__main__":
    main()
