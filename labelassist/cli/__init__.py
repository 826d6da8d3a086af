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
import contextlib
import errno
import importlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence

from .._version import __version__

__all__ = ["CliError", "main", "build_parser", "error_message"]

# what to do about the operating-system errors a user meets most
_OS_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.ENAMETOOLONG: "use a shorter file name",
    errno.EROFS: "the file system is read-only: write elsewhere",
}
_MEMORY_HINT = (
    "use smaller images or tiles (e.g. --tile-size), fewer workers or a smaller batch, "
    "or a machine with more memory"
)

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
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Errors a user can act on (bad input, missing or unwritable files, a full disk, a name
    too long, running out of memory, a damaged project database) are printed as one line
    ``labelassist COMMAND: error: REASON`` on stderr with exit code 1; ``-v`` shows the
    traceback instead. Output that cannot be written (stdout on a full disk) is such an
    error too; a closed pipe (``labelassist ... | head``) ends the command quietly.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return _flush_stdout("labelassist") or int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return _flush_stdout("labelassist")
    command = f"labelassist {args.command}"
    try:
        code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("labelassist: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away
        _drop_stdout()
        return 1
    except _REPORTED as exc:
        # errors the user can act on: one line, no traceback (-v shows it)
        if args.verbose:
            raise
        _report(command, exc)
        return 1
    return _flush_stdout(command) or code


# what `main` reports as one line (subclasses included: CocoFormatError, the project's
# errors, FileNotFoundError, sqlite3.OperationalError, ...)
_REPORTED = (CliError, ValueError, TypeError, RuntimeError, OSError, MemoryError, sqlite3.Error)


def _report(command: str, exc: BaseException) -> None:
    _flush_stdout(None)  # what was printed before the error, if it can be
    print(f"{command}: error: {error_message(exc)}", file=sys.stderr)


def _flush_stdout(command: str | None) -> int:
    """Flush stdout now, so that a full disk is reported here and not as a traceback at
    exit; 0, or 1 after reporting the error (``command`` None: report nothing)."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        _drop_stdout()
        if command is not None and not isinstance(exc, BrokenPipeError):
            print(
                f"{command}: error: cannot write the output: {error_message(exc)}", file=sys.stderr
            )
        return 1
    return 0


def _drop_stdout() -> None:
    """Point stdout at the null device: Python's final flush then has nothing to fail on
    (the recipe of the Python docs for a closed pipe)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def error_message(exc: BaseException) -> str:
    """One line that says what went wrong, for any error `main` reports.

    ``OSError`` is told by its reason and file (``No space left on device: out.json``),
    ``MemoryError`` as running out of memory, ``sqlite3.Error`` as a project database
    error; other errors by their message (the type's name when there is none).

    Examples
    --------
    >>> error_message(OSError(28, "No space left on device", "out.json"))
    'No space left on device: out.json (free some space or write elsewhere)'
    >>> error_message(ValueError("batch_size must be an integer >= 1, got 0"))
    'batch_size must be an integer >= 1, got 0'
    """
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        files = [f for f in (exc.filename, exc.filename2) if f is not None]
        if files:
            text += ": " + " -> ".join(os.fsdecode(f) for f in files)
        hint = _OS_HINTS.get(exc.errno or 0)
        if hint:
            text += f" ({hint})"
    elif isinstance(exc, MemoryError):
        detail = f" ({text})" if text else ""
        text = f"out of memory{detail}; {_MEMORY_HINT}"
    elif isinstance(exc, sqlite3.Error):
        text = f"project database error: {text or type(exc).__name__}"
    return text or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
