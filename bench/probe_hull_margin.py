"""Probe: how far may an extreme-point prompt's mask reach beyond the hull of its clicks?

``segment(..., extreme_points=...)`` leaves out the pixels farther than
`labelassist.model.box_prompts.HULL_MARGIN` times half the box's size (the geometric mean of
its width and height) from the convex hull of the four clicks: Mask R-CNN's 28 x 28 masks
of a tight box tend to fill its corners, which a round or slanted object leaves empty. This
probe measures, for each margin, the share of the objects the starter missed (polygon IoU <
0.5 with every proposal) that the prompt brings to mask IoU 0.8 and 0.9, the other objects
annotated (``exclude``), with the clicks on each object's extreme pixels
(bench_prompts.extreme_clicks); ``none`` is the prompt without the margin (the 2026-12-07
behaviour). The other settings are today's: since the seventh session's `NEIGHBOUR_GAP` the
masks also fill thin gaps to the annotated neighbours, so the rows differ from those recorded
before it (bench/results_prompts.md).

Data: held-out synthetic nuclei that no benchmark uses (default seeds 9100-9299, 256 x 256,
8- and 16-bit alternating), on which the margin was chosen; ``--data synthetic`` / ``real``:
bench_prompts.py's sets (reported, not chosen on).

Run (one thread; about 4 min per 100 held-out images)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/probe_hull_margin.py --first-seed 9100 --images 200
    # the real sample's missed objects, pictured without and with the margin:
    .venv/bin/python bench/probe_hull_margin.py --data real --picture docs/prompts_hull.png
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

DEFAULT = box_prompts.HULL_MARGIN
MARGINS = (None, 0.2, 0.25, DEFAULT, 0.35, 0.4, 0.5)


def missed_ious(model, sets, margins, crops: list | None = None) -> dict:
    """Mask IoU of the extreme-point prompt on each missed object, per margin; ``crops``
    (a list) gets, per object, what `picture` draws."""
    out: dict = {m: [] for m in margins}
    for image, truth in sets:
        pred = model.predict(image)
        polys = list(truth.polygons)
        h, w = truth.image_shape
        feats = model.encode(image)
        for k, t in enumerate(polys):
            if max([_iou(t, p) for p in pred.polygons] or [0.0]) >= 0.5:
                continue
            clicks = extreme_clicks(t, (h, w))[None]
            found = {}
            for m in margins:
                box_prompts.HULL_MARGIN = m
                found[m] = _segment(model, feats, extreme_points=clicks,
                                    exclude=polys[:k] + polys[k + 1 :]).polygons[0]  # fmt: skip
                out[m].append(_mask_iou(t, found[m], (h, w)))
            if crops is not None:
                crops.append({"image": image, "truth": t, "found": found, "clicks": clicks[0],
                              "others": polys[:k] + polys[k + 1 :],
                              "iou": {m: out[m][-1] for m in margins}})  # fmt: skip
    box_prompts.HULL_MARGIN = DEFAULT
    return {m: np.array(v) for m, v in out.items()}


def picture(crops: list, path: str) -> None:
    """The objects below mask IoU 0.8 without the margin or with it: truth green, the prompt
    without the margin red, with it yellow, the clicks white, annotated neighbours cyan."""
    shown = [c for c in crops if min(c["iou"][None], c["iou"][DEFAULT]) < 0.8]
    title = "extreme points: truth green, without the hull margin red, with it yellow"
    outline_panels(shown, None, DEFAULT, path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", choices=["heldout", "synthetic", "real"], default="heldout")
    parser.add_argument("--first-seed", type=int, default=9100)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--picture", help="PNG of the objects below 0.8 without or with it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("starter", device="cpu")
    sets, name = probe_sets(args.data, args.first_seed, args.images)
    crops: list | None = [] if args.picture else None
    results = missed_ious(model, sets, MARGINS, crops)
    if crops is not None:
        picture(crops, args.picture)
    n = len(results[None])
    print(f"== {name}: {n} missed objects, extreme points, the others annotated ==")
    for m, v in results.items():
        label = "none" if m is None else f"{m:.3f}"
        print(f"  margin {label:>5s}: mask IoU >= 0.8 {np.mean(v >= 0.8):.3f} "
              f"({int((v >= 0.8).sum())}/{n}), >= 0.9 {np.mean(v >= 0.9):.3f}, "
              f"median {np.median(v):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
