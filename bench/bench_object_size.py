"""Benchmark: object-size normalisation (``object_size=``) on objects larger than the starter's.

The shipped starter was trained on synthetic nuclei of median equivalent diameter
``STARTER_SIZE`` px. Held-out synthetic nuclei (`labelassist.synthetic.synthetic_image`
``"nuclei"``, seeds 9000+, never trained on) are generated at 1x (control), 2x and 3x that
size, and the starter's mask AP50 (COCO, pycocotools via
`labelassist.evaluation.evaluate_predictions`, score threshold 0.05 as ``evaluate``) is
measured three ways:

- ``native``: ``model.predict(image)``, no rescaling (what v1 did);
- ``given``: ``model.predict(image, object_size=size)`` with the generator's nominal size;
- ``auto``: ``model.predict(image, object_size="auto")`` (estimated from a first pass).

The model's own size is set with ``model.set_input(object_size=STARTER_SIZE)`` (the
shipped file may not store it yet). Also printed: the median size ``auto`` measures per
image (`labelassist.Model.estimate_object_size`), relative to the truth, and the CPU
seconds per image of each mode (process time: robust on a shared machine; with one
thread about the wall time of an idle one).

Run::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_object_size.py [--images 6] [--shape 384] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from labelassist import Instances, load_model
from labelassist.coco import Dataset
from labelassist.evaluation import evaluate_predictions
from labelassist.model.scale import median_object_size
from labelassist.synthetic import synthetic_image

#: Median equivalent diameter (px) of the starter's training objects
#: (examples/train_starter.py default data: 1,024 synthetic_nuclei images of 128 x 128,
#: SeedSequence(0); 10,705 objects).
STARTER_SIZE = 17.33


def _dataset(truths: list[Instances], shape: tuple[int, int]) -> Dataset:
    images = [
        {"id": k + 1, "file_name": f"{k}.tif", "height": shape[0], "width": shape[1]}
        for k in range(len(truths))
    ]
    plain = {k + 1: Instances(t.polygons, None, None, t.image_shape) for k, t in enumerate(truths)}
    return Dataset(["nucleus"], images, plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6, help="images per size")
    parser.add_argument("--shape", type=int, default=384, help="image height and width")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--scales", default="1,2,3", help="object sizes, in starter sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (args.shape, args.shape)
    model = load_model("starter", device="cpu")
    model.set_input(object_size=STARTER_SIZE, data_object_size=None)
    start = time.perf_counter()
    rows = []
    for number, scale in enumerate(float(s) for s in args.scales.split(",")):
        size = STARTER_SIZE * scale
        pairs = [
            synthetic_image("nuclei", shape, size=size, seed=9000 + 100 * number + k)
            for k in range(args.images)
        ]
        images = [image for image, _ in pairs]
        truths = [truth for _, truth in pairs]
        dataset = _dataset(truths, shape)
        true_size = median_object_size(truths)
        row: dict = {"scale": scale, "size": size, "true": true_size, "n": sum(map(len, truths))}
        for mode, option in (("native", None), ("given", size), ("auto", "auto")):
            t0 = time.process_time()
            preds = [
                model.predict(im, score_threshold=0.05, object_size=option, max_detections=1000)
                for im in images
            ]
            row[f"{mode}_s"] = (time.process_time() - t0) / len(images)
            metrics = evaluate_predictions(preds, dataset)
            row[mode] = metrics["segm_AP50"]
        estimates = [model.estimate_object_size(im) for im in images]
        ratios = [e / median_object_size(t) for e, t in zip(estimates, truths, strict=True) if e]
        row["auto_ratio"] = (min(ratios), float(np.median(ratios)), max(ratios))
        rows.append(row)
    print(
        f"starter (object_size={STARTER_SIZE}) on held-out synthetic nuclei, "
        f"{args.images} images of {shape[0]}x{shape[1]} per size, {args.threads} threads\n"
    )
    print(
        "| objects | true median px | objects n | AP50 native | AP50 given | AP50 auto "
        "| auto size / truth (min, median, max) | CPU s/image native, given, auto |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        lo, mid, hi = r["auto_ratio"]
        print(
            f"| {r['scale']:g}x ({r['size']:.1f} px) | {r['true']:.1f} | {r['n']} "
            f"| {r['native']:.3f} | {r['given']:.3f} | {r['auto']:.3f} "
            f"| {lo:.2f}, {mid:.2f}, {hi:.2f} "
            f"| {r['native_s']:.2f}, {r['given_s']:.2f}, {r['auto_s']:.2f} |"
        )
    print(f"\ntotal {time.perf_counter() - start:.0f} s wall, {time.process_time():.0f} s CPU")


if __name__ == "__main__":
    main()
