"""Benchmark the CPU cost of the light Mask R-CNN trunks (ResNet-18 vs MobileNetV2 FPN).

For each light architecture of `labelassist.model.build_maskrcnn` (same FPN, heads and
transform; only the trunk differs), in one run, interleaved, medians of repeats:

- parameters and the size of its fp16 checkpoint file (``Model.save(half=True)``);
- the trunk + FPN forward and the whole network forward (eval mode, no grad) on one
  512x512 image;
- a training step (forward, backward, SGD step) at batch 4 x 256x256 px on synthetic
  nuclei, sampling as the starter recipe does (128 RoIs per image, 500 RPN proposals).

Untrained networks: the whole-network forward then depends on how many boxes survive,
so it is also measured on trained checkpoints with ``--models`` (``Model.predict`` on the
real nuclei sample, 512x512, score threshold 0.5), e.g. the shipped starter against a
candidate.

Usage::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_backbones.py --threads 1 --repeats 5 \\
        --models labelassist/data/starter.pt /work/starter_runs/mix_r18/starter_mix_r18.pt
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import labelassist as la  # noqa: E402

ARCHS = ("maskrcnn_resnet18_fpn", "maskrcnn_mobilenet_v2_fpn")


def _median_seconds(func: Callable[[], Any], repeats: int) -> float:
    func()  # warm-up (allocator, lazy init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _batch(size: int, n: int, seed: int) -> tuple[list, list]:
    """``n`` synthetic nuclei images as normalised tensors with torchvision targets."""
    import torch

    from labelassist.model.normalize import to_tensor

    images, targets = [], []
    for k in range(n):
        image, _, labels = la.synthetic_nuclei((size, size), seed=seed + k, return_labels=True)
        ids = [i for i in np.unique(labels) if i > 0]
        masks = np.stack([labels == i for i in ids]).astype(np.uint8)
        boxes = []
        for mask in masks:
            rows, cols = np.nonzero(mask)
            boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        images.append(to_tensor(image))
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.ones(len(ids), dtype=torch.int64),
                "masks": torch.from_numpy(masks),
            }
        )
    return images, targets


def bench_archs(repeats: int) -> list[dict]:
    """Parameters, file size, forward and training-step times of each of `ARCHS`."""
    import torch

    from labelassist.model import Model, build_maskrcnn

    image = torch.rand(3, 512, 512)
    images, targets = _batch(256, 4, seed=0)
    nets, rows = {}, []
    for arch in ARCHS:
        torch.manual_seed(0)
        net: Any = build_maskrcnn(arch, 2)
        net.roi_heads.fg_bg_sampler.batch_size_per_image = 128  # the starter recipe
        net.rpn._pre_nms_top_n["training"] = 500  # torchvision keeps these private
        net.rpn._post_nms_top_n["training"] = 500
        nets[arch] = net
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            Model(net, ["object"], arch=arch, device="cpu").save(path, half=True)
            size_mb = path.stat().st_size / 1e6
        rows.append(
            {
                "arch": arch,
                "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
                "trunk_params_M": sum(p.numel() for p in net.backbone.body.parameters()) / 1e6,
                "file_MB": size_mb,
            }
        )
    for row in rows:  # the archs one after the other per measurement, same load
        net = nets[row["arch"]]
        net.eval()
        with torch.no_grad():
            row["backbone_512_s"] = _median_seconds(
                functools.partial(net.backbone, image[None]), repeats
            )
            row["forward_512_s"] = _median_seconds(functools.partial(net, [image]), repeats)
    for row in rows:
        net = nets[row["arch"]]
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

        def step(net: Any = net, optimizer: Any = optimizer) -> None:
            loss = sum(net(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        row["train_step_4x256_s"] = _median_seconds(step, repeats)
    return rows


def bench_models(paths: list[str], repeats: int) -> list[dict]:
    """``Model.predict`` time on the real nuclei sample (512x512) of trained checkpoints."""
    from labelassist.samples import real_nuclei

    image = real_nuclei()
    rows = []
    models = [(p, la.load_model(p, device="cpu")) for p in paths]
    for path, model in models:
        predict = functools.partial(model.predict, image, score_threshold=0.5)
        seconds = _median_seconds(predict, repeats)
        n = len(model.predict(image, score_threshold=0.5))
        rows.append(
            {
                "model": path,
                "arch": model.arch,
                "file_MB": Path(path).stat().st_size / 1e6,
                "predict_512_s": seconds,
                "n_found": n,
            }
        )
    return rows


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=[], help="trained checkpoints to time")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(_table(bench_archs(args.repeats)))
    if args.models:
        print()
        print(_table(bench_models(args.models, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
