"""Save PNG galleries of synthetic images with their ground-truth outlines.

Usage::

    python examples/synthetic_gallery.py OUT_FOLDER [--n-images 8] [--seed 0] [--shift]
    python examples/synthetic_gallery.py OUT_FOLDER --kinds all [--n-images 4]

Without ``--kinds``: writes ``OUT_FOLDER/synthetic_gallery.png``, nuclei with default
settings (with ``--shift`` a second row uses ``labelassist.synthetic.DOMAIN_SHIFT``).
With ``--kinds`` (``all`` or names from ``labelassist.synthetic.KINDS``): writes
``OUT_FOLDER/synthetic_<kind>.png`` for each kind, a row of images, each shown plain and
with its outlines (the pictures of docs/synthetic.md:
``python examples/synthetic_gallery.py docs --kinds all``). Needs matplotlib
(``pip install labelassist[plot]``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import shapely

from labelassist.synthetic import DOMAIN_SHIFT, KINDS, synthetic_image, synthetic_nuclei


def _draw(ax, image: np.ndarray, instances, title: str, outlines: bool = True) -> None:
    h, w = image.shape[:2]
    if image.ndim == 3 and image.dtype != np.uint8:  # 16-bit or float RGB: scale for display
        image = image / max(float(image.max()), 1e-9)
    # pixel (i, j) covers [j, j+1] x [i, i+1]: the extent puts polygons on the pixel grid;
    # gray images are shown from their minimum to their maximum, like a viewer's auto-contrast
    ax.imshow(image, cmap="gray", extent=(0, w, h, 0), interpolation="nearest")
    if outlines:
        for polygon in instances.polygons:
            for part in shapely.get_parts(polygon):
                for ring in (part.exterior, *part.interiors):
                    x, y = ring.xy
                    ax.plot(x, y, color="#ffb000", linewidth=0.6)
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("this example needs matplotlib: pip install labelassist[plot]") from None
    return plt


def _nuclei_gallery(args: argparse.Namespace) -> Path:
    plt = _plt()
    rows = [("default", {})] + ([("DOMAIN_SHIFT", DOMAIN_SHIFT)] if args.shift else [])
    seeds = np.random.SeedSequence(args.seed).spawn(args.n_images * len(rows))
    fig, axes = plt.subplots(
        len(rows), args.n_images, figsize=(2.2 * args.n_images, 2.4 * len(rows)), squeeze=False
    )
    for r, (name, kwargs) in enumerate(rows):
        for c in range(args.n_images):
            dtype = np.uint16 if c % 2 else np.uint8
            image, inst = synthetic_nuclei(
                tuple(args.shape), dtype=dtype, seed=seeds[r * args.n_images + c], **kwargs
            )
            _draw(axes[r, c], image, inst, f"{name} {image.dtype.name} n={len(inst)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "synthetic_gallery.png"
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _kind_gallery(args: argparse.Namespace, kind: str) -> Path:
    """One row: ``n_images`` panels, each image plain and then with its outlines."""
    plt = _plt()
    distinct = max(1, (args.n_images + 1) // 2)
    seeds = np.random.SeedSequence([args.seed, KINDS.index(kind)]).spawn(distinct)
    fig, axes = plt.subplots(1, args.n_images, figsize=(2.2 * args.n_images, 2.4), squeeze=False)
    for c in range(args.n_images):
        image, inst = synthetic_image(kind, tuple(args.shape), seed=seeds[c // 2])
        outlined = c % 2 == 1
        title = f"{kind} n={len(inst)}" + (" (ground truth)" if outlined else "")
        _draw(axes[0, c], image, inst, title, outlines=outlined)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"synthetic_{kind}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=args.dpi)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument(
        "--n-images", type=int, default=None, help="panels per row (8; 4 with --kinds)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--shape", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--shift", action="store_true", help="add a DOMAIN_SHIFT row")
    parser.add_argument(
        "--kinds", nargs="+", metavar="KIND", help=f"'all' or some of {', '.join(KINDS)}"
    )
    parser.add_argument("--dpi", type=int, default=90, help="resolution of the kind rows")
    args = parser.parse_args(argv)
    if args.kinds is None:
        args.n_images = 8 if args.n_images is None else args.n_images
        paths = [_nuclei_gallery(args)]
    else:
        kinds = list(KINDS) if args.kinds == ["all"] else args.kinds
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            parser.error(f"unknown kinds {unknown}; choose from {list(KINDS)} or 'all'")
        args.n_images = 4 if args.n_images is None else args.n_images
        paths = [_kind_gallery(args, kind) for kind in kinds]
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
