"""``labelassist train`` (a project round or COCO files) and ``labelassist evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import CliError

__all__ = ["register", "run", "run_evaluate"]

_TRAIN_DESCRIPTION = """\
Fine-tune a Mask R-CNN on reviewed annotations.

With --project: train the project's next round. It starts from the latest round's
checkpoint (the starter model for round 1, or --model), trains on every reviewed image of
the train split (replay), evaluates on the reviewed val split, and records the checkpoint,
the metrics and the learning curve (learning_curve.png) in the project.

With --train: fine-tune --model on a COCO json and write checkpoints to --out
(last.pt after every chunk of steps; --resume continues a stopped run).

The default is the few-shot step recipe: --steps optimizer steps (however few images
there are) on random crops around the reviewed objects, with copy-paste and flips,
rotations, scale and intensity jitter, at the model's object size; the freezing is
chosen from the amount of data. --epochs N selects the epoch recipe of labelassist 1.x
(N passes over the whole images).
"""

_TRAIN_EPILOG = """\
examples:
  labelassist train --project myproj
  labelassist train --project myproj --steps 300 --max-minutes 5
  labelassist train --project cells --channels 1,2
  labelassist train --train reviewed.json --val heldout.json --model starter --out runs/1
  labelassist train --train reviewed.json --model runs/1/last.pt --out runs/2 --freeze backbone
  torchrun --nproc-per-node 4 "$(which labelassist)" train --train big.json --out runs/ddp
"""

_EVAL_DESCRIPTION = """\
Predict the annotated images of a COCO json with a model and print COCO metrics
(mask and box AP, AP50, AP75, AR).
"""


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``evaluate`` subcommands to ``subparsers``."""
    train = subparsers.add_parser(
        "train",
        help="fine-tune on reviewed annotations (a project round or COCO files)",
        description=_TRAIN_DESCRIPTION,
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--project", metavar="DIR", help="labeling project folder")
    source.add_argument("--train", metavar="COCO.json", help="training annotations")
    train.add_argument("--val", metavar="COCO.json", help="held-out annotations (with --train)")
    train.add_argument(
        "--image-root", metavar="DIR", help="folder of the images (default: next to the json)"
    )
    train.add_argument(
        "--model",
        default=None,
        metavar="starter|PATH",
        help="start model: 'starter' or a checkpoint (default: starter; with --project the "
        "latest round)",
    )
    train.add_argument("--out", metavar="DIR", help="checkpoint folder (required with --train)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps (default: 200)")
    train.add_argument(
        "--max-minutes", type=float, default=None, help="time cap of the steps (default: none)"
    )
    train.add_argument(
        "--epochs", type=int, default=None, help="epoch recipe: passes over the whole images"
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step (default: 2)",
    )
    train.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 0.005)")
    train.add_argument(
        "--freeze",
        default=None,
        choices=("auto", "none", "backbone", "features", "heads"),
        help="parts not trained (default: auto, from the amount of data)",
    )
    train.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help="side of the training crops (default: 192)",
    )
    train.add_argument(
        "--channels",
        default=None,
        metavar="C[,C...]",
        help="input channels of multichannel images, e.g. 1,2 for cytoplasm + nucleus",
    )
    train.add_argument("--no-copy-paste", action="store_true", help="no copy-paste augmentation")
    train.add_argument(
        "--no-size-norm", action="store_true", help="train at the data's own object size"
    )
    train.add_argument("--no-augment", action="store_true", help="no data augmentation")
    train.add_argument("--workers", type=int, default=None, help="data loading processes")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument("--device", default=None, help="torch device (default: auto)")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train.set_defaults(func=run)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="COCO metrics of a model on an annotated COCO json",
        description=_EVAL_DESCRIPTION,
        epilog="example:\n  labelassist evaluate --model runs/1/last.pt heldout.json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("coco", metavar="COCO.json", help="annotations with the ground truth")
    evaluate.add_argument("--model", default="starter", metavar="starter|PATH")
    evaluate.add_argument("--image-root", metavar="DIR", help="folder of the images")
    evaluate.add_argument(
        "--score-threshold", type=float, default=0.05, help="prediction threshold (default 0.05)"
    )
    evaluate.add_argument("--tile-size", type=int, default=None, help="predict in tiles")
    evaluate.add_argument("--device", default=None, help="torch device (default: auto)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(func=run_evaluate)


def _config(args: argparse.Namespace) -> Any:
    from ..train import TrainConfig  # heavy: imports torch

    options = {
        "steps": args.steps,
        "max_minutes": args.max_minutes,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "freeze": args.freeze,
        "crop_size": args.crop_size,
        "channels": _channels(args.channels),
        "num_workers": args.workers,
    }
    changes = {k: v for k, v in options.items() if v is not None}
    if args.no_copy_paste:
        changes["copy_paste"] = 0.0
    if args.no_size_norm:
        changes["size_norm"] = False
    if args.no_augment:
        changes["augment"] = 0.0
    try:
        return TrainConfig(seed=args.seed, **changes)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _channels(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise CliError(
            f"--channels must be comma-separated channel indices such as 1,2, got {text!r}"
        ) from None


def _load(source: str | None, device: str | None) -> Any:
    from ..model import load_model  # heavy: imports torch

    return load_model(source or "starter", device=device)


def run(args: argparse.Namespace) -> int:
    """Run ``labelassist train``; return the exit code."""
    config = _config(args)
    if args.project:
        return _train_round(args, config)
    return _train_coco(args, config)


def _train_round(args: argparse.Namespace, config: Any) -> int:
    """``labelassist train --project DIR``: the project's next round."""
    if args.val or args.out or args.resume:
        raise CliError("--val, --out and --resume go with --train, not with --project")
    from ..project import Project  # deferred: keeps `labelassist --help` quick
    from ..rounds import run_round  # heavy: imports torch

    base = _load(args.model, args.device) if args.model else None
    with Project.open(args.project) as project:
        result = run_round(
            project,
            base_model=base,
            config=config,
            progress=not args.no_progress,
        )
    print(
        f"round {result['round']}: {result['n_images']} images, "
        f"{result['n_instances']} instances -> {result['checkpoint']}"
    )
    _print_metrics(result["metrics"])
    return 0


def _train_coco(args: argparse.Namespace, config: Any) -> int:
    """``labelassist train --train COCO.json --out DIR``: fine-tune on COCO files."""
    if not args.out:
        raise CliError("--train needs --out DIR for the checkpoints")
    if not Path(args.train).exists():
        raise CliError(f"--train: COCO file not found: {args.train}")
    _check_image_root(args.image_root)
    from ..train import finetune  # heavy: imports torch

    model = _load(args.model, args.device)
    result = finetune(
        model,
        args.train,
        val=args.val,
        image_root=args.image_root,
        out=args.out,
        resume=args.resume,
        progress=not args.no_progress,
        config=config,
    )
    last = result.history[-1] if result.history else {}
    unit = "epoch(s)" if config.epochs is not None else f"chunk(s), {last.get('step', 0)} steps"
    print(f"trained {len(result.history)} {unit} -> {result.checkpoint}")
    _print_metrics({k: v for k, v in last.items() if k != "epoch"})
    return 0


def _check_image_root(image_root: str | None) -> None:
    if image_root is not None and not Path(image_root).is_dir():
        raise CliError(
            f"--image-root: folder not found: {image_root}; give the folder that holds the "
            "images of the json (default: the json's folder)"
        )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``labelassist evaluate``; return the exit code."""
    from ..coco import read_coco  # deferred: keeps `labelassist --help` quick
    from ..evaluation import evaluate  # deferred: keeps `labelassist --help` quick

    if not Path(args.coco).exists():
        raise CliError(f"COCO file not found: {args.coco}")
    _check_image_root(args.image_root)
    dataset = read_coco(args.coco, image_root=args.image_root)
    model = _load(args.model, args.device)
    metrics = evaluate(
        model,
        dataset,
        score_threshold=args.score_threshold,
        progress=not args.no_progress,
        tile_size=args.tile_size,
    )
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_metrics(metrics)
    return 0


def _print_metrics(metrics: dict[str, Any]) -> None:
    rows = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))]
    if not rows:
        return
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}}  value")
    for key, value in rows:
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")
