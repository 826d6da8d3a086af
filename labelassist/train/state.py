"""Run state on disk: per-epoch checkpoints, resuming a run, seeds and RNG state.

After every epoch `write_checkpoint` writes two files atomically into the run folder:
``last.pt`` (the model, `Model.save`; its metadata holds the history and the settings)
and ``last.state.pt`` (optimizer, scheduler, scaler, epoch, RNG states and history:
tensors and primitives only, read back with ``torch.load(weights_only=True)``).
`read_resume` checks both before anything is trained, so a damaged, empty or foreign file
is one clear error naming the file.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, cast

import torch

from ..io import atomic_write
from ..model import Model, load_model
from .config import TrainConfig, json_config

__all__ = [
    "CHECKPOINT",
    "STATE",
    "Optimisation",
    "mix_seed",
    "read_resume",
    "restore",
    "rng_state",
    "set_history",
    "set_rng_state",
    "write_checkpoint",
]

logger = logging.getLogger(__name__)

#: File names in the run folder (``out``).
CHECKPOINT = "last.pt"
STATE = "last.state.pt"

#: The optimizer, the LR scheduler and the gradient scaler of a run.
Optimisation = tuple[
    torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler
]

# what `write_checkpoint` stores in last.state.pt, and the type of each entry
_STATE_TYPES: dict[str, type | tuple[type, ...]] = {
    "epoch": int,
    "optimizer": dict,
    "scheduler": dict,
    "scaler": dict,
    "rng": dict,
    "prior_history": list,
    "history": list,
    "config": dict,
}
_START_OVER = "to start over, train without resume (--resume) into a new out folder"


# -- seeds and RNG state ---------------------------------------------------------------------


def mix_seed(*parts: int) -> int:
    """One seed from several integers (the run's seed, the epoch, an index...).

    Examples
    --------
    >>> mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(1, 0)
    True
    """
    seed = 0x9E3779B9
    for p in parts:
        seed = (seed * 1_000_003 + int(p) + 1) % (2**63 - 1)
    return seed


def rng_state() -> dict[str, Any]:
    """Torch (CPU, CUDA) and Python RNG states as tensors and primitives."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _to_lists(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(obj: Any) -> Any:
    return [_to_lists(x) for x in obj] if isinstance(obj, (tuple, list)) else obj


def _to_tuples(obj: Any) -> Any:
    return tuple(_to_tuples(x) for x in obj) if isinstance(obj, list) else obj


# -- writing ---------------------------------------------------------------------------------


def set_history(model: Model, history: list[dict[str, Any]], config: TrainConfig) -> None:
    """Record the training history and settings in ``model.meta`` (saved with it)."""
    meta = getattr(model, "meta", None)
    if isinstance(meta, dict):
        meta["history"] = history
        meta["train_config"] = json_config(config)


def write_checkpoint(
    out_dir: Path,
    model: Model,
    histories: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    config: TrainConfig,
    epoch: int,
    optimisation: Optimisation,
) -> Path:
    """Atomically write ``last.pt`` (the model) and ``last.state.pt`` (the rest); return
    the path of ``last.pt``. ``histories`` are the records of earlier runs and of this one."""
    prior, history = histories
    optimizer, scheduler, scaler = optimisation
    set_history(model, prior + history, config)
    path = out_dir / CHECKPOINT
    model.save(path)
    state = {
        "epoch": epoch,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "prior_history": prior,
        "history": history,
        "config": json_config(config),
    }
    with atomic_write(out_dir / STATE) as fh:
        torch.save(state, fh)
    return path


# -- resuming --------------------------------------------------------------------------------


def read_resume(out_dir: Path, model: Model) -> tuple[Model, dict[str, Any]]:
    """The model and the training state stored in ``out_dir``, both checked.

    ``model`` only supplies the device.

    Raises
    ------
    ValueError
        If the folder lacks either file, or a file is not what `write_checkpoint` writes
        (empty, damaged, another kind of file); the message names the file.
    """
    path, state_path = out_dir / CHECKPOINT, out_dir / STATE
    if not (path.is_file() and state_path.is_file()):
        raise ValueError(
            f"resume=True but {out_dir} holds no checkpoint ({CHECKPOINT} and {STATE}); "
            "start without resume"
        )
    state = read_state(state_path)
    loaded = load_model(path, device=getattr(model, "device", None))
    return loaded, state


def read_state(path: Path) -> dict[str, Any]:
    """The training state in ``path`` (a ``last.state.pt``), checked entry by entry.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> empty = pathlib.Path(tempfile.mkdtemp()) / "last.state.pt"
    >>> _ = empty.write_bytes(b"")
    >>> read_state(empty)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../last.state.pt is not a training state written by finetune (the file is empty); ...
    """
    if path.stat().st_size == 0:
        raise _not_a_state(path, "the file is empty")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # torch.load raises many types on damaged files
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise _not_a_state(path, f"unreadable: {type(exc).__name__}: {reason}"[:300]) from exc
    return _check_state(path, data)


def _check_state(path: Path, data: Any) -> dict[str, Any]:
    if isinstance(data, dict) and data.get("format") == "labelassist":
        raise _not_a_state(path, "it is a model checkpoint (Model.save), not the training state")
    if not isinstance(data, dict):
        raise _not_a_state(path, f"it holds a {type(data).__name__}, not a dict")
    missing = [key for key in _STATE_TYPES if key not in data]
    if missing:
        raise _not_a_state(path, f"it lacks {missing}")
    for key, kind in _STATE_TYPES.items():
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _not_a_state(path, f"{key!r} is a {type(value).__name__}")
    lacking = [key for key in ("state", "param_groups") if key not in data["optimizer"]]
    if lacking:
        raise _not_a_state(path, f"'optimizer' lacks {lacking}")
    if data["epoch"] < 0:
        raise _not_a_state(path, f"'epoch' is {data['epoch']}")
    for key in ("prior_history", "history"):
        if not all(isinstance(r, dict) for r in data[key]):
            raise _not_a_state(path, f"{key!r} holds other things than dicts")
    rng = data["rng"]
    torch_state = rng.get("torch")
    if not (isinstance(torch_state, torch.Tensor) and torch_state.dtype == torch.uint8):
        raise _not_a_state(path, "'rng' lacks the torch generator state (a uint8 tensor)")
    if not isinstance(rng.get("python"), list):
        raise _not_a_state(path, "'rng' lacks the Python generator state (a list)")
    return cast("dict[str, Any]", data)


def _not_a_state(path: Path, reason: str) -> ValueError:
    return ValueError(
        f"{path} is not a training state written by finetune ({reason}); expected the "
        f"{STATE} that finetune(out=...) writes with {CHECKPOINT} after every epoch; "
        f"{_START_OVER}"
    )


def restore(
    state: dict[str, Any], optimisation: Optimisation, path: Path, epochs: int
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """Load a `read_state` result into the optimizer, scheduler, scaler and RNGs.

    Returns the epoch to start from, the history of earlier runs and this run's history
    so far. ``path`` (of the state file) and ``epochs`` (of the run) are for messages.
    """
    optimizer, scheduler, scaler = optimisation
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when written without mixed precision (on a CPU)
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"{path} does not fit this run ({reason}); resume with the settings the run "
            f"started with (model, classes, freeze) or {_START_OVER}"
        ) from exc
    start = int(state["epoch"])
    if start >= epochs:
        logger.warning("the run in %s already finished %d epochs", path.parent, start)
    return start, list(state["prior_history"]), list(state["history"])
