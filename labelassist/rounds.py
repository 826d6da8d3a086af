"""Training rounds of a labeling project: the human-in-the-loop cycle.

Round ``k`` starts from the checkpoint of round ``k - 1`` (or a given model for round 1),
trains on **all** images reviewed so far (replay, not only the newest), evaluates on the
held-out reviewed images (split ``"val"``), stores the checkpoint and its metrics in the
project, and redraws the learning curve (AP against the number of reviewed images and
instances, and the review effort per image with each round's proposals, from the
project's effort log).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .evaluation import evaluate
from .io import atomic_write

if TYPE_CHECKING:  # pragma: no cover - annotations only (model and train import torch)
    from .model import Model
    from .project import Project
    from .train import TrainConfig

__all__ = ["effort_points", "plot_learning_curve", "run_round"]

logger = logging.getLogger(__name__)

_CURVE_METRICS = ("segm_AP50", "segm_AP")


def run_round(
    project: Project,
    *,
    base_model: Model | str | os.PathLike | None = None,
    epochs: int | None = None,
    config: TrainConfig | None = None,
    val_fraction: float = 0.2,
    progress: bool = True,
    plot: bool = True,
) -> dict[str, Any]:
    """Train the next round of ``project`` and record it.

    Parameters
    ----------
    project : Project
        An open labeling project with reviewed images.
    base_model : Model, "starter", checkpoint path or None
        Where round 1 starts (default: the shipped starter model). Later rounds start
        from the latest round's checkpoint unless this is given.
    epochs : int, optional
        None (default): the few-shot step recipe of `TrainConfig` (a budget of
        optimizer steps on crops around the reviewed objects, however few images there
        are). An int selects the epoch recipe with that many passes over the images
        (overrides ``config.epochs``; the behaviour of labelassist 1.x).
    config : TrainConfig, optional
        Other training settings (``TrainConfig()``: the defaults).
    val_fraction : float
        Images without a split yet are split into train/val with this fraction (once:
        an image keeps its split in later rounds, so validation stays held out).
    progress : bool
        Show progress bars.
    plot : bool
        Redraw ``learning_curve.png`` in the project folder (needs matplotlib).

    Returns
    -------
    dict
        The round as `Project.rounds` lists it (``round``, ``checkpoint``, ``parent``,
        ``image_ids``, ``metrics``, ``n_images``, ``n_instances``, ``created``) plus
        ``history`` (per-epoch training records).

    Raises
    ------
    ValueError
        If the project has no reviewed training image.

    Examples
    --------
    >>> from labelassist import Project  # doctest: +SKIP
    >>> with Project.open("myproject") as project:  # doctest: +SKIP
    ...     run_round(project)["metrics"]["segm_AP50"]
    """
    from .train import finetune  # heavy: imports torch

    project.assign_splits(val_fraction=val_fraction)
    train = project.dataset(status="reviewed", split="train")
    val = project.dataset(status="reviewed", split="val")
    if not train.images:
        raise ValueError(
            "the project has no reviewed training images; review some images (status "
            "'reviewed') before training a round"
        )
    previous = project.rounds()
    model, parent = _start_model(project, base_model, previous)
    number = len(previous) + 1
    run_dir = project.checkpoint_dir / f"round_{number:03d}"
    result = finetune(model, train, epochs=epochs, out=run_dir, progress=progress, config=config)
    model = result.model
    last = result.history[-1] if result.history else {}
    metrics: dict[str, Any] = {"train_loss": last.get("loss", float("nan"))}
    if epochs is not None or (config is not None and config.epochs is not None):
        metrics["epochs"] = len(result.history)
    else:
        metrics["steps"] = last.get("step", 0)
    n_val = sum(1 for i in val.images if len(val.instances.get(i["id"], ())) > 0)
    if n_val:
        metrics.update(evaluate(model, val, progress=progress))
    else:
        logger.warning(
            "no reviewed validation image with instances: round %d is not evaluated", number
        )
    checkpoint = project.checkpoint_dir / f"round_{number:03d}.pt"
    model.meta["round"] = number
    model.save(checkpoint)
    image_ids = [record["id"] for record in train.images]
    n_instances = sum(len(inst) for inst in train.instances.values())
    project.add_round(
        checkpoint=checkpoint,
        parent=parent,
        image_ids=image_ids,
        metrics=metrics,
        n_instances=n_instances,
    )
    rounds = project.rounds()
    if plot:
        effort = project.effort(by="round")["rows"]
        plot_learning_curve(rounds, project.folder / "learning_curve.png", effort=effort)
    return {**rounds[-1], "history": result.history}


def _start_model(
    project: Project, base_model: Any, previous: list[dict]
) -> tuple[Model, int | None]:
    from .model import Model, load_model  # heavy: imports torch

    parent = previous[-1]["round"] if previous else None
    if isinstance(base_model, Model):
        return base_model, None
    if base_model is not None:
        return load_model(base_model), None
    latest = project.latest_checkpoint()
    if latest is not None:
        return load_model(latest), parent
    try:
        return load_model("starter"), None
    except FileNotFoundError:
        logger.warning("no starter model shipped: round 1 trains from scratch")
        return load_model(None, classes=list(project.classes)), None


def plot_learning_curve(
    rounds: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    *,
    metrics: Sequence[str] = _CURVE_METRICS,
    title: str = "Learning curve",
    effort: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """Plot AP against the number of reviewed images and instances, one point per round;
    with ``effort``, the review effort per image next to it.

    Parameters
    ----------
    rounds : sequence of dict
        Round records with ``n_images``, ``n_instances`` and ``metrics`` (a dict holding
        ``metrics`` keys such as ``segm_AP50``), e.g. `Project.rounds`.
    path : str or os.PathLike
        PNG file to write (atomically).
    metrics : sequence of str
        Which metrics to draw.
    title : str
        Figure title.
    effort : sequence of dict, optional
        Rows of ``Project.effort(by="round")["rows"]`` (``round`` and
        ``seconds_per_image``): a third panel shows the active seconds per accepted
        image against the round whose model made the proposals (effort round ``k + 1``
        corrected round ``k``'s proposals; 0: the starting model). Rounds without
        accepted images are left out.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If ``rounds`` is empty, a round lacks ``n_images``/``n_instances``, or an
        ``effort`` row lacks ``round``/``seconds_per_image``.
    ImportError
        If matplotlib is missing (``pip install labelassist[plot]``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rounds = [{"round": 1, "n_images": 4, "n_instances": 80, "metrics": {"segm_AP50": 0.5}},
    ...           {"round": 2, "n_images": 8, "n_instances": 170, "metrics": {"segm_AP50": 0.7}}]
    >>> out = plot_learning_curve(rounds, pathlib.Path(tempfile.mkdtemp()) / "curve.png")
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    rounds = list(rounds)
    if not rounds:
        raise ValueError("rounds is empty: train a round first (nothing to plot)")
    for k, r in enumerate(rounds):
        missing = [key for key in ("n_images", "n_instances") if key not in r]
        if missing:
            raise ValueError(f"rounds[{k}] lacks {missing}; give records like Project.rounds()")
    points = None if effort is None else effort_points(effort)
    fig = _figure(figsize=(9 if points is None else 13, 3.6), constrained_layout=True)
    axes = fig.subplots(1, 2 if points is None else 3)
    axes[1].sharey(axes[0])  # AP on both, one scale
    axes[1].tick_params(labelleft=False)
    for ax, xkey, xlabel in zip(
        axes[:2],
        ("n_images", "n_instances"),
        ("reviewed images", "reviewed instances"),
        strict=True,
    ):
        x = [r[xkey] for r in rounds]
        for name in metrics:
            y = [(r.get("metrics") or {}).get(name, float("nan")) for r in rounds]
            ax.plot(x, y, marker="o", label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AP on held-out images")
    axes[0].legend(loc="lower right")
    if points is not None:
        ax = axes[2]
        ax.bar(points[0], points[1], color="tab:gray")
        ax.set_xlabel("proposals of round (0: starting model)")
        ax.set_ylabel("active seconds per accepted image")
        ax.set_xticks(points[0])
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    return _save_figure(fig, Path(path))


def effort_points(effort: Sequence[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """``(model rounds, seconds per image)`` of effort rows: effort round ``k`` corrected
    the proposals of round ``k - 1``; rows without accepted images are left out.

    Examples
    --------
    >>> effort_points([{"round": 1, "seconds_per_image": 90.0},
    ...                {"round": 2, "seconds_per_image": None},
    ...                {"round": 3, "seconds_per_image": 40.5}])
    ([0, 2], [90.0, 40.5])
    """
    x: list[int] = []
    y: list[float] = []
    for k, row in enumerate(effort):
        missing = [key for key in ("round", "seconds_per_image") if key not in row]
        if missing:
            raise ValueError(
                f"effort[{k}] lacks {missing}; give the rows of Project.effort(by='round')"
            )
        if row["seconds_per_image"] is not None:
            x.append(int(row["round"]) - 1)
            y.append(float(row["seconds_per_image"]))
    return x, y


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure without pyplot (no GUI backend, thread-safe); lazy import."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "plotting the learning curve needs matplotlib: pip install labelassist[plot]"
        ) from exc
    return Figure(**kwargs)


def _save_figure(fig: Any, path: Path) -> Path:
    with atomic_write(path, suffix=".png") as fh:
        fig.savefig(fh, dpi=120, format="png")
    return path
