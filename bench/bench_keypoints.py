"""Benchmark keypoints: OKS AP on held-out synthetic landmarks after training mask + keypoint heads.

A first, self-contained version of issue 16's benchmark: the network is the starter (or an
untrained light model, ``--from-scratch``) with torchvision's keypoint head attached
(`labelassist.model.keypoints.attach_keypoint_head`), trained by a plain torch loop
(SGD, warm-up, fixed batch; `labelassist.finetune` does not train keypoints yet) on
`synthetic_landmarks` rods, then evaluated on images it never saw with
`labelassist.evaluate_predictions` (mask AP and OKS AP, sigma 0.05). Predictions come
from the network's own forward (masks pasted by torchvision, keypoints as predicted), since
`predict` does not carry keypoints yet. Not yet here: the training speed against
torchvision's reference loop (needs `finetune` with keypoints).

Run (one thread; a few minutes on a CPU)::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/bench_keypoints.py --steps 300 --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from labelassist.coco import Dataset
from labelassist.evaluation import evaluate_predictions
from labelassist.geometry import masks_to_polygons
from labelassist.instances import Instances
from labelassist.model import load_model, to_tensor
from labelassist.model.keypoints import attach_keypoint_head, keypoint_targets, keypoints_to_image
from labelassist.synthetic.landmarks import LANDMARK_NAMES, LANDMARK_SKELETON, synthetic_landmarks

SHAPE = (128, 128)
RODS = {"n": (4, 10), "size": (14.0, 30.0)}


def _images(seeds: range) -> list[tuple[np.ndarray, Instances]]:
    return [synthetic_landmarks(SHAPE, kind="rods", seed=s, **RODS) for s in seeds]


def _target(inst: Instances) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.as_tensor(inst.boxes, dtype=torch.float32),
        "labels": torch.as_tensor(inst.labels + 1),
        "masks": torch.as_tensor(inst.masks(), dtype=torch.uint8),
        "keypoints": keypoint_targets(inst),
    }


def _predict(net, tensors: list[torch.Tensor]) -> list[Instances]:
    net.eval()
    out = []
    with torch.inference_mode():
        for tensor in tensors:
            det = net([tensor])[0]
            masks = (det["masks"][:, 0] > 0.5).numpy()
            polygons = masks_to_polygons(masks, tolerance=0)
            keep = np.array([not p.is_empty for p in polygons], dtype=bool)
            points = keypoints_to_image(det["keypoints"])[keep]
            out.append(
                Instances(
                    [p for p, k in zip(polygons, keep, strict=True) if k],
                    np.zeros(int(keep.sum()), np.int64),
                    det["scores"].numpy()[keep],
                    SHAPE,
                    keypoints=points,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--test-images", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--from-scratch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.from_scratch:
        model = load_model(None, classes=["rod"], keypoints=list(LANDMARK_NAMES), device="cpu")
        net = model.net
    else:
        model = load_model("starter", device="cpu")  # one class: nucleus -> rod
        net = model.net
        attach_keypoint_head(net, len(LANDMARK_NAMES))
    norm = model.meta.get("normalization")
    train = _images(range(args.train_images))
    test = _images(range(10_000, 10_000 + args.test_images))
    tensors = [to_tensor(im, normalization=norm) for im, _ in train]
    targets = [_target(inst) for _, inst in train]

    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    warmup = min(50, args.steps // 5)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / max(warmup, 1)) * 0.5 * (1 + np.cos(np.pi * s / args.steps)),
    )
    rng = np.random.default_rng(0)
    net.train()
    start = time.perf_counter()
    for step in range(args.steps):
        pick = rng.choice(len(train), args.batch, replace=False)
        losses = net([tensors[i] for i in pick], [targets[i] for i in pick])
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite loss at step {step}: {losses}")
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps - 1:
            parts = " ".join(f"{k[5:]}={float(v.detach()):.3f}" for k, v in losses.items())
            print(f"step {step:4d}  {parts}", flush=True)
    seconds = time.perf_counter() - start

    truth = Dataset(
        ["rod"],
        [{"id": k + 1, "file_name": f"{k}.png", "height": SHAPE[0], "width": SHAPE[1]}
         for k in range(len(test))],
        {k + 1: inst for k, (_, inst) in enumerate(test)},
        keypoints=list(LANDMARK_NAMES),
        skeleton=list(LANDMARK_SKELETON),
    )  # fmt: skip
    net.roi_heads.score_thresh = 0.05
    preds = _predict(net, [to_tensor(im, normalization=norm) for im, _ in test])
    metrics = evaluate_predictions({k + 1: p for k, p in enumerate(preds)}, truth)
    print(
        f"\n{'scratch' if args.from_scratch else 'starter'} + keypoint head, {args.steps} steps "
        f"x {args.batch} images ({seconds:.0f} s, {seconds / args.steps:.2f} s/step, "
        f"{args.threads} thread(s)); held-out: {metrics['n_images']} images, "
        f"{metrics['n_instances']} rods"
    )
    for key in (
        "segm_AP",
        "segm_AP50",
        "bbox_AP50",
        "keypoints_AP",
        "keypoints_AP50",
        "keypoints_AR",
    ):
        print(f"  {key:16s} {metrics[key]:.3f}")


if __name__ == "__main__":
    main()
