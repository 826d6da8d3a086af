"""Read-only projects (#12 item 6): an archived or shared project opens read-only.

Reading (status, images, instances, export, next image, check) works; every write fails
with one line naming the operation, and changes nothing. The permissions are real:

- the project folder and database are made read-only with chmod and used from a child
  process; under root (where chmod does not stop writes) the child drops to the
  ``nobody`` user after importing what it needs;
- root can also make files immutable (``chattr +i``), which stops root too: the database
  alone (the folder stays writable), or the folder alone (the database is writable but
  SQLite cannot create its WAL files: opening read-write fails, then read-only works).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely

from labelassist.cli import main
from labelassist.instances import Instances
from labelassist.project import Project, ProjectReadOnlyError

SHAPE = (16, 16)


def _make_project(root: Path) -> Path:
    (root / "data").mkdir()
    for k in range(3):
        iio.imwrite(root / "data" / f"{k}.png", np.full(SHAPE, k, np.uint8))
    with Project.create(root / "proj", classes=["cell"]) as p:
        p.add_images(root / "data")
        p.save_instances(1, Instances([shapely.box(1, 1, 5, 5)], [0], [0.5], SHAPE))
        p.set_status(1, "reviewed")
    return root / "proj"


def _snapshot(folder: Path) -> tuple:
    with Project.open(folder) as p:
        return p.stats(), p.images(), [p.history(i) for i in (1, 2, 3)], p.rounds()


@pytest.fixture
def shared_root():
    """A folder that the ``nobody`` user can reach (pytest's tmp_path is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="labelassist-ro-"))
    root.chmod(0o755)
    yield root
    for path in [root, *root.rglob("*")]:  # give write access back, then clean up
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(root)


# Reads and writes a read-only project; prints one JSON line of results. Run as the
# test's user, or under root: first on a writable copy (to import every module the
# calls need: the interpreter's own files may be root-only), then as ``nobody``.
_CHILD = textwrap.dedent(
    """
    import contextlib, io, json, os, sys
    import numpy as np, shapely
    from labelassist.cli import main
    from labelassist.coco import read_coco
    from labelassist.instances import Instances
    from labelassist.project import Project

    folder, warm, out_dir, drop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    inst = Instances([shapely.box(2, 2, 6, 6)], [0], [1.0], (16, 16))
    image = os.path.join(os.path.dirname(folder), "data", "0.png")
    coco = os.path.join(out_dir, "labels.json")

    def run(folder, out):
        results = {}
        with Project.open(folder) as p:
            results["read_only"] = p.read_only
            results["repr"] = repr(p)
            results["images"] = len(p.images())
            results["instances"] = len(p.instances(1))
            results["with_version"] = p.instances(1, with_version=True).version
            results["history"] = len(p.history(1))
            results["next"] = p.next_image()["id"]
            results["check"] = p.check()
            results["effort"] = p.effort(by="round")["total"]
            p.export_coco(out, image_root=os.path.dirname(image))
            results["exported"] = len(read_coco(out, image_root=os.path.dirname(image)))
            writes = {
                "save_instances": lambda: p.save_instances(1, inst, source="human"),
                "set_status": lambda: p.set_status(2, "skipped"),
                "set_split": lambda: p.set_split([1, 2], "val"),
                "assign_splits": lambda: p.assign_splits(),
                "add_images": lambda: p.add_images(image),
                "undo": lambda: p.undo(1),
                "import_coco": lambda: p.import_coco(out, image_root=os.path.dirname(image)),
                "import_label_images": lambda: p.import_label_images(
                    [image], [np.ones((16, 16), np.int32)]
                ),
                "add_round": lambda: p.add_round(
                    checkpoint=p.checkpoint_dir / "r.pt", image_ids=[1], metrics={}
                ),
                "log_time": lambda: p.log_time(1, 5.0),
            }
            for name, call in writes.items():
                try:
                    call()
                    results[name] = "no error"
                except Exception as exc:
                    results[name] = [type(exc).__name__, str(exc)]
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()) as std, contextlib.redirect_stderr(err):
            results["cli_status"] = [
                main(["project", "status", "--effort", folder]),
                std.getvalue(),
            ]
            code = main(["project", "add", folder, image])
        results["cli_add"] = [code, err.getvalue()]
        return results

    if drop:
        import warnings
        warnings.simplefilter("ignore")
        run(warm, os.path.join(warm, "warm.json"))  # imports what the calls need
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    print(json.dumps(run(folder, coco)))
    """
)


def _run_read_only(root: Path, folder: Path) -> dict:
    as_root = os.geteuid() == 0
    warm = root / "warm"
    if as_root:
        shutil.copytree(folder, warm)
    out = root / "out"
    out.mkdir()
    out.chmod(0o777)  # the child writes its export here
    folder.joinpath("project.db").chmod(0o444)
    for path in (folder, folder / "checkpoints"):
        path.chmod(0o555)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(warm), str(out), "1" if as_root else "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout.strip().splitlines()[-1])


def test_a_read_only_project_reads_and_refuses_every_write(shared_root):
    folder = _make_project(shared_root)
    before = _snapshot(folder)
    results = _run_read_only(shared_root, folder)
    assert results["read_only"] is True and "read-only" in results["repr"]
    assert (results["images"], results["instances"], results["with_version"]) == (3, 1, 1)
    assert (results["history"], results["next"], results["check"]) == (1, 2, [])
    assert results["exported"] == 1
    # the effort log reads: image 1 was accepted with its one model instance unchanged
    assert (results["effort"]["images"], results["effort"]["actions"]["accepted"]) == (1, 1)
    actions = {
        "save_instances": "save instances",
        "set_status": "set the status",
        "set_split": "set the split",
        "assign_splits": "assign splits",
        "add_images": "add images",
        "undo": "undo",
        "import_coco": "import COCO",
        "import_label_images": "import label images",
        "add_round": "add a round",
        "log_time": "log active time",
    }
    for name, action in actions.items():
        kind, message = results[name]
        assert kind == "ProjectReadOnlyError", (name, results[name])
        assert message.startswith(f"cannot {action}: project {folder} is open read-only (")
        assert "copy the project folder somewhere you can write" in message
        assert "\n" not in message
    code, out = results["cli_status"]
    assert code == 0 and f"project {folder} (read-only): 3 images, 1 instances" in out
    assert "\ntotal  1       1         0" in out  # the effort table
    code, err = results["cli_add"]
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("labelassist project: error: cannot add images: project")
    # nothing changed, no file was added to the project folder
    for path in [shared_root, *shared_root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    assert _snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "project.db"]
    assert stat.S_IMODE(folder.joinpath("project.db").stat().st_mode) == 0o444


def _chattr(flag: str, path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("needs root and chattr to make a file immutable")
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system has no immutable flag: {done.stderr.strip()}")


@pytest.mark.parametrize("immutable", ["project.db", "folder"])
def test_an_immutable_database_or_folder_opens_read_only(tmp_path, immutable):
    folder = _make_project(tmp_path)
    before = _snapshot(folder)
    target = folder / "project.db" if immutable == "project.db" else folder
    _chattr("+i", target)
    try:
        with Project.open(folder) as p:
            assert p.read_only
            assert len(p.instances(1)) == 1 and p.stats()["images"] == 3
            out = p.export_coco(tmp_path / "x.json", image_root=tmp_path / "data")
            assert out.is_file()
            with pytest.raises(ProjectReadOnlyError, match=r"^cannot set the status: project"):
                p.set_status(2, "reviewed")
            with pytest.raises(ProjectReadOnlyError, match=r"^cannot save instances"):
                p.save_instances(2, Instances.empty(SHAPE))
        assert main(["project", "next", str(folder)]) == 0
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert _snapshot(folder) == before


def test_unmerged_saves_in_a_read_only_folder_are_refused_not_ignored(tmp_path):
    """A writer killed before closing leaves saves in project.db-wal; reading the database
    without them (SQLite's immutable mode) would show stale data, so opening refuses."""
    folder = _make_project(tmp_path)
    script = textwrap.dedent(
        """
        import os, sys
        from labelassist.project import Project
        p = Project.open(sys.argv[1])
        p.set_status(2, "skipped")
        os._exit(0)  # no close: the save stays in the WAL file
        """
    )
    subprocess.run([sys.executable, "-c", script, str(folder)], check=True, timeout=120)
    assert (folder / "project.db-wal").stat().st_size > 0
    (folder / "project.db-shm").unlink()
    _chattr("+i", folder)
    try:
        with pytest.raises(
            ProjectReadOnlyError,
            match=r"^cannot read .*project.db: its folder cannot be written and project.db-wal "
            "holds saves not yet merged into it; open the project once with write access",
        ):
            Project.open(folder)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    with Project.open(folder) as p:  # with write access: merged, nothing lost
        assert p.image(2)["status"] == "skipped"


def test_an_old_schema_in_a_read_only_project_says_it_needs_write_access(tmp_path):
    folder = _make_project(tmp_path)
    con = sqlite3.connect(folder / "project.db")
    con.execute("PRAGMA user_version = 1")  # an older labelassist's project: to migrate
    con.commit()
    con.close()
    _chattr("+i", folder / "project.db")
    try:
        with pytest.raises(
            ProjectReadOnlyError,
            match=r"^project .* has schema version 1 and must be upgraded to 5, which needs "
            r"write access \(no write access to .*project.db\); open it once where it can be "
            "written$",
        ):
            Project.open(folder)
    finally:
        subprocess.run(["chattr", "-i", str(folder / "project.db")], check=True)
