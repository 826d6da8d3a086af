"""Benchmark: label image -> polygons, labelassist vs. the usual skimage and OpenCV paths.

For each method: CPU microseconds per instance (``time.process_time``, median of repeats
in which the methods take turns; the machine is shared, CPU time is steadier than wall
time), IoU of the polygons
rasterized back with pycocotools against the true masks (mean and 5th percentile), and the
mean number of vertices per instance. All methods run in the same process on the same
label images: synthetic nuclei (`labelassist.synthetic.synthetic_nuclei`, 512 x 512) and
the real hand-labelled nuclei of `labelassist.samples.real_nuclei`. A second table times
the way back, polygons -> (N, H, W) masks, against ``skimage.draw.polygon`` and
``shapely.contains_xy``.

Baselines (coordinates shifted by +0.5 px into COCO pixel coordinates, so that the IoU
compares the tracing, not a coordinate bug):

- ``skimage``: per instance ``find_contours(labels == id, 0.5)`` on the full image, the
  longest contour to ``shapely.Polygon``, ``simplify`` at the same tolerance as labelassist.
- ``opencv``: what the ``supervision`` library does: per instance
  ``cv2.findContours(mask.astype(uint8), RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`` on the full
  image, every contour to a polygon; ``+dp`` adds ``cv2.approxPolyDP`` at the same tolerance.

Run::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_geometry.py [--repeats 5] [--images 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import shapely
from pycocotools import mask as mask_utils

from labelassist.geometry import DEFAULT_TOLERANCE, masks_to_polygons, polygons_to_masks
from labelassist.samples import real_nuclei
from labelassist.synthetic import synthetic_nuclei

warnings.filterwarnings("ignore", category=DeprecationWarning)


# -- methods: label image -> list of geometries (ascending ids) ------------------------------
def labelassist_default(labels):
    return masks_to_polygons(labels)


def labelassist_05(labels):
    return masks_to_polygons(labels, tolerance=0.5)


def labelassist_exact(labels):
    return masks_to_polygons(labels, tolerance=0)


def skimage_naive(labels, tolerance=DEFAULT_TOLERANCE):
    from skimage import measure

    out = []
    for k in np.unique(labels)[1:]:
        contours = measure.find_contours(labels == k, 0.5)
        c = max(contours, key=len)
        poly = shapely.Polygon(c[:, ::-1] + 0.5)
        out.append(shapely.simplify(poly, tolerance, preserve_topology=True))
    return out


def _opencv(labels, epsilon):
    import cv2

    out = []
    for k in np.unique(labels)[1:]:
        mask = (labels == k).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        parts = []
        for c in contours:
            if epsilon:
                c = cv2.approxPolyDP(c, epsilon, True)
            xy = c.reshape(-1, 2).astype(np.float64) + 0.5
            if len(xy) >= 3:
                parts.append(shapely.Polygon(xy))
            else:  # a line or a point: no area, as COCO would see it
                parts.append(shapely.Polygon())
        out.append(parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts))
    return out


def opencv_simple(labels):
    return _opencv(labels, 0)


def opencv_dp(labels):
    return _opencv(labels, DEFAULT_TOLERANCE)


METHODS = {
    f"labelassist (tolerance={DEFAULT_TOLERANCE})": labelassist_default,
    "labelassist (tolerance=0.5)": labelassist_05,
    "labelassist (tolerance=0, exact)": labelassist_exact,
    f"skimage find_contours + simplify({DEFAULT_TOLERANCE})": skimage_naive,
    "opencv findContours SIMPLE": opencv_simple,
    f"opencv findContours + approxPolyDP({DEFAULT_TOLERANCE})": opencv_dp,
}


# -- measures ----------------------------------------------------------------------------------
def coco_iou(geoms, labels):
    """IoU of each geometry's exteriors rasterized by pycocotools with its true mask."""
    h, w = labels.shape
    ids = np.unique(labels)[1:]
    out = []
    for geom, k in zip(geoms, ids, strict=True):
        truth = labels == k
        rings = [
            np.asarray(p.exterior.coords)[:-1].ravel().tolist()
            for p in shapely.get_parts(geom)
            if not p.is_empty and len(p.exterior.coords) >= 4
        ]
        if rings:
            got = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(rings, h, w)))
            got = got.astype(bool)
        else:
            got = np.zeros_like(truth)
        out.append(np.logical_and(got, truth).sum() / np.logical_or(got, truth).sum())
    return out


def interleaved_times(methods, run, repeats):
    """Median CPU seconds of ``run(fn)`` per method; the methods take turns in every repeat,
    so that bursts of load on the shared machine hit all of them alike."""
    times = {label: [] for label in methods}
    for _ in range(repeats):
        for label, fn in methods.items():
            t0 = time.process_time()
            run(fn)
            times[label].append(time.process_time() - t0)
    return {label: statistics.median(t) for label, t in times.items()}


def crop_call_us(repeats):
    """One 30 x 30 crop with one object touching the crop's borders (the crop is its box)
    and an offset, as the prediction code calls it."""
    yy, xx = np.mgrid[0:30, 0:30] + 0.5
    crop = (((xx - 15) / 15) ** 2 + ((yy - 15) / 15) ** 2 <= 1)[None]
    calls = 200

    def many(tol):
        for _ in range(calls):
            masks_to_polygons(crop, tolerance=tol, offset=(100.0, 40.0))

    methods = {DEFAULT_TOLERANCE: DEFAULT_TOLERANCE, 0.0: 0.0}
    secs = interleaved_times(methods, many, repeats)
    return {tol: s / calls * 1e6 for tol, s in secs.items()}


# -- polygons -> masks ---------------------------------------------------------------------------
def skimage_draw_masks(polygons, shape):
    """The obvious way: ``skimage.draw.polygon`` per ring, holes cleared, per geometry."""
    from skimage import draw

    out = np.zeros((len(polygons), *shape), dtype=bool)
    for k, geom in enumerate(polygons):
        for part in shapely.get_parts(geom):
            if part.is_empty:
                continue
            tmp = np.zeros(shape, dtype=bool)
            xy = np.asarray(part.exterior.coords)
            tmp[draw.polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)] = True
            for hole in part.interiors:
                xy = np.asarray(hole.coords)
                tmp[draw.polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)] = False
            out[k] |= tmp
    return out


def contains_masks(polygons, shape):
    """``shapely.contains_xy`` on the pixel centres of each geometry's bounding box."""
    out = np.zeros((len(polygons), *shape), dtype=bool)
    h, w = shape
    for k, geom in enumerate(polygons):
        if geom.is_empty:
            continue
        x0, y0, x1, y1 = geom.bounds
        c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        c1, r1 = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
        yy, xx = np.mgrid[r0:r1, c0:c1] + 0.5
        shapely.prepare(geom)
        out[k, r0:r1, c0:c1] = shapely.contains_xy(geom, xx, yy)
    return out


def rasterize_table(datasets, repeats):
    print("\n## polygons -> masks (default-tolerance polygons of the same images)\n")
    print("| data | method | ms/image | x vs skimage.draw | pixels equal to labelassist |")
    print("|---|---|---:|---:|---:|")
    methods = {
        "labelassist polygons_to_masks": polygons_to_masks,
        "skimage.draw.polygon per ring": skimage_draw_masks,
        "shapely.contains_xy on bbox": contains_masks,
    }
    for name, images in datasets.items():
        polys = [masks_to_polygons(lab) for lab in images]
        ref = [polygons_to_masks(p, lab.shape) for p, lab in zip(polys, images, strict=True)]
        pairs = list(zip(polys, images, strict=True))
        secs = interleaved_times(
            methods, lambda fn, pairs=pairs: [fn(p, lab.shape) for p, lab in pairs], repeats
        )
        rows = {}
        for label, fn in methods.items():
            got = [fn(p, lab.shape) for p, lab in pairs]
            same = np.mean([np.mean(a == b) for a, b in zip(got, ref, strict=True)])
            rows[label] = (secs[label] / len(images) * 1e3, same)
        base = rows["skimage.draw.polygon per ring"][0]
        for label, (ms, same) in rows.items():
            print(f"| {name} | {label} | {ms:.1f} | {base / ms:.1f}x | {same:.6f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--images", type=int, default=3, help="synthetic 512x512 images")
    args = parser.parse_args()

    datasets = {
        f"synthetic 512x512 x{args.images}": [
            synthetic_nuclei((512, 512), seed=s, return_labels=True)[2] for s in range(args.images)
        ],
        "real nuclei 512x512": [real_nuclei(labels=True)[1]],
    }
    for name, images in datasets.items():
        n = sum(len(np.unique(lab)) - 1 for lab in images)
        print(f"\n## {name}: {n} instances\n")
        print("| method | us/instance | x vs skimage | IoU mean | IoU p5 | vertices |")
        print("|---|---:|---:|---:|---:|---:|")
        secs = interleaved_times(
            METHODS, lambda fn, images=images: [fn(lab) for lab in images], args.repeats
        )
        rows = {}
        for label, fn in METHODS.items():
            us = secs[label] / n * 1e6
            ious, verts = [], []
            for lab in images:
                geoms = fn(lab)
                ious += coco_iou(geoms, lab)
                verts += [shapely.get_num_coordinates(g) for g in geoms]
            rows[label] = (us, np.mean(ious), np.percentile(ious, 5), np.mean(verts))
        base = rows[next(k for k in rows if k.startswith("skimage"))][0]
        for label, (us, iou_mean, iou_p5, verts) in rows.items():
            print(
                f"| {label} | {us:.1f} | {base / us:.1f}x | {iou_mean:.4f} | {iou_p5:.4f} "
                f"| {verts:.1f} |"
            )
    rasterize_table(datasets, args.repeats)
    crop = crop_call_us(args.repeats)
    print("\n## one 30x30 crop with one object touching its borders (prediction path)\n")
    for tol, us in crop.items():
        print(f"- masks_to_polygons(crop[None], tolerance={tol}, offset=...): {us:.0f} us/call")


if __name__ == "__main__":
    main()
