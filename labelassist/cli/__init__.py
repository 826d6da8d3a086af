"""The ``labelassist`` command line.

Each subcommand lives in its own module ``labelassist.cli.<name>`` with a
``register(subparsers)`` function that adds its parser and sets ``func=run``; ``run(args)``
returns the exit code. Modules are imported lazily so ``labelassist --help`` is quick.

Examples
--------
>>> from labelassist.cli import main
>>> main(["--version"])  # doctest: +ELLIPSIS
labelassist ...
0
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["CliError", "main", "build_parser"]

# subcommand modules, in the order they appear in --help
SUBCOMMANDS = ("demo", "preannotate", "train", "evaluate", "project", "info")
# a module may register more than one subcommand (train registers train and evaluate)
_MODULE_OF = {"evaluate": "train"}

_EPILOG = """\
examples:
  labelassist demo                                   # offline: starter model on sample images
  labelassist preannotate images/ --out preds.json   # pre-annotate a folder of images
  labelassist project init myproj --classes nucleus  # start a labeling project
  labelassist train --project myproj                 # train the next round on reviewed images
  labelassist info                                   # versions, device, allocator

Run 'labelassist COMMAND --help' for the options of a command.
"""


class CliError(Exception):
    """An error the user can fix; shown as one line, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="labelassist",
        description="Model-assisted annotation for instance segmentation: pre-annotate images "
        "with Mask R-CNN, review them in napari, export COCO, fine-tune on the corrections.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"labelassist {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show debug logging and tracebacks"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    done = set()
    for name in SUBCOMMANDS:
        module_name = _MODULE_OF.get(name, name)
        if module_name in done:
            continue
        done.add(module_name)
        try:
            module = importlib.import_module(f".{module_name}", __name__)
        except ModuleNotFoundError as exc:  # a subcommand that is not built yet
            if exc.name != f"{__name__}.{module_name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("labelassist: interrupted", file=sys.stderr)
        return 130
    except (
        CliError,
        ValueError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        RuntimeError,
    ) as exc:
        if args.verbose:
            raise
        print(f"labelassist {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
