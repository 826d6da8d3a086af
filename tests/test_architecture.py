"""Architecture rules of issue #11, checked on the source tree so `make test` catches a break.

- the import-linter contracts in pyproject.toml (layers, no GUI in the library, no cycles,
  private modules only inside their package) hold;
- no module imports a ``_private`` name or module from outside its own package;
- every module's docstring starts with one line that states its job;
- the lazy exports of ``labelassist/__init__.py`` resolve and are visible to type checkers;
- ``import labelassist`` and ``labelassist --help`` stay light (no torch, no GUI stack).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> import name (the plugin folder is installed as labelassist_napari)
PACKAGES = {"labelassist": "labelassist", "napari_plugin": "labelassist_napari"}
HEAVY = ("torch", "torchvision", "dask", "distributed", "pycocotools", "matplotlib", "cv2")
GUI = ("napari", "qtpy", "magicgui", "superqt", "PyQt5", "PyQt6", "PySide2", "PySide6")


def _modules() -> dict[str, Path]:
    """Every module of the source tree: dotted import name -> file."""
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _area(module: str) -> str:
    """The package a module belongs to for the privacy rule.

    The plugin is one package; in the library each top-level package (``labelassist.coco``)
    and each top-level module (``labelassist.checks``) is its own, and the root
    ``labelassist/__init__.py`` is ``labelassist``.
    """
    parts = module.split(".")
    return parts[0] if parts[0] == "labelassist_napari" else ".".join(parts[:2])


def _imported_targets(module: str, tree: ast.Module) -> list[tuple[int, str]]:
    """(line, dotted target) of every import in a module, relative imports resolved.

    ``from a.b import c`` gives ``a.b.c`` (c may be a module or a name in ``a.b``), imports
    inside functions and ``if TYPE_CHECKING:`` blocks included.
    """
    package = module if _is_package(module) else module.rpartition(".")[0]
    targets = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return targets


def _private_violation(importer: str, target: str) -> str | None:
    """Why importing ``target`` from ``importer`` breaks the privacy rule, or None."""
    parts = target.split(".")
    if parts[0] not in PACKAGES.values():
        return None  # other projects' privates: not this rule (napari's go through one wrapper)
    private = next((i for i, part in enumerate(parts) if _is_private(part)), None)
    if private is None:
        return None
    owner = ".".join(parts[:private])
    if ".".join(parts[: private + 1]) in MODULES:
        # a private module or package: importable from inside its parent package only
        # (the rule of import-linter's private_modules contract)
        if importer == owner or importer.startswith(owner + "."):
            return None
        return f"private module {'.'.join(parts[: private + 1])} of {owner}"
    # a private name (function, class, constant) defined in module `owner`
    if _area(importer) == _area(owner):
        return None
    return f"private name {parts[private]} of {owner} (package {_area(owner)})"


def test_module_list_is_complete():
    assert "labelassist.cli" in MODULES and "labelassist_napari" in MODULES
    assert all(path.is_file() for path in MODULES.values())


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize(
    ("importer", "target", "allowed"),
    [
        ("labelassist.coco.read", "labelassist.coco._rules._geometry", True),
        ("labelassist.coco.read", "labelassist.coco.write._emit", True),
        ("labelassist.cli.project", "labelassist.project._util.listed", False),
        ("labelassist.cli.preannotate", "labelassist.bulk.local._resolve_sources", False),
        ("labelassist.geometry", "labelassist.checks._message", False),
        ("labelassist.checks", "labelassist.checks._message", True),
        ("labelassist.cli", "labelassist._version.__version__", True),
        ("labelassist.cli", "labelassist.__version__", True),
        ("labelassist.cli", "labelassist._EXPORTS", False),
        ("labelassist_napari._review", "labelassist_napari._convert.METADATA_KEY", True),
        ("labelassist_napari._review", "labelassist.coco._rules._geometry", False),
        ("labelassist_napari._review", "napari.layers.Shapes._data_view", True),
    ],
)
def test_privacy_rule(importer, target, allowed):
    """The rule itself, on examples (the real ``_rules``, ``_util`` modules exist)."""
    assert (_private_violation(importer, target) is None) == allowed


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "labelassist.cli.project",
            "from ..project._util import listed",
            "labelassist.project._util.listed",
        ),
        ("labelassist.cli", "from .. import checks", "labelassist.checks"),
        ("labelassist.cli", "from . import demo", "labelassist.cli.demo"),
        (
            "labelassist.coco.read",
            "from ._rules import _geometry",
            "labelassist.coco._rules._geometry",
        ),
        ("labelassist.coco.read", "def f():\n    import labelassist.io._x", "labelassist.io._x"),
        ("labelassist_napari._io", "from labelassist.coco import _x as y", "labelassist.coco._x"),
    ],
)
def test_imported_targets_resolve_relative_imports(module, source, expected):
    assert [target for _, target in _imported_targets(module, ast.parse(source))] == [expected]


def test_no_private_imports_across_packages():
    problems = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in _imported_targets(module, tree):
            why = _private_violation(module, target)
            if why:
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {why}")
    assert problems == [], "imports of another package's privates:\n" + "\n".join(problems)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_docstring_states_its_job(module):
    """PEP 257 / numpydoc: a one-line summary (here: the module's one job), then a blank line."""
    path = MODULES[module]
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=True)
    where = path.relative_to(ROOT)
    if not docstring or not docstring.splitlines()[0].strip():
        pytest.fail(f"{where}: no module docstring, or its first line is empty")
    first, *rest = docstring.splitlines()
    if not first.rstrip().endswith("."):
        pytest.fail(f"{where}: the first line is not one sentence ending with a period: {first!r}")
    if rest and rest[0].strip():
        pytest.fail(f"{where}: the one-line summary is not followed by a blank line")


def _lazy_exports() -> tuple[dict[str, str], dict[str, str]]:
    """(the ``_EXPORTS`` table, the names imported under ``if TYPE_CHECKING:``) of
    ``labelassist/__init__.py``: name -> module (relative to ``labelassist``)."""
    tree = ast.parse((ROOT / "labelassist" / "__init__.py").read_text(encoding="utf-8"))
    table: dict[str, str] | None = None
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                table = ast.literal_eval(node.value)
        elif isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for child in node.body:
                assert isinstance(child, ast.ImportFrom) and child.level == 1, (
                    f"only 'from .module import Name as Name' under TYPE_CHECKING: "
                    f"{ast.unparse(child)}"
                )
                for alias in child.names:
                    assert alias.asname == alias.name, (
                        f"re-export as 'import {alias.name} as {alias.name}' so type checkers "
                        f"treat it as public: {ast.unparse(child)}"
                    )
                    typed[alias.name] = child.module or ""
    assert table is not None, "labelassist/__init__.py has no _EXPORTS table"
    return table, typed


def test_type_checking_imports_match_the_lazy_exports():
    table, typed = _lazy_exports()
    assert table, "the lazy export table is empty"
    only_lazy = sorted(set(table) - set(typed))
    only_typed = sorted(set(typed) - set(table))
    assert only_lazy == [] and only_typed == [], (
        f"lazy exports missing under TYPE_CHECKING: {only_lazy}; "
        f"TYPE_CHECKING imports that are not exported: {only_typed}"
    )
    differ = {name: (table[name], typed[name]) for name in table if table[name] != typed[name]}
    assert differ == {}, f"exported from one module, typed from another: {differ}"


def test_no_lazy_export_is_named_like_a_submodule():
    """``import labelassist.<name>`` sets the attribute ``<name>`` of ``labelassist`` to the
    submodule, so an export of the same name would turn into a module once anything imports
    the submodule (``la.evaluate(...)``: 'module' object is not callable)."""
    table, _ = _lazy_exports()
    submodules = {name.split(".")[1] for name in MODULES if name.startswith("labelassist.")}
    clashes = sorted(set(table) & submodules)
    assert clashes == [], f"exports named like a submodule of labelassist: {clashes}"


def test_every_lazy_export_resolves_to_its_module():
    """In a fresh interpreter, after every library module was imported (as in a long
    session), each name in ``__all__`` is the object its module defines."""
    table, _ = _lazy_exports()
    library = sorted(name for name in MODULES if name.split(".")[0] == "labelassist")
    code = (
        "import importlib, labelassist\n"
        f"for name in {library!r}:\n"
        "    importlib.import_module(name)\n"
        f"table = {table!r}\n"
        "assert set(labelassist.__all__) == set(table) | {'__version__'}, labelassist.__all__\n"
        "for name, module in table.items():\n"
        "    value = getattr(labelassist, name)\n"
        "    defined = getattr(importlib.import_module('labelassist.' + module), name)\n"
        "    assert value is defined, f'labelassist.{name} is {value!r}, not {defined!r}'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "ok", result.stderr[-3000:]


def _modules_loaded_by(code: str) -> set[str]:
    code += "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return set(result.stdout.split())


def test_import_is_light():
    loaded = _modules_loaded_by("import labelassist")
    assert loaded & {*HEAVY, *GUI} == set()


def test_cli_help_is_light():
    code = (
        "import contextlib, io\n"
        "from labelassist.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
    )
    loaded = _modules_loaded_by(code)
    assert loaded & {*HEAVY, *GUI} == set()


def test_plugin_import_is_light():
    """napari imports the package to read its manifest: nothing heavy happens there."""
    loaded = _modules_loaded_by("import labelassist_napari")
    assert loaded & {*HEAVY, *GUI} == set()


def test_library_never_imports_qt_or_napari():
    """Every library module imported (torch and all): no GUI module comes along."""
    library = sorted(name for name in MODULES if name.split(".")[0] == "labelassist")
    code = f"import importlib\nfor name in {library!r}:\n    importlib.import_module(name)\n"
    loaded = _modules_loaded_by(code)
    assert loaded & {*GUI, "labelassist_napari"} == set()
