"""``labelassist demo``: the whole pre-annotation job on built-in defaults, offline."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="pre-annotate the sample images with the starter model (offline)",
        description="Write sample images (synthetic nuclei, 8- and 16-bit, and a real "
        "fluorescence image of nuclei), pre-annotate them with the shipped starter model, and "
        "write the result as a COCO json plus overlay pictures (outlines over each image). "
        "Needs no network.",
        epilog="example:\n  labelassist demo --out demo_out\n  then open demo_out/overlays/*.png "
        "or load demo_out/predictions.json in napari",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)"
    )
    parser.add_argument(
        "--model",
        default="starter",
        help="starter (default), torchvision-coco or a checkpoint path",
    )
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        help="a folder of your own images instead of the samples",
    )
    parser.add_argument(
        "--n-synthetic", type=int, default=3, help="number of synthetic sample images (default: 3)"
    )
    parser.add_argument(
        "--score-threshold", type=float, default=0.5, help="minimum score (default: 0.5)"
    )
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `labelassist --help` stays fast:
    import imageio.v3 as iio  # heavy: imageio and numpy
    import numpy as np  # heavy: numpy

    from ..bulk import preannotate  # heavy: imports torch
    from ..io import read_image  # heavy: imports numpy
    from ..model import load_model  # heavy: imports torch
    from ..samples import write_sample_images  # heavy: imports numpy
    from ..visualize import draw_outlines  # heavy: imports shapely

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.images is None:
        image_dir = out / "images"
        write_sample_images(image_dir, n_synthetic=args.n_synthetic)
    else:
        image_dir = args.images
    start = time.perf_counter()
    model = load_model(args.model, device=args.device)
    dataset = preannotate(
        image_dir, model, out=out / "predictions.json", score_threshold=args.score_threshold
    )
    elapsed = time.perf_counter() - start
    overlay_dir = out / "overlays"
    overlay_dir.mkdir(exist_ok=True)
    total = 0
    for record in dataset.images:
        instances = dataset.instances.get(record["id"])
        if instances is None:
            continue
        image = read_image(dataset.image_path(record["id"]))
        picture = draw_outlines(image, instances)
        name = Path(record["file_name"]).with_suffix(".png").name
        iio.imwrite(overlay_dir / name, picture)
        total += len(instances)
        scores = instances.scores
        mean = f", mean score {float(np.mean(scores)):.2f}" if len(scores) else ""
        print(f"{record['file_name']:<24} {len(instances):4d} instances{mean}")
    print(
        f"{len(dataset.images)} images, {total} instances in {elapsed:.1f} s with model "
        f"'{args.model}' on {model.device}\n"
        f"COCO:     {out / 'predictions.json'}\noverlays: {overlay_dir}/"
    )
    return 0
