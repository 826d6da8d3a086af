"""The checkpoint format: writing, reading and validating labelassist checkpoints.

A checkpoint is a plain, safe dictionary (no pickled Python objects)::

    {"format": "labelassist", "format_version": 1,
     "state_dict": {name: tensor}, "meta": {JSON-able}}

written with ``torch.save`` (atomically, `save_checkpoint`) and read only with
``torch.load(..., map_location="cpu", weights_only=True)`` (`read_checkpoint`). ``meta`` holds
``arch``, ``options``, ``num_classes``, ``classes``, ``label_ids``, ``normalization``,
``history``, ``input`` (`labelassist.model.inputs.check_input_meta`: the object size and channels the network
expects; absent in older checkpoints, which read as None) and provenance (``created``,
``labelassist_version``, ``stored_half``).

`checkpoint_to_bytes` gives the same format in memory (for shipping a model to Dask workers);
`labelassist.model.model_from_bytes` reads it back. Every unreadable input is a `ValueError`
naming the file (or "checkpoint bytes") and what was expected.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Protocol

import torch
from torch import nn

from .._version import __version__
from ..checks import check_classes, check_int
from ..io.atomic import atomic_write
from .build import ARCHITECTURES
from .inputs import check_input_meta

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SupportsCheckpoint",
    "checkpoint_to_bytes",
    "make_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

FORMAT = "labelassist"
FORMAT_VERSION = 1

_EXPECTED = (
    "expected a labelassist checkpoint (written by Model.save or labelassist train) or a "
    "torchvision Mask R-CNN state dict"
)
_WRAP = (
    "wrap it: net = build_maskrcnn(arch, num_classes); net.load_state_dict(state); "
    "Model(net, classes, arch=arch).save(path)"
)


class SupportsCheckpoint(Protocol):
    """What `checkpoint_to_bytes` needs of a model: its network and its metadata."""

    @property
    def net(self) -> nn.Module: ...

    @property
    def meta(self) -> Mapping[str, Any]: ...


def jsonable(value: Any, where: str) -> Any:
    """A deep copy of ``value`` through JSON (``ValueError`` naming ``where`` if it is not
    JSON-serialisable).

    Examples
    --------
    >>> jsonable({"epochs": (1, 2)}, "meta")
    {'epochs': [1, 2]}
    """
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must be JSON-serialisable: {exc}") from exc


def make_checkpoint(
    net: nn.Module, meta: Mapping[str, Any], *, half: bool = False, stamp: bool = True
) -> dict[str, Any]:
    """The checkpoint dictionary of a network and its metadata.

    Parameters
    ----------
    net : torch.nn.Module
        The network; its state dict is copied to the CPU.
    meta : mapping
        JSON-able metadata (`labelassist.model.Model.meta`).
    half : bool
        Store floating-point tensors as float16 (half the size; loading casts back).
    stamp : bool
        Record the creation time in ``meta["created"]``. Without it the same network and
        metadata always give the same dictionary (and the same `checkpoint_to_bytes`).

    Returns
    -------
    dict
        ``{"format", "format_version", "state_dict", "meta"}``.

    Examples
    --------
    >>> data = make_checkpoint(nn.Linear(2, 1), {"arch": "demo"}, stamp=False)
    >>> data["format"], sorted(data["state_dict"]), data["meta"]["stored_half"]
    ('labelassist', ['bias', 'weight'], False)
    """
    state = {}
    for name, tensor in net.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        state[name] = tensor.clone(memory_format=torch.contiguous_format)  # not channels-last
    data_meta = jsonable(dict(meta), "Model.meta")
    if stamp:
        data_meta["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    else:
        data_meta.pop("created", None)
    data_meta["labelassist_version"] = __version__
    data_meta["stored_half"] = bool(half)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": state,
        "meta": data_meta,
    }


def save_checkpoint(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a checkpoint dictionary atomically (temp file in the same folder, then
    ``os.replace``); parent folders are created.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> data = make_checkpoint(nn.Linear(2, 1), {"arch": "demo"})
    >>> save_checkpoint(data, pathlib.Path(tempfile.mkdtemp()) / "m.pt").name
    'm.pt'
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path={str(path)!r} is a folder; give a file name like model.pt")
    with atomic_write(path) as fh:
        torch.save(dict(data), fh)
    return path


def checkpoint_to_bytes(model: SupportsCheckpoint, *, half: bool = False) -> bytes:
    """A model as checkpoint bytes: the file `labelassist.model.Model.save` writes, in memory.

    Deterministic: the creation time is left out, so equal weights and metadata give equal
    bytes (a content hash of them identifies the model). Read back with
    `labelassist.model.model_from_bytes` (or write them to a ``.pt`` file and
    `labelassist.model.load_model` it).

    Parameters
    ----------
    model : Model
        Anything with ``net`` and ``meta`` (a `labelassist.model.Model`).
    half : bool
        Store floating-point tensors as float16.

    Returns
    -------
    bytes

    Examples
    --------
    >>> from labelassist.model import load_model, model_from_bytes
    >>> model = load_model(None, classes=["cell"], device="cpu")
    >>> data = checkpoint_to_bytes(model)
    >>> data == checkpoint_to_bytes(model)
    True
    >>> model_from_bytes(data, device="cpu").classes
    ['cell']
    """
    buffer = io.BytesIO()
    torch.save(make_checkpoint(model.net, model.meta, half=half, stamp=False), buffer)
    return buffer.getvalue()


# -- reading ------------------------------------------------------------------------------


def _unreadable_reason(source: str | os.PathLike | bytes, exc: BaseException) -> str:
    """Why ``torch.load`` could not read ``source``, in words."""
    if isinstance(source, bytes):
        size, head = len(source), source[:4]
        is_zip = zipfile.is_zipfile(io.BytesIO(source))
    else:
        size = os.path.getsize(source)
        with open(source, "rb") as fh:
            head = fh.read(4)
        is_zip = zipfile.is_zipfile(source)
    if size == 0:
        return "it is empty: 0 bytes"
    if is_zip:
        return "a zip archive that holds no torch data, or a damaged one"
    if head == b"PK\x03\x04":
        return f"a truncated or damaged zip archive of {size} bytes"
    if isinstance(exc, EOFError):
        return f"it ends early after {size} bytes (truncated?)"
    return "neither a torch zip archive nor a pickle"


def _torch_load(source: str | os.PathLike | bytes, where: str) -> Any:
    file: str | os.PathLike | IO[bytes] = (
        io.BytesIO(source) if isinstance(source, bytes) else source
    )
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError, MemoryError):
        raise  # a missing or unreadable file, not a bad one (torch's zip reader raises
        # other OSErrors, e.g. EINVAL, on truncated archives: those are bad content)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():
            raise ValueError(
                f"{where} holds pickled Python objects that labelassist refuses to load "
                "(unsafe). Only load checkpoints written by Model.save; re-save trusted files "
                "with it."
            ) from exc
        reason = _unreadable_reason(source, exc)
        raise ValueError(f"{where} is not a torch checkpoint ({reason}); {_EXPECTED}") from exc
    except Exception as exc:  # noqa: BLE001 - torch.load fails on junk with any error type
        reason = _unreadable_reason(source, exc)
        raise ValueError(f"{where} is not a torch checkpoint ({reason}); {_EXPECTED}") from exc


def _describe(data: Any) -> str:
    if isinstance(data, dict):
        keys = sorted(str(k) for k in data)
        shown = keys[:5] + (["..."] if len(keys) > 5 else [])
        return f"a dict with keys {shown}" if keys else "an empty dict"
    return f"a {type(data).__name__}"


def _is_maskrcnn_state(data: Mapping[str, Any]) -> bool:
    return any(str(k).startswith("roi_heads.box_predictor.") for k in data)


def read_checkpoint(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """Read and validate a labelassist checkpoint (a file path or its bytes).

    Only ``torch.load(..., weights_only=True)``: files holding pickled Python objects are
    refused. Everything that is not a valid checkpoint (an empty or text file, random bytes,
    another zip archive, a dict with other keys, a plain state dict, a damaged ``meta``)
    raises one `ValueError` naming the file and what was expected.

    Parameters
    ----------
    source : str, PathLike or bytes
        A checkpoint file, or its content (`checkpoint_to_bytes`).

    Returns
    -------
    dict
        ``{"format", "format_version", "state_dict", "meta"}`` with ``meta["arch"]`` one of
        `labelassist.model.ARCHITECTURES`, ``meta["num_classes"]`` an int >= 2 and
        ``meta["classes"]`` valid class names (`labelassist.checks.check_classes`).

    Examples
    --------
    >>> read_checkpoint(b"this is not a checkpoint")
    Traceback (most recent call last):
    ...
    ValueError: checkpoint bytes is not a torch checkpoint (neither a torch zip archive nor a pickle); expected a labelassist checkpoint (written by Model.save or labelassist train) or a torchvision Mask R-CNN state dict
    """
    if isinstance(source, (bytearray, memoryview)):
        source = bytes(source)
    if not isinstance(source, (bytes, str, os.PathLike)):
        raise TypeError(
            f"source must be a checkpoint path or its bytes, got {type(source).__name__}"
        )
    where = "checkpoint bytes" if isinstance(source, bytes) else str(source)
    data = _torch_load(source, where)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        if (
            isinstance(data, dict)
            and data
            and all(isinstance(v, torch.Tensor) for v in data.values())
        ):
            kind = "a torchvision Mask R-CNN" if _is_maskrcnn_state(data) else "a"
            raise ValueError(
                f"{where} is {kind} plain state dict, not a labelassist checkpoint; {_WRAP}"
            )
        raise ValueError(
            f"{where} is not a labelassist checkpoint (it holds {_describe(data)}, no "
            f"format='labelassist'); {_EXPECTED}"
        )
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"{where} is a damaged labelassist checkpoint (format_version must be an int >= 1, "
            f"got {version!r})"
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where} has checkpoint format_version {version!r}; this labelassist reads up to "
            f"{FORMAT_VERSION}: upgrade labelassist"
        )
    meta, state = data.get("meta"), data.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise ValueError(f"{where} is a damaged labelassist checkpoint (no meta or state_dict)")
    _check_meta(meta, state, where)
    return data


def _check_meta(meta: dict[str, Any], state: dict[str, Any], where: str) -> None:
    for key in ("arch", "classes", "num_classes"):
        if key not in meta:
            raise ValueError(f"{where} is a damaged labelassist checkpoint (meta lacks {key!r})")
    if meta["arch"] not in ARCHITECTURES:
        raise ValueError(
            f"{where} uses architecture {meta['arch']!r}, unknown to this labelassist "
            f"(knows {list(ARCHITECTURES)})"
        )
    try:
        check_int(meta["num_classes"], "meta['num_classes']", minimum=2)
        check_classes(meta["classes"], "meta['classes']")
        if not isinstance(meta.get("options") or {}, dict):
            raise ValueError(f"meta['options'] must be a dict, got {meta['options']!r}")
        if not isinstance(meta.get("normalization") or {}, (dict, str)):
            raise ValueError(
                f"meta['normalization'] must be a dict or a mode name, got "
                f"{meta['normalization']!r}"
            )
        check_input_meta(meta.get("input"))
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise ValueError("state_dict must map names to tensors")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is a damaged labelassist checkpoint: {exc}") from exc
