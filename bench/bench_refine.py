"""Benchmark: does GrabCut edge refinement (`labelassist.refine.refine_edges`) bring proposals closer to the truth.

Proposals come from the shipped starter model (``load_model("starter").predict(image,
score_threshold=0.5)``). Each true object is matched to the proposal with the highest mask
IoU (both rasterized with `labelassist.geometry.polygons_to_masks`, COCO pixel
convention); objects whose best proposal reaches IoU >= 0.5 are scored, the rest are
missed and not scored (refinement cannot find objects). The *same* proposal, refined, is
scored against the same object, so every row of one data set covers the same objects.

Rows, all in one run on the same proposals:

- ``proposals``: the unrefined proposals (the baseline);
- ``erode 1px``: the proposals' masks eroded by one pixel (3 x 3 cross), a reference for
  what a trivial fix of a one-pixel size bias gives;
- ``bB itI sS``: `refine_edges` with ``band=B, iterations=I, smoothing=S`` (other settings
  default; ``b1 it2 s0.7`` are the defaults).

Columns, per data set and object size (true area: small < 100 px, medium 100-399 px,
large >= 400 px, all): scored objects, mean and median mask IoU, share at IoU >= 0.9,
boundary F1 at 1 and 2 px tolerance (mean over objects), median area bias ``(area -
true area) / true area``, share of objects whose IoU went up / down by more than 0.01
against the proposals, share refined (``extra["refined"]``), and milliseconds of
`refine_edges` per object (whole images, all their proposals).

Boundary F1 at tolerance d: the boundary of a mask is its pixels with a 4-neighbour
outside it (the image edge is not a boundary); precision is the share of predicted
boundary pixels within Euclidean distance d of a true boundary pixel (scipy distance
transform), recall the share of true boundary pixels within d of a predicted one, F1 their
harmonic mean.

Data: held-out synthetic nuclei (`labelassist.synthetic.synthetic_nuclei`, seeds 9000+,
never used to train the starter, 8- and 16-bit alternating; exact ground truth) and the real
hand-labelled fluorescence image `labelassist.samples.real_nuclei` (never trained on).

Run (prints the table, with the date, so it is easy to re-run after model changes)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_refine.py [--images 24] [--size 256] \\
        [--configs 1x2 1x2s0 2x5 ...]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from labelassist import Instances, load_model, polygons_to_masks
from labelassist.refine import refine_edges
from labelassist.samples import real_nuclei
from labelassist.synthetic import synthetic_nuclei

SIZES = (("small", 0, 100), ("medium", 100, 400), ("large", 400, np.inf), ("all", 0, np.inf))
# band x iterations [s smoothing]; 1x2 (smoothing 0.7) are refine_edges' defaults
DEFAULT_CONFIGS = ("1x2", "1x2s0", "1x5", "2x2", "2x2s0", "2x2s1.5", "3x2")
CROSS = ndimage.generate_binary_structure(2, 1)


def _real() -> list[tuple[np.ndarray, np.ndarray]]:
    image, labels = real_nuclei(labels=True)
    ids = [i for i in np.unique(labels) if i]
    return [(image, np.stack([labels == i for i in ids]))]


def _synthetic(n: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for k in range(n):
        dtype = np.uint16 if k % 2 else np.uint8
        image, truth = synthetic_nuclei((size, size), seed=9000 + k, dtype=dtype)
        out.append((image, truth.masks()))
    return out


def _match(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per true object: index of the proposal with the best mask IoU, and that IoU."""
    if len(pred) == 0:
        return np.zeros(len(truth), np.intp), np.zeros(len(truth))
    t = truth.reshape(len(truth), -1).astype(np.float32)
    p = pred.reshape(len(pred), -1).astype(np.float32)
    inter = t @ p.T
    union = t.sum(1)[:, None] + p.sum(1)[None] - inter
    iou = inter / np.maximum(union, 1)
    best = iou.argmax(1)
    return best, iou[np.arange(len(truth)), best]


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, CROSS, border_value=1)


def _boundary_f1(pred: np.ndarray, truth: np.ndarray, tolerances: tuple[float, ...]) -> list[float]:
    """Boundary F1 of two masks (full image) at each tolerance, computed in their joint box
    grown by a few pixels."""
    rows, cols = np.nonzero(pred | truth)
    pad = int(max(tolerances)) + 2
    sl = (
        slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
        slice(max(cols.min() - pad, 0), cols.max() + pad + 1),
    )
    pb, tb = _boundary(pred[sl]), _boundary(truth[sl])
    if not pb.any() or not tb.any():
        return [0.0 for _ in tolerances]
    to_truth = ndimage.distance_transform_edt(~tb)
    to_pred = ndimage.distance_transform_edt(~pb)
    out = []
    for d in tolerances:
        precision = float((to_truth[pb] <= d).mean())
        recall = float((to_pred[tb] <= d).mean())
        out.append(
            0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        )
    return out


def _score(masks: np.ndarray, truth: np.ndarray, best: np.ndarray, found: np.ndarray) -> dict:
    """Per scored object: IoU, boundary F1 at 1 and 2 px, area bias (of the matched mask)."""
    iou, f1, f2, bias = [], [], [], []
    for t in np.flatnonzero(found):
        p, g = masks[best[t]], truth[t]
        inter = np.count_nonzero(p & g)
        union = np.count_nonzero(p | g)
        iou.append(inter / union)
        b1, b2 = _boundary_f1(p, g, (1.0, 2.0))
        f1.append(b1)
        f2.append(b2)
        area = np.count_nonzero(g)
        bias.append((np.count_nonzero(p) - area) / area)
    return {"iou": iou, "bf1": f1, "bf2": f2, "bias": bias}


def _evaluate(data: list, matches: list, per_image_masks: list[np.ndarray]) -> dict:
    """`_score` over all images of a data set, concatenated."""
    total: dict[str, list] = {"iou": [], "bf1": [], "bf2": [], "bias": []}
    for (_, truth), m, (best, iou) in zip(data, per_image_masks, matches, strict=True):
        s = _score(m, truth, best, iou >= 0.5)
        for key in total:
            total[key] += s[key]
    return total


def _row(name: str, scores: dict, base_iou: np.ndarray, areas: np.ndarray, extra: dict) -> list:
    lines = []
    iou = np.asarray(scores["iou"])
    for size, lo, hi in SIZES:
        sel = (areas >= lo) & (areas < hi)
        if not sel.any():
            continue
        d = iou[sel] - base_iou[sel]
        lines.append(
            f"  {name:14s} {size:6s} {sel.sum():5d} {iou[sel].mean():6.3f} "
            f"{np.median(iou[sel]):6.3f} {(iou[sel] >= 0.9).mean():6.3f} "
            f"{np.mean(np.asarray(scores['bf1'])[sel]):6.3f} "
            f"{np.mean(np.asarray(scores['bf2'])[sel]):6.3f} "
            f"{np.median(np.asarray(scores['bias'])[sel]):+7.3f} "
            f"{(d > 0.01).mean():5.2f} {(d < -0.01).mean():5.2f} "
            f"{extra.get('refined', float('nan')):5.2f} {extra.get('ms', float('nan')):6.2f}"
        )
    return lines


def _config(text: str) -> tuple[int, int, float]:
    """``BANDxITERATIONS`` or ``BANDxITERATIONSsSMOOTHING`` (default smoothing 0.7)."""
    band, rest = text.lower().split("x")
    iterations, _, smoothing = rest.partition("s")
    return int(band), int(iterations), float(smoothing or 0.7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24, help="held-out synthetic images")
    parser.add_argument("--size", type=int, default=256, help="synthetic image size")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--configs",
        nargs="+",
        type=_config,
        default=[_config(c) for c in DEFAULT_CONFIGS],
        help="refinement settings BANDxITERATIONS[sSMOOTHING], e.g. 1x2 or 2x5s0",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit = "?"
    print(
        f"bench_refine  {datetime.datetime.now().isoformat(timespec='minutes')}  "
        f"commit {commit or '?'}  images {args.images} x {args.size}^2 + real  "
        f"score_threshold {args.score_threshold}"
    )
    model = load_model("starter")
    sets = {"synthetic": _synthetic(args.images, args.size), "real": _real()}
    header = (
        f"  {'method':14s} {'size':6s} {'objs':>5s} {'meanIoU':>6s} {'medIoU':>6s} "
        f"{'IoU.9':>6s} {'BF1@1':>6s} {'BF1@2':>6s} {'bias':>7s} {'up':>5s} {'down':>5s} "
        f"{'refd':>5s} {'ms/obj':>6s}"
    )
    for data_name, data in sets.items():
        proposals: list[Instances] = []
        for image, _ in data:
            proposals.append(model.predict(image, score_threshold=args.score_threshold))
        masks = [polygons_to_masks(p.polygons, p.image_shape) for p in proposals]
        matches = [_match(truth, m) for (_, truth), m in zip(data, masks, strict=True)]
        n_true = sum(len(t) for _, t in data)
        n_found = sum(int((iou >= 0.5).sum()) for _, iou in matches)
        print(f"\n{data_name}: {n_true} true objects, {n_found} matched at IoU >= 0.5 (scored)")
        print(header)

        areas = np.concatenate(
            [t[iou >= 0.5].sum((1, 2)) for (_, t), (_, iou) in zip(data, matches, strict=True)]
        )
        base = _evaluate(data, matches, masks)
        base_iou = np.asarray(base["iou"])
        for line in _row("proposals", base, base_iou, areas, {}):
            print(line)
        eroded = [
            np.stack([ndimage.binary_erosion(x, CROSS) for x in m]) if len(m) else m for m in masks
        ]
        for line in _row("erode 1px", _evaluate(data, matches, eroded), base_iou, areas, {}):
            print(line)
        for band, iterations, smoothing in args.configs:
            seconds, refined_masks, refined, count = 0.0, [], 0, 0
            for (image, _), p in zip(data, proposals, strict=True):
                t0 = time.perf_counter()
                r = refine_edges(image, p, band=band, iterations=iterations, smoothing=smoothing)
                seconds += time.perf_counter() - t0
                refined += int(r.extra["refined"].sum())
                count += len(r)
                refined_masks.append(polygons_to_masks(r.polygons, r.image_shape))
            extra = {"refined": refined / max(count, 1), "ms": 1000 * seconds / max(count, 1)}
            name = f"b{band} it{iterations} s{smoothing:g}"
            for line in _row(name, _evaluate(data, matches, refined_masks), base_iou, areas, extra):
                print(line)


if __name__ == "__main__":
    main()
