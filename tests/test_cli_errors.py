"""The command line turns the errors a user meets into one line (issue #12, item 9).

Real conditions, no mocks: a file name of 300 characters, a full disk (a 64 kB tmpfs filled
to the last byte; /dev/full as stdout), a damaged project database, a closed pipe, and a
process that runs out of address space (``RLIMIT_AS``). Each gives exactly one line
``labelassist <cmd>: error: <reason>`` on stderr, exit code 1 and no traceback.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_io import _fill, tiny_fs  # noqa: F401  (a fixture)

from labelassist.cli import error_message, main

SRC = str(Path(__file__).resolve().parents[1])
# the `labelassist` command, whether or not the package is installed
COMMAND = [sys.executable, "-c", "import sys; from labelassist.cli import main; sys.exit(main())"]


def _error_line(capsys) -> str:
    """The one error line on stderr (a progress bar may come before it)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in re.split(r"[\r\n]+", err) if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return re.search(r"labelassist[\w ]*: error: .*", errors[0]).group()  # after a progress bar


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``labelassist ARGS`` in a fresh interpreter (stdout and stderr as given or piped)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([*COMMAND, *args], env=env, text=True, timeout=300, **kwargs)


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "proj"
    assert main(["project", "init", str(folder), "--classes", "nucleus"]) == 0
    return folder


# -- names too long ----------------------------------------------------------------------------
def test_project_folder_name_too_long(tmp_path, capsys):
    folder = tmp_path / ("p" * 300)
    assert main(["project", "init", str(folder), "--classes", "nucleus"]) == 1
    line = _error_line(capsys)
    assert re.fullmatch(
        r"labelassist project: error: File name too long: .*/p{300} \(use a shorter file name\)",
        line,
    ), line


def test_export_file_name_too_long(project, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / ("n" * 300 + ".json")
    assert main(["project", "export", str(project), str(out), "--status", "all"]) == 1
    line = _error_line(capsys)
    assert line.startswith("labelassist project: error: File name too long: ")
    assert line.endswith("(use a shorter file name)")
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]  # no temp file left


def test_verbose_shows_the_traceback(tmp_path):
    with pytest.raises(OSError) as info:
        main(["-v", "project", "init", str(tmp_path / ("p" * 300)), "--classes", "a"])
    assert info.value.errno == errno.ENAMETOOLONG


# -- a full disk -------------------------------------------------------------------------------
def test_export_to_a_full_disk(project, tiny_fs, capsys):  # noqa: F811
    capsys.readouterr()
    _fill(tiny_fs)
    assert main(["project", "export", str(project), str(tiny_fs / "out.json")]) == 1
    line = _error_line(capsys)
    assert re.fullmatch(
        r"labelassist project: error: No space left on device.*\(free some space or write "
        r"elsewhere\)",
        line,
    ), line
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler"]  # no temp file left


def test_project_on_a_full_disk(tiny_fs, capsys):  # noqa: F811
    _fill(tiny_fs)
    assert main(["project", "init", str(tiny_fs / "p"), "--classes", "a"]) == 1
    line = _error_line(capsys)
    assert re.fullmatch(
        r"labelassist project: error: (No space left on device.*|.*database or disk is full.*)",
        line,
    ), line


def test_stdout_on_a_full_disk(project):
    with open("/dev/full", "w") as full:
        done = _cli("project", "status", str(project), stdout=full)
    assert done.returncode == 1
    line = _one_error_line(done.stderr)
    assert line.startswith("labelassist project: error: ")
    assert "No space left on device" in line


def test_closed_pipe_ends_quietly(project):
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [*COMMAND, "project", "status", str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    proc.stdout.close()  # like `| head -0`: nobody reads
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 1
    assert err == ""


# -- a damaged project database ----------------------------------------------------------------
def test_damaged_database_is_one_line(project, capsys):
    db = next(p for p in project.iterdir() if p.suffix == ".db")
    data = bytearray(db.read_bytes())
    data[:100] = os.urandom(100)  # the header: no longer an SQLite file
    db.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["project", "status", str(project)]) == 1
    line = _error_line(capsys)
    assert line.startswith("labelassist project: error: ")
    assert re.search(r"database|project check", line), line


# -- out of memory -----------------------------------------------------------------------------
_LIMITED = """
import json, resource, sys
from labelassist.cli import main
main(["project", "status", sys.argv[1]])  # every import done
with open("/proc/self/status") as fh:
    vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 150 * 2**20, resource.RLIM_INFINITY))
sys.exit(main(["project", "import", sys.argv[1], sys.argv[2]]))
"""


def test_out_of_memory_is_one_line(project, tmp_path):
    # a 40 MB COCO file of 10 million numbers needs about 400 MB as Python objects;
    # the process may grow by 150 MB
    big = tmp_path / "big.json"
    with open(big, "w") as fh:
        fh.write('{"images": [], "annotations": [], "categories": [], "x": [')
        fh.write("0.5," * 10_000_000)
        fh.write("0.5]}")
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED, str(project), str(big)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    line = _one_error_line(done.stderr)
    assert line.startswith("labelassist project: error: out of memory"), line


# -- the message itself ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "a.json", None, "b.json"),
            "No space left on device: a.json -> b.json (free some space or write elsewhere)",
        ),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (FileNotFoundError("image file not found: x.png"), "image file not found: x.png"),
        (MemoryError(), "out of memory; "),
        (MemoryError("Unable to allocate 9.3 GiB"), "out of memory (Unable to allocate 9.3 GiB); "),
        (
            sqlite3.OperationalError("database is locked"),
            "project database error: database is locked",
        ),
        (ValueError("first\n  second"), "first second"),
        (RuntimeError(), "RuntimeError"),
    ],
)
def test_error_message(exc, expected):
    text = error_message(exc)
    assert "\n" not in text
    assert text.startswith(expected) if expected.endswith("; ") else text == expected
