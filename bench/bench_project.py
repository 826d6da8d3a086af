"""Scale benchmark of the labeling project store (labelassist.project).

Builds a synthetic project (default 100,000 images, 2,000,000 small polygons; bulk
insert with executemany straight into the schema), then measures what an annotator and a
training process do, each against a baseline measured in the same run:

=====================  ==========================================  =====================
operation              labelassist                                 baseline
=====================  ==========================================  =====================
open + status          ``Project.open`` + ``stats()``              raw sqlite3 connect +
                                                                   ``count(*)`` of images
save one edit          ``save_instances`` (one durable txn)        raw durable INSERT of
                                                                   the same WKB rows
fetch one image        ``instances(image)`` -> Instances           raw SELECT of the rows
export COCO            ``export_coco`` (streaming), own process    ``dataset()`` then
                                                                   ``Dataset.to_coco``
                                                                   (all in memory)
=====================  ==========================================  =====================

Figures are medians of ``--repeats`` runs (the machine is shared and noisy); exports run
once each in a fresh process so that their peak memory (max RSS) is their own.

Usage::

    python bench/bench_project.py                       # full size (building takes minutes)
    python bench/bench_project.py --images 2000 --instances 40000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

GOALS = {"open+status": 1.0, "save one edit": 0.020, "fetch one image": 0.020}
EXPORT_GOAL = 50_000  # instances/s


def _reset_peak() -> None:
    """Reset this process's peak RSS (Linux); a spawned child otherwise reports the
    parent's peak, which Linux carries over."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _maxrss_mb() -> float:
    """Peak resident memory of this process since start or `_reset_peak`, MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _octagons(centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Small integer-vertex octagons (like pixel-edge outlines), vectorised."""
    unit = np.array([(2, 0), (1, 2), (-1, 2), (-2, 0), (-2, -1), (-1, -2), (1, -2), (2, -1)], float)
    ring = centers[:, None, :] + np.round(unit[None] * radii[:, None, None] / 2)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    return shapely.polygons(ring)


def build(folder: Path, n_images: int, n_instances: int, seed: int = 0) -> None:
    """A project with ``n_images`` images and ``n_instances`` current instances."""
    from labelassist.project import Project, schema, store

    rng = np.random.default_rng(seed)
    Project.create(folder, classes=["nucleus", "debris"]).close()
    con = store.connect(folder / "project.db")
    con.execute("PRAGMA synchronous = OFF")  # building only; measurements reopen with FULL
    stamp = schema.now()
    per_image = np.full(n_images, n_instances // n_images)
    per_image[: n_instances % n_images] += 1
    statuses = np.array(schema.STATUSES)[rng.choice(5, n_images, p=[0.2, 0.2, 0.05, 0.5, 0.05])]
    with store.write_transaction(con):
        con.executemany(
            "INSERT INTO images (id, file_name, path, origin, height, width, status, split,"
            " version, n_instances, uncertainty, updated) VALUES (?, ?, ?, ?, 512, 512, ?, ?,"
            " 1, ?, ?, ?)",
            (
                (
                    i + 1,
                    f"img_{i + 1:06d}.png",
                    f"images/img_{i + 1:06d}.png",
                    f"{folder}/images/img_{i + 1:06d}.png",
                    str(statuses[i]),
                    "val" if i % 5 == 0 else "train",
                    int(per_image[i]),
                    float(rng.random()),
                    stamp,
                )
                for i in range(n_images)
            ),
        )
        con.executemany(
            "INSERT INTO edits (image_id, version, parent, source, model_id, n_instances, created)"
            " VALUES (?, 1, 0, 'model', 'bench', ?, ?)",
            ((i + 1, int(per_image[i]), stamp) for i in range(n_images)),
        )
    image_of = np.repeat(np.arange(1, n_images + 1), per_image)
    labels = rng.integers(0, 2, n_instances)
    chunk = 200_000
    for start in range(0, n_instances, chunk):
        stop = min(start + chunk, n_instances)
        n = stop - start
        geoms = _octagons(rng.integers(10, 500, (n, 2)).astype(float), rng.integers(4, 16, n))
        wkb = shapely.to_wkb(geoms)
        scores = rng.uniform(0.3, 1.0, n)
        with store.write_transaction(con):
            con.executemany(
                "INSERT INTO annotations (id, image_id, version, instance_id, label, score,"
                " source, geometry) VALUES (?, ?, 1, ?, ?, ?, 'model', ?)",
                (
                    (
                        start + k + 1,
                        int(image_of[start + k]),
                        start + k + 1,
                        int(labels[start + k]),
                        float(scores[k]),
                        wkb[k],
                    )
                    for k in range(n)
                ),
            )
    with store.write_transaction(con):
        counts = np.bincount(labels, minlength=2)
        con.executemany(
            "INSERT INTO instance_counts (label, source, n) VALUES (?, 'model', ?)",
            [(0, int(counts[0])), (1, int(counts[1]))],
        )
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(folder: Path, repeats: int, seed: int = 1) -> dict:
    from labelassist.project import Project, store

    rng = np.random.default_rng(seed)
    out = {}

    def open_status():
        with Project.open(folder) as p:
            p.stats()

    def raw_open_count():
        con = sqlite3.connect(folder / "project.db")
        con.execute("SELECT count(*) FROM images").fetchone()
        con.close()

    out["open+status"] = (_median(open_status, repeats), _median(raw_open_count, repeats))

    p = Project.open(folder)
    n_images = p.stats()["images"]
    out["open only"] = (_median(lambda: Project.open(folder).close(), repeats), None)
    out["stats()"] = (_median(p.stats, repeats), None)
    out["images() all"] = (_median(p.images, max(3, repeats // 5)), None)
    out["next_image()"] = (_median(p.next_image, repeats), None)

    ids = rng.integers(1, n_images + 1, repeats * 2).tolist()
    out["fetch one image"] = (
        _median(lambda: p.instances(ids.pop()), repeats),
        _median(
            lambda: p.con.execute(
                "SELECT a.instance_id, a.label, a.score, a.source, a.geometry FROM images i JOIN"
                " annotations a ON a.image_id = i.id AND a.version = i.version WHERE i.id = ?",
                (int(rng.integers(1, n_images + 1)),),
            ).fetchall(),
            repeats,
        ),
    )

    edits = []
    for image_id in rng.integers(1, n_images + 1, repeats).tolist():
        inst = p.instances(image_id)
        moved = shapely.transform(inst.polygons, lambda xy: xy + 0.5)
        edits.append((image_id, inst.replace(polygons=moved)))
    pending = list(edits)
    save_time = _median(lambda: p.save_instances(*pending.pop(), source="corrected"), repeats)
    raw = store.connect(folder / "project.db")
    rows = [
        (i, 10**6 + k, e.labels[0] if len(e) else 0, shapely.to_wkb(g))
        for k, (i, e) in enumerate(edits)
        for g in e.polygons
    ]
    raw.execute("CREATE TABLE IF NOT EXISTS bench_raw (image_id, version, label, geometry)")

    def raw_save():
        with store.write_transaction(raw):
            raw.executemany("INSERT INTO bench_raw VALUES (?, ?, ?, ?)", rows[:20])

    out["save one edit"] = (save_time, _median(raw_save, repeats))
    raw.execute("DROP TABLE bench_raw")
    raw.close()
    p.close()
    return out


def _child_export(folder: Path, target: Path, mode: str) -> None:
    """Run in a fresh process: one export, print seconds, instances and max RSS."""
    import warnings

    from labelassist.project import Project
    from labelassist.project import exchange as _coco

    warnings.simplefilter("ignore")
    _reset_peak()
    rss0 = _maxrss_mb()
    with Project.open(folder) as p:
        n = p.stats()["instances"]
        t = time.perf_counter()
        if mode == "stream":  # automatic workers
            p.export_coco(target, status="all", image_root=folder, workers=None)
        elif mode == "stream1":  # one process
            p.export_coco(target, status="all", image_root=folder, workers=1)
        elif mode == "read":  # the project side of the export alone: rows -> Instances
            sum(len(inst) for _, inst in _coco.iter_items(p.store, None, None, folder))
        elif mode == "dataset":  # everything in memory at once, no writing
            p.dataset(status="all")
        else:
            p.dataset(status="all").to_coco(target)
        seconds = time.perf_counter() - t
    # worker processes (joined): the largest one's peak; they are alike
    workers_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "instances": n,
                "maxrss_mb": _maxrss_mb(),
                "rss_at_start_mb": rss0,
                "worker_maxrss_mb": workers_mb,
            }
        )
    )


def _run_export(folder: Path, target: Path, mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child-export", mode, str(folder), str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--folder", type=Path, default=None, help="keep/reuse the project here")
    parser.add_argument(
        "--no-baseline-export",
        action="store_true",
        help="skip the in-memory export baseline (it holds everything in RAM)",
    )
    parser.add_argument(
        "--child-export", nargs=3, metavar=("MODE", "FOLDER", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child_export:
        mode, folder, target = args.child_export
        _child_export(Path(folder), Path(target), mode)
        return

    tmp = None
    folder = args.folder
    if folder is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_project_"))
        folder = tmp / "proj"
    try:
        if not (folder / "project.db").exists():
            t = time.perf_counter()
            build(folder, args.images, args.instances)
            build_s = time.perf_counter() - t
            size = (folder / "project.db").stat().st_size / 2**20
            print(
                f"built {args.images:,} images / {args.instances:,} instances in {build_s:.1f} s"
                f" (project.db {size:.0f} MiB)"
            )
        results = measure(folder, args.repeats)
        out_dir = folder.parent
        stream = _run_export(folder, out_dir / "export_stream.json", "stream")
        stream1 = _run_export(folder, out_dir / "export_stream1.json", "stream1")
        read = _run_export(folder, out_dir / "unused.json", "read")
        in_memory = _run_export(folder, out_dir / "unused.json", "dataset")
        base = (
            None
            if args.no_baseline_export
            else _run_export(folder, out_dir / "export_memory.json", "memory")
        )
        _report(results, stream, base, args, read, in_memory, stream1)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _report(
    results: dict,
    stream: dict,
    base: dict | None,
    args,
    read: dict,
    in_memory: dict,
    stream1: dict,
) -> None:
    print(
        f"\nproject: {args.images:,} images, {args.instances:,} instances;"
        f" medians of {args.repeats} repeats; python {sys.version.split()[0]},"
        f" sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs\n"
    )
    print(f"| {'operation':<16} | {'labelassist':>12} | {'baseline':>12} | {'ratio':>6} | goal |")
    print(f"|{'-' * 18}|{'-' * 14}|{'-' * 14}|{'-' * 8}|------|")
    for name, (value, baseline) in results.items():
        goal = GOALS.get(name)
        ratio = f"{value / baseline:.1f}x" if baseline else ""
        ok = "" if goal is None else ("ok" if value < goal else "MISS")
        base_text = f"{baseline * 1e3:.2f} ms" if baseline else ""
        print(f"| {name:<16} | {value * 1e3:>9.2f} ms | {base_text:>12} | {ratio:>6} | {ok:<4} |")
    rate = stream["instances"] / stream["seconds"]
    ok = "ok" if rate >= EXPORT_GOAL else "MISS"
    workers = min(os.cpu_count() or 1, 4)
    print("\n| export COCO (all images) | seconds | instances/s | peak RSS | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| streaming export_coco (workers=None: {workers} automatic) | {stream['seconds']:.1f} |"
        f" {rate:,.0f} | {stream['maxrss_mb']:.0f} MiB + {workers} x"
        f" {stream['worker_maxrss_mb']:.0f} MiB (workers) ="
        f" {stream['maxrss_mb'] + workers * stream['worker_maxrss_mb']:.0f} MiB | {ok} |"
    )
    rate1 = stream1["instances"] / stream1["seconds"]
    print(
        f"| streaming export_coco, workers=1 | {stream1['seconds']:.1f} | {rate1:,.0f} |"
        f" {stream1['maxrss_mb']:.0f} MiB | |"
    )
    print(
        f"| project side only (rows -> Instances, no COCO encoding) | {read['seconds']:.1f} |"
        f" {read['instances'] / read['seconds']:,.0f} | {read['maxrss_mb']:.0f} MiB | |"
    )
    print(
        f"| dataset() (all in memory, no writing) | {in_memory['seconds']:.1f} |"
        f" {in_memory['instances'] / in_memory['seconds']:,.0f} |"
        f" {in_memory['maxrss_mb']:.0f} MiB | |"
    )
    print(
        "| ratio peak RSS streaming export (all processes) / dataset() in memory | | |"
        f" {(stream['maxrss_mb'] + workers * stream['worker_maxrss_mb']) / in_memory['maxrss_mb']:.2f}x"
        " | |"
    )
    if base:
        brate = base["instances"] / base["seconds"]
        print(
            f"| baseline dataset().to_coco | {base['seconds']:.1f} | {brate:,.0f} |"
            f" {base['maxrss_mb']:.0f} MiB | |"
        )
        print(
            f"| ratio streaming/baseline | {stream['seconds'] / base['seconds']:.2f}x | |"
            f" {stream['maxrss_mb'] / base['maxrss_mb']:.2f}x | |"
        )
    print(f"\nbenchmark process peak RSS: {_maxrss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
