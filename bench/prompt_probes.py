"""What the prompt probes share (bench/probe_hull_margin.py, bench/probe_neighbour_gap.py):
their data (held-out synthetic seeds or bench_prompts.py's sets) and their pictures (each
object's crop with the truth, two results and the annotated neighbours outlined)."""

from __future__ import annotations

from typing import Any

import numpy as np
from bench_prompts import _data

from labelassist.synthetic import synthetic_nuclei


def probe_sets(data: str, first_seed: int, images: int) -> tuple[list, str]:
    """``(image, truth)`` pairs and their name: ``data="heldout"``, synthetic nuclei of seeds
    ``first_seed`` on (256 x 256, 8- and 16-bit alternating, no benchmark's); ``"synthetic"``
    or ``"real"``, bench_prompts.py's sets."""
    if data != "heldout":
        return _data(12, 256)[data], data
    seeds = range(first_seed, first_seed + images)
    sets = [synthetic_nuclei((256, 256), seed=s, dtype=np.uint16 if s % 2 else np.uint8)[:2]
            for s in seeds]  # fmt: skip
    return sets, f"held-out synthetic, seeds {seeds[0]}-{seeds[-1]}"


def outline_panels(crops: list[dict], first: Any, last: Any, path: str, title: str) -> None:
    """One panel per crop, written to ``path``: truth green, ``found[first]`` red dashed,
    ``found[last]`` yellow, ``others`` cyan dotted, ``clicks`` (if given) white; titled with
    the object's size and its IoU under ``first`` and ``last``.

    Each crop is a dict with ``image``, ``truth`` (a polygon), ``found`` and ``iou`` (dicts
    keyed by ``first`` and ``last``), ``others`` (polygons) and optionally ``clicks`` (K, 2).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(crops), figsize=(3.2 * len(crops), 3.6), squeeze=False)
    for ax, c in zip(axes[0], crops, strict=True):
        x0, y0, x1, y1 = (int(v) for v in c["truth"].bounds)
        image = c["image"] if c["image"].ndim == 2 else c["image"].mean(axis=-1)
        h, w = image.shape
        cx0, cy0, cx1, cy1 = max(x0 - 8, 0), max(y0 - 8, 0), min(x1 + 8, w), min(y1 + 8, h)
        ax.imshow(image[cy0:cy1, cx0:cx1], cmap="gray", extent=(cx0, cx1, cy1, cy0))
        for geom, colour, style in [(g, "cyan", ":") for g in c["others"]] + [
            (c["found"][first], "red", "--"), (c["found"][last], "yellow", "-"),
            (c["truth"], "lime", "-"),
        ]:  # fmt: skip
            for part in getattr(geom, "geoms", [geom]):
                if not part.is_empty:
                    ax.plot(*part.exterior.xy, color=colour, linestyle=style, linewidth=1.5)
        if c.get("clicks") is not None:
            ax.plot(c["clicks"][:, 0], c["clicks"][:, 1], "o", color="white", markersize=4)
        ax.set_xlim(cx0, cx1)
        ax.set_ylim(cy1, cy0)
        ax.set_title(f"{x1 - x0} x {y1 - y0} px: {c['iou'][first]:.2f} -> {c['iou'][last]:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
