"""Probe: how far box prompts and refinement can go on what the starter gets wrong (issue #14).

Issue #14 asks box prompts to reach mask IoU >= 0.8 on >= 90 % of the objects ``predict``
missed, and prompts + refinement to save >= 1.5x the seconds of pre-annotation + manual fixes
(bench_effort.py). This script measures upper bounds and the remaining levers on the data of
`bench_prompts.py` (12 held-out synthetic 256 px images, seeds 9000+, and the real sample);
an object is *missed* when no ``predict`` proposal reaches polygon IoU 0.5 with it.

``--part missed``: each missed object's exact box, the other true objects as ``exclude`` (the
plugin's default state); mask IoU of the prompt at the model's threshold, of the best
threshold in 0.2-0.8 chosen per object with the truth (an upper bound of any threshold rule),
and of two image thresholds in the box (Otsu, the 30th percentile; on the image smoothed by
0.7 px, less the excluded pixels, largest component, holes filled). The real sample's
objects are listed one by one.

``--part fit``: a threshold rule that needs no truth, for boxes that are tight: per box, the
threshold within +-0.1 or +-0.2 of the model's whose mask's bounding box fits the box best
(box IoU; ties to the model's). Exact boxes, boxes with each side moved by U(-1, 1) or
U(-2, 2) px (clicks a pixel or two off), and loose ones (0-8 px out, as bench_prompts.py).

``--part refine``: ``predict``'s proposals matched one-to-one to the truth (bench_effort.py's
rule); of those at IoU 0.5-0.9 (the ones an annotator fixes) the share that reaches 0.9 after
a one-press refinement, and of those at >= 0.9 the share still there: GrabCut
(`labelassist.refine.refine_edges`, the shipped one), a local half-maximum threshold in a
+-2 px band around the outline (inside: the median of the mask eroded 2 px; outside: the
median of a 3-5 px ring less the neighbours), and the box prompt on the proposal's own box
at ``box_scale`` 1, 1.5 and 2 (re-segmenting the object zoomed in).

Run (one thread each; about 4, 10 and 5 minutes)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/probe_prompt_limits.py --part missed|fit|refine [--model FILE]
        [--picture docs/prompts_missed.png]  # with --part missed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import shapely
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_effort import mask_iou, match  # noqa: E402
from bench_prompts import _data, _iou, _segment  # noqa: E402

from labelassist import load_model, masks_to_polygons, polygons_to_masks  # noqa: E402
from labelassist.model import Model, intensity_range  # noqa: E402

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _miou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _raster(polygon, shape: tuple[int, int]) -> np.ndarray:
    if polygon.is_empty:
        return np.zeros(shape, dtype=bool)
    return polygons_to_masks([polygon], shape)[0]


def _missed(model: Model, image: np.ndarray, truth) -> list[int]:
    pred = model.predict(image)
    return [
        i
        for i, t in enumerate(truth.polygons)
        if max([_iou(t, p) for p in pred.polygons] or [0.0]) < 0.5
    ]


def _gray(image: np.ndarray) -> np.ndarray:
    img = image.astype(np.float64)
    return img if img.ndim == 2 else img[..., :3].mean(-1)


def _image_threshold(smooth: np.ndarray, allowed: np.ndarray, rule: str) -> np.ndarray:
    """The pixels of ``allowed`` above a threshold of their own intensities (largest part)."""
    from skimage.filters import threshold_otsu

    values = smooth[allowed]
    if len(np.unique(values)) < 2:
        return np.zeros_like(allowed)
    level = threshold_otsu(values) if rule == "otsu" else np.percentile(values, 30)
    mask = allowed & (smooth > level)
    parts, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, parts, range(1, n + 1))
        mask = parts == 1 + int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)


def _crop(image, box, own, others, prompted, iou) -> tuple:
    """The region around ``box`` (12 px margin) of the image and the three masks."""
    h, w = own.shape
    x0, y0, x1, y1 = np.asarray(box, dtype=int)
    rows = slice(max(y0 - 12, 0), min(y1 + 12, h))
    cols = slice(max(x0 - 12, 0), min(x1 + 12, w))
    gray = _gray(image)[rows, cols]
    return gray, own[rows, cols], others[rows, cols], prompted[rows, cols], iou


def _save_picture(crops: list[tuple], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(crops), figsize=(2.6 * len(crops), 3.2), squeeze=False)
    for ax, (gray, own, others, prompted, iou) in zip(axes[0], crops, strict=True):
        ax.imshow(gray, cmap="gray")
        for mask, colour in ((others, "cyan"), (own, "lime"), (prompted, "red")):
            if mask.any():
                ax.contour(mask, [0.5], colors=colour, linewidths=1.2)
        ax.set_title(f"mask IoU {iou:.2f}", fontsize=10)
        ax.axis("off")
    fig.suptitle("real sample, missed by predict: truth (green), box prompt (red), others (cyan)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def part_missed(model: Model, data, picture: str | None = None) -> None:
    print("== missed objects, exact box, the others annotated: share at mask IoU >= 0.8 ==")
    crops: list[tuple] = []
    for name, sets in data.items():
        rows = []
        for image, truth in sets:
            h, w = truth.image_shape
            polys = list(truth.polygons)
            gt = polygons_to_masks(polys, (h, w))
            feats = model.encode(image)
            smooth = ndimage.gaussian_filter(_gray(image), 0.7)
            for i in _missed(model, image, truth):
                others = np.delete(gt, i, axis=0).any(axis=0)
                ious = {}
                for t in sorted({*THRESHOLDS, model.mask_threshold}):
                    out = _segment(model, feats, boxes=truth.boxes[[i]],
                                   exclude=polys[:i] + polys[i + 1 :], mask_threshold=t)  # fmt: skip
                    ious[t] = _miou(gt[i], _raster(out.polygons[0], (h, w)))
                x0, y0, x1, y1 = truth.boxes[i]
                inbox = np.zeros((h, w), dtype=bool)  # pixel centres inside the box
                inbox[int(np.ceil(y0 - 0.5)) : int(np.floor(y1 - 0.5)) + 1,
                      int(np.ceil(x0 - 0.5)) : int(np.floor(x1 - 0.5)) + 1] = True  # fmt: skip
                otsu = _miou(gt[i], _image_threshold(smooth, inbox & ~others, "otsu"))
                p30 = _miou(gt[i], _image_threshold(smooth, inbox & ~others, "p30"))
                default = ious[model.mask_threshold]
                best = max(ious.values())
                edge = min(x0, y0, w - x1, h - y1) <= 1
                rows.append((default, best, otsu, p30, max(best, otsu, p30), gt[i].sum(),
                             x1 - x0, y1 - y0, edge))  # fmt: skip
                if name == "real" and picture is not None and default < 0.8:
                    out = _segment(model, feats, boxes=truth.boxes[[i]],
                                   exclude=polys[:i] + polys[i + 1 :])  # fmt: skip
                    crops.append(_crop(image, truth.boxes[i], gt[i], others,
                                       _raster(out.polygons[0], (h, w)), default))  # fmt: skip
        r = np.array(rows)
        share = np.mean(r[:, :5] >= 0.8, axis=0)
        print(f"{name:10s} {len(r):3d} missed: model's threshold {share[0]:.3f}, best threshold "
              f"per object {share[1]:.3f}, Otsu in the box {share[2]:.3f}, 30th percentile "
              f"{share[3]:.3f}, best of all {share[4]:.3f}")  # fmt: skip
        if name == "real":
            for row in r[np.argsort(r[:, 0])]:
                print(f"    IoU {row[0]:.3f}  best threshold {row[1]:.3f}  Otsu {row[2]:.3f}  "
                      f"p30 {row[3]:.3f}  area {row[5]:3.0f} px  box {row[6]:2.0f} x {row[7]:2.0f}"
                      + ("  at the image edge" if row[8] else ""))  # fmt: skip
    if picture is not None and crops:
        _save_picture(crops, picture)
        print(f"picture of the real missed objects below 0.8: {picture}")


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return float(ix * iy / union) if union > 0 else 0.0


def part_fit(model: Model, data) -> None:
    base = model.mask_threshold
    steps = [round(base + d, 2) for d in (-0.2, -0.1, 0.0, 0.1, 0.2)]
    print(f"== threshold fitted to the box (model's {base}), the others annotated: share at "
          "mask IoU >= 0.8, all objects | missed ==")  # fmt: skip
    print(f"{'data':10s} {'boxes':14s} {'model':>6s} {'+-0.1':>6s} {'+-0.2':>6s} {'best':>6s} | "
          f"{'model':>6s} {'+-0.1':>6s} {'+-0.2':>6s} {'best':>6s}")  # fmt: skip
    rng = np.random.default_rng(0)
    for name, sets in data.items():
        res: dict[str, list[tuple[bool, list[float]]]] = {}
        for image, truth in sets:
            h, w = truth.image_shape
            polys = list(truth.polygons)
            gt = polygons_to_masks(polys, (h, w))
            missed = set(_missed(model, image, truth))
            feats = model.encode(image)
            exact = truth.boxes
            kinds = {"exact": exact}
            for px in (1, 2):
                moved = np.clip(exact + rng.uniform(-px, px, exact.shape), 0, [w, h, w, h])
                moved[:, 2:] = np.maximum(moved[:, 2:], moved[:, :2] + 1)
                kinds[f"sides +-{px} px"] = moved
            slack = rng.uniform(0, 8, exact.shape) * np.array([-1, -1, 1, 1])
            kinds["loose 0-8 px"] = np.clip(exact + slack, 0, [w, h, w, h])
            for kind, boxes in kinds.items():
                for i in range(len(polys)):
                    ious, fits = {}, {}
                    for t in steps:
                        out = _segment(model, feats, boxes=boxes[[i]],
                                       exclude=polys[:i] + polys[i + 1 :], mask_threshold=t)  # fmt: skip
                        poly = out.polygons[0]
                        ious[t] = _miou(gt[i], _raster(poly, (h, w)))
                        fits[t] = 0.0 if poly.is_empty else _box_iou(poly.bounds, boxes[i])
                    row = [ious[base]]
                    for window in (0.1, 0.2):
                        near = [t for t in steps if abs(t - base) <= window + 1e-9]
                        pick = max(near, key=lambda t: (round(fits[t], 3), -abs(t - base)))
                        row.append(ious[pick])
                    row.append(max(ious.values()))
                    res.setdefault(kind, []).append((i in missed, row))
        for kind, rows in res.items():
            miss = np.array([m for m, _ in rows])
            v = np.array([r for _, r in rows]) >= 0.8
            m = v[miss].mean(axis=0) if miss.any() else np.full(4, np.nan)
            print(f"{name:10s} {kind:14s} " + " ".join(f"{x:6.3f}" for x in v.mean(axis=0))
                  + f" | {' '.join(f'{x:6.3f}' for x in m)}  ({len(v)} / {int(miss.sum())})")  # fmt: skip


def _half_maximum(polygon, smooth: np.ndarray, near: list, band: int = 2):
    """The outline moved (at most ``band`` px) to the local half-maximum intensity."""
    h, w = smooth.shape
    x0, y0, x1, y1 = polygon.bounds
    x0, y0 = max(int(x0) - 6, 0), max(int(y0) - 6, 0)
    x1, y1 = min(int(np.ceil(x1)) + 6, w), min(int(np.ceil(y1)) + 6, h)
    origin = np.array([x0, y0], dtype=np.float64)
    local = [shapely.transform(p, lambda xy: xy - origin) for p in [polygon, *near]]
    masks = polygons_to_masks(local, (y1 - y0, x1 - x0))
    own, others = masks[0], masks[1:].any(axis=0)
    if own.sum() < 4:
        return polygon
    crop = smooth[y0:y1, x0:x1]
    inside = ndimage.distance_transform_edt(own)
    outside = ndimage.distance_transform_edt(~own)
    core = inside > 2 if (inside > 2).sum() >= 3 else own
    ring = (outside > 2) & (outside <= 5) & ~others
    if ring.sum() < 3:
        return polygon
    fg, bg = np.median(crop[core]), np.median(crop[ring])
    level = (fg + bg) / 2
    new = (crop > level) if fg > bg else (crop < level)
    new = ((new & (outside <= band)) | (inside > band)) & ~others
    parts, n = ndimage.label(new)
    if n > 1:
        keep = np.zeros(n + 1, dtype=bool)
        keep[np.unique(parts[own & new])] = True
        keep[0] = False
        new = keep[parts]
    new = ndimage.binary_fill_holes(new)
    if new.sum() < 4:
        return polygon
    return masks_to_polygons(new, offset=(x0, y0))[0]


def part_refine(model: Model, data) -> None:
    from labelassist.refine import refine_edges

    print("== one-press refinement of predict's proposals: to fix (IoU 0.5-0.9) reaching 0.9 | "
          "good (>= 0.9) staying ==")  # fmt: skip
    methods = ("none", "GrabCut (shipped)", "half maximum", "box prompt x1", "box prompt x1.5",
               "box prompt x2")  # fmt: skip
    for name, sets in data.items():
        res: dict[tuple[bool, str], list[float]] = {}
        for image, truth in sets:
            h, w = truth.image_shape
            pred = model.predict(image)
            props, polys = list(pred.polygons), list(truth.polygons)
            iou = mask_iou(polys, props, (h, w))
            pairs = match(iou)
            grabcut = list(refine_edges(image, pred, normalization=model.normalization).polygons)
            limits = intensity_range(image, normalization=model.normalization)
            gray = (_gray(image) - limits[0]) / max(limits[1] - limits[0], 1e-9)
            smooth = ndimage.gaussian_filter(gray, 1.0)
            feats = model.encode(image)
            js = list(pairs.values())
            zoomed = {
                s: list(_segment(model, feats, boxes=pred.boxes[js], box_scale=s).polygons)
                for s in (1, 1.5, 2)
            }
            for k, (i, j) in enumerate(pairs.items()):
                near = [p for q, p in enumerate(props) if q != j and p.distance(props[j]) < 8]
                results = {
                    "none": props[j],
                    "GrabCut (shipped)": grabcut[j],
                    "half maximum": _half_maximum(props[j], smooth, near),
                    **{f"box prompt x{s}": zoomed[s][k] for s in (1, 1.5, 2)},
                }
                for method, poly in results.items():
                    got = mask_iou([polys[i]], [poly], (h, w))[0, 0]
                    res.setdefault((iou[i, j] >= 0.9, method), []).append(got)
        n_fix, n_good = len(res[(False, "none")]), len(res[(True, "none")])
        print(f"{name}: {n_fix} proposals to fix, {n_good} good")
        for method in methods:
            fix, good = np.array(res[(False, method)]), np.array(res[(True, method)])
            print(f"    {method:18s} to fix -> >= 0.9 {np.mean(fix >= 0.9):.3f} (median "
                  f"{np.median(fix):.3f}) | good staying {np.mean(good >= 0.9):.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("missed", "fit", "refine"), required=True)
    parser.add_argument("--model", default="starter", help="starter (default) or a model file")
    parser.add_argument("--images", type=int, default=12, help="synthetic images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--picture", help="--part missed: save the real sample's failures (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    data = _data(args.images, 256)
    if args.part == "missed":
        part_missed(model, data, args.picture)
    else:
        {"fit": part_fit, "refine": part_refine}[args.part](model, data)


if __name__ == "__main__":
    main()
