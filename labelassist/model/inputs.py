"""A model's input options, the object size and channels it expects, kept in ``meta["input"]``.

``object_size``: the median object diameter (px, `labelassist.model.scale.object_sizes`)
in the network's own input space, the scale it was trained at (Cellpose's "diam_mean");
``data_object_size``: the median object diameter in the images of the last fine-tuning,
in their own pixels ("diam_labels"); ``channels``: the input channels chosen at the last
fine-tuning (`labelassist.model.normalize.select_channels`). Checkpoints written before
these existed read as None. `InputOptions` gives `labelassist.model.Model` its properties
and ``set_input``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .normalize import check_channels
from .scale import check_object_size

__all__ = ["INPUT_KEYS", "InputOptions", "check_input_meta"]

_UNSET: Any = object()
_M = TypeVar("_M", bound="InputOptions")

#: The keys of ``meta["input"]``: how images are prepared for the network.
INPUT_KEYS = ("object_size", "data_object_size", "channels")


def check_input_meta(value: Any) -> dict[str, Any]:
    """``meta["input"]`` validated, every `INPUT_KEYS` present (None where unknown);
    ``channels`` a list of 1-3 indices.

    Examples
    --------
    >>> check_input_meta(None)
    {'object_size': None, 'data_object_size': None, 'channels': None}
    >>> check_input_meta({"object_size": 17, "channels": (1, 2)})
    {'object_size': 17.0, 'data_object_size': None, 'channels': [1, 2]}
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"meta['input'] must be a dict, got {value!r}")
    unknown = sorted(set(value) - set(INPUT_KEYS))
    if unknown:
        raise ValueError(f"meta['input'] has unknown keys {unknown}; it knows {list(INPUT_KEYS)}")
    channels = check_channels(value.get("channels"))
    return {
        "object_size": check_object_size(value.get("object_size"), "object_size"),
        "data_object_size": check_object_size(value.get("data_object_size"), "data_object_size"),
        "channels": None if channels is None else list(channels),
    }


class InputOptions:
    """`object_size`, `data_object_size`, `channels` and `set_input` over ``self.meta``."""

    meta: dict[str, Any]

    @property
    def object_size(self) -> float | None:
        """Median object diameter (px) in the network's own input space: the scale it was
        trained at (Cellpose's "diam_mean"); None when unknown. `predict` rescales images
        so that their objects have this size."""
        return self.meta["input"]["object_size"]

    @property
    def data_object_size(self) -> float | None:
        """Median object diameter (px) in the user's images of the last fine-tuning, in
        their own pixels (Cellpose's "diam_labels"); the default ``object_size`` of
        `predict`. None when unknown."""
        return self.meta["input"]["data_object_size"]

    @property
    def channels(self) -> tuple[int, ...] | None:
        """The input channels chosen at the last fine-tuning (the default ``channels`` of
        `predict`, see `labelassist.model.normalize.select_channels`); None: images as
        they are."""
        channels = self.meta["input"]["channels"]
        return None if channels is None else tuple(channels)

    def set_input(
        self: _M,
        *,
        object_size: float | None = _UNSET,
        data_object_size: float | None = _UNSET,
        channels: int | Sequence[int] | None = _UNSET,
    ) -> _M:
        """Set any of `object_size`, `data_object_size` and `channels` (None clears one).

        They are stored in ``meta["input"]`` and saved with checkpoints. Returns ``self``.

        Examples
        --------
        >>> from labelassist.model import load_model
        >>> model = load_model(None, classes=["cell"], device="cpu")
        >>> model.object_size is None
        True
        >>> model.set_input(object_size=17, channels=[1, 2]).object_size, model.channels
        (17.0, (1, 2))
        >>> model.set_input(object_size=-1)
        Traceback (most recent call last):
        ...
        ValueError: object_size must be a positive number of pixels (the objects' median diameter) or None, got -1
        """
        new = dict(self.meta["input"])
        if object_size is not _UNSET:
            new["object_size"] = check_object_size(object_size, "object_size")
        if data_object_size is not _UNSET:
            new["data_object_size"] = check_object_size(data_object_size, "data_object_size")
        if channels is not _UNSET:
            picked = check_channels(channels)
            new["channels"] = None if picked is None else list(picked)
        self.meta["input"] = new
        return self
