"""``labelassist preannotate``: run a model over many images and write COCO proposals."""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from typing import Any

from . import CliError

__all__ = ["register", "run"]

_DESCRIPTION = """\
Pre-annotate images with a Mask R-CNN model and write the proposals as a COCO json
(polygons, labels, scores) that a labeling project or napari can import for review.

IMAGES are image files, folders (their .png/.jpg/.jpeg/.tif/.tiff/.bmp files) or quoted
glob patterns. Images that cannot be read or predicted are listed, recorded in the output
and skipped; the others are done. The output is written every --flush-every images; running
the same command again resumes where it stopped (add --retry-failed to try the failed
images again).

Z-stacks and time-lapses (TIFF files whose axes include Z or T) are one item each: their
planes are predicted and linked into 3-D objects and tracks, saved as a COCO video file
(TAO layout) per stack in OUT_STEM.stacks/ beside the output and listed in its
info["stacks"]; an interrupted stack resumes from its next plane.
"""

_EPILOG = """\
examples:
  # a folder, the shipped starter model, offline
  labelassist preannotate images/ --out preds.json

  # a glob pattern (quote it), your fine-tuned checkpoint, large images in tiles
  labelassist preannotate "scans/**/*.tif" --model round3.pt --tile-size 1024 --out preds.json

  # objects about 60 px across (the model rescales the images to its own object size;
  # results come back in the images' own pixels); or let it measure them: --object-size auto
  labelassist preannotate images/ --out preds.json --object-size 60

  # two-channel images (cytoplasm in channel 1, nucleus in channel 0)
  labelassist preannotate cells/ --model cells.pt --channels 1,0 --out preds.json

  # z-stacks and movies: objects linked over planes -> preds.stacks/<file>.json
  labelassist preannotate stacks/*.tif --out preds.json

  # the fastest pass over many images: no mirrored pass for the masks
  labelassist preannotate images/ --out preds.json --no-mirror

  # keep only confident proposals, 4 decoding processes, on the GPU
  labelassist preannotate images/ --out preds.json --score-threshold 0.7 --workers 4 --device cuda

  # on a Dask cluster (start one with: dask scheduler / dask worker tcp://HOST:8786)
  labelassist preannotate /shared/images/ --out preds.json --scheduler tcp://HOST:8786
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``preannotate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "preannotate",
        help="pre-annotate images with a model, write COCO proposals",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="+", metavar="IMAGES", help="files, folders or globs")
    parser.add_argument(
        "--model",
        default="starter",
        metavar="starter|torchvision-coco|PATH",
        help="the model: 'starter' (shipped, offline), 'torchvision-coco' (downloaded) or a "
        "checkpoint file (default: starter)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE.json",
        help="COCO json to write (resumed if it exists)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.5,
        metavar="S",
        help="keep detections scoring above S, in [0, 1] (default: 0.5)",
    )
    parser.add_argument(
        "--mask-threshold",
        type=float,
        default=None,
        metavar="P",
        help="mask probability above which a pixel is inside, in (0, 1); higher: tighter "
        "outlines (default: the threshold stored with the model, chosen for its edges)",
    )
    parser.add_argument(
        "--no-mirror",
        action="store_true",
        help="skip averaging each mask with the mirrored image's: about 1.5x faster, "
        "slightly rougher outlines",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=None,
        metavar="PX",
        help="predict large images in overlapping PX x PX tiles (default: whole image)",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=None,
        metavar="PX",
        help="overlap of neighbouring tiles; must exceed the largest object (default: "
        "min(192, 3/8 of the tile size); 128 with 512 px tiles is ~1.45x faster, slightly "
        "less faithful to untiled prediction near seams)",
    )
    parser.add_argument(
        "--object-size",
        type=_object_size,
        default=None,
        metavar="PX|auto",
        help="the objects' typical diameter in the images, in pixels: images are rescaled so "
        "that objects have the size the model was trained at, results come back in the "
        "images' pixels; 'auto' measures it per image (more passes); default: the size "
        "stored with the model (fine-tuning stores it), else no rescaling",
    )
    parser.add_argument(
        "--channels",
        type=_channels,
        default=None,
        metavar="C[,C[,C]]",
        help="channels of multichannel images to use, 0-based, in order: one (gray), two "
        "(e.g. 1,0 for cytoplasm + nucleus) or three (RGB); default: those stored with the "
        "model, else the images as they are",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=4,
        metavar="N",
        help="images per forward pass (default: 4)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="torch device, e.g. cpu, cuda, cuda:1 (default: auto; Dask workers pick their own)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes decoding images while the model runs; 0: none (default: auto)",
    )
    parser.add_argument(
        "--flush-every",
        type=int,
        default=50,
        metavar="N",
        help="write the output after every N images (default: 50)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786); "
        "image paths must be readable by the workers",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="when resuming, try again the images the output records as failed",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
    return parser


def _object_size(text: str) -> float | str:
    """``--object-size``: a positive number of pixels or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive number of pixels (the objects' diameter) or auto, got {text!r}"
        )
    return value


def _channels(text: str) -> tuple[int, ...]:
    """``--channels``: 1 to 3 distinct comma-separated channel indices, e.g. ``1,0``."""
    parts = [p.strip() for p in text.split(",")]
    if (
        not 1 <= len(parts) <= 3
        or not all(p.isdigit() for p in parts)
        or len(set(parts)) != len(parts)
    ):
        raise argparse.ArgumentTypeError(
            f"must be 1 to 3 distinct comma-separated channel indices such as 0 or 1,0, got {text!r}"
        )
    return tuple(int(p) for p in parts)


def _connect(address: str) -> Any:
    try:
        from distributed import Client  # heavy: optional dependency (the dask extra)
    except ImportError as exc:
        raise CliError("--scheduler needs dask.distributed: pip install labelassist[dask]") from exc
    try:
        return Client(address)
    except (OSError, TimeoutError) as exc:
        raise CliError(f"cannot connect to the Dask scheduler at {address}: {exc}") from exc


def _image_argument(images: list[str]) -> str | list[str]:
    return images[0] if len(images) == 1 else list(images)


def run(args: argparse.Namespace) -> int:
    """Run ``labelassist preannotate``; return the exit code."""
    # heavy: the bulk and COCO stack, and torch for the model; --help stays quick
    # heavy: bulk and model import torch; deferred so `labelassist --help` stays quick
    from ..bulk import PreannotateWarning, collect_sources, preannotate
    from ..model import load_model

    if not args.out.lower().endswith(".json"):
        raise CliError(f"--out must be a .json file, got {args.out!r}")
    images = _image_argument(args.images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreannotateWarning)
        collect_sources(images)  # fail fast on a wrong path, before loading the model
    start = time.perf_counter()
    model = load_model(args.model, device=args.device)
    client = _connect(args.scheduler) if args.scheduler else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreannotateWarning)  # reported below instead
            dataset = preannotate(
                images,
                model,
                out=args.out,
                score_threshold=args.score_threshold,
                tile_size=args.tile_size,
                tile_overlap=args.tile_overlap,
                object_size=args.object_size,
                channels=args.channels,
                mask_threshold=args.mask_threshold,
                mirror=not args.no_mirror,
                batch_size=args.batch_size,
                num_workers=args.workers,
                client=client,
                flush_every=args.flush_every,
                retry_failed=args.retry_failed,
                progress=not args.no_progress,
            )
    except KeyboardInterrupt:
        print(
            f"interrupted: the images done so far are saved in {args.out}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        raise
    finally:
        if client is not None:
            client.close()
    elapsed = time.perf_counter() - start
    for name, reason in dataset.failed:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if dataset.failed:
        print(
            f"{len(dataset.failed)} failed images are recorded in {args.out} and skipped when "
            "the command runs again; add --retry-failed to try them again",
            file=sys.stderr,
        )
    n_images = len(dataset.images)
    n_instances = sum(len(inst) for inst in dataset.instances.values())
    stacks = dataset.stacks
    n_objects = sum(len(s.object_ids) for s in stacks.values())
    in_stacks = f", {len(stacks)} stacks ({n_objects} objects)" if stacks else ""
    print(
        f"preannotate: {n_images} images, {n_instances} instances{in_stacks}, "
        f"{len(dataset.failed)} failed, {elapsed:.1f} s -> {args.out}"
    )
    if dataset.failed and not n_images and not stacks:
        raise CliError(
            f"none of the {len(dataset.failed)} images could be read or predicted (see above)"
        )
    return 0
