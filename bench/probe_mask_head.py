"""Probe: fine-tune only the starter's mask head on jittered true boxes; compare with the shipped head.

Issue #14: the objects the starter misses are what box prompts must serve, and the mask head
is what segments a box. The shipped head learned from the RPN's proposals matched to objects
(IoU >= 0.5); an annotator's box, and most of ``predict``'s regressed boxes, are much closer to
the object. This probe continues the shipped starter's mask head (``roi_heads.mask_head`` and
``mask_predictor``; everything else frozen, so detections are unchanged) on the true boxes of
new synthetic images, each side moved by U(-``--jitter``, ``--jitter``) px (a share
``--loose`` of the boxes by U(-4, 4) px instead), with torchvision's own mask targets
(`project_masks_on_boxes`, the head's coordinate convention). Features are computed once per
image (the backbone is frozen), so a step costs only the mask head.

Training data: half the stage-3 mix (`examples/train_starter.py` ``make_mix_data``, nuclei 0.3,
worms 0.16, piles 0.14; ``SeedSequence(--seed)``), half crowded nuclei (touching 0.6; seeds
40000 + k). Neither overlaps a benchmark's data (9000+, 50000+, 60000+).

``--evaluate FILE`` compares the shipped starter with the starter carrying FILE's mask head, in
one run: mask fidelity of ``predict`` (defaults, thresholds 0.5 and 0.6) on the data of
`bench_fidelity.py` (24 held-out synthetic images, the real sample), and exact and loose box
prompts on the data of `bench_prompts.py`, the missed objects decided by the shipped starter.

Run::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        .venv/bin/python bench/probe_mask_head.py --out HEAD.pt [--steps 400 --loose 0.3]
    ... bench/probe_mask_head.py --evaluate HEAD.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "examples")]

from labelassist import load_model, polygons_to_masks  # noqa: E402
from labelassist.model import Model  # noqa: E402


def train(args: argparse.Namespace) -> None:
    from torchvision.models.detection.roi_heads import project_masks_on_boxes
    from train_starter import MIX_WEIGHTS, make_mix_data

    from labelassist.model.features import encode
    from labelassist.synthetic import synthetic_nuclei

    model = load_model("starter", device="cpu")
    net, heads = model.net, model.net.roi_heads
    t0 = time.time()
    weights = {**MIX_WEIGHTS, "nuclei": 0.3, "worms": 0.16, "piles": 0.14}
    mix, counts = make_mix_data(
        args.n // 2, shape=(args.size, args.size), seed=args.seed, mix_weights=weights
    )
    crowded = [
        synthetic_nuclei((args.size, args.size), seed=40_000 + k, touching=0.6,
                         dtype=np.uint16 if k % 2 else np.uint8)
        for k in range(args.n - len(mix))
    ]  # fmt: skip
    items = []
    net.eval()
    with torch.inference_mode():  # the frozen part, once
        for image, inst in mix + crowded:
            if not len(inst):
                continue
            feats = encode(net, image, normalization=model.normalization, device="cpu")
            enc = feats.encode_window(feats.window_for((0, 0, 0, 0)))
            masks = torch.from_numpy(polygons_to_masks(list(inst.polygons), inst.image_shape))
            keep = masks.flatten(1).any(1)
            items.append((enc, inst.boxes[keep.numpy()], masks[keep]))
    print(f"{len(items)} images {counts} + crowded nuclei, features in {time.time() - t0:.0f} s")
    params = [*heads.mask_head.parameters(), *heads.mask_predictor.parameters()]
    for p in params:  # weights touched under inference_mode are inference tensors
        p.data = p.data.clone()
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.1)
    rng = np.random.default_rng(0)
    net.train()
    losses = []
    for step in range(args.steps):
        opt.zero_grad()
        total = 0.0
        for k in rng.choice(len(items), args.batch, replace=False):
            enc, boxes, masks = items[k]
            h, w = masks.shape[1:]
            jitter = rng.uniform(-args.jitter, args.jitter, boxes.shape)
            loose = rng.random(len(boxes)) < args.loose
            jitter[loose] = rng.uniform(-4.0, 4.0, (int(loose.sum()), 4))
            b = boxes + jitter
            b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 2)
            b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 2)
            b = np.clip(b, 0, [w, h, w, h])
            rois = torch.as_tensor(enc.to_network(b), dtype=torch.float32)
            feats = {name: f.clone() for name, f in enc.features.items()}
            x = heads.mask_roi_pool(feats, [rois], [enc.net_size])
            logits = heads.mask_predictor(heads.mask_head(x))[:, 1]
            target = project_masks_on_boxes(
                masks, torch.as_tensor(b, dtype=torch.float32), torch.arange(len(b)), 28
            )
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            (loss / args.batch).backward()
            total += float(loss.detach()) / args.batch
        opt.step()
        sched.step()
        losses.append(total)
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)")
    state = {k: v for k, v in net.state_dict().items() if k.startswith("roi_heads.mask_")}
    torch.save(state, args.out)
    print(f"saved {args.out}")


def evaluate(path: str) -> None:
    import bench_fidelity as bf
    from bench_prompts import _data, _iou, _mask_iou, _segment

    from labelassist.fidelity import mask_fidelity

    base = load_model("starter", device="cpu")
    new = load_model("starter", device="cpu")
    result = new.net.load_state_dict(torch.load(path, weights_only=True), strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{path}: not a mask head ({result.unexpected_keys[:3]} ...)")
    models: dict[str, Model] = {"shipped": base, "probe": new}
    for name, sets in {"synthetic": bf._synthetic(24, 256), "real": bf._real()}.items():
        for label, m in models.items():
            for t in (0.5, 0.6):
                f = mask_fidelity([(m.predict(im, mask_threshold=t), tr) for im, tr in sets])
                print(f"fidelity {name:9s} {label:7s} threshold {t}: found {f.found:.3f} median "
                      f"IoU {f.median_iou:.3f} accepted {f.accepted:.3f} bias {f.area_bias:+.3f}")  # fmt: skip
    rng = np.random.default_rng(0)
    for name, sets in _data(12, 256).items():
        res: dict[tuple[str, str], list[tuple[float, bool]]] = {}
        for image, truth in sets:
            pred = base.predict(image)
            h, w = truth.image_shape
            missed = [
                max([_iou(t, p) for p in pred.polygons] or [0.0]) < 0.5 for t in truth.polygons
            ]
            slack = rng.uniform(0, 8, truth.boxes.shape) * np.array([-1, -1, 1, 1])
            loose = np.clip(truth.boxes + slack, 0, [w, h, w, h])
            for label, m in models.items():
                feats = m.encode(image)
                for kind, boxes in (("exact", truth.boxes), ("loose", loose)):
                    out = _segment(m, feats, boxes=boxes)
                    pairs = zip(truth.polygons, out.polygons, strict=True)
                    ious = [_mask_iou(t, p, (h, w)) for t, p in pairs]
                    res.setdefault((label, kind), []).extend(zip(ious, missed, strict=True))
        for (label, kind), rows in res.items():
            v = np.array(rows, dtype=float)
            miss = v[:, 1] > 0
            print(f"prompts {name:9s} {label:7s} {kind} box: all >= 0.8 {np.mean(v[:, 0] >= 0.8):.3f}"
                  f" >= 0.9 {np.mean(v[:, 0] >= 0.9):.3f} | missed {int(miss.sum())} >= 0.8 "
                  f"{np.mean(v[miss, 0] >= 0.8):.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="mask_head.pt", help="the trained mask head's weights")
    parser.add_argument("--evaluate", metavar="FILE", help="compare FILE's head with the shipped")
    parser.add_argument("--n", type=int, default=300, help="training images")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=2, help="images per step")
    parser.add_argument("--lr", type=float, default=0.004)
    parser.add_argument("--jitter", type=float, default=1.5, help="px per box side")
    parser.add_argument("--loose", type=float, default=0.0, help="share of boxes moved 4 px")
    parser.add_argument("--seed", type=int, default=8, help="SeedSequence of the mix images")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.evaluate:
        evaluate(args.evaluate)
    else:
        train(args)


if __name__ == "__main__":
    main()
