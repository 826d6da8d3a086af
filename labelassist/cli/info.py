"""``labelassist info``: versions, compute device, allocator and a model's classes."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

from .._version import __version__
from . import CliError

_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "shapely",
    "pycocotools",
    "scikit-image",
    "dask",
    "distributed",
    "napari",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show versions, the compute device and a model's classes",
        description="Show the versions of labelassist and its main dependencies, the device "
        "models run on (CUDA, MPS or CPU), whether the fast tcmalloc allocator is active, and "
        "the classes and training record of a model.",
        epilog="example:\n  labelassist info --model starter",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model source to describe: starter, torchvision-coco or a checkpoint path; an "
        "unavailable model given here is an error (default: the starter, if shipped)",
    )
    parser.set_defaults(func=run)


def tcmalloc_active() -> bool:
    """Whether tcmalloc is loaded into this process (Linux only)."""
    try:
        with open("/proc/self/maps") as maps:
            return "tcmalloc" in maps.read()
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    """Print the versions and device, then describe the model.

    Returns 0; a model named with ``--model`` that cannot be loaded (missing file, not a
    checkpoint, COCO weights offline) raises `CliError` (one line, exit code 1) after the
    versions are printed. Without ``--model`` a missing starter is only noted.
    """
    import torch  # heavy: torch

    rows = [("labelassist", __version__), ("python", platform.python_version())]
    for name in _PACKAGES:
        try:
            rows.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    rows.append(("device", device))
    rows.append(
        (
            "allocator",
            "tcmalloc"
            if tcmalloc_active()
            else "system malloc (for faster CPU torch: "
            "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4, apt libtcmalloc-minimal4)",
        )
    )
    rows.append(("weights cache", torch.hub.get_dir()))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    source = args.model if args.model is not None else "starter"
    from ..model import load_model  # heavy: imports torch

    try:
        model = load_model(source, device="cpu")
    except (ValueError, OSError, RuntimeError) as exc:
        if args.model is None:
            print(f"{'model':<{width}}  {source}: not available ({exc})")
            return 0
        raise CliError(f"--model: {exc}") from exc
    print(f"{'model':<{width}}  {source} ({model.arch})")
    print(f"{'classes':<{width}}  {', '.join(model.classes)}")
    for key in ("created", "trained_by", "metrics"):
        if key in model.meta:
            print(f"{key:<{width}}  {model.meta[key]}")
    return 0
