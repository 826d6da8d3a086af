"""What the dock widgets share: a background job with progress and cancel, and layer links.

A widget collects parameters, runs ONE labelassist call in a napari thread worker (the
job is a plain generator function, testable without Qt, that yields
``(done, total, message)``), and writes layers when it returns. Layers are found by the
link in ``layer.metadata["labelassist"]`` (project folder + image id), never by name.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from magicgui.widgets import Container, FileEdit, Label, ProgressBar, PushButton
from napari.layers import Image, Shapes
from napari.utils import notifications

from ._convert import METADATA_KEY

__all__ = [
    "JobWidget",
    "find_linked_layer",
    "import_torch",
    "layer_link",
    "path_value",
    "report_error",
]

logger = logging.getLogger(__name__)

Progress = tuple[int, int, str]
_LAYER_TYPES = {"image": Image, "shapes": Shapes}


def import_torch() -> None:
    """Import torch, torchvision and the labelassist model code in the GUI thread.

    torchvision imports ``torch._dynamo``, which imports triton when it is installed.
    Loading triton's LLVM after napari created its OpenGL context crashes the process
    (segfault) with Mesa's llvmpipe driver (software rendering: VMs, Xvfb), whose own
    LLVM clashes with it. torch works without triton (only ``torch.compile`` on GPUs
    needs it), so when torch is imported this late, triton is hidden from it.
    """
    if "torch._dynamo" not in sys.modules and "triton" not in sys.modules:
        logger.info("hiding triton from torch: it crashes next to napari's OpenGL context")
        sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
    import torchvision.ops  # noqa: F401

    import labelassist.model.model  # noqa: F401
    import labelassist.model.predict  # noqa: F401


def report_error(status: Label, message: str) -> None:
    """Show an error ``message`` in a widget's ``status`` line and as a napari notification."""
    status.value = message
    notifications.show_error(message)


def path_value(edit: FileEdit) -> Path:
    """The one path chosen in a file box (``Path(".")`` while it is empty)."""
    value = edit.value
    if isinstance(value, tuple):  # a multi-file box: the plugin uses single-path boxes only
        raise ValueError(f"choose one path in {edit.label!r}, got {len(value)}")
    return Path(value if value is not None else ".")


def layer_link(layer: Any) -> dict[str, Any]:
    """The plugin's metadata of a layer (``{}`` for a foreign layer)."""
    return dict(getattr(layer, "metadata", {}).get(METADATA_KEY, {}) or {})


def find_linked_layer(viewer: Any, kind: str, project: str, image: int) -> Any | None:
    """The ``kind`` (``"image"`` or ``"shapes"``) layer linked to a project image."""
    for layer in viewer.layers:
        link = layer_link(layer)
        if (
            isinstance(layer, _LAYER_TYPES[kind])
            and link.get("project") == project
            and link.get("image") == image
        ):
            return layer
    return None


class JobWidget(Container):
    """A dock widget that runs one job at a time in a thread worker.

    Subclasses add their inputs and call `start_job`. The progress bar, the cancel
    button and the status line are at the bottom. ``busy`` is True while a job runs.
    """

    def __init__(self, viewer: Any, widgets: list[Any], *, name: str) -> None:
        self.viewer = viewer
        self.progress = ProgressBar(value=0, min=0, max=1, visible=False, label="progress")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.cancel_button.changed.connect(self.cancel)
        self.worker: Any = None
        self._job_name = name
        super().__init__(widgets=[*widgets, self.progress, self.cancel_button, self.status])

    @property
    def busy(self) -> bool:
        """Whether a job is running."""
        return self.worker is not None

    def start_job(
        self,
        job: Callable[..., Generator[Progress, None, Any]],
        *args: Any,
        on_done: Callable[[Any], None],
        **kwargs: Any,
    ) -> Any:
        """Run the generator function ``job(*args, **kwargs)`` in a thread worker.

        Its yields ``(done, total, message)`` drive the progress bar (``total=0``: busy
        indicator); ``on_done(result)`` runs in the GUI thread unless cancelled.
        """
        from napari.qt.threading import create_worker

        if self.busy:
            notifications.show_warning(f"{self._job_name} is already running")
            return None
        worker = create_worker(job, *args, _start_thread=False, **kwargs)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_done)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(lambda: self._set_status(f"{self._job_name} cancelled"))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.progress.visible = True
        self.progress.min, self.progress.max, self.progress.value = 0, 0, 0
        self.cancel_button.enabled = True
        self._set_enabled(False)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next step."""
        if self.worker is not None:
            self.worker.quit()
            self._set_status(f"cancelling {self._job_name}...")

    def _on_progress(self, value: Progress) -> None:
        done, total, message = value
        self.progress.max = max(int(total), 0)
        self.progress.value = min(int(done), max(int(total), 0))
        self._set_status(message)

    def _on_error(self, exc: BaseException) -> None:
        logger.error("%s failed", self._job_name, exc_info=exc)
        report_error(self.status, f"{self._job_name} failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.progress.visible = False
        self.cancel_button.enabled = False
        self._set_enabled(True)

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _set_enabled(self, enabled: bool) -> None:
        """Enable or disable the inputs while a job runs (subclasses override)."""
