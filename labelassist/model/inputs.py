"""A model's input options, the object size and channels it expects, kept in ``meta["input"]``.

``object_size``: the median object diameter (px, `labelassist.model.scale.object_sizes`)
in the network's own input space, the scale it was trained at (Cellpose's "diam_mean");
``data_object_size``: the median object diameter in the images of the last fine-tuning,
in their own pixels ("diam_labels"); ``channels``: the input channels chosen at the last
fine-tuning (`labelassist.model.normalize.select_channels`); ``mask_threshold``: the mask
probability above which a pixel is inside, chosen for the network's edges when it was built
(`labelassist.fidelity.choose_mask_threshold`). Checkpoints written before these existed
read as None (``mask_threshold``: `DEFAULT_MASK_THRESHOLD`). `InputOptions` gives `labelassist.model.Model` its properties
and ``set_input``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .normalize import check_channels
from .scale import check_object_size

__all__ = ["DEFAULT_MASK_THRESHOLD", "INPUT_KEYS", "InputOptions", "check_input_meta"]

_UNSET: Any = object()
_M = TypeVar("_M", bound="InputOptions")

#: The keys of ``meta["input"]``: how images are prepared for the network.
INPUT_KEYS = ("object_size", "data_object_size", "channels", "mask_threshold")

#: The mask threshold of a model that stores none (torchvision's).
DEFAULT_MASK_THRESHOLD = 0.5


def check_mask_threshold(value: Any, name: str = "mask_threshold") -> float:
    """``value`` as a float within (0, 1), or a one-line ValueError naming ``name``.

    Examples
    --------
    >>> check_mask_threshold(0.6)
    0.6
    >>> check_mask_threshold(1)
    Traceback (most recent call last):
    ...
    ValueError: mask_threshold must be a probability within (0, 1), e.g. 0.5; got 1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a probability within (0, 1), e.g. 0.5; got {value!r}")
    return float(value)


def check_input_meta(value: Any) -> dict[str, Any]:
    """``meta["input"]`` validated, every `INPUT_KEYS` present (None where unknown);
    ``channels`` a list of 1-3 indices.

    Examples
    --------
    >>> check_input_meta(None)
    {'object_size': None, 'data_object_size': None, 'channels': None, 'mask_threshold': None}
    >>> check_input_meta({"object_size": 17, "channels": (1, 2)})["channels"]
    [1, 2]
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
        "mask_threshold": None
        if value.get("mask_threshold") is None
        else check_mask_threshold(value["mask_threshold"], "meta['input']['mask_threshold']"),
    }


class InputOptions:
    """`object_size`, `data_object_size`, `channels`, `mask_threshold` and `set_input` over
    ``self.meta``."""

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

    @property
    def mask_threshold(self) -> float:
        """The mask probability above which a pixel is inside (the default ``mask_threshold``
        of `predict` and `segment`): the value chosen for this network's edges when it was
        built (the starter's, kept by fine-tuning), `DEFAULT_MASK_THRESHOLD` if none."""
        value = self.meta["input"].get("mask_threshold")
        return DEFAULT_MASK_THRESHOLD if value is None else float(value)

    def set_input(
        self: _M,
        *,
        object_size: float | None = _UNSET,
        data_object_size: float | None = _UNSET,
        channels: int | Sequence[int] | None = _UNSET,
        mask_threshold: float | None = _UNSET,
    ) -> _M:
        """Set any of `object_size`, `data_object_size`, `channels` and `mask_threshold`
        (None clears one).

        They are stored in ``meta["input"]`` and saved with checkpoints. Returns ``self``.

        Examples
        --------
        >>> from labelassist.model import load_model
        >>> model = load_model(None, classes=["cell"], device="cpu")
        >>> model.object_size is None
        True
        >>> model.set_input(object_size=17, channels=[1, 2]).object_size, model.channels
        (17.0, (1, 2))
        >>> model.mask_threshold, model.set_input(mask_threshold=0.6).mask_threshold
        (0.5, 0.6)
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
        if mask_threshold is not _UNSET:
            new["mask_threshold"] = (
                None if mask_threshold is None else check_mask_threshold(mask_threshold)
            )
        self.meta["input"] = new
        return self
