"""Benchmark `preannotate` throughput: Dask LocalCluster workers and local decoding workers.

Blocks, each on the same images and the same model, measured in the same run:

- dask: ``LocalCluster(n_workers=1, threads_per_worker=1)`` (baseline) vs.
  ``LocalCluster(n_workers=2, threads_per_worker=1)``; processes, ``torch.set_num_threads(1)``
  in every worker (Dask already sets ``OMP_NUM_THREADS=1`` there; set explicitly for
  fairness). The model is shipped and loaded once per worker by a warm-up run that is not
  timed; the timed runs reuse the cached model, as a long run on a cluster does.
- local: ``preannotate(..., num_workers=0)`` (baseline: decoding in the main process) vs.
  ``num_workers=2`` (two DataLoader processes decode while the model runs), main process
  with ``torch.set_num_threads(1)`` as in the workers.

Images: ``--n`` synthetic nuclei images (``synthetic_nuclei``, 256 x 256 uint8 by default)
written as PNG files, so that every run reads and decodes files. Model: ``--model`` (default
"starter" when shipped); when the starter is not shipped, an untrained light Mask R-CNN
with at most 50 detections per image stands in (its proposals are meaningless, but its
cost per image — backbone, heads, mask-to-polygon conversion of 50 masks — is that of a
real model on ~50 nuclei). Throughput: images per second, median of ``--repeats`` runs;
ratio: throughput / the baseline of the same block.

Run::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_dask.py --n 24 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import imageio.v3 as iio

from labelassist.bulk import preannotate
from labelassist.models import STARTER_PATH, Model, build_maskrcnn, load_model
from labelassist.synthetic import synthetic_nuclei


def _model(source: str) -> tuple[Model, str]:
    if source == "starter" and not STARTER_PATH.exists():
        options = {"box_detections_per_img": 50}
        net = build_maskrcnn("maskrcnn_resnet18_fpn", 2, **options)
        model = Model(net, ["nucleus"], arch="maskrcnn_resnet18_fpn", options=options, device="cpu")
        return model, "untrained maskrcnn_resnet18_fpn, <= 50 detections/image (no starter)"
    model = load_model(source, device="cpu")
    return model, f"{source} ({model.arch})"


def _write_images(folder: Path, n: int, size: int) -> None:
    for k in range(n):
        image, _ = synthetic_nuclei((size, size), seed=k)
        iio.imwrite(folder / f"img_{k:04d}.png", image)


def _set_one_thread() -> int:
    import torch

    torch.set_num_threads(1)
    return torch.get_num_threads()


def _throughput(run, n: int, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times), times


def _bench_dask(folder, model, n, repeats, options) -> list[tuple[str, float, list[float]]]:
    from distributed import Client, LocalCluster

    rows = []
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(_set_one_thread)
            warm = sorted(folder.iterdir())[: 2 * workers]
            preannotate(warm, model, client=client, **options)  # ship + load the model
            ips, times = _throughput(
                lambda c=client: preannotate(folder, model, client=c, **options), n, repeats
            )
        rows.append((f"dask LocalCluster {workers} worker(s) x 1 thread", ips, times))
    return rows


def _bench_local(folder, model, n, repeats, options) -> list[tuple[str, float, list[float]]]:
    _set_one_thread()
    rows = []
    for workers in (0, 2):
        preannotate(sorted(folder.iterdir())[:2], model, num_workers=workers, **options)  # warm
        ips, times = _throughput(
            lambda w=workers: preannotate(folder, model, num_workers=w, **options), n, repeats
        )
        rows.append((f"local preannotate num_workers={workers}", ips, times))
    return rows


def _print_block(title: str, rows) -> list[str]:
    lines = [
        f"\n{title}\n",
        "| setup | images/s (median) | ratio | run times (s) |",
        "|---|---:|---:|---|",
    ]
    base = rows[0][1]
    for name, ips, times in rows:
        runs = ", ".join(f"{t:.1f}" for t in times)
        lines.append(f"| {name} | {ips:.2f} | {ips / base:.2f}x | {runs} |")
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=24, help="number of images")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--model", default="starter")
    parser.add_argument("--score-threshold", type=float, default=0.0)
    parser.add_argument("--skip", choices=("dask", "local"), default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch

    torch.manual_seed(0)
    model, description = _model(args.model)
    options = {
        "score_threshold": args.score_threshold,
        "batch_size": args.batch_size,
        "progress": False,
    }
    print(
        f"preannotate throughput: {args.n} PNG images {args.size}x{args.size}, model {description}, "
        f"batch_size {args.batch_size}, score_threshold {args.score_threshold}, "
        f"{args.repeats} repeats, {os.cpu_count()} CPUs (shared), torch {torch.__version__}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_images(folder, args.n, args.size)
        if args.skip != "dask":
            _print_block(
                "Dask (torch 1 thread per worker)",
                _bench_dask(folder, model, args.n, args.repeats, options),
            )
        if args.skip != "local":
            _print_block(
                "Local (torch 1 thread in the main process)",
                _bench_local(folder, model, args.n, args.repeats, options),
            )


if __name__ == "__main__":
    main()
