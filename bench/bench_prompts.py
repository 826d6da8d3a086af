"""Benchmark: prompts through the Mask R-CNN heads — speed against `predict` and SAM, accuracy.

Speed (issue #14 item 7), ratios from one run on one 1024 x 1024 px synthetic image:

- ``encode`` (transform + backbone + FPN once) against the network forward that
  ``predict`` runs (`labelassist.model.inference.detect` with predict's limits: backbone,
  RPN, box and mask heads) and against all of ``predict`` (with the polygons);
- one box prompt -> polygon on encoded features, as a share of ``predict``'s time; the
  first point prompt (it computes the image's detections once);
- SAM ViT-B's image encoder (the ``segment-anything`` package's ``build_sam_vit_b``
  architecture, random weights: its time does not depend on them) on the same image at
  its 1024 px input; how many times sooner our first prompt is ready (``encode`` + one
  box prompt) than SAM's image embedding.

Accuracy (issue #14 item 6, box prompts on the objects the model missed): held-out
synthetic nuclei (seeds 9000+, 8- and 16-bit alternating, never trained on) and the real
hand-labelled sample (`labelassist.samples.real_nuclei`). An object is *missed* when no
proposal of ``predict`` at the default threshold matches it at mask IoU >= 0.5. For every
object (and the missed ones), a box prompt on its exact box (its polygon's bounds), on a
loose box (each side moved out by U(0, 8) px) without and with ``refine_box``, on a box with
each side moved by U(-1, 1) px (a drag or click a pixel off; its own random stream), and a click
at the point deepest inside it (the usual first-click protocol of interactive
segmentation benchmarks); reported: the share reaching mask IoU >= 0.8 and the median IoU.
"others annotated": the same exact, loose and +-1 px boxes, each with every other true object passed
as ``exclude`` (the objects already annotated when a missed one is prompted: the detected
ones accepted or corrected to the truth first). "tight": the same boxes with
``segment(..., tight=True)``, the napari plugin's extreme-clicking prompt (four clicks on the
object's extreme pixels give its exact box; a click a pixel off gives the +-1 px box); on a
loose box to show why it is only for tight ones.
``--rules`` also compares point-selection rules on the same clicks (the measurement behind
`labelassist.model.prompts`' choice), with clicks at the deepest point and uniformly
inside each object.

Run (the machine is shared: two threads, a few minutes)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_prompts.py [--images 12] [--size 256] [--rules] [--no-sam]
        [--no-speed] [--no-accuracy]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import shapely
import torch
from shapely.ops import polylabel

from labelassist import Instances, load_model, masks_to_polygons, polygons_to_masks
from labelassist.model import Model, to_tensor
from labelassist.model.inference import detect, detection_limits, inference_setup
from labelassist.model.prompts import (
    CANDIDATE_SCORE,
    DEFAULT_SCORE_THRESHOLD,
    _candidates,
    _pick,
    segment,
)
from labelassist.samples import real_nuclei
from labelassist.synthetic import synthetic_nuclei


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` calls in seconds, after one warm-up call: the least disturbed
    run (the machine is shared; the median swung by 2x between runs here)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _sam_encoder_seconds(image_size: int) -> tuple[float, str]:
    """Seconds of SAM ViT-B's image encoder on one image (random weights)."""
    try:
        from segment_anything import sam_model_registry
    except ImportError:
        return float("nan"), "segment-anything not installed (pip install segment-anything)"
    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"](checkpoint=None).eval()
    x = torch.randn(1, 3, image_size, image_size)
    with torch.inference_mode():
        seconds = _time(lambda: sam.image_encoder(x), repeat=2)
    return seconds, "segment-anything build_sam_vit_b, random weights"


def speed(model: Model, size: int, sam: bool) -> None:
    image, truth = synthetic_nuclei((size, size), seed=9100)
    print(f"== speed: one {size} x {size} px synthetic image, {len(truth)} nuclei, "
          f"{torch.get_num_threads()} threads ==")  # fmt: skip
    net, norm = model.net, model.normalization
    limits = detection_limits(net, size * size)
    tensor = to_tensor(image, normalization=norm)

    def forward() -> None:
        with inference_setup(net, 0.5):
            detect(net, [tensor], model.device, limits=limits)

    t_forward = _time(forward, repeat=3)
    t_predict = _time(lambda: model.predict(image), repeat=3)
    t_encode = _time(lambda: model.encode(image), repeat=5)
    feats = model.encode(image)
    boxes = truth.boxes[:100]
    k = iter(range(10**9))
    t_box = _time(lambda: _segment(model, feats, boxes=boxes[[next(k) % len(boxes)]]), repeat=20)
    t_box1 = _time(
        lambda: _segment(model, feats, boxes=boxes[[next(k) % len(boxes)]], box_scale=1), repeat=20
    )
    t_boxes = _time(lambda: _segment(model, feats, boxes=boxes), repeat=2)
    click = polylabel(truth.polygons[0])

    def first_point() -> None:
        model.segment(model.encode(image), points=[(click.x, click.y)])

    t_first_point = _time(first_point, repeat=3) - t_encode
    t_point = _time(lambda: model.segment(feats, points=[(click.x, click.y)]), repeat=10)
    print(f"predict (all)                 {t_predict * 1e3:8.0f} ms")
    print(f"  its network forward         {t_forward * 1e3:8.0f} ms")
    print(f"encode (backbone + FPN)       {t_encode * 1e3:8.0f} ms   "
          f"{t_encode / t_forward:.2f}x the forward (goal <= 1)")  # fmt: skip
    print(f"one box prompt -> polygon     {t_box * 1e3:8.1f} ms   "
          f"{100 * t_box / t_predict:.2f} % of predict (goal <= 5 %)")  # fmt: skip
    print(f"  the same with box_scale=1   {t_box1 * 1e3:8.1f} ms")
    print(f"{len(boxes)} box prompts in one call  {t_boxes * 1e3:8.0f} ms   "
          f"{t_boxes / len(boxes) * 1e3:.2f} ms each")  # fmt: skip
    print(f"first point prompt (detections once) {t_first_point * 1e3:6.0f} ms after encode")
    print(f"later point prompts           {t_point * 1e3:8.1f} ms")
    first_ready = t_encode + t_box
    print(f"first box prompt ready        {first_ready * 1e3:8.0f} ms (encode + one box)")
    if sam:
        t_sam, what = _sam_encoder_seconds(1024)
        print(f"SAM ViT-B image encoder       {t_sam * 1e3:8.0f} ms   ({what}, 1024 px)")
        print(f"our first prompt is ready {t_sam / first_ready:.1f}x sooner (goal >= 10x)")


# -- accuracy -----------------------------------------------------------------------------


def _iou(a, b) -> float:
    if a.is_empty or b.is_empty:
        return 0.0
    return float(a.intersection(b).area / a.union(b).area)


def _mask_iou(a, b, shape) -> float:
    """IoU of the two polygons rasterised in the COCO pixel convention (pycocotools')."""
    if a.is_empty or b.is_empty:
        return 0.0
    ma, mb = polygons_to_masks([a, b], shape)
    return float((ma & mb).sum() / max((ma | mb).sum(), 1))


def _segment(model: Model, feats, **kwargs) -> Instances:
    """``model.segment`` with the model's object size (what box_scale="auto" reads) and
    mask threshold."""
    kwargs.setdefault("mask_threshold", model.mask_threshold)
    return segment(
        model.net,
        feats,
        label_ids=model.meta["label_ids"],
        classes=model.classes,
        normalization=model.normalization,
        device=model.device,
        object_size=model.object_size,
        **kwargs,
    )


def _deepest(polygon) -> tuple[float, float]:
    part = max(getattr(polygon, "geoms", [polygon]), key=lambda p: p.area)
    p = polylabel(part, tolerance=0.1)
    return p.x, p.y


def _uniform(polygon, rng: np.random.Generator) -> tuple[float, float]:
    inner = polygon.buffer(-1.0)
    inner = polygon if inner.is_empty else inner
    x0, y0, x1, y1 = inner.bounds
    while True:
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if inner.contains(shapely.Point(x, y)):
            return x, y


def extreme_clicks(polygon, shape: tuple[int, int]) -> np.ndarray:
    """x, y (4, 2) of clicks at the centres of an object's leftmost, topmost, rightmost and
    bottommost pixels (the middle pixel of each extreme run), rasterised as pycocotools does."""
    rows, cols = np.nonzero(polygons_to_masks([polygon], shape)[0])
    picks = []
    for along, across, end in ((cols, rows, cols.min()), (rows, cols, rows.min()),
                               (cols, rows, cols.max()), (rows, cols, rows.max())):  # fmt: skip
        run = np.sort(across[along == end])
        middle = run[len(run) // 2]
        picks.append((end, middle) if along is cols else (middle, end))
    return np.array(picks, dtype=np.float64) + 0.5


def _data(images: int, size: int) -> dict[str, list[tuple[np.ndarray, Instances]]]:
    synthetic = [
        synthetic_nuclei((size, size), seed=9000 + k, dtype=np.uint16 if k % 2 else np.uint8)
        for k in range(images)
    ]
    image, labels = real_nuclei(labels=True)
    ids = [i for i in np.unique(labels) if i]
    polygons = masks_to_polygons(np.stack([labels == i for i in ids]), tolerance=0)
    real = [(image, Instances(polygons, None, None, labels.shape))]
    return {"synthetic": synthetic, "real": real}


def accuracy(model: Model, data: dict[str, list[tuple[np.ndarray, Instances]]]) -> None:
    print("\n== accuracy: share of objects at IoU >= 0.8 (median IoU); polygon IoU | mask IoU ==")
    rng = np.random.default_rng(0)
    off_rng = np.random.default_rng(1)  # its own stream: the loose boxes stay as they were
    header = (
        f"{'data':10s} {'objects':>14s} {'prompt':56s} {'IoU>=0.8':>8s} {'median':>7s} | "
        f"{'mask>=0.8':>9s} {'>=0.9':>6s} {'median':>7s}"
    )
    print(header)
    for name, sets in data.items():
        rows: dict[str, list[tuple[float, float]]] = {}
        missed: list[bool] = []
        scores: list[float] = []
        for image, truth in sets:
            pred = model.predict(image)
            best = [max([_iou(t, p) for p in pred.polygons] or [0.0]) for t in truth.polygons]
            missed += [b < 0.5 for b in best]
            feats = model.encode(image)
            h, w = truth.image_shape
            slack = rng.uniform(0, 8, truth.boxes.shape) * np.array([-1, -1, 1, 1])
            loose = np.clip(truth.boxes + slack, 0, [w, h, w, h])
            off = np.clip(truth.boxes + off_rng.uniform(-1, 1, truth.boxes.shape), 0, [w, h, w, h])
            off[:, 2:] = np.minimum(np.maximum(off[:, 2:], off[:, :2] + 1), [w, h])
            off[:, :2] = np.minimum(off[:, :2], off[:, 2:] - 1)  # at least 1 px wide and high
            clicks = np.stack([extreme_clicks(p, (h, w)) for p in truth.polygons])
            runs = {
                "box (exact)": {"boxes": truth.boxes},
                "box (exact, box_scale=1)": {"boxes": truth.boxes, "box_scale": 1},
                "box (loose)": {"boxes": loose},
                "box (loose, box_scale=1)": {"boxes": loose, "box_scale": 1},
                "box (loose, refine_box)": {"boxes": loose, "refine_box": True},
                "box (sides +-1 px)": {"boxes": off},
                "box (exact, tight)": {"boxes": truth.boxes, "tight": True},
                "box (loose, tight)": {"boxes": loose, "tight": True},
                "box (loose, loose=True)": {"boxes": loose, "loose": True},
                "extreme points": {"extreme_points": clicks},
                "click (deepest point)": {"points": [_deepest(p) for p in truth.polygons]},
            }
            polys = list(truth.polygons)
            runs["extreme points, others annotated"] = {
                "extreme_points": clicks,
                "exclude": "others",
            }
            for prompt, boxes in (("box (exact), others annotated", truth.boxes),
                                  ("box (loose), others annotated", loose),
                                  ("box (sides +-1 px), others annotated", off)):  # fmt: skip
                runs[prompt] = {"boxes": boxes, "exclude": "others"}
                runs[prompt.replace("),", ", tight),")] = {
                    "boxes": boxes, "exclude": "others", "tight": True
                }  # fmt: skip
                runs[prompt.replace("),", ", loose=True),")] = {
                    "boxes": boxes, "exclude": "others", "loose": True
                }  # fmt: skip
            for prompt, kwargs in runs.items():
                if kwargs.get("exclude") == "others":  # one call per object: its own exclude
                    prompts = [key for key in ("boxes", "extreme_points") if key in kwargs]
                    found = [
                        _segment(model, feats, **{key: kwargs[key][[k]] for key in prompts},
                                 exclude=polys[:k] + polys[k + 1 :],
                                 tight=kwargs.get("tight", False),
                                 loose=kwargs.get("loose", False)).polygons[0]
                        for k in range(len(polys))
                    ]  # fmt: skip
                    out = Instances(found, None, None, (h, w))
                else:
                    out = _segment(model, feats, **kwargs)
                rows.setdefault(prompt, []).extend(
                    (_iou(t, p), _mask_iou(t, p, (h, w)))
                    for t, p in zip(truth.polygons, out.polygons, strict=True)
                )
                if prompt == "box (exact)":
                    scores += out.scores.tolist()
        miss = np.array(missed)
        for prompt, values in rows.items():
            v = np.array(values)
            for label, sel in (("all", np.ones_like(miss)), ("missed", miss)):
                if sel.any():
                    g, m = v[sel, 0], v[sel, 1]
                    print(f"{name:10s} {label + ' ' + str(int(sel.sum())):>14s} {prompt:56s} "
                          f"{np.mean(g >= 0.8):8.3f} {np.median(g):7.3f} | {np.mean(m >= 0.8):9.3f} "
                          f"{np.mean(m >= 0.9):6.3f} {np.median(m):7.3f}")  # fmt: skip
        s = np.array(scores)[miss]
        if len(s):
            print(f"{name:10s} missed objects' box-prompt scores: median {np.median(s):.3f}, "
                  f"share below the default score_threshold "
                  f"{np.mean(s < DEFAULT_SCORE_THRESHOLD):.3f}")  # fmt: skip


# -- point rules ---------------------------------------------------------------------------


def _covering(model: Model, feats, point) -> list[tuple[float, float, float, object]]:
    """(score, area, centroid distance, polygon) of every candidate whose mask covers
    ``point`` (the candidates `segment` chooses from)."""
    enc = feats.encode_window(feats.window_for(np.tile(point, 2)))
    opts = {"mask_threshold": 0.5, "tolerance": None}
    with inference_setup(model.net, CANDIDATE_SCORE):
        _pick(model.net, enc, np.asarray(point), np.zeros(0), np.array([1]), 0.0,
              model.device, opts)  # fmt: skip
        cand = _candidates(model.net, enc, model.device)
    target = shapely.Point(point)
    out = []
    for k, poly in cand["polygons"][(0.5, None)].items():
        if poly.covers(target):
            out.append((float(cand["scores"][k]), poly.area, poly.centroid.distance(target), poly))
    return out


RULES: dict[str, Callable[[float, float, float], float]] = {
    "highest score": lambda s, a, d: s,
    "nearest centre": lambda s, a, d: -d,
    "centre / sqrt(score)": lambda s, a, d: -d / np.sqrt(s),
    **{
        f"score x Gaussian click, spread {c}": (
            lambda s, a, d, c=c: s * np.exp(-0.5 * (d / np.sqrt(a / np.pi) / c) ** 2)
        )
        for c in (0.2, 0.3, 0.5)
    },
}


def rules(model: Model, data: dict[str, list[tuple[np.ndarray, Instances]]]) -> None:
    print("\n== point rules: share of clicks giving their object at IoU >= 0.5 / >= 0.8 ==")
    rng = np.random.default_rng(5)
    for click_name, click in (("deepest point", _deepest), ("uniform inside", None)):
        results: dict[tuple[str, str, str], list[float]] = {}
        for name, sets in data.items():
            for image, truth in sets:
                pred = model.predict(image)
                feats = model.encode(image)
                for t in truth.polygons:
                    missed = max([_iou(t, p) for p in pred.polygons] or [0.0]) < 0.5
                    point = click(t) if click is not None else _uniform(t, rng)
                    cands = _covering(model, feats, point)
                    ious = {
                        rule: _iou(t, max(cands, key=lambda c: key(*c[:3]))[3]) if cands else 0.0
                        for rule, key in RULES.items()
                    }
                    ious["(best candidate: an upper bound)"] = max(
                        [_iou(t, c[3]) for c in cands] or [0.0]
                    )
                    ious["(no candidate under the click)"] = 0.0 if cands else 1.0
                    for rule, iou in ious.items():
                        for group in ("all", "missed") if missed else ("all",):
                            results.setdefault((rule, name, group), []).append(iou)
        print(f"clicks at the {click_name}")
        for rule in [*RULES, "(best candidate: an upper bound)", "(no candidate under the click)"]:
            cells = []
            for name in data:
                for group in ("all", "missed"):
                    v = np.array(results.get((rule, name, group), [np.nan]))
                    cells.append(f"{name} {group} {np.mean(v >= 0.5):.3f}/{np.mean(v >= 0.8):.3f}")
            print(f"  {rule:32s} " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12, help="held-out synthetic images")
    parser.add_argument("--size", type=int, default=256, help="synthetic image size")
    parser.add_argument("--speed-size", type=int, default=1024, help="image size for speed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rules", action="store_true", help="compare point-selection rules")
    parser.add_argument("--no-sam", action="store_true", help="skip SAM's encoder (slow)")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("starter", device="cpu")
    if not args.no_speed:
        speed(model, args.speed_size, sam=not args.no_sam)
    if not args.no_accuracy or args.rules:
        data = _data(args.images, args.size)
        if not args.no_accuracy:
            accuracy(model, data)
        if args.rules:
            rules(model, data)


if __name__ == "__main__":
    main()
