"""A damaged project (#12 item 10) and ``labelassist project check`` / `Project.check`.

The damage is the issue's: 4 KB of random bytes written into the middle of
``project.db``. Whatever operation meets it fails with one line that points to
``labelassist project check FOLDER``, which lists the problems and exits 1.
"""

from __future__ import annotations

import sqlite3

import imageio.v3 as iio
import numpy as np
import pytest
import shapely

from labelassist.cli import main
from labelassist.instances import Instances
from labelassist.project import Project, ProjectDamagedError, check_folder
from labelassist.project.schema import SCHEMA_VERSION

SHAPE = (64, 64)


@pytest.fixture
def folder(tmp_path):
    """A project of 40 images with 30 instances each (about 200 KB of database)."""
    (tmp_path / "data").mkdir()
    for k in range(40):
        iio.imwrite(tmp_path / "data" / f"{k}.png", np.zeros(SHAPE, np.uint8))
    rng = np.random.default_rng(0)
    with Project.create(tmp_path / "proj", classes=["cell"]) as p:
        p.add_images(tmp_path / "data")
        for image in range(1, 41):
            corners = rng.integers(0, 60, (30, 2)).tolist()
            inst = Instances(
                [shapely.box(x, y, x + 3, y + 3) for x, y in corners], None, None, SHAPE
            )
            p.save_instances(image, inst)
            p.set_status(image, "reviewed")
    return tmp_path / "proj"


def _damage(folder) -> None:
    db = folder / "project.db"
    size = db.stat().st_size
    assert size > 100_000
    with open(db, "r+b") as f:
        f.seek(size * 2 // 5)  # a page of the instances (schema 4 moved size // 2 onto one
        # that stops integrity_check itself)
        f.write(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def test_a_sound_project_checks_clean(folder, capsys):
    assert check_folder(folder) == []
    with Project.open(folder) as p:
        assert p.check() == []
    assert main(["project", "check", str(folder)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_damaged_database_errors_are_one_line_and_point_to_check(folder, tmp_path, capsys):
    _damage(folder)
    errors = []
    try:
        with Project.open(folder) as p:
            for call in (
                p.stats,
                p.images,
                lambda: [p.instances(r) for r in p.images()],
                lambda: p.export_coco(tmp_path / "x.json"),
                p.dataset,
                lambda: p.save_instances(40, Instances.empty(SHAPE)),
            ):
                try:
                    call()
                except ProjectDamagedError as exc:
                    errors.append(str(exc))
    except ProjectDamagedError as exc:  # damage that stops the project from opening
        errors.append(str(exc))
    assert errors, "the damage went unnoticed"
    for message in errors:
        assert "\n" not in message
        assert message.startswith(f"the database of project {folder} is damaged (")
        assert f"run `labelassist project check {folder}`" in message
    # the command line: one line, exit 1; check lists the problems, exit 1
    assert main(["project", "export", str(folder), str(tmp_path / "y.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "labelassist project check" in err
    problems = check_folder(folder)
    assert any(line.startswith("project.db integrity: ") for line in problems)
    assert main(["project", "check", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "project.db integrity: " in captured.out
    assert f"{len(problems)} problem(s) found" in captured.err


def test_check_finds_missing_files_and_broken_bookkeeping(folder, capsys):
    (folder.parent / "data" / "7.png").unlink()
    con = sqlite3.connect(folder / "project.db")
    con.execute("UPDATE images SET n_instances = 99 WHERE id = 3")
    con.execute("UPDATE instance_counts SET n = n + 1")
    con.execute("UPDATE images SET version = 42 WHERE id = 5")
    con.commit()
    con.close()
    with Project.open(folder) as p:
        [missing] = [r for r in p.images() if r["file_name"] == "7.png"]
    problems = check_folder(folder)
    assert problems == [
        "1 image(s) point at a version that is not in the history",  # image 5
        "2 image(s) have a wrong n_instances",  # images 3 and 5
        "instance_counts differ from a recount: Project.stats() is wrong",
        f"image {missing['id']}: file not found: {missing['path']}",
    ]
    with Project.open(folder) as p:
        assert p.check() == problems
    assert main(["project", "check", str(folder)]) == 1
    assert f"image {missing['id']}: file not found" in capsys.readouterr().out


def test_check_reports_schema_problems(folder):
    con = sqlite3.connect(folder / "project.db")
    con.execute("DROP TABLE rounds")
    con.execute("UPDATE meta SET value = '[\"cell\", \"background\"]' WHERE key = 'classes'")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    con.commit()
    con.close()
    problems = check_folder(folder)
    assert "table rounds is missing" in problems
    assert any("classes are not valid" in p and "background" in p for p in problems)
    con = sqlite3.connect(folder / "project.db")
    con.execute("PRAGMA user_version = 9")
    con.commit()
    con.close()
    assert check_folder(folder) == [
        f"schema version 9 is newer than this labelassist reads ({SCHEMA_VERSION}): pip "
        "install -U labelassist"
    ]


def test_check_of_a_file_that_is_not_a_database(tmp_path, capsys):
    (tmp_path / "project.db").write_bytes(b"x" * 1000)
    assert check_folder(tmp_path) == [
        "project.db is not an SQLite database (its first bytes are not SQLite's header)"
    ]
    assert main(["project", "check", str(tmp_path / "missing")]) == 1
    assert "no such project folder" in capsys.readouterr().err


@pytest.mark.parametrize("classes", [None, "not json", '{"a": 1}', "[1, 2]"])
def test_an_unreadable_class_list_is_damage(folder, classes):
    con = sqlite3.connect(folder / "project.db")
    if classes is None:
        con.execute("DELETE FROM meta WHERE key = 'classes'")
    else:
        con.execute("UPDATE meta SET value = ? WHERE key = 'classes'", (classes,))
    con.commit()
    con.close()
    with pytest.raises(
        ProjectDamagedError,
        match=r"^project .* has no readable class list in project.db \(.*\); run `labelassist "
        r"project check .*`$",
    ):
        Project.open(folder)
    assert any("classes are not valid" in line for line in check_folder(folder))
