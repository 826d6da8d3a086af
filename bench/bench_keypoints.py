"""Benchmark keypoints: OKS AP after `finetune` from the starter, and training speed vs torchvision.

Issue 16's benchmark, two parts:

``accuracy``: the shipped starter fine-tuned by `labelassist.finetune` with the product
defaults (the few-shot step recipe of `TrainConfig()`: crops, copy-paste, flips,
rotations, scale jitter, size normalisation; for a keypoint model 2 x 200 steps with 128
RoIs per image and the keypoint RoI grown by 10 %; nothing tuned here) on
``--train-images`` `synthetic_landmarks` images of rods or worms with a head and a tail
(the keypoint head is attached by `finetune` from the names), then `Model.predict` on
``--test-images`` images it never saw (seeds 10000+), scored by
`labelassist.evaluate_predictions`: OKS AP50 (sigma 0.05, the default) and mask AP50.
``--untrained`` also scores the same model before training (keypoint head untrained).

``speed``: training iterations per second of `finetune` against the loop of
torchvision's detection reference (``references/detection/engine.py``: plain DataLoader,
``sum(loss_dict.values())``, ``math.isfinite`` check, SGD, warm-up), written here, on the
same keypoint model (light ``maskrcnn_resnet18_fpn`` with mask and keypoint heads,
untrained, same initial weights) and the same whole synthetic images and batches
(`finetune`'s epoch recipe, as ``bench/bench_train.py`` measures the mask model). Median of
``--repeats`` interleaved runs.

Run (one thread on the shared 2-core machine: accuracy 12-20 min, speed ~10 min)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_keypoints.py --threads 1
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import bench_train  # the reference loop (bench/ is on sys.path when run as a script)
import numpy as np
import torch

from labelassist.coco import Dataset
from labelassist.evaluation import evaluate_predictions
from labelassist.instances import Instances
from labelassist.model import load_model
from labelassist.model.keypoints import keypoint_targets
from labelassist.model.predict import to_tensor
from labelassist.synthetic.landmarks import LANDMARK_NAMES, LANDMARK_SKELETON, synthetic_landmarks
from labelassist.train import TrainConfig, finetune

SHAPE = (128, 128)
KINDS: dict[str, dict[str, Any]] = {
    "rods": {"n": (4, 10), "size": (14.0, 30.0)},
    "worms": {"n": (3, 6)},
}


def landmark_images(kind: str, seeds: range) -> list[tuple[np.ndarray, Instances]]:
    """``synthetic_landmarks`` images of ``kind`` (head and tail per object)."""
    return [synthetic_landmarks(SHAPE, kind=kind, seed=s, **KINDS[kind]) for s in seeds]


def score(model: Any, test: list[tuple[np.ndarray, Instances]], kind: str) -> dict[str, float]:
    """Mask and OKS AP of ``model`` on ``test`` (predictions down to score 0.05)."""
    truth = Dataset(
        [kind[:-1]],
        [{"id": k + 1, "file_name": f"{k}.png", "height": SHAPE[0], "width": SHAPE[1]}
         for k in range(len(test))],
        {k + 1: inst for k, (_, inst) in enumerate(test)},
        keypoints=list(LANDMARK_NAMES),
        skeleton=list(LANDMARK_SKELETON),
    )  # fmt: skip
    preds = {k + 1: _predict(model, image) for k, (image, _) in enumerate(test)}
    return evaluate_predictions(preds, truth)


def _predict(model: Any, image: np.ndarray) -> Instances:
    """The model's prediction as class 0 (the one class of the truth)."""
    pred = model.predict(image, score_threshold=0.05)
    return pred.replace(labels=np.zeros(len(pred), np.int64))


def accuracy(args: argparse.Namespace) -> None:
    kind = args.kind
    train = landmark_images(kind, range(args.train_images))
    test = landmark_images(kind, range(10_000, 10_000 + args.test_images))
    starter = load_model(args.starter, device="cpu")
    config = TrainConfig(seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    extra: dict[str, Any] = {}
    if args.keypoint_weight is not None:
        extra["keypoint_weight"] = args.keypoint_weight
    if args.keypoint_lr_factor is not None:
        extra["keypoint_lr_factor"] = args.keypoint_lr_factor
    if args.roi_samples is not None:
        extra["roi_samples"] = args.roi_samples
    if args.keypoint_margin is not None:
        extra["keypoint_margin"] = args.keypoint_margin
    if args.keypoint_steps is not None:
        extra["keypoint_steps"] = args.keypoint_steps
    if args.keypoint_sigma is not None:
        extra["keypoint_sigma"] = args.keypoint_sigma
    if args.clip_grad_norm is not None:
        extra["clip_grad_norm"] = args.clip_grad_norm if args.clip_grad_norm > 0 else None
    if extra:
        config = TrainConfig(**{**config.__dict__, **extra})
    if args.untrained:
        untrained = finetune(
            starter, train, keypoints=list(LANDMARK_NAMES), progress=False,
            config=TrainConfig(steps=1, lr=1e-12, warmup_iters=0),
        ).model  # fmt: skip
        m0 = score(untrained, test, kind)
        print(
            f"untrained keypoint head (starter masks): OKS AP50 {m0['keypoints_AP50']:.3f}, "
            f"mask AP50 {m0['segm_AP50']:.3f}",
            flush=True,
        )
    t0, c0 = time.perf_counter(), time.process_time()
    result = finetune(starter, train, keypoints=list(LANDMARK_NAMES), progress=False, config=config)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = result.history[-1]["step"] if result.history else 0
    metrics = score(result.model, test, kind)
    if args.save:
        result.model.save(args.save)
    print(
        f"\n{kind}: starter + finetune(defaults{', ' + str(extra) if extra else ''}"
        f"{f', steps={args.steps}' if args.steps else ''}) on {args.train_images} images "
        f"({sum(len(i) for _, i in train)} objects), {steps} steps in {seconds:.0f} s "
        f"({seconds / max(steps, 1):.2f} s/step; CPU {cpu:.0f} s, {cpu / max(steps, 1):.2f} "
        f"CPU s/step, {args.threads} thread(s)); held-out: "
        f"{metrics['n_images']:.0f} images, {metrics['n_instances']:.0f} objects"
    )
    for record in result.history:
        parts = " ".join(
            f"{k}={record[k]:.3f}" for k in ("loss", "loss_keypoint", "loss_mask") if k in record
        )
        print(f"  chunk {record['epoch']} (step {record.get('step')}): {parts}")
    for key in (
        "keypoints_AP50",
        "keypoints_AP",
        "keypoints_AR",
        "segm_AP50",
        "segm_AP",
        "bbox_AP50",
    ):
        print(f"  {key:16s} {metrics[key]:.3f}")


# -- speed -----------------------------------------------------------------------------------


class ReferenceDataset(torch.utils.data.Dataset):
    """What a user writes after the torchvision tutorial: image tensor + target dict."""

    def __init__(self, pairs: list[tuple[np.ndarray, Instances]]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, inst = self.pairs[i]
        target = {
            "boxes": torch.as_tensor(inst.boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(inst.labels + 1, dtype=torch.int64),
            "masks": torch.from_numpy(inst.masks()).to(torch.uint8),
            "keypoints": keypoint_targets(inst),
        }
        return to_tensor(image), target


def reference_train(
    model: Any, pairs: list, *, epochs: int, batch_size: int, lr: float, workers: int
) -> int:
    """bench_train.py's condensed torchvision reference loop, on keypoint targets."""
    return bench_train.reference_train(
        model,
        pairs,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        workers=workers,
        dataset=ReferenceDataset(pairs),
    )


def fresh_model() -> Any:
    torch.manual_seed(0)
    return load_model(
        None, classes=["rod"], keypoints=list(LANDMARK_NAMES), skeleton=[(0, 1)], device="cpu"
    )


def speed(args: argparse.Namespace) -> None:
    pairs = landmark_images(args.kind, range(args.images))
    n_iter = math.ceil(args.images / args.batch_size) * args.epochs
    common = dict(
        batch_size=args.batch_size, num_workers=args.workers, warmup_iters=100, lr=args.lr
    )

    def run_finetune(**extra: Any) -> int:
        config = TrainConfig(epochs=args.epochs, **common, **extra)
        finetune(fresh_model(), pairs, progress=False, config=config)
        return n_iter

    variants = {
        "reference loop (torchvision engine.py style)": lambda: reference_train(
            fresh_model(), pairs, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            workers=args.workers,
        ),
        "finetune, augment=0, equal work (the model's 512 RoIs, 2,000 proposals)": lambda: (
            run_finetune(augment=0.0, roi_samples=None, rpn_proposals=None)
        ),
        "finetune, augment=0": lambda: run_finetune(augment=0.0),
        "finetune, augment=1 (flips, rot90, scale, intensity)": lambda: run_finetune(augment=1.0),
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            iters = fn()
            times[name].append((time.perf_counter() - t0) / iters)
    base = statistics.median(times[next(iter(variants))])
    print(
        f"\nkeypoint R-CNN (maskrcnn_resnet18_fpn + mask + keypoint heads), {args.images} "
        f"{args.kind} images {SHAPE[0]}x{SHAPE[1]}, batch {args.batch_size}, {args.epochs} "
        f"epochs ({n_iter} iterations), workers {args.workers}, torch threads {args.threads}, "
        f"median of {args.repeats}"
    )
    print("| variant | s/iteration (median) | iterations/s | ratio vs reference |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.2f} | {1 / med:.3f} | {base / med:.2f} |")
    print("all runs (s/iteration):", {k: [round(t, 2) for t in v] for k, v in times.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("accuracy", "speed", "all"), default="all")
    parser.add_argument("--kind", choices=sorted(KINDS), default="rods")
    parser.add_argument("--train-images", type=int, default=8)
    parser.add_argument("--test-images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument("--keypoint-weight", type=float, default=None)
    parser.add_argument("--keypoint-lr-factor", type=float, default=None)
    parser.add_argument("--keypoint-sigma", type=float, default=None)
    parser.add_argument("--keypoint-margin", type=float, default=None)
    parser.add_argument("--roi-samples", type=int, default=None)
    parser.add_argument("--keypoint-steps", type=float, default=None, help="budget factor")
    parser.add_argument("--clip-grad-norm", type=float, default=None, help="0: no clipping")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--starter", default="starter", help="accuracy: model name or file")
    parser.add_argument("--save", default=None, help="accuracy: write the trained model here")
    parser.add_argument("--untrained", action="store_true", help="also score before training")
    parser.add_argument("--images", type=int, default=8, help="speed: training images")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="speed: epochs per run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.005, help="speed: both loops")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("accuracy", "all"):
        accuracy(args)
    if args.part in ("speed", "all"):
        speed(args)


if __name__ == "__main__":
    main()
