"""Train the shipped starter model (``load_model("starter")``) from scratch, offline.

A light Mask R-CNN (``maskrcnn_resnet18_fpn``, class ``nucleus``) trained on synthetic
nuclei only (`labelassist.synthetic.synthetic_nuclei` with its default settings, 8- and
16-bit images), then evaluated on held-out synthetic images and on the real fluorescence
image shipped with labelassist (`labelassist.samples.real_nuclei`). The script, seed and
settings are stored in the checkpoint's metadata (``meta["starter"]``), so the file can be
rebuilt::

    python examples/train_starter.py --out labelassist/data/starter.pt

Checkpoints of every epoch go to ``--run-dir``; ``--resume`` continues a stopped run.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="labelassist/data/starter.pt", help="model file")
    parser.add_argument("--run-dir", default="runs/starter", help="per-epoch checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--n-train", type=int, default=1024, help="synthetic training images")
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--warmup-iters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--roi-samples", type=int, default=128, help="RoIs per image")
    parser.add_argument("--rpn-proposals", type=int, default=500, help="proposals per image")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop after the epoch past this time"
    )
    parser.add_argument("--n-eval", type=int, default=24, help="held-out synthetic images")
    parser.add_argument("--pictures", default="docs", help="folder for the output pictures")
    parser.add_argument(
        "--pictures-only", metavar="MODEL", help="only draw the pictures of MODEL and exit"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.pictures_only:
        save_pictures(la.load_model(args.pictures_only, device="cpu"), args.pictures)
        return 0

    import torch

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    pairs = make_training_data(args.n_train, shape=(args.size, args.size), seed=args.seed)
    logging.info("generated %d training images in %.0f s", len(pairs), time.perf_counter() - t0)
    model = la.load_model(None, classes=["nucleus"], arch="maskrcnn_resnet18_fpn", device="cpu")
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_iters=args.warmup_iters,
        augment=1.0,
        seed=args.seed,
        num_workers=args.workers,
        roi_samples=args.roi_samples,
        rpn_proposals=args.rpn_proposals,
    )

    def on_epoch(record: dict) -> bool:
        minutes = (time.perf_counter() - t0) / 60
        return args.max_minutes is None or minutes < args.max_minutes

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
    train_minutes = (time.perf_counter() - t0) / 60
    logging.info("trained in %.1f min; evaluating", train_minutes)
    metrics = evaluate_starter(model, n_images=args.n_eval, seed=args.seed + 10_000)
    model.meta["starter"] = {
        "script": "examples/train_starter.py",
        "command": "python examples/train_starter.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "data": f"synthetic_nuclei({args.size}x{args.size}, default settings, uint8/uint16 "
        f"alternating), {args.n_train} images from SeedSequence({args.seed})",
        "train_config": result.model.meta.get("train_config"),
        "train_minutes": round(train_minutes, 1),
        "epochs_done": len(result.history),
        "torch": torch.__version__,
        "metrics": metrics,
    }
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
