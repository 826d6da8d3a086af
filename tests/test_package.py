"""Package-level contracts: import layering, lazy exports, the command line entry point."""

import os
import pkgutil
import subprocess
import sys

import pytest

import labelassist
from labelassist.cli import main


def _library_modules():
    names = ["labelassist"]
    for info in pkgutil.walk_packages(labelassist.__path__, "labelassist."):
        names.append(info.name)
    return names


def test_library_never_imports_qt_or_napari():
    code = (
        "import importlib, sys\n"
        f"for name in {_library_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'labelassist_napari'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"labelassist imported GUI modules: {out.stdout}"


def test_import_is_light():
    code = "import sys, labelassist; print(','.join(m for m in ('torch', 'dask', 'pycocotools') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_lazy_export_resolves():
    missing = [name for name in labelassist.__all__ if not hasattr(labelassist, name)]
    assert missing == []


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        labelassist.nope  # noqa: B018


def test_cli_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "preannotate", "train", "evaluate", "project", "info"):
        assert command in out


def test_cli_version(capsys):
    assert main(["--version"]) == 0
    assert labelassist.__version__ in capsys.readouterr().out


def test_cli_usage_error_exit_code(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_info(capsys):
    assert main(["info", "--model", "starter"]) == 0
    out = capsys.readouterr().out
    assert "torchvision" in out and "device" in out and "allocator" in out


def test_console_script_runs():
    exe = os.path.join(os.path.dirname(sys.executable), "labelassist")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "pre-annotate" in out.stdout
