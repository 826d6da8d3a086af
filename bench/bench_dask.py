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
ratio: throughput / the baseline of the same block. The four setups run interleaved (one
run of each per round, both clusters alive throughout) so that load changes on a shared
machine hit all of them alike.

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
from contextlib import ExitStack
from pathlib import Path

import imageio.v3 as iio

from labelassist.bulk import preannotate
from labelassist.model import STARTER_PATH, Model, build_maskrcnn, load_model
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


def _run_interleaved(configs, repeats: int) -> dict[str, list[float]]:
    """Time every config once per round, ``repeats`` rounds: load drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name, _ in configs}
    for _ in range(repeats):
        for name, run in configs:
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def _bench(folder, model, n, repeats, options, skip) -> dict[str, list]:
    """Rows (name, images/s, run times) per block; all configurations interleaved."""
    _set_one_thread()
    warm = sorted(folder.iterdir())[:4]
    configs: dict[str, list] = {"dask": [], "local": []}
    with ExitStack() as stack:
        if skip != "dask":
            from distributed import Client, LocalCluster

            for workers in (1, 2):
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                    )
                )
                client = stack.enter_context(Client(cluster))
                client.run(_set_one_thread)
                preannotate(warm, model, client=client, **options)  # ship + load the model
                configs["dask"].append(
                    (
                        f"dask LocalCluster {workers} worker(s) x 1 thread",
                        lambda c=client: preannotate(folder, model, client=c, **options),
                    )
                )
        if skip != "local":
            for workers in (0, 2):
                preannotate(warm, model, num_workers=workers, **options)
                configs["local"].append(
                    (
                        f"local preannotate num_workers={workers}",
                        lambda w=workers: preannotate(folder, model, num_workers=w, **options),
                    )
                )
        times = _run_interleaved(configs["dask"] + configs["local"], repeats)
    return {
        block: [(name, n / statistics.median(times[name]), times[name]) for name, _ in rows]
        for block, rows in configs.items()
        if rows
    }


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
        rows = _bench(folder, model, args.n, args.repeats, options, args.skip)
    titles = {
        "dask": "Dask (torch 1 thread per worker)",
        "local": "Local (torch 1 thread in the main process)",
    }
    for block, block_rows in rows.items():
        _print_block(titles[block], block_rows)


if __name__ == "__main__":
    main()
