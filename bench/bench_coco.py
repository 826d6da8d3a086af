"""Benchmark COCO I/O: streaming `write_coco` and `read_coco` against in-run baselines.

Baselines, measured in the same run on the same data:

- write: the usual way, the whole COCO dict built in memory (same annotations, from
  `instances_to_coco`) and written with one ``json.dump`` (not atomic).
- read: ``json.load`` alone (a lower bound: parsing, no geometry), and pycocotools'
  ``COCO(path)`` plus ``annToMask`` for every annotation (what one does without
  labelassist to get masks).

Peak memory is Python-side (``tracemalloc``, numpy buffers included) during the call only;
the input instances exist beforehand and are not counted. It is shown for writes only:
reads allocate most of their result in C (GEOS, pycocotools), which tracemalloc does not
see. Times are medians of repeats; ratio: time / the baseline of the same block.

Run::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_coco.py --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from skimage import draw

from labelassist.coco import instances_to_coco, read_coco, write_coco
from labelassist.geometry import masks_to_polygons
from labelassist.instances import Instances


def _image_instances(rng: np.random.Generator, shape: tuple[int, int], n: int) -> Instances:
    h, w = shape
    labels = np.zeros(shape, dtype=np.int32)
    for k in range(n):
        r, c = rng.integers(8, h - 8), rng.integers(8, w - 8)
        rr, cc = draw.ellipse(r, c, rng.integers(3, 9), rng.integers(3, 9), shape=shape)
        labels[rr, cc] = k + 1
    polygons = [p for p in masks_to_polygons(labels, tolerance=0.5) if not p.is_empty]
    scores = rng.uniform(0.3, 1.0, len(polygons))
    return Instances(polygons, None, scores, shape)


def _items(all_instances: list[Instances]):
    for i, inst in enumerate(all_instances, start=1):
        h, w = inst.image_shape
        yield {"id": i, "file_name": f"img_{i:05d}.png", "height": h, "width": w}, inst


def _in_memory_write(path: Path, all_instances: list[Instances], segmentation: str) -> None:
    images, anns = [], []
    for record, inst in _items(all_instances):
        images.append(record)
        anns += instances_to_coco(inst, record["id"], first_id=len(anns) + 1,
                                  segmentation=segmentation)  # fmt: skip
    data = {"categories": [{"id": 1, "name": "cell"}], "images": images, "annotations": anns}
    with open(path, "w") as f:
        json.dump(data, f)


def _pycocotools_read(path: Path) -> int:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    return sum(int(coco.annToMask(a).sum() > 0) for a in coco.dataset["annotations"])


def _measure(fn, repeats: int) -> tuple[float, float]:
    """(median seconds, peak MiB of the last run)."""
    times = []
    peak = 0.0
    for r in range(repeats):
        last = r == repeats - 1
        if last:
            tracemalloc.start()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if last:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--objects", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    shape = (args.size, args.size)
    print(f"{args.size}x{args.size} images, ~{args.objects} objects each, "
          f"median of {args.repeats} (peak: tracemalloc, last run)\n")  # fmt: skip
    header = f"| {'images':>6} | {'case':<52} | {'time s':>7} | {'peak MiB':>8} | {'ratio':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.images:
            all_instances = [_image_instances(rng, shape, args.objects) for _ in range(n)]
            n_ann = sum(len(i) for i in all_instances)
            rows = []
            for seg in ("polygon", "rle"):
                out = tmp / f"ours_{seg}.json"
                base = _measure(
                    lambda seg=seg, insts=all_instances: _in_memory_write(
                        tmp / f"base_{seg}.json", insts, seg
                    ),
                    args.repeats,
                )
                ours = _measure(
                    lambda seg=seg, out=out, insts=all_instances: write_coco(
                        out, ["cell"], _items(insts), segmentation=seg
                    ),
                    args.repeats,
                )
                rows.append((f"write {seg}: in-memory dict + json.dump (baseline)", base, base))
                rows.append((f"write {seg}: write_coco streaming+atomic", ours, base))
                mib = out.stat().st_size / 2**20
                load = _measure(lambda out=out: json.load(open(out)), args.repeats)
                pyc = _measure(lambda out=out: _pycocotools_read(out), args.repeats)
                rc = _measure(lambda out=out: read_coco(out), args.repeats)
                rows.append((f"read {seg} ({mib:.1f} MiB): json.load only", load, pyc))
                rows.append((f"read {seg}: pycocotools COCO+annToMask (baseline)", pyc, pyc))
                rows.append((f"read {seg}: read_coco -> Instances", rc, pyc))
            for name, (t, peak), (tb, _) in rows:
                mem = f"{peak:>8.1f}" if name.startswith("write") else f"{'-':>8}"
                print(f"| {n:>6} | {name:<52} | {t:>7.3f} | {mem} | {t / tb:>6.2f} |")
            print(f"| {n:>6} | {f'({n_ann} annotations)':<52} |         |          |        |")


if __name__ == "__main__":
    main()
