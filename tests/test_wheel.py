"""The built wheel holds every file of the source tree, and its entry points resolve.

The wheel is built from a copy of the source tree (so the test neither writes into the tree
nor picks up a stale ``build/`` folder) with the project's own build backend, the way
``pip install .`` builds it. ``.ci/wheel-check.sh`` goes further (install into a fresh
environment, run the command line and the napari manifest); this test only needs the
build and finishes in seconds.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> import name in the wheel (pyproject.toml [tool.setuptools] package-dir)
PACKAGES = {"labelassist": "labelassist", "napari_plugin": "labelassist_napari"}
# what a checkout holds that is not source: byte code and editable-install metadata
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache")


def _source_files() -> set[str]:
    """The wheel paths that the source tree's package files must have."""
    files = set()
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*"):
            relative = path.relative_to(ROOT / folder)
            if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
                files.add(f"{name}/{relative.as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for folder in PACKAGES:
        shutil.copytree(ROOT / folder, src / folder, ignore=_IGNORE)
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)]
    result = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
    assert result.returncode == 0, f"wheel build failed:\n{result.stdout[-3000:]}\n{result.stderr}"
    (path,) = out.glob("labelassist-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def _package_entries(wheel: zipfile.ZipFile) -> set[str]:
    return {
        name
        for name in wheel.namelist()
        if name.split("/")[0] in PACKAGES.values() and not name.endswith("/")
    }


def test_every_source_file_is_in_the_wheel(wheel):
    source, packaged = _source_files(), _package_entries(wheel)
    assert any(name.startswith("labelassist/cli/") for name in source)  # the #12 regression
    missing = sorted(source - packaged)
    assert missing == [], f"in the source tree but not in the wheel: {missing}"
    extra = sorted(packaged - source)
    assert extra == [], f"in the wheel but not in the source tree: {extra}"


def test_package_data_is_in_the_wheel(wheel):
    packaged = _package_entries(wheel)
    for name in (
        "labelassist/py.typed",
        "labelassist/data/starter.pt",
        "labelassist/data/starter.json",
        "labelassist_napari/napari.yaml",
    ):
        assert name in packaged


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_entry_points_point_into_the_wheel(wheel):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))
    packaged = _package_entries(wheel)
    # console script "module:function": the module is in the wheel
    module = entry_points["console_scripts"]["labelassist"].split(":")[0].replace(".", "/")
    assert {f"{module}.py", f"{module}/__init__.py"} & packaged
    # napari manifest "package:file": the manifest file is in the wheel
    package, manifest = entry_points["napari.manifest"]["labelassist"].split(":")
    assert f"{package}/{manifest}" in packaged


def test_napari_manifest_commands_point_into_the_wheel(wheel):
    import yaml  # comes with napari and npe2 (the [napari] extra)

    manifest = yaml.safe_load(wheel.read("labelassist_napari/napari.yaml"))
    commands = manifest["contributions"]["commands"]
    assert commands
    packaged = _package_entries(wheel)
    for command in commands:
        module = command["python_name"].split(":")[0].replace(".", "/")
        assert {f"{module}.py", f"{module}/__init__.py"} & packaged, command["python_name"]


def test_license_files_are_in_the_wheel(wheel):
    assert "BSD 3-Clause License" in _dist_info(wheel, "licenses/LICENSE")
    metadata = _dist_info(wheel, "METADATA")
    assert "License-Expression: BSD-3-Clause" in metadata
    assert "Classifier: Framework :: napari" in metadata
