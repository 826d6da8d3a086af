"""Save a PNG grid of synthetic nuclei images with their ground-truth outlines.

Usage::

    python examples/synthetic_gallery.py OUT_FOLDER [--n-images 8] [--seed 0] [--shift]

Writes ``OUT_FOLDER/synthetic_gallery.png`` (top: default settings; with ``--shift`` a
second row uses ``labelassist.synthetic.DOMAIN_SHIFT``). Needs matplotlib
(``pip install labelassist[plot]``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import shapely

from labelassist.synthetic import DOMAIN_SHIFT, synthetic_nuclei


def _draw(ax, image: np.ndarray, instances, title: str) -> None:
    h, w = image.shape
    # pixel (i, j) covers [j, j+1] x [i, i+1]: the extent puts polygons on the pixel grid
    ax.imshow(image, cmap="gray", extent=(0, w, h, 0), interpolation="nearest")
    for polygon in instances.polygons:
        for part in shapely.get_parts(polygon):
            x, y = part.exterior.xy
            ax.plot(x, y, color="#ffb000", linewidth=0.6)
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for synthetic_gallery.png")
    parser.add_argument("--n-images", type=int, default=8, help="images per row (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--shape", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--shift", action="store_true", help="add a DOMAIN_SHIFT row")
    args = parser.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("this example needs matplotlib: pip install labelassist[plot]") from None

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
    print(path)
    return path


if __name__ == "__main__":
    main()
