"""The local loop of a bulk run: images decoded by worker processes, the model run here.

A torch `DataLoader` decodes the images (`load_source`) in ``num_workers`` processes while
this process predicts batch after batch (`predict_batch`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from torch.utils.data import DataLoader, Dataset

from .batch import Loaded, Options, Outcome, predict_batch
from .sources import ImageSource, load_source

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Model

__all__ = ["default_num_workers", "run_local"]


class _Decoding(Dataset[Loaded]):
    """The sources as a map-style dataset: item ``k`` is source ``k``, decoded."""

    def __init__(self, sources: Sequence[ImageSource], *, any_channels: bool = False) -> None:
        self.sources = list(sources)
        self.any_channels = any_channels

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, k: int) -> Loaded:
        source = self.sources[k]
        return (source, *load_source(source, any_channels=self.any_channels))


def _collate(batch: list[Loaded]) -> list[Loaded]:
    return batch


def default_num_workers(sources: Sequence[ImageSource], model: Model) -> int:
    """Decoding processes: none for arrays, and none when the model runs on the CPU (its
    threads already use every core; extra processes only compete with it, see
    bench/results_bulk.md); else up to 4, one less than the CPU count."""
    if all(s.path is None for s in sources) or len(sources) < 2:
        return 0
    if getattr(model.device, "type", str(model.device)) == "cpu":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def run_local(
    sources: Sequence[ImageSource],
    model: Model,
    options: Options,
    num_workers: int,
    emit: Callable[[list[Outcome]], None],
) -> None:
    """Predict ``sources`` in batches of ``options.batch_size``; ``emit`` each batch's
    outcomes (in input order)."""
    loader: DataLoader[Loaded] = DataLoader(
        _Decoding(sources, any_channels=options.channels is not None),
        batch_size=options.batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    for batch in loader:
        emit(predict_batch(model, batch, options))
