"""Probe: how wide a gap between an extreme-point prompt's mask and its annotated neighbours
should the mask fill?

``segment(..., extreme_points=..., exclude=...)`` adds to each mask the pixels of a gap at
most `labelassist.model.box_prompts.NEIGHBOUR_GAP` pixels wide between it and the objects
already annotated (their distances to both add up to at most the width + 1): touching
nuclei share their outline, and the mask head stops a pixel or two short of a neighbour.
This probe measures, for each width, the share of the objects the starter missed (polygon
IoU < 0.5 with every proposal) that the prompt brings to mask IoU 0.8 and 0.9, the other
objects annotated with their true outlines, the clicks on each object's extreme pixels
(bench_prompts.extreme_clicks); width 0 is the prompt without it.

Data: held-out synthetic nuclei that no benchmark uses (seeds 9500-9599 chose the width,
9600-9699 confirmed it; 256 x 256, 8- and 16-bit alternating); ``--data synthetic`` /
``real``: bench_prompts.py's sets (reported, not chosen on).

Run (one thread; about 6 min per 100 held-out images for five widths)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/probe_neighbour_gap.py --first-seed 9500 --images 100
    # the real sample's missed objects the rule changes most, pictured:
    .venv/bin/python bench/probe_neighbour_gap.py --data real --widths 0,3 --picture docs/prompts_gaps.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_prompts import _iou, _mask_iou, _segment, extreme_clicks  # noqa: E402
from prompt_probes import outline_panels, probe_sets  # noqa: E402

import labelassist.model.box_prompts as box_prompts  # noqa: E402
from labelassist import load_model  # noqa: E402

DEFAULT = box_prompts.NEIGHBOUR_GAP


def missed_ious(model, sets, widths, crops: list | None = None) -> dict[int, np.ndarray]:
    """Mask IoU of the extreme-point prompt on each missed object, per gap width; ``crops``
    (a list) gets, per object, what `picture` draws."""
    out: dict[int, list[float]] = {w: [] for w in widths}
    try:
        for image, truth in sets:
            pred = model.predict(image)
            polys = list(truth.polygons)
            shape = truth.image_shape
            feats = model.encode(image)
            for k, t in enumerate(polys):
                if max([_iou(t, p) for p in pred.polygons] or [0.0]) >= 0.5:
                    continue
                clicks = extreme_clicks(t, shape)[None]
                others = polys[:k] + polys[k + 1 :]
                found = {}
                for w in widths:
                    box_prompts.NEIGHBOUR_GAP = w
                    found[w] = _segment(model, feats, extreme_points=clicks,
                                        exclude=others).polygons[0]  # fmt: skip
                    out[w].append(_mask_iou(t, found[w], shape))
                if crops is not None:
                    crops.append({"image": image, "truth": t, "found": found, "others": others,
                                  "iou": {w: out[w][-1] for w in widths}})  # fmt: skip
    finally:
        box_prompts.NEIGHBOUR_GAP = DEFAULT
    return {w: np.array(v) for w, v in out.items()}


def picture(crops: list, widths: list[int], path: str, count: int = 4) -> None:
    """The ``count`` objects whose IoU the last width changes most against the first: truth
    green, the first width red, the last yellow, annotated neighbours cyan."""
    first, last = widths[0], widths[-1]
    shown = sorted(crops, key=lambda c: -abs(c["iou"][last] - c["iou"][first]))[:count]
    title = f"extreme points: truth green, gap width {first} red, {last} yellow, neighbours cyan"
    outline_panels(shown, first, last, path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", choices=["heldout", "synthetic", "real"], default="heldout")
    parser.add_argument("--first-seed", type=int, default=9500)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--widths", default="0,2,3,4,6", help="comma-separated gap widths (px)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--picture", help="PNG of the objects the last width changes most")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    widths = [int(w) for w in args.widths.split(",")]
    model = load_model("starter", device="cpu")
    sets, name = probe_sets(args.data, args.first_seed, args.images)
    crops: list | None = [] if args.picture else None
    results = missed_ious(model, sets, widths, crops)
    if crops is not None:
        picture(crops, widths, args.picture)
    base = results[widths[0]]
    print(f"== {name}: {len(base)} missed objects, extreme points, the others annotated ==")
    for w, v in results.items():
        up, down = int(((base < 0.8) & (v >= 0.8)).sum()), int(((base >= 0.8) & (v < 0.8)).sum())
        print(f"  width {w}: mask IoU >= 0.8 {np.mean(v >= 0.8):.3f} ({int((v >= 0.8).sum())}/"
              f"{len(v)}), >= 0.9 {np.mean(v >= 0.9):.3f}, median {np.median(v):.3f}, "
              f"mean {v.mean():.4f}; against width {widths[0]}: better {int((v > base + 1e-9).sum())}, "
              f"worse {int((v < base - 1e-9).sum())}, across 0.8 up {up} down {down}")  # fmt: skip


if __name__ == "__main__":
    main()
