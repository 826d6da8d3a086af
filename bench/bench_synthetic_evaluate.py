"""Benchmark the synthetic generator and `evaluate_predictions` against in-run baselines.

1. ``synthetic_nuclei`` (default settings, uint8) per image size, against reading the
   same image back from a PNG file (``labelassist.io.image.read_image``): is generating a
   training image on the fly cheaper than loading one?
2. ``evaluate_predictions`` on dense images (about 300 nuclei each; predictions are the
   ground truth shifted by one pixel, 10 % dropped, 10 % false positives), end to end
   (RLE encoding included), against pycocotools ``COCOeval`` run on the same, already
   encoded annotations (encoding not included) with

   - stock parameters (4 area ranges, ``maxDets=[1, 10, 100]``) + ``summarize()``: what
     most code does; its AP is capped by the 100 detections per image;
   - ``maxDets=[1, 100, 1000]`` + ``summarize()``: correct figures, 4 area ranges.

Times are medians of repeats (the machine is shared and noisy).

Run::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_synthetic_evaluate.py --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from shapely import affinity

from labelassist.coco import Dataset
from labelassist.evaluation import _annotations, _coco, evaluate_predictions
from labelassist.instances import Instances
from labelassist.io import read_image
from labelassist.synthetic import _write_image_atomic, synthetic_nuclei


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_synthetic(sizes, n_images: int, repeats: int) -> None:
    print(f"\n## synthetic_nuclei, default settings, uint8 ({n_images} images per repeat)\n")
    print("| size | nuclei/image | generate ms/image | read PNG ms/image | generate / read |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            shape = (size, size)
            seeds = list(range(n_images))
            counts = []

            def generate(shape=shape, seeds=seeds, counts=counts):
                counts[:] = [len(synthetic_nuclei(shape, seed=s)[1]) for s in seeds]

            paths = []
            for s in seeds:
                path = Path(tmp) / f"{size}_{s}.png"
                _write_image_atomic(path, synthetic_nuclei(shape, seed=s)[0])
                paths.append(path)
            t_gen = _median_time(generate, repeats) / n_images
            t_read = _median_time(lambda paths=paths: [read_image(p) for p in paths], repeats)
            t_read /= n_images
            print(
                f"| {size}x{size} | {np.mean(counts):.0f} | {1e3 * t_gen:.1f} | "
                f"{1e3 * t_read:.2f} | {t_gen / t_read:.0f}x |"
            )


def _perturbed(truth: Instances, rng: np.random.Generator) -> Instances:
    keep = rng.random(len(truth)) > 0.1
    kept = truth[keep]
    moved = [affinity.translate(p, 1, 0) for p in kept.polygons]
    n_fp = len(truth) // 10
    h, w = truth.image_shape
    xy = rng.uniform(0, [w - 6, h - 6], (n_fp, 2))
    fps = [shapely.box(x, y, x + 5, y + 5) for x, y in xy]
    scores = rng.uniform(0.05, 1.0, len(moved) + n_fp)
    return Instances(moved + fps, None, scores, truth.image_shape)


def _stock(gt, dt, ids, iou_type: str, max_dets) -> tuple[float, float]:
    from pycocotools.cocoeval import COCOeval

    ev = COCOeval(gt, dt, iou_type)
    ev.params.imgIds = ids
    if max_dets is not None:
        ev.params.maxDets = list(max_dets)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])  # AP, AP50 as summarize() reports them


def bench_evaluate(n_images: int, size: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    shape = (size, size)
    truths = [
        synthetic_nuclei(shape, n=300, radius=(4, 8), touching=0.5, seed=s)[1]
        for s in range(n_images)
    ]
    preds = {k + 1: _perturbed(t, rng) for k, t in enumerate(truths)}
    records = [
        {"id": k + 1, "file_name": f"{k}.png", "height": size, "width": size}
        for k in range(n_images)
    ]
    ds = Dataset(["nucleus"], records, {k + 1: t for k, t in enumerate(truths)})
    ids = ds.image_ids
    n_gt = sum(len(t) for t in truths)
    print(
        f"\n## evaluate_predictions: {n_images} images {size}x{size}, {n_gt / n_images:.0f} "
        f"nuclei/image, segm + bbox\n"
    )
    metrics = {}

    def ours():
        metrics.update(evaluate_predictions(preds, ds))

    t_ours = _median_time(ours, repeats)
    gt = _coco(ds, ids, _annotations(ds.instances, ids))
    dt = _coco(ds, ids, _annotations(preds, ids))
    rows = [
        (
            "labelassist evaluate_predictions (incl. RLE encoding)",
            t_ours,
            (metrics["segm_AP"], metrics["segm_AP50"]),
        )
    ]
    for name, max_dets in [
        ("COCOeval stock maxDets=[1,10,100] + summarize", None),
        ("COCOeval maxDets=[1,100,1000] + summarize", (1, 100, 1000)),
    ]:
        ap = {}

        def stock(max_dets=max_dets, ap=ap):
            ap["segm"] = _stock(gt, dt, ids, "segm", max_dets)
            ap["bbox"] = _stock(gt, dt, ids, "bbox", max_dets)

        rows.append((name, _median_time(stock, repeats), ap["segm"]))
    print("| method | s (segm+bbox) | time ratio to labelassist | segm AP | segm AP50 |")
    print("|---|---:|---:|---:|---:|")
    for name, t, (ap, ap50) in rows:
        print(f"| {name} | {t:.2f} | {t / t_ours:.2f} | {ap:.3f} | {ap50:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--images", type=int, default=4, help="images per size / evaluation")
    parser.add_argument("--eval-size", type=int, default=512)
    args = parser.parse_args()
    bench_synthetic(args.sizes, args.images, args.repeats)
    bench_evaluate(args.images, args.eval_size, args.repeats)


if __name__ == "__main__":
    main()
