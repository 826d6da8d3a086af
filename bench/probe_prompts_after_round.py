"""Probe: box prompts on the real sample's missed objects after one fine-tuning round on the other half.

"Unlike SAM's, these prompts get better with every fine-tuning round" (docs/prompts.md). This
probe measures it on the one real hand-labelled image, in two folds: the image is cut into its
top and bottom halves (512 x 256 px each; a nucleus crossing the cut keeps its part on each
side), the shipped starter is fine-tuned with the product's defaults (`labelassist.finetune`,
the few-shot step recipe, nothing tuned) on one half's truth, and on the *other* half (pixels the
round never saw) the starter and the fine-tuned model are compared: ``predict`` (AP50 is not
computed here: the share of objects with a proposal at mask IoU 0.5 and 0.9), then box prompts
on the objects each model missed, exact boxes with the other objects annotated (``exclude``,
their true outlines), plain and tight (``tight=True``), and the extreme-click prompt (four clicks
on the extreme pixels, ``extreme_points``, the plugin's ``Shift-X``), and all objects with loose
boxes (each side 0-8 px out) with ``loose=True``.

Run (one thread for the prompts, two for the training; about 10 minutes)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/probe_prompts_after_round.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_prompts import _mask_iou, extreme_clicks  # noqa: E402

import labelassist as la  # noqa: E402
from labelassist import Instances, load_model, masks_to_polygons  # noqa: E402
from labelassist.samples import real_nuclei  # noqa: E402


def _half(image: np.ndarray, labels: np.ndarray, rows: slice) -> tuple[np.ndarray, Instances]:
    part, lab = image[rows], labels[rows]
    ids = [i for i in np.unique(lab) if i]
    polygons = masks_to_polygons(np.stack([lab == i for i in ids]), tolerance=0)
    return np.ascontiguousarray(part), Instances(polygons, None, None, lab.shape)


def _measure(model, image: np.ndarray, truth: Instances, rng: np.random.Generator) -> dict:
    shape = truth.image_shape
    polys = list(truth.polygons)
    pred = list(model.predict(image).polygons)
    best = [max([_mask_iou(t, p, shape) for p in pred] or [0.0]) for t in polys]
    missed = [k for k, b in enumerate(best) if b < 0.5]
    feats = model.encode(image)
    h, w = shape
    loose = np.clip(truth.boxes + rng.uniform(0, 8, truth.boxes.shape) * [-1, -1, 1, 1], 0,
                    [w, h, w, h])  # fmt: skip
    out = {"objects": len(polys), "found 0.5": np.mean(np.array(best) >= 0.5),
           "found 0.9": np.mean(np.array(best) >= 0.9), "missed": len(missed)}  # fmt: skip
    plain, tight, extreme, dragged = [], [], [], []
    for k, t in enumerate(polys):
        others = polys[:k] + polys[k + 1 :]
        box = truth.boxes[[k]]
        if k in missed:
            p = model.segment(feats, boxes=box, exclude=others).polygons[0]
            q = model.segment(feats, boxes=box, exclude=others, tight=True).polygons[0]
            clicks = extreme_clicks(t, shape)[None]
            e = model.segment(feats, extreme_points=clicks, exclude=others).polygons[0]
            plain.append(_mask_iou(t, p, shape))
            tight.append(_mask_iou(t, q, shape))
            extreme.append(_mask_iou(t, e, shape))
        r = model.segment(feats, boxes=loose[[k]], exclude=others, loose=True).polygons[0]
        dragged.append(_mask_iou(t, r, shape))
    out["missed plain"] = np.array(plain)
    out["missed tight"] = np.array(tight)
    out["missed extreme"] = np.array(extreme)
    out["all loose"] = np.array(dragged)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for the training")
    args = parser.parse_args()
    image, labels = real_nuclei(labels=True)
    halves = {"top": slice(0, 256), "bottom": slice(256, 512)}
    data = {name: _half(image, labels, rows) for name, rows in halves.items()}
    starter = load_model("starter", device="cpu")
    totals: dict[str, dict[str, list]] = {}
    for train_half, test_half in (("top", "bottom"), ("bottom", "top")):
        torch.set_num_threads(args.threads)
        t0 = time.time()
        result = la.finetune(starter, [data[train_half]], progress=False)
        tuned = result.model
        print(f"fold: trained on the {train_half} half ({len(data[train_half][1])} nuclei) in "
              f"{time.time() - t0:.0f} s; measured on the {test_half} half")  # fmt: skip
        torch.set_num_threads(1)
        for name, model in (("starter", starter), ("after one round", tuned)):
            m = _measure(model, *data[test_half], np.random.default_rng(0))
            row = totals.setdefault(name, {})
            for key, value in m.items():
                row.setdefault(key, []).append(value)
            print(f"  {name:16s} {m['objects']} nuclei: proposals at IoU 0.5 {m['found 0.5']:.3f}, "
                  f"0.9 {m['found 0.9']:.3f}; missed {m['missed']}: box prompts >= 0.8 plain "
                  f"{np.mean(m['missed plain'] >= 0.8) if m['missed'] else float('nan'):.3f}, tight "
                  f"{np.mean(m['missed tight'] >= 0.8) if m['missed'] else float('nan'):.3f}, extreme "
                  f"points {np.mean(m['missed extreme'] >= 0.8) if m['missed'] else float('nan'):.3f}; "
                  f"loose boxes, all objects >= 0.8 {np.mean(m['all loose'] >= 0.8):.3f}")  # fmt: skip
    print("both folds pooled (mask IoU >= 0.8):")
    for name, row in totals.items():
        plain, tight = np.concatenate(row["missed plain"]), np.concatenate(row["missed tight"])
        extreme = np.concatenate(row["missed extreme"])
        loose = np.concatenate(row["all loose"])
        print(f"  {name:16s} missed {len(plain)}: plain {int((plain >= 0.8).sum())} "
              f"({np.mean(plain >= 0.8) if len(plain) else float('nan'):.3f}), tight "
              f"{int((tight >= 0.8).sum())} ({np.mean(tight >= 0.8) if len(tight) else float('nan'):.3f}), "
              f"extreme points {int((extreme >= 0.8).sum())} "
              f"({np.mean(extreme >= 0.8) if len(extreme) else float('nan'):.3f}); "
              f"all {len(loose)} with loose boxes {np.mean(loose >= 0.8):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
