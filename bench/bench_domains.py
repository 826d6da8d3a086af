"""Domain benchmark: does one round on k corrected images learn a new modality?

For each domain (synthetic v2 kinds with seeds the starter never saw, shifted in object
size, contrast and texture, plus the real nuclei sample cut into 3 x 3 tiles): the
starter's zero-shot mask AP50 on held-out images, then the mask AP50 on the same held-out
images after one `finetune` round on the first k images with the product's DEFAULTS
(`TrainConfig()`; only the channels of the two-channel cells domain are given, as a user
does), and the round time. Prints a table, writes a learning-curve PNG per domain into
docs/ and, with --out-md, the table as markdown.

Ablations (each changes one default): --no-size-norm, --no-copy-paste, --steps N,
--freeze MODE, --crop-size N, --batch-size N, --lr X, --roi-samples N, --rpn-proposals N,
--crop-on-objects X, --warmup-iters N, and ``--set FIELD=VALUE`` for any other
`TrainConfig` field (VALUE as JSON, e.g. ``--set paste_max=4``).

Run from the repository root, e.g.::

    python bench/bench_domains.py --k 2      # the lead's run: ~25-35 min on a quiet CPU
    python bench/bench_domains.py --domains cells,real_nuclei --k 1,2,4
    python bench/bench_domains.py --quick --domains cells    # smoke test (~2 min)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import labelassist as la
from labelassist.coco import Dataset
from labelassist.evaluation import evaluate_predictions
from labelassist.fidelity import mask_fidelity
from labelassist.geometry import masks_to_polygons
from labelassist.instances import Instances
from labelassist.model.scale import median_object_size
from labelassist.rounds import plot_learning_curve
from labelassist.samples import real_nuclei
from labelassist.synthetic import synthetic_image, synthetic_nuclei
from labelassist.train import TrainConfig, finetune

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCORE = 0.5  # Model.predict's default score threshold
SEED0 = 50_000  # the starter never saw seeds >= 50000
N_POOL = 4  # training images per domain (k <= 4); the held-out images come after them


@dataclass(frozen=True)
class Domain:
    """A benchmark domain: a synthetic kind with fixed (shifted) settings, or real nuclei."""

    name: str
    kind: str | None
    options: dict[str, Any]
    channels: tuple[int, ...] | None = None


DOMAINS = {
    d.name: d
    for d in (
        Domain("cells", "cells", {"size": (40.0, 55.0), "texture": 0.6}, channels=(1, 2)),
        Domain("epithelium", "epithelium", {"size": (22.0, 32.0)}),
        Domain("brightfield", "brightfield", {"size": (28.0, 40.0), "contrast": (0.3, 0.5)}),
        Domain("histology", "histology", {"size": (14.0, 20.0), "stain": 0.8}),
        Domain("worms", "worms", {}),
        Domain("piles", "piles", {"size": (24.0, 34.0), "texture": 0.7}),
        Domain("real_nuclei", None, {}),
    )
}


def domain_images(
    domain: Domain, n: int, shape: tuple[int, int]
) -> list[tuple[np.ndarray, Instances]]:
    """``n`` (image, Instances) pairs of ``domain`` (real nuclei: the 9 tiles)."""
    if domain.kind is None:
        image, labels = real_nuclei(labels=True)
        tiles = []
        step = image.shape[0] // 3
        for r in range(3):
            for c in range(3):
                sl = np.s_[r * step : (r + 1) * step, c * step : (c + 1) * step]
                lab = labels[sl]
                polygons = masks_to_polygons(lab, tolerance=0) if lab.any() else []
                inst = Instances(polygons, np.zeros(len(polygons), int), None, lab.shape)
                tiles.append((np.ascontiguousarray(image[sl]), inst))
        return tiles[:n]
    return [synthetic_image(domain.kind, shape, seed=SEED0 + k, **domain.options) for k in range(n)]


def ap50(model: la.Model, pairs: list[tuple[np.ndarray, Instances]]) -> dict[str, float]:
    """Mask AP50 of ``model`` on ``pairs`` (class-agnostic, pycocotools) and the fidelity
    of its proposals at the default score threshold (`labelassist.fidelity`: share of true
    objects whose proposal an annotator accepts as it is, IoU >= 0.9; median area bias)."""
    images = [
        {
            "id": k + 1,
            "file_name": f"{k}.png",
            "height": i.image_shape[0],
            "width": i.image_shape[1],
        }
        for k, (_, i) in enumerate(pairs)
    ]
    truth = {k + 1: i.replace(labels=np.zeros(len(i), int)) for k, (_, i) in enumerate(pairs)}
    dataset = Dataset(["object"], images, truth)
    predictions = []
    for image, _ in pairs:
        pred = model.predict(image, score_threshold=0.05, max_detections=1000)
        predictions.append(pred.replace(labels=np.zeros(len(pred), int)))
    fidelity = mask_fidelity(
        [
            (p[p.scores > DEFAULT_SCORE], truth)
            for p, (_, truth) in zip(predictions, pairs, strict=True)
        ]
    )
    at_half = fidelity
    if model.mask_threshold != 0.5:  # the same network at torchvision's threshold
        at_half = mask_fidelity(
            [(model.predict(image, mask_threshold=0.5), truth) for image, truth in pairs]
        )
    return {
        "AP50": float(evaluate_predictions(predictions, dataset)["segm_AP50"]),
        "accepted": fidelity.accepted,
        "bias": fidelity.area_bias,
        "mask_threshold": model.mask_threshold,
        "accepted_at_0.5": at_half.accepted,
        "bias_at_0.5": at_half.area_bias,
    }


def starter(path: str | None, object_size: str) -> la.Model:
    """The starting model; an ``object_size`` for a starter that lacks one ("auto": the
    median size of the synthetic nuclei the shipped starter was trained on)."""
    model = la.load_model(path or "starter", device="cpu")
    if model.object_size is None and object_size != "none":
        if object_size == "auto":
            sizes = [synthetic_nuclei((128, 128), seed=k)[1] for k in range(16)]
            size = median_object_size(sizes)
        else:
            size = float(object_size)
        model.set_input(object_size=size)
    return model


def run_domain(
    domain: Domain,
    base: la.Model,
    ks: list[int],
    config: TrainConfig,
    n_test: int,
    shape: tuple[int, int],
    docs: Path | None,
) -> list[dict[str, Any]]:
    """Zero-shot and fine-tuned AP50 of one domain; one row per k (k = 0: zero-shot)."""
    pairs = domain_images(domain, N_POOL + n_test, shape)
    test = pairs[N_POOL : N_POOL + n_test]
    rows = [
        {
            "domain": domain.name,
            "k": 0,
            "instances": 0,
            **ap50(base, test),
            "round_s": 0.0,
            "s_per_step": float("nan"),
        }
    ]
    print(
        f"{domain.name:12s} k=0 AP50={rows[0]['AP50']:.3f} accepted={rows[0]['accepted']:.3f} "
        f"bias={rows[0]['bias']:+.3f}",
        flush=True,
    )
    for k in ks:
        train = pairs[:k]
        cfg = replace(config, channels=domain.channels)
        t0, c0 = time.perf_counter(), time.process_time()
        result = finetune(base, train, config=cfg, progress=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        steps = result.history[-1].get("step", 0) if result.history else 0
        row = {
            "domain": domain.name,
            "k": k,
            "instances": sum(len(i) for _, i in train),
            **ap50(result.model, test),
            "round_s": seconds,
            "s_per_step": seconds / max(steps, 1),
            "cpu_s_per_step": cpu / max(steps, 1),
            "freeze": result.history[-1].get("freeze") if result.history else None,
        }
        rows.append(row)
        print(
            f"{domain.name:12s} k={k} AP50={row['AP50']:.3f} accepted={row['accepted']:.3f} "
            f"bias={row['bias']:+.3f} (threshold {row['mask_threshold']:.2f}; at 0.5 "
            f"{row['accepted_at_0.5']:.3f}, {row['bias_at_0.5']:+.3f}) round={seconds:.0f}s "
            f"({row['s_per_step']:.2f} s/step, CPU {row['cpu_s_per_step']:.2f} s/step, "
            f"{row['instances']} instances)",
            flush=True,
        )
    if docs is not None:
        rounds = [
            {
                "round": j,
                "n_images": r["k"],
                "n_instances": r["instances"],
                "metrics": {"segm_AP50": r["AP50"]},
            }
            for j, r in enumerate(rows)
        ]
        plot_learning_curve(
            rounds,
            docs / f"domains_{domain.name}.png",
            metrics=("segm_AP50",),
            title=f"{domain.name}: mask AP50 on held-out images after k images",
        )
    return rows


def table(rows: list[dict[str, Any]], ks: list[int]) -> str:
    """Markdown table: one line per domain, AP50 at k = 0 and each k, the share of
    proposals accepted as they are (IoU >= 0.9) and the area bias at k = 0 and the last k,
    round time."""
    nan = float("nan")
    last_k = ks[-1]
    head = "| domain | zero-shot AP50 | " + " | ".join(f"AP50 k={k}" for k in ks)
    head += f" | accepted k=0 / {last_k} (at 0.5) | area bias k=0 / {last_k} (at 0.5)"
    head += f" | round (s), k={last_k} | s/step | CPU s/step |\n"
    head += "|---" * (7 + len(ks)) + "|\n"
    lines = []
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["domain"], {})[r["k"]] = r
    for name, per in by.items():
        last = per.get(ks[-1], {})
        cells = [f"{per[0]['AP50']:.3f}"]
        cells += [f"{per[k]['AP50']:.3f}" if k in per else "" for k in ks]
        cells += [
            f"{per[0].get('accepted', nan):.2f} / {last.get('accepted', nan):.2f} "
            f"({last.get('accepted_at_0.5', nan):.2f})",
            f"{per[0].get('bias', nan):+.1%} / {last.get('bias', nan):+.1%} "
            f"({last.get('bias_at_0.5', nan):+.1%})",
        ]
        cells += [
            f"{last.get('round_s', nan):.0f}",
            f"{last.get('s_per_step', nan):.2f}",
            f"{last.get('cpu_s_per_step', nan):.2f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [np.mean([per[k]["AP50"] for per in by.values() if k in per]) for k in [0, *ks]]
    accepted = [
        np.mean([per[k].get("accepted", nan) for per in by.values() if k in per])
        for k in (0, last_k)
    ]
    lines.append(
        "| **mean** | "
        + " | ".join(f"**{m:.3f}**" for m in means)
        + f" | {accepted[0]:.2f} / {accepted[1]:.2f} | | | | |"
    )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", default=",".join(DOMAINS), help="comma-separated names")
    parser.add_argument("--k", default="1,2,4", help="training images per round, e.g. 1,2,4")
    parser.add_argument("--n-test", type=int, default=5, help="held-out images per domain")
    parser.add_argument("--size", type=int, default=256, help="side of synthetic images")
    parser.add_argument("--starter", default=None, metavar="PATH", help="default: 'starter'")
    parser.add_argument(
        "--starter-object-size",
        default="auto",
        help="object size for a starter without one: auto, a number, none",
    )
    parser.add_argument("--quick", action="store_true", help="30 steps, 2 test images")
    parser.add_argument("--out-md", default=None, help="write the table (markdown) here")
    parser.add_argument("--docs", default=str(ROOT / "docs"), help="folder of the PNGs ('' : none)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    ablate = parser.add_argument_group("ablations (each changes one default)")
    ablate.add_argument("--no-size-norm", action="store_true")
    ablate.add_argument("--no-copy-paste", action="store_true")
    ablate.add_argument("--steps", type=int, default=None)
    ablate.add_argument("--freeze", default=None)
    ablate.add_argument("--crop-size", type=int, default=None)
    ablate.add_argument("--batch-size", type=int, default=None)
    ablate.add_argument("--lr", type=float, default=None)
    ablate.add_argument("--roi-samples", type=int, default=None)
    ablate.add_argument("--rpn-proposals", type=int, default=None)
    ablate.add_argument("--crop-on-objects", type=float, default=None)
    ablate.add_argument("--warmup-iters", type=int, default=None)
    ablate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any TrainConfig field; VALUE as JSON (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.k.split(",")]
    if max(ks) > N_POOL:
        parser.error(f"--k at most {N_POOL}")
    names = [n.strip() for n in args.domains.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DOMAINS))
    if unknown:
        parser.error(f"unknown domains {unknown}; choose from {sorted(DOMAINS)}")
    config = TrainConfig()
    changes: dict[str, Any] = {}
    if args.quick:
        changes["steps"] = 30
        args.n_test = min(args.n_test, 2)
    keys = ("steps", "freeze", "crop_size", "batch_size", "lr", "roi_samples", "rpn_proposals")
    for key in (*keys, "crop_on_objects", "warmup_iters"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    fields = set(TrainConfig.__dataclass_fields__)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            parser.error(f"--set needs FIELD=VALUE with a TrainConfig field, got {item!r}")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    if args.no_size_norm:
        changes["size_norm"] = False
    if args.no_copy_paste:
        changes["copy_paste"] = 0.0
    try:
        config = replace(config, **changes)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    docs = Path(args.docs) if args.docs else None
    base = starter(args.starter, args.starter_object_size)
    print(
        f"starter object_size={base.object_size}; changes to the defaults: {changes or 'none'}"
        f"; torch threads {torch.get_num_threads()}",
        flush=True,
    )
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name in names:
        rows += run_domain(
            DOMAINS[name], base, ks, config, args.n_test, (args.size, args.size), docs
        )
    text = table(rows, ks)
    print()
    print(text)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.out_md:
        Path(args.out_md).write_text(
            f"`python bench/bench_domains.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
            f" (changes to the defaults: {changes or 'none'})\n\n" + text
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
