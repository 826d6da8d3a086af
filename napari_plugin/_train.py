"""The Train rounds dock widget.

It trains the next round in the background, re-annotates the images nobody touched yet
with the new model and plots AP per round.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, Label, PushButton, SpinBox
from napari.utils import notifications

from labelassist.project import ProjectConflictError

from ._widgets import JobWidget, Progress, import_torch, layer_link, path_value, report_error

__all__ = ["TrainWidget", "plot_rounds", "train_round_job"]

REANNOTATE_STATUSES = ("new", "pre-annotated")  # images no person has edited


def _run_round(
    project: Any, *, steps: int | None, max_minutes: float | None, epochs: int | None
) -> dict:
    """`labelassist.rounds.run_round` without data-loading processes (forking a Qt
    application from a worker thread can hang) and without console progress bars; the
    library's few-shot step recipe unless ``epochs`` is given."""
    from labelassist.rounds import run_round
    from labelassist.train import TrainConfig

    options: dict[str, Any] = {"num_workers": 0, "max_minutes": max_minutes, "epochs": epochs}
    if steps is not None:
        options["steps"] = steps
    config = TrainConfig(**options)
    return run_round(project, config=config, progress=False)


def _budget(steps: int | None, max_minutes: float | None, epochs: int | None) -> str:
    if epochs is not None:
        return f"{epochs} epochs"
    from labelassist.train.config import TrainConfig

    text = f"{steps if steps is not None else TrainConfig().steps} steps"
    return text + (f", at most {max_minutes:g} min" if max_minutes else "")


def train_round_job(
    folder: str | Path,
    *,
    steps: int | None = None,
    max_minutes: float | None = None,
    epochs: int | None = None,
    device: str | None = None,
    reannotate: bool = True,
    score_threshold: float = 0.5,
) -> Generator[Progress, None, dict]:
    """Train the next round of the project in ``folder`` (`labelassist.rounds.run_round`:
    ``steps`` optimizer steps of the few-shot recipe, capped at ``max_minutes``; or
    ``epochs`` passes of the epoch recipe), then pre-annotate the images no person has edited (status ``new`` /
    ``pre-annotated``) with the new model on ``device``.

    Each re-annotation is saved with the version the image had when the list was made
    (``expected_version``): an image a person saved meanwhile keeps their work and is
    counted in ``skipped``. Yields ``(done, total, message)``; a cancel takes effect between
    images. Returns the round's ``{"round", "metrics", "reannotated", "skipped"}``.
    """
    import labelassist as la

    with la.Project.open(folder) as project:  # this thread's own connection
        budget = _budget(steps, max_minutes, epochs)
        yield (0, 0, f"training round {len(project.rounds()) + 1} ({budget})...")
        result = _run_round(project, steps=steps, max_minutes=max_minutes, epochs=epochs)
        summary = {
            "round": result["round"],
            "metrics": result["metrics"],
            "reannotated": 0,
            "skipped": 0,
        }
        if not reannotate:
            return summary
        model = la.load_model(result["checkpoint"], device=device)
        todo = project.images(status=list(REANNOTATE_STATUSES))
        for k, record in enumerate(todo):
            yield (k, len(todo), f"re-annotating {k + 1}/{len(todo)}: {record['file_name']}")
            image = la.read_image(project.image_path(record))
            instances = model.predict(image, score_threshold=score_threshold)
            assert isinstance(instances, la.Instances)  # one image in, one Instances out
            try:
                project.save_instances(
                    record["id"],
                    instances,
                    source="model",
                    model_id=f"round {result['round']}",
                    expected_version=record["version"],
                )
            except ProjectConflictError:  # a person saved it while we trained: theirs stays
                summary["skipped"] += 1
                continue
            summary["reannotated"] += 1
        yield (len(todo), len(todo), "done")
    return summary


def plot_rounds(
    axes: Any, rounds: list[dict], *, metrics: tuple[str, ...] = ("segm_AP", "segm_AP50")
) -> None:
    """Draw mask AP per round (from ``Project.rounds()``) on matplotlib ``axes``."""
    axes.clear()
    numbers = []
    for name, style in zip(metrics, ("o-", "s--"), strict=False):
        xs = [r["round"] for r in rounds if name in r["metrics"]]
        ys = [r["metrics"][name] for r in rounds if name in r["metrics"]]
        axes.plot(xs, ys, style, label=name)
        numbers += xs
    axes.set_xlabel("round")
    axes.set_ylabel("AP (validation)")
    axes.set_ylim(0, 1)
    if numbers:
        axes.set_xticks(sorted(set(numbers)))
        axes.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)
        axes.legend(loc="lower right", fontsize=7)
    else:
        axes.set_xticks([])
    axes.set_title("mask AP per round" if numbers else "no evaluated round yet", fontsize=9)
    axes.grid(alpha=0.3)


class TrainWidget(JobWidget):
    """Train the next round on the reviewed images of a project, in the background.

    After training (`labelassist.rounds.run_round`: the round's device is chosen by the
    library), the images no person has edited are re-annotated with the new model on the
    chosen device. The plot shows mask AP per round on the project's validation images.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (napari passes it).
    """

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.folder = FileEdit(label="project", mode=FileDialogMode.EXISTING_DIRECTORY)
        from labelassist.train.config import TrainConfig  # the library's defaults

        self.steps = SpinBox(label="steps", value=TrainConfig().steps, min=1, max=100_000)
        self.max_minutes = FloatSpinBox(
            label="max minutes (0: none)", value=0.0, min=0.0, max=10_000.0, step=1.0
        )
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto")
        self.reannotate = CheckBox(label="re-annotate untouched images", value=True)
        self.threshold = FloatSpinBox(
            label="score threshold", value=0.5, min=0.0, max=1.0, step=0.05
        )
        self.train_button = PushButton(text="Train next round")
        self.rounds_label = Label(value="")
        super().__init__(
            napari_viewer,
            [
                self.folder,
                self.steps,
                self.max_minutes,
                self.device,
                self.reannotate,
                self.threshold,
                self.train_button,
                self.rounds_label,
            ],
            name="training",
        )
        self.figure, self.canvas = _make_plot()
        if self.canvas is not None:
            self.native.layout().addWidget(self.canvas)
        self.train_button.changed.connect(self.run)
        self.folder.changed.connect(self.refresh_plot)
        napari_viewer.layers.events.inserted.connect(self._guess_folder)
        self._guess_folder()
        self.refresh_plot()

    def _guess_folder(self, _event: Any = None) -> None:
        if str(self.folder.value) not in ("", "."):
            return
        for layer in self.viewer.layers:
            folder = layer_link(layer).get("project")
            if folder:
                self.folder.value = folder
                return

    def _set_enabled(self, enabled: bool) -> None:
        self.train_button.enabled = enabled

    def _project_folder(self) -> Path:
        from labelassist.project import DB_NAME

        folder = path_value(self.folder)
        if not (folder / DB_NAME).is_file():
            raise ValueError(f"{str(folder)!r} is not a labelassist project; choose its folder")
        return folder

    def run(self, _value: Any = None) -> Any:
        """Start training the next round; returns the worker (None if not started)."""
        try:
            folder = self._project_folder()
        except ValueError as exc:
            report_error(self.status, str(exc))
            return None
        import_torch()
        return self.start_job(
            train_round_job,
            folder,
            steps=int(self.steps.value),
            max_minutes=float(self.max_minutes.value) or None,
            device=None if self.device.value == "auto" else self.device.value,
            reannotate=bool(self.reannotate.value),
            score_threshold=float(self.threshold.value),
            on_done=self._done,
        )

    def _done(self, summary: dict) -> None:
        ap = summary["metrics"].get("segm_AP")
        text = (
            f"round {summary['round']}: segm_AP {ap:.3f}"
            if ap is not None
            else f"round {summary['round']}"
        )
        skipped = summary["skipped"]
        kept = f" ({skipped} edited meanwhile: kept)" if skipped else ""
        self._set_status(f"{text}; re-annotated {summary['reannotated']} images{kept}")
        notifications.show_info(f"labelassist: {text}")
        self.refresh_plot()

    def refresh_plot(self, _value: Any = None) -> None:
        """Redraw AP per round from the project."""
        import labelassist as la

        try:
            folder = self._project_folder()
        except ValueError:
            if self.figure is not None:
                plot_rounds(self.figure.axes[0], [])
                self.canvas.draw_idle()
            return
        with la.Project.open(folder) as project:
            rounds = project.rounds()
        self.rounds_label.value = f"{len(rounds)} rounds trained"
        if self.figure is not None:
            plot_rounds(self.figure.axes[0], rounds)
            self.canvas.draw_idle()


def _make_plot() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:  # the [napari] extra brings matplotlib; without it, no plot
        notifications.show_warning(
            "install matplotlib for the AP plot: pip install labelassist[napari]"
        )
        return None, None
    figure = Figure(figsize=(3, 2), dpi=100, tight_layout=True)
    figure.add_subplot(1, 1, 1)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(180)
    return figure, canvas
