"""Training speed of `labelassist.finetune` against a torchvision-reference-style loop.

The baseline is the loop of torchvision's detection reference (``references/detection/
engine.py``: plain DataLoader, ``sum(loss_dict.values())``, ``math.isfinite`` check, SGD,
per-iteration warm-up), written here, on the same model (the light
``maskrcnn_resnet18_fpn``, untrained, same initial weights) and the same synthetic images.
Every variant runs ``--epochs`` epochs; the figure is training iterations per second
(median of ``--repeats`` runs, interleaved so that a noisy neighbour hurts all alike).

    python bench/bench_train.py --images 8 --size 128 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from labelassist.model import load_model
from labelassist.model.predict import to_tensor
from labelassist.synthetic import synthetic_nuclei
from labelassist.train import TrainConfig, finetune


class ReferenceDataset(torch.utils.data.Dataset):
    """What a user writes after the torchvision tutorial: image tensor + target dict."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        image, inst = self.pairs[i]
        masks = torch.from_numpy(inst.masks()).to(torch.uint8)
        target = {
            "boxes": torch.as_tensor(inst.boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(inst.labels + 1, dtype=torch.int64),
            "masks": masks,
        }
        return to_tensor(image), target


def reference_train(model, pairs, *, epochs, batch_size, lr, workers, dataset=None):
    """torchvision references/detection/engine.py train_one_epoch, condensed.

    ``dataset``: the torch dataset of ``pairs`` (default `ReferenceDataset`; the keypoint
    benchmark passes its own, with keypoint targets)."""
    net = model.net
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(
        ReferenceDataset(pairs) if dataset is None else dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=lambda batch: tuple(zip(*batch, strict=True)),
    )
    warmup_iters = min(100, len(loader) - 1)
    iters = 0
    for epoch in range(epochs):
        net.train()
        scheduler = None
        if epoch == 0:
            scheduler = torch.optim.lr_scheduler.LinearLR(
                optimizer, start_factor=0.001, total_iters=warmup_iters
            )
        for images, targets in loader:
            loss_dict = net(list(images), list(targets))
            losses = sum(loss for loss in loss_dict.values())
            loss_value = losses.item()
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss is {loss_value}")
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            iters += 1
    return iters


def fresh_model():
    torch.manual_seed(0)
    return load_model(None, classes=["nucleus"], device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--lr", type=float, default=0.005, help="the reference loop (no clipping) diverges at 0.02"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = [synthetic_nuclei((args.size, args.size), seed=s) for s in range(args.images)]
    n_iter = math.ceil(args.images / args.batch_size) * args.epochs
    common = dict(
        batch_size=args.batch_size, num_workers=args.workers, warmup_iters=100, lr=args.lr
    )

    def run_finetune(**extra):
        config = TrainConfig(epochs=args.epochs, **common, **extra)
        finetune(fresh_model(), pairs, progress=False, config=config)
        return n_iter

    variants = {
        "reference loop (torchvision engine.py style)": lambda: reference_train(
            fresh_model(),
            pairs,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            workers=args.workers,
        ),
        "finetune, augment=0": lambda: run_finetune(augment=0.0),
        "finetune, augment=1 (flips, rot90, scale, intensity)": lambda: run_finetune(augment=1.0),
        "finetune, augment=1, roi_samples=128, rpn_proposals=500": lambda: run_finetune(
            augment=1.0, roi_samples=128, rpn_proposals=500
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            iters = fn()
            times[name].append((time.perf_counter() - t0) / iters)
    base = statistics.median(times[next(iter(variants))])
    print(
        f"{args.images} images {args.size}x{args.size}, batch {args.batch_size}, "
        f"{args.epochs} epochs ({n_iter} iterations), workers {args.workers}, "
        f"torch threads {args.threads}, median of {args.repeats}"
    )
    print("| variant | s/iteration (median) | iterations/s | ratio vs reference |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.2f} | {1 / med:.3f} | {base / med:.2f} |")
    print("all runs (s/iteration):", {k: [round(t, 2) for t in v] for k, v in times.items()})


if __name__ == "__main__":
    main()
