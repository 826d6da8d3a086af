"""Probe: which mask thresholds a tight box prompt may choose from (``segment(..., tight=True)``).

A box from extreme clicking touches its object on all four sides; `segment(..., tight=True)`
picks, per box, the mask threshold whose mask's bounding box fills the box best (ties: the
nearest to the model's). This probe chose the candidate set of
`labelassist.model.box_prompts.TIGHT_THRESHOLDS` on held-out synthetic nuclei that none of
the benchmarks use (seeds 9100+; bench_prompts.py and bench_effort.py use 9000-9011): for
every object ``predict`` missed (no proposal at mask IoU >= 0.5), the box prompt on its
exact box with the other objects annotated (``exclude``) at thresholds 0.1-0.9, and the
share reaching mask IoU 0.8 / 0.9 under each rule (a candidate range and the threshold ties
go to), and the threshold chosen with the truth (an upper bound of any rule).

Run (one thread; about two minutes per 16 images)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/probe_tight_threshold.py [--images 16] [--first-seed 9100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import shapely
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_effort import mask_iou, match  # noqa: E402

from labelassist import load_model  # noqa: E402
from labelassist.synthetic import synthetic_nuclei  # noqa: E402

T = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def collect(model, images: int, first_seed: int) -> list[tuple[float, float, dict]]:
    """Per missed object: box width, height, and per threshold (mask IoU, box fill)."""
    rows = []
    for k in range(images):
        dtype = np.uint16 if k % 2 else np.uint8
        image, inst = synthetic_nuclei((256, 256), seed=first_seed + k, dtype=dtype)[:2]
        truth, shape = list(inst.polygons), image.shape[:2]
        pred = model.predict(image, score_threshold=0.5)
        pairs = match(mask_iou(truth, list(pred.polygons), shape))
        missed = [i for i in range(len(truth)) if i not in pairs]
        if not missed:
            continue
        annotated = [truth[i] for i in pairs]
        feats = model.encode(image)
        boxes = np.array([shapely.bounds(truth[i]) for i in missed]).reshape(-1, 4)
        per_t = {
            t: model.segment(feats, boxes=boxes, exclude=annotated, mask_threshold=t).polygons
            for t in T
        }
        for n, i in enumerate(missed):
            x0, y0, x1, y1 = boxes[n]
            rec = {}
            for t in T:
                p = per_t[t][n]
                fill = 0.0
                if not p.is_empty:
                    a, b, c, d = p.bounds
                    fill = (c - a) * (d - b) / ((x1 - x0) * (y1 - y0))
                rec[t] = (mask_iou([truth[i]], [p], shape)[0, 0], fill)
            rows.append((x1 - x0, y1 - y0, rec))
    return rows


def fit_rule(lo: float, hi: float, centre: float):
    candidates = [t for t in T if lo - 1e-9 <= t <= hi + 1e-9]
    return lambda rec: max(candidates, key=lambda t: (round(rec[t][1], 3), -abs(t - centre)))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--first-seed", type=int, default=9100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("starter", device="cpu")
    base = model.mask_threshold
    rows = collect(model, args.images, args.first_seed)
    rules = {
        f"model's threshold {base}": lambda rec: base,
        f"fill within +-0.2 (ties: {base})": fit_rule(base - 0.2, base + 0.2, base),
        f"fill within +-0.3 (ties: {base})": fit_rule(base - 0.3, base + 0.3, base),
        f"fill among 0.2-0.8 (ties: {base})": fit_rule(0.2, 0.8, base),
        f"fill among 0.1-0.9 (ties: {base}), shipped": fit_rule(0.1, 0.9, base),
        "fill among 0.1-0.9 (ties: 0.5)": fit_rule(0.1, 0.9, 0.5),
        "best with the truth (upper bound)": lambda rec: max(T, key=lambda t: rec[t][0]),
    }
    print(f"seeds {args.first_seed}-{args.first_seed + args.images - 1}: {len(rows)} missed")
    for name, rule in rules.items():
        v = np.array([rec[rule(rec)][0] for _, _, rec in rows])
        print(f"  {name:44s} >= 0.8 {np.mean(v >= 0.8):.3f}  >= 0.9 {np.mean(v >= 0.9):.3f}  "
              f"median {np.median(v):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
