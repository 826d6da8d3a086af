"""Package-level contracts: the public namespace and the command line entry point.

Import layering, lazy exports and import weight are checked in ``test_architecture.py``.
"""

import os
import subprocess
import sys

import pytest

import labelassist
from labelassist.cli import main


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
