"""Benchmark COCO I/O: streaming `write_coco` and `read_coco` against in-run baselines.

Baselines, measured in the same run on the same data:

- write: the usual way, the whole COCO dict built in memory (same annotations, from
  `instances_to_coco`) and written with one ``json.dump`` (not atomic).
- export (conversion + serialisation, instances/s): ``write_coco`` as it is against the
  same ``write_coco`` with the previous per-instance conversion patched in (kept below:
  shapely and pycocotools called per instance, ``json.dumps`` per annotation); the two
  files are checked byte-identical. Wall and CPU time (``time.process_time``: the
  machine is shared) on octagons with whole-pixel vertices (as in
  ``bench/bench_project.py``) and on traced ellipses with random scores; with
  ``--project FOLDER`` also ``Project.export_coco`` of an existing project (built by
  ``bench/bench_project.py --folder FOLDER``), same two variants.
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
import math
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pycocotools import mask as mask_utils
from skimage import draw

from labelassist.coco import _pool as coco  # its _Annotations.add calls coco._convert_chunk
from labelassist.coco import instances_to_coco, read_coco, write_coco
from labelassist.geometry import masks_to_polygons, polygons_to_masks
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


# -- the previous implementation (per instance), the baseline of the export figures ----------
def _base_float(value: float) -> float:
    """A float that prints short in JSON and round-trips through float32."""
    return float(str(np.float32(value)))


def _base_encode(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def _base_rasterize(geom: shapely.Geometry, shape: tuple[int, int]) -> np.ndarray:
    """Full-image (H, W) uint8 Fortran mask of ``geom``, rasterized inside its box only."""
    h, w = shape
    out = np.zeros((h, w), dtype=np.uint8, order="F")
    x0, y0, x1, y1 = shapely.bounds(geom)
    c0, r0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
    c1, r1 = min(int(math.ceil(x1)), w), min(int(math.ceil(y1)), h)
    if c1 <= c0 or r1 <= r0:
        return out
    local = shapely.transform(geom, lambda xy: xy - (c0, r0))
    out[r0:r1, c0:c1] = polygons_to_masks([local], (r1 - r0, c1 - c0))[0]
    return out


def _base_rings(geom: shapely.Geometry) -> list[list[float]]:
    """One flattened ``[x0, y0, x1, y1, ...]`` exterior ring per part (no closing point)."""
    return [
        shapely.get_coordinates(part.exterior)[:-1].ravel().tolist()
        for part in shapely.get_parts(geom)
        if not part.is_empty
    ]


def _base_has_holes(geom: shapely.Geometry) -> bool:
    return bool(shapely.get_num_interior_rings(shapely.get_parts(geom)).sum())


def _base_annotation(
    geom: shapely.Geometry, shape: tuple[int, int], *, as_rle: bool
) -> tuple[Any, dict, int] | None:
    """(segmentation, compressed RLE, area) of one geometry; None when it covers no pixel.

    The RLE is what pycocotools rasterizes for the segmentation (``area``, ``bbox``).
    """
    h, w = shape
    if as_rle:
        rle = _base_encode(_base_rasterize(geom, shape))
        seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    else:
        seg = _base_rings(geom)
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    area = int(mask_utils.area(rle))
    return None if area == 0 else (seg, rle, area)


def _base_instances_to_coco(
    instances: Instances, image_id: int, first_id: int, segmentation: str
) -> tuple[list[dict], int]:
    crowd = np.asarray(instances.extra.get("iscrowd", np.zeros(len(instances))), dtype=bool)
    shape = instances.image_shape
    anns = []
    skipped = 0
    for k, geom in enumerate(instances.polygons):
        if geom.is_empty:
            skipped += 1
            continue
        as_rle = segmentation == "rle" or crowd[k] or _base_has_holes(geom)
        encoded = _base_annotation(geom, shape, as_rle=as_rle)
        if encoded is None:
            skipped += 1
            continue
        seg, rle, area = encoded
        anns.append(
            {
                "id": first_id + len(anns),
                "image_id": image_id,
                "category_id": int(instances.labels[k]) + 1,
                "segmentation": seg,
                "area": float(area),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": int(crowd[k]),
                "score": _base_float(instances.scores[k]),
            }
        )
    return anns, skipped


class _BaselineConverted:
    """What `coco._convert_chunk` returns, from the previous per-instance code."""

    def __init__(self, anns: list[dict]) -> None:
        self.categories = anns  # the writer only takes its length

    def json(self) -> str:
        return ",\n".join(
            json.dumps(a, separators=(",", ":"), allow_nan=False) for a in self.categories
        )


def _baseline_convert_chunk(chunk, first_id, segmentation):
    """What `coco._convert_chunk` returns, image by image with the previous code."""
    anns, skipped = [], 0
    for image_id, instances in chunk:
        converted, n_skipped = _base_instances_to_coco(
            instances, image_id, first_id + len(anns), segmentation
        )
        anns += converted
        skipped += n_skipped
    return _BaselineConverted(anns), skipped


@contextlib.contextmanager
def _baseline_patched():
    current = coco._convert_chunk
    coco._convert_chunk = _baseline_convert_chunk
    try:
        yield
    finally:
        coco._convert_chunk = current


def _octagon_instances(rng: np.random.Generator, n_images: int, per_image: int) -> list:
    """Like bench_project.py: integer-vertex octagons in 512x512 images."""
    unit = np.array([(2, 0), (1, 2), (-1, 2), (-2, 0), (-2, -1), (-1, -2), (1, -2), (2, -1)], float)
    out = []
    for _ in range(n_images):
        centers = rng.integers(10, 500, (per_image, 2)).astype(float)
        radii = rng.integers(4, 16, per_image)
        ring = centers[:, None, :] + np.round(unit[None] * radii[:, None, None] / 2)
        ring = np.concatenate([ring, ring[:, :1]], axis=1)
        scores = rng.uniform(0.3, 1.0, per_image)
        out.append(Instances(shapely.polygons(ring), rng.integers(0, 2, per_image), scores,
                             (512, 512)))  # fmt: skip
    return out


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


_INFO = {"description": "bench"}


def _export_rows(name: str, write, n_inst: int, repeats: int, tmp: Path) -> list[str]:
    """Current vs baseline conversion through ``write(path)``; files must be identical."""
    with _baseline_patched():
        base = _timed(lambda: write(tmp / "base.json"), repeats)
    ours = _timed(lambda: write(tmp / "ours.json"), repeats)
    if (tmp / "base.json").read_bytes() != (tmp / "ours.json").read_bytes():
        raise AssertionError(f"{name}: the two implementations wrote different files")
    rows = []
    for label, (wall, cpu) in (("previous, per instance (baseline)", base), ("batched", ours)):
        rows.append(
            f"| {name:<34} | {label:<34} | {n_inst:>9,} | {wall:>7.2f} | {n_inst / wall:>10,.0f} "
            f"| {cpu:>7.2f} | {n_inst / cpu:>10,.0f} | {base[1] / cpu:>9.2f} |"
        )
    return rows


def _export_table(args, rng: np.random.Generator, tmp: Path) -> None:
    print(f"export: conversion + JSON, median of {args.repeats}; speedup = baseline CPU / CPU\n")
    header = (
        f"| {'data':<34} | {'conversion':<34} | {'instances':>9} | {'wall s':>7} | "
        f"{'inst/s wall':>10} | {'CPU s':>7} | {'inst/s CPU':>10} | {'speedup':>9} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    octs = _octagon_instances(rng, args.export_images, 20)
    ellipses = [_image_instances(rng, (args.size, args.size), args.objects)
                for _ in range(args.export_images // 4)]  # fmt: skip
    cases = [
        (f"{len(octs)} x 512^2, 20 octagons, polygon", octs, "polygon"),
        (f"{len(ellipses)} x {args.size}^2, ellipses, polygon", ellipses, "polygon"),
        (f"{len(ellipses)} x {args.size}^2, ellipses, rle", ellipses, "rle"),
    ]
    for name, insts, seg in cases:
        n_inst = sum(len(i) for i in insts)
        rows = _export_rows(
            name,
            lambda path, insts=insts, seg=seg: write_coco(
                path, ["a", "b"], _items(insts), segmentation=seg, info=_INFO
            ),
            n_inst,
            args.repeats,
            tmp,
        )
        print("\n".join(rows))
    if args.project is not None:
        from labelassist.project import Project

        with Project.open(args.project) as project:
            n_inst = project.stats()["instances"]
            rows = _export_rows(
                f"Project.export_coco ({args.project.name})",
                lambda path: _project_export(project, path),
                n_inst,
                args.repeats,
                tmp,
            )
        print("\n".join(rows))
    print()


def _project_export(project, path: Path) -> None:
    project.export_coco(path, status="all", image_root=project.folder)
    data = path.read_bytes()  # the info block holds the creation time: drop it
    path.write_bytes(data[data.index(b'"licenses"') :])


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
    parser.add_argument("--export-images", type=int, default=400,
                        help="images of the export (instances/s) table; 0: skip it")  # fmt: skip
    parser.add_argument("--project", type=Path, default=None,
                        help="also time Project.export_coco of this existing project")  # fmt: skip
    parser.add_argument("--only-export", action="store_true", help="skip the I/O table")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    if args.export_images:
        with tempfile.TemporaryDirectory() as tmp:
            _export_table(args, rng, Path(tmp))
    if args.only_export:
        return
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
