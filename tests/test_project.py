"""Tests for the labeling project store (labelassist.project) and its CLI."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely
import tifffile
from pycocotools.coco import COCO

from labelassist.cli import main
from labelassist.coco import read_coco, write_coco
from labelassist.instances import Instances
from labelassist.project import Project, UnreadableImagesWarning
from labelassist.project import schema as _project_schema

SHAPE = (24, 32)


# -- fixtures and helpers ------------------------------------------------------------------
def _write_images(folder: Path, n: int, shape=SHAPE, prefix="img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for k in range(n):
        path = folder / f"{prefix}{k}.png"
        iio.imwrite(path, rng.integers(0, 255, shape, dtype=np.uint8))
        paths.append(path)
    return paths


@pytest.fixture
def project(tmp_path):
    _write_images(tmp_path / "data", 4)
    with Project.create(tmp_path / "proj", classes=["nucleus", "debris"]) as p:
        p.add_images(tmp_path / "data")
        yield p


def _inst(boxes, labels=None, scores=None, shape=SHAPE, **extra) -> Instances:
    return Instances([shapely.box(*b) for b in boxes], labels, scores, shape, extra=extra or None)


def _odd_geometries() -> list:
    """Geometries whose coordinates are not representable in float32 or short decimals."""
    donut = shapely.box(2, 2, 12, 12).difference(shapely.box(5, 5, 8, 8))
    two = shapely.MultiPolygon([shapely.box(0.1, 0.2, 1.3, 1.7), shapely.box(20, 20, 22.5, 23)])
    tri = shapely.Polygon([(1 / 3, 2 / 7), (10.123456789012345, 3.3), (4.0, 9.999999999)])
    return [donut, two, tri]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _brute_counts(p: Project) -> tuple[dict, dict]:
    classes = dict.fromkeys(p.classes, 0)
    sources = {"model": 0, "corrected": 0, "human": 0, "prompted": 0}
    for record in p.images():
        inst = p.instances(record["id"])
        for label, source in zip(inst.labels, inst.extra["source"], strict=True):
            classes[p.classes[label]] += 1
            sources[str(source)] += 1
    return classes, sources


# -- create and open ------------------------------------------------------------------------
def test_create_makes_the_folder_layout(tmp_path):
    p = Project.create(tmp_path / "new" / "proj", classes=["a"], copy_images=True)
    assert (p.folder / "project.db").is_file()
    (tmp_path / "ref").write_text("")  # a file made the usual way: umask permissions
    assert _mode(p.folder / "project.db") == _mode(tmp_path / "ref")  # not mkstemp's 0600
    assert p.checkpoint_dir == p.folder / "checkpoints" and p.checkpoint_dir.is_dir()
    assert p.classes == ["a"] and p.copy_images is True
    con = sqlite3.connect(p.folder / "project.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == _project_schema.SCHEMA_VERSION
    con.close()
    assert p.con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert p.con.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    p.close()
    p.close()  # idempotent
    assert not list(p.folder.glob(".project-*"))  # no temp files left
    assert "closed" in repr(p)


@pytest.mark.parametrize(
    ("classes", "error", "match"),
    [
        ("nucleus", TypeError, "list of class names"),
        (None, TypeError, "list of class names"),
        ([], ValueError, "at least one class"),
        (["a", ""], ValueError, r"classes\[1\] must be a non-empty str"),
        (["a", 3], ValueError, r"classes\[1\] must be a non-empty str"),
        (["a", "b", "a"], ValueError, r"unique, got duplicates \['a'\]"),
    ],
)
def test_create_validates_classes(tmp_path, classes, error, match):
    with pytest.raises(error, match=match):
        Project.create(tmp_path / "p", classes=classes)
    assert not (tmp_path / "p").exists()


def test_create_validates_copy_images_and_folder(tmp_path):
    with pytest.raises(TypeError, match="copy_images must be True or False"):
        Project.create(tmp_path / "p", classes=["a"], copy_images="yes")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        Project.create(tmp_path / "file", classes=["a"])


def test_create_refuses_a_non_empty_project_but_reopens_an_empty_one(project, tmp_path):
    with pytest.raises(FileExistsError, match="already holds a labelassist project with 4 images"):
        Project.create(project.folder, classes=project.classes)
    Project.create(tmp_path / "empty", classes=["a"]).close()
    with Project.create(tmp_path / "empty", classes=["a"]) as again:  # repeated init
        assert again.classes == ["a"]
    with pytest.raises(FileExistsError, match=r"classes \['a'\]"):
        Project.create(tmp_path / "empty", classes=["b"])


def test_create_in_a_folder_with_other_files(tmp_path):
    _write_images(tmp_path, 2)
    with Project.create(tmp_path, classes=["a"]) as p:
        assert p.add_images(tmp_path) == [1, 2]
        assert p.images()[0]["path"] == str(tmp_path / "img0.png")


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such project folder"):
        Project.open(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"not a labelassist project \(no project.db\)"):
        Project.open(tmp_path)
    (tmp_path / "project.db").write_text("hello")
    with pytest.raises(ValueError, match="project.db is not SQLite"):
        Project.open(tmp_path)
    (tmp_path / "project.db").unlink()
    sqlite3.connect(tmp_path / "project.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ValueError, match="has no project data"):
        Project.open(tmp_path)


def test_open_refuses_a_newer_schema(tmp_path):
    Project.create(tmp_path, classes=["a"]).close()
    con = sqlite3.connect(tmp_path / "project.db")
    con.execute(f"PRAGMA user_version = {_project_schema.SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(ValueError, match="created by a newer labelassist.*upgrade"):
        Project.open(tmp_path)


def test_open_refuses_an_unknown_old_schema(tmp_path):
    Project.create(tmp_path, classes=["a"]).close()
    con = sqlite3.connect(tmp_path / "project.db")
    con.execute("PRAGMA user_version = 0")
    con.close()
    with pytest.raises(ValueError, match="unknown schema version 0"):
        Project.open(tmp_path)


_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (id INTEGER PRIMARY KEY, file_name TEXT NOT NULL, path TEXT NOT NULL UNIQUE,
    height INTEGER NOT NULL, width INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'new');
CREATE TABLE annotations (id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id),
    label INTEGER NOT NULL, score REAL NOT NULL, source TEXT NOT NULL, geometry BLOB NOT NULL);
CREATE TABLE rounds (round INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL, metrics TEXT,
    created TEXT);
"""


def test_open_migrates_a_version_1_project(tmp_path):
    images = _write_images(tmp_path, 2)
    con = sqlite3.connect(tmp_path / "project.db")
    con.executescript(_V1_SCHEMA)
    con.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("format", "labelassist-project"), ("classes", '["cell", "junk"]'), ("copy_images", "0")],
    )
    con.executemany(
        "INSERT INTO images (id, file_name, path, height, width, status) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (1, "img0.png", "img0.png", 24, 32, "reviewed"),
            (2, "img1.png", "img1.png", 24, 32, "new"),
        ],
    )
    tri = _odd_geometries()[2]
    con.executemany(
        "INSERT INTO annotations (image_id, label, score, source, geometry) VALUES (?, ?, ?, ?, ?)",
        [
            (1, 0, 1.0, "human", shapely.to_wkb(shapely.box(1, 1, 4, 4))),
            (1, 1, 0.5, "model", shapely.to_wkb(tri)),
        ],
    )
    con.execute("INSERT INTO rounds VALUES (1, 'checkpoints/r1.pt', '{\"segm_AP\": 0.25}', NULL)")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()

    with Project.open(tmp_path) as p:
        assert p.con.execute("PRAGMA user_version").fetchone()[0] == 5  # 1 -> 2 -> ... -> 5
        assert p.classes == ["cell", "junk"]
        records = p.images()
        assert [r["status"] for r in records] == ["reviewed", "new"]
        assert [r["n_instances"] for r in records] == [2, 0]
        assert records[0]["path"] == str(images[0])
        inst = p.instances(1)
        assert inst.labels.tolist() == [0, 1]
        assert inst.extra["source"].tolist() == ["human", "model"]
        assert shapely.equals_exact(inst.polygons[1], tri, tolerance=0)
        assert [h["version"] for h in p.history(1)] == [1]
        assert p.stats()["classes"] == {"cell": 1, "junk": 1}
        assert p.rounds()[0]["metrics"] == {"segm_AP": 0.25}
        assert p.latest_checkpoint() == tmp_path / "checkpoints" / "r1.pt"
        assert p.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # the migrated project works as a current one
        p.save_instances(1, inst[[0]], source="corrected")
        assert len(p.undo(1)) == 2
        with pytest.warns(UserWarning, match="skipped 2"):
            assert p.add_images(images) == []  # origin known after migration: duplicates
    with Project.open(tmp_path) as p:  # opening again does not migrate again
        assert len(p.history(1)) == 2
        assert p.effort(by="round")["total"]["actions"]["deleted"] == 1  # the save above
    fresh = tmp_path / "fresh"
    Project.create(fresh, classes=["a"]).close()
    layouts = []
    for db in (tmp_path / "project.db", fresh / "project.db"):
        con = sqlite3.connect(db)
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master ORDER BY name")]
        layouts.append({n: con.execute(f"PRAGMA table_info({n})").fetchall() for n in names})
        con.close()
    assert layouts[0] == layouts[1]  # 1 -> 2 -> 3 gives the tables of a new project


def test_context_manager_and_closed_project(tmp_path):
    with Project.create(tmp_path, classes=["a"]) as p:
        pass
    with pytest.raises(ValueError, match="the project is closed"):
        p.images()


# -- images -----------------------------------------------------------------------------------
def test_add_images_folder_glob_list_and_duplicates(tmp_path):
    paths = _write_images(tmp_path / "data", 3)
    (tmp_path / "data" / "notes.txt").write_text("not an image")
    _write_images(tmp_path / "data" / "sub", 2, prefix="deep")
    with Project.create(tmp_path / "proj", classes=["a"]) as p:
        assert p.add_images(tmp_path / "data") == [1, 2, 3]  # folder: not recursive, no .txt
        assert p.add_images(str(tmp_path / "data" / "**" / "deep*.png")) == [4, 5]
        with pytest.warns(UserWarning, match=r"skipped 4 image\(s\) already in the project"):
            assert (
                p.add_images(
                    [paths[0], str(paths[1]), paths[0], tmp_path / "data" / "sub" / "deep0.png"]
                )
                == []
            )
        records = p.images()
        assert [r["file_name"] for r in records] == [
            "img0.png",
            "img1.png",
            "img2.png",
            "deep0.png",
            "deep1.png",
        ]
        assert all((r["height"], r["width"]) == SHAPE for r in records)
        assert all(
            r["status"] == "new" and r["split"] is None and r["n_instances"] == 0 for r in records
        )
        assert p.image_path(1) == paths[0]
        # stored relative to the project folder
        stored = p.con.execute("SELECT path FROM images WHERE id = 1").fetchone()[0]
        assert stored == "../data/img0.png"


def test_add_images_reads_tiff_sizes_from_metadata(tmp_path):
    tifffile.imwrite(tmp_path / "gray.tif", np.zeros((5, 7), np.uint16))
    tifffile.imwrite(tmp_path / "rgb.tiff", np.zeros((6, 9, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(
        tmp_path / "planar.tif",
        np.zeros((3, 11, 13), np.uint8),
        photometric="rgb",
        planarconfig="separate",
    )
    iio.imwrite(tmp_path / "c.jpg", np.zeros((8, 10, 3), np.uint8))
    with Project.create(tmp_path / "p", classes=["a"]) as p:
        p.add_images(tmp_path)
        sizes = {r["file_name"]: (r["height"], r["width"]) for r in p.images()}
    assert sizes == {
        "c.jpg": (8, 10),
        "gray.tif": (5, 7),
        "planar.tif": (11, 13),
        "rgb.tiff": (6, 9),
    }


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")  # imageio
def test_add_images_refuses_unreadable_files_and_adds_the_rest(tmp_path):
    """#12 item 8: unreadable files are refused and listed; the readable ones are added."""
    _write_images(tmp_path, 2)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with Project.create(tmp_path / "p", classes=["a"]) as p:
        with pytest.warns(
            UnreadableImagesWarning,
            match=r"refused 2 of 4 image files that cannot be read \(the other 2 were added\):"
            r" .*broken.png.*broken.tif",
        ) as record:
            assert p.add_images(tmp_path) == [1, 2]
        [warning] = [w.message for w in record if isinstance(w.message, UnreadableImagesWarning)]
        assert [path.name for path, _ in warning.refused] == ["broken.png", "broken.tif"]
        assert [r["file_name"] for r in p.images()] == ["img0.png", "img1.png"]
        # other suffixes: decoded by content, or reported the same way
        (tmp_path / "notes.txt").write_text("hello")
        with pytest.raises(
            ValueError, match=r"cannot read 1 of 1 image files, nothing was added: .*notes.txt"
        ):
            p.add_images([tmp_path / "notes.txt"])
        assert len(p.images()) == 2
        (tmp_path / "png_bytes.dat").write_bytes((tmp_path / "img0.png").read_bytes())
        [image_id] = p.add_images([tmp_path / "png_bytes.dat"])
        assert (p.image(image_id)["height"], p.image(image_id)["width"]) == SHAPE


def test_add_images_errors(tmp_path):
    with Project.create(tmp_path / "p", classes=["a"]) as p:
        with pytest.raises(FileNotFoundError, match="no such image file or folder: .*nothere"):
            p.add_images(tmp_path / "nothere.png")
        # one rule for image paths everywhere (labelassist.io.collect_image_paths): a
        # pattern without match and a folder without images are errors
        with pytest.raises(ValueError, match="pattern .* matches no files"):
            p.add_images(str(tmp_path / "*.png"))
        (tmp_path / "empty").mkdir()
        with pytest.raises(ValueError, match="folder .*empty.* holds no image files"):
            p.add_images(tmp_path / "empty")
        with pytest.raises(TypeError, match="must be a folder, a glob pattern, a file or a list"):
            p.add_images(42)
        with pytest.raises(TypeError, match=r"\[0\] is int; expected a path"):
            p.add_images([42])
        with pytest.raises(ValueError, match=r"split must be one of \['train', 'val'\]"):
            p.add_images(tmp_path, split="test")
        assert p.add_images([]) == []


def test_add_images_copy(tmp_path):
    paths = _write_images(tmp_path / "a", 2)
    other = _write_images(tmp_path / "b", 1)  # same name img0.png as a/img0.png
    with Project.create(tmp_path / "p", classes=["a"], copy_images=True) as p:
        ids = p.add_images([*paths, *other], split="train")
        files = sorted(f.name for f in (p.folder / "images").iterdir())
        assert files == ["img0.png", "img0_1.png", "img1.png"]
        for image_id, source in zip(ids, [*paths, *other], strict=True):
            copied = p.image_path(image_id)
            assert copied.parent == p.folder / "images"
            assert copied.read_bytes() == source.read_bytes()
            assert _mode(copied) == _mode(source)
        assert (
            p.con.execute("SELECT path FROM images WHERE id = 3").fetchone()[0]
            == "images/img0_1.png"
        )
        assert [r["split"] for r in p.images()] == ["train"] * 3
        with pytest.warns(UserWarning, match="skipped 1"):
            assert p.add_images(paths[0]) == []  # the source file is known: not copied again
        with pytest.warns(UserWarning, match="skipped 1"):
            assert p.add_images(tmp_path / "b", copy=False) == []  # duplicates, not copied
        assert len(list((p.folder / "images").iterdir())) == 3


@pytest.mark.parametrize("copy", [True, False])
def test_add_images_failed_write_leaves_files_as_they_were(tmp_path, copy):
    paths = _write_images(tmp_path / "data", 2)
    with Project.create(tmp_path / "p", classes=["a"]) as p:
        p.con.execute(  # a real database failure in the middle of the insert
            "CREATE TRIGGER fail BEFORE INSERT ON images WHEN NEW.file_name = 'img1.png'"
            " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
            p.add_images(tmp_path / "data", copy=copy)
        assert p.images() == []  # the whole call rolled back
        assert not (p.folder / "images").exists() or not list((p.folder / "images").iterdir())
        assert all(path.is_file() for path in paths)  # originals untouched


def test_images_filters_and_records(project):
    project.set_status(2, "reviewed")
    project.set_status({"id": 3}, "skipped")
    project.set_split([1, 2], "val")
    assert [r["id"] for r in project.images(status="reviewed")] == [2]
    assert [r["id"] for r in project.images(status=["reviewed", "skipped"])] == [2, 3]
    assert [r["id"] for r in project.images(status="all")] == [1, 2, 3, 4]
    assert [r["id"] for r in project.images(split="val")] == [1, 2]
    assert [r["id"] for r in project.images(split="unassigned")] == [3, 4]
    assert project.images(status="new", split="val")[0]["id"] == 1
    record = project.image(1)
    assert set(record) >= {
        "id",
        "file_name",
        "path",
        "height",
        "width",
        "status",
        "split",
        "n_instances",
        "updated",
    }
    assert project.image(record)["id"] == 1
    project.set_split(1, None)
    assert project.image(1)["split"] is None
    with pytest.raises(ValueError, match="status must be one of"):
        project.images(status="done")
    with pytest.raises(ValueError, match="split must be one of"):
        project.images(split="test")


def test_image_argument_errors(project):
    with pytest.raises(ValueError, match="image 99 is not in this project"):
        project.image_path(99)
    with pytest.raises(ValueError, match="image record has no 'id'"):
        project.image({"file_name": "x"})
    with pytest.raises(TypeError, match="image must be an image id"):
        project.image("1")
    with pytest.raises(TypeError, match="image must be an image id"):
        project.image(True)
    with pytest.raises(ValueError, match="image 99 is not in this project"):
        project.set_status(99, "reviewed")
    with pytest.raises(ValueError, match="status must be one of"):
        project.set_status(1, "done")
    with pytest.raises(ValueError, match="image 99 is not in this project"):
        project.set_split([1, 99], "train")
    assert project.image(1)["split"] is None  # the whole call rolled back
    with pytest.raises(ValueError, match="split must be one of"):
        project.set_split(1, "test")


def test_assign_splits(project):
    assert project.assign_splits(val_fraction=0.5, seed=3) == {"train": 2, "val": 2}
    first = [r["split"] for r in project.images()]
    assert project.assign_splits(val_fraction=0.5, seed=3) == {"train": 0, "val": 0}  # all assigned
    assert project.assign_splits(val_fraction=0.25, seed=3, overwrite=True) == {
        "train": 3,
        "val": 1,
    }
    project.set_split([1, 2, 3, 4], None)
    project.assign_splits(val_fraction=0.5, seed=3)
    assert [r["split"] for r in project.images()] == first  # seeded
    with pytest.raises(ValueError, match=r"val_fraction must be a number in \[0, 1\]"):
        project.assign_splits(val_fraction=1.5)


def test_assign_splits_empty(tmp_path):
    with Project.create(tmp_path, classes=["a"]) as p:
        assert p.assign_splits() == {"train": 0, "val": 0}


# -- instances, provenance, history --------------------------------------------------------
def test_save_and_fetch_round_trip_exact_geometry(project):
    geoms = _odd_geometries()
    inst = Instances(geoms, [0, 1, 0], np.array([0.123456789, 1.0, 0.5], np.float32), SHAPE)
    project.save_instances(1, inst, source="model", model_id="round-1")
    back = project.instances(1)
    assert back.extra["source"].tolist() == ["model"] * 3
    assert back.extra["instance_id"].dtype == np.int64
    assert len(set(back.extra["instance_id"].tolist())) == 3
    assert back.labels.tolist() == [0, 1, 0]
    assert back.scores.tolist() == inst.scores.tolist()  # float32 exact
    for got, want in zip(back.polygons, geoms, strict=True):
        assert shapely.to_wkb(got) == shapely.to_wkb(want)  # bit-exact
    assert back.replace(extra={}) == inst
    record = project.image(1)
    assert record["status"] == "pre-annotated" and record["n_instances"] == 3
    assert project.history(1)[0]["model_id"] == "round-1"


def test_instances_of_an_image_without_annotations(project):
    empty = project.instances(2)
    assert len(empty) == 0 and empty.image_shape == SHAPE
    assert set(empty.extra) == {"source", "instance_id"}
    project.save_instances(2, Instances.empty(SHAPE), source="model")
    assert len(project.instances(2)) == 0
    assert project.image(2)["status"] == "pre-annotated"
    assert project.history(2)[0]["n_instances"] == 0


def test_save_instances_errors(project):
    good = _inst([(0, 0, 2, 2)], [0], [0.5])
    with pytest.raises(TypeError, match="instances must be an Instances"):
        project.save_instances(1, [shapely.box(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="source must be one of"):
        project.save_instances(1, good, source="robot")
    with pytest.raises(TypeError, match="model_id must be a str or None"):
        project.save_instances(1, good, model_id=3)
    with pytest.raises(ValueError, match=r"label 2, but the project has 2 classes"):
        project.save_instances(1, _inst([(0, 0, 2, 2)], [2]))
    with pytest.raises(
        ValueError, match=r"image_shape \(10, 10\), but image 1 is \(height, width\) = \(24, 32\)"
    ):
        project.save_instances(1, _inst([(0, 0, 2, 2)], shape=(10, 10)))
    with pytest.raises(ValueError, match="image 77 is not in this project"):
        project.save_instances(77, good)
    assert project.history(1) == [] and project.stats()["instances"] == 0


def test_status_transitions_on_save(project):
    inst = _inst([(0, 0, 2, 2)], [0], [0.5])
    project.save_instances(1, inst, source="model")
    assert project.image(1)["status"] == "pre-annotated"
    project.save_instances(1, project.instances(1), source="corrected")
    assert project.image(1)["status"] == "in-review"
    project.save_instances(2, inst, source="human")
    assert project.image(2)["status"] == "in-review"
    project.set_status(3, "reviewed")
    project.save_instances(3, inst, source="model")
    project.save_instances(3, inst, source="corrected")
    assert project.image(3)["status"] == "reviewed"  # never downgraded


def test_corrected_save_tracks_provenance_per_instance(project):
    proposal = _inst([(1, 1, 5, 5), (8, 8, 12, 12), (14, 2, 18, 6)], [0, 0, 1], [0.9, 0.4, 0.7])
    project.save_instances(1, proposal, source="model", model_id="m1")
    current = project.instances(1)
    a, b, c = current.extra["instance_id"].tolist()
    edited = Instances(
        [
            current.polygons[0],
            shapely.box(8, 8, 13, 12),
            current.polygons[2],
            shapely.box(20, 2, 23, 5),
        ],
        [0, 0, 0, 1],  # third instance relabelled
        [0.9, 0.4, 0.7, 1.0],
        SHAPE,
        extra={"instance_id": [a, b, c, -1], "source": ["model"] * 4},  # source column ignored
    )
    project.save_instances(1, edited, source="corrected")
    after = project.instances(1)
    assert after.extra["source"].tolist() == ["model", "corrected", "corrected", "human"]
    assert after.extra["instance_id"].tolist()[:3] == [a, b, c]
    d = int(after.extra["instance_id"][3])
    assert d not in (a, b, c)
    # a re-saved unchanged instance keeps 'model' only when identical; the original proposal
    # is still there for comparison
    original = project.instances(1, version=1)
    assert original == project.instances(1, version=1)
    assert original.extra["source"].tolist() == ["model"] * 3
    assert shapely.equals(original.polygons[1], shapely.box(8, 8, 12, 12))
    # the same instance deleted then drawn again as a new one gets a fresh id
    project.save_instances(1, after[[0, 1]], source="corrected")
    assert project.instances(1).extra["source"].tolist() == ["model", "corrected"]
    # ids from another image are not taken over; duplicates within one save get a fresh id
    foreign = _inst([(0, 0, 3, 3), (4, 4, 6, 6)], [0, 0], [1.0, 1.0], instance_id=[a, a])
    project.save_instances(2, foreign, source="corrected")
    ids2 = project.instances(2).extra["instance_id"].tolist()
    assert a not in ids2 and len(set(ids2)) == 2
    assert project.instances(2).extra["source"].tolist() == ["human", "human"]


def test_history_and_undo(project):
    v1 = _inst([(0, 0, 2, 2)], [0], [0.6])
    v2 = _inst([(0, 0, 3, 3), (5, 5, 9, 9)], [0, 1], [0.6, 1.0])
    project.save_instances(1, v1, source="model", model_id="m")
    project.save_instances(1, v2, source="human")
    history = project.history(1)
    assert [
        (h["version"], h["parent"], h["source"], h["n_instances"], h["current"]) for h in history
    ] == [
        (1, 0, "model", 1, False),
        (2, 1, "human", 2, True),
    ]
    assert history[0]["created"] <= history[1]["created"]
    assert project.stats()["instances"] == 2
    back = project.undo(1)
    assert back.replace(extra={}) == v1
    assert project.image(1)["n_instances"] == 1 and project.image(1)["version"] == 1
    assert project.stats()["source"] == {"model": 1, "corrected": 0, "human": 0, "prompted": 0}
    assert len(project.undo(1)) == 0
    with pytest.raises(ValueError, match="nothing to undo: image 1 has no saved instances"):
        project.undo(1)
    # saving after undo branches from the restored version; all versions are kept
    project.save_instances(1, v2, source="human")
    assert [(h["version"], h["parent"]) for h in project.history(1)] == [(1, 0), (2, 1), (3, 0)]
    assert project.instances(1, version=2).replace(extra={}) == v2
    assert len(project.instances(1, version=0)) == 0
    with pytest.raises(ValueError, match="image 1 has no version 7"):
        project.instances(1, version=7)
    with pytest.raises(ValueError, match="has no version '2'"):
        project.instances(1, version="2")
    with pytest.raises(ValueError, match="image 9 is not in this project"):
        project.history(9)


def test_stats_match_a_recount_after_random_edits(project):
    rng = np.random.default_rng(7)
    for step in range(40):
        image_id = int(rng.integers(1, 5))
        action = rng.integers(0, 4)
        if action == 0 and project.image(image_id)["version"] > 0:
            project.undo(image_id)
            continue
        n = int(rng.integers(0, 5))
        boxes = [(x, y, x + 2, y + 2) for x, y in rng.integers(0, 20, (n, 2)).tolist()]
        current = project.instances(image_id)
        ids = list(current.extra["instance_id"][:n]) + [0] * max(0, n - len(current))
        inst = _inst(
            boxes, rng.integers(0, 2, n), rng.random(n).astype(np.float32), instance_id=ids
        )
        source = ["model", "corrected", "human", "prompted"][step % 4]
        project.save_instances(image_id, inst, source=source)
    stats = project.stats()
    classes, sources = _brute_counts(project)
    assert stats["classes"] == classes and stats["source"] == sources
    assert stats["instances"] == sum(r["n_instances"] for r in project.images())
    assert stats["images"] == 4 and sum(stats["status"].values()) == 4


def test_stats_empty(tmp_path):
    with Project.create(tmp_path, classes=["a", "b"]) as p:
        assert p.stats() == {
            "images": 0,
            "instances": 0,
            "rounds": 0,
            "status": dict.fromkeys(
                ["new", "pre-annotated", "in-review", "reviewed", "skipped"], 0
            ),
            "split": {"train": 0, "val": 0, "unassigned": 0},
            "classes": {"a": 0, "b": 0},
            "source": {"model": 0, "corrected": 0, "human": 0, "prompted": 0},
        }


# -- next image ------------------------------------------------------------------------------
def test_next_image_strategies(project):
    assert project.next_image(strategy="order")["id"] == 1
    # image 3: 2 of 2 model instances uncertain; image 2: 1 of 2; image 1: none
    project.save_instances(1, _inst([(0, 0, 2, 2)], [0], [0.95]), source="model")
    project.save_instances(
        2, _inst([(0, 0, 2, 2), (3, 3, 5, 5)], [0, 0], [0.5, 0.9]), source="model"
    )
    project.save_instances(
        3, _inst([(0, 0, 2, 2), (3, 3, 5, 5)], [0, 0], [0.5, 0.35]), source="model"
    )
    assert project.next_image()["id"] == 3
    assert project.next_image(exclude=[3])["id"] == 2
    assert project.next_image(exclude=[3, {"id": 2}])["id"] == 1
    assert project.next_image(exclude=[1, 2, 3])["id"] == 4  # never predicted: last
    # human corrections are not uncertain
    project.save_instances(3, _inst([(0, 0, 2, 2)], [0], [0.5]), source="human")
    assert project.next_image()["id"] == 2
    for image_id in (1, 2, 3):
        project.set_status(image_id, "reviewed")
    project.set_status(4, "skipped")
    assert project.next_image() is None
    assert project.next_image(strategy="order") is None
    with pytest.raises(ValueError, match="strategy must be one of"):
        project.next_image(strategy="random")


def test_next_image_empty_project(tmp_path):
    with Project.create(tmp_path, classes=["a"]) as p:
        assert p.next_image() is None


# -- rounds ----------------------------------------------------------------------------------
def test_rounds(project):
    assert project.rounds() == [] and project.latest_checkpoint() is None
    project.save_instances(1, _inst([(0, 0, 2, 2), (3, 3, 5, 5)], [0, 1], [1, 1]), source="human")
    r1 = project.add_round(
        checkpoint=project.checkpoint_dir / "r1.pt", image_ids=[1, 2], metrics={"segm_AP": 0.1}
    )
    r2 = project.add_round(
        checkpoint=str(project.checkpoint_dir / "r2.pt"),
        parent=r1,
        image_ids=[{"id": 1}],
        metrics={
            "segm_AP": np.float32(0.25),
            "per_class": {"nucleus": 0.3},
            "ap": np.array([1, 2]),
        },
        n_instances=17,
    )
    assert (r1, r2) == (1, 2)
    rounds = project.rounds()
    assert [(r["round"], r["parent"], r["n_images"], r["n_instances"]) for r in rounds] == [
        (1, None, 2, 2),
        (2, 1, 1, 17),
    ]
    assert rounds[0]["image_ids"] == [1, 2]
    assert rounds[1]["metrics"] == {"segm_AP": 0.25, "per_class": {"nucleus": 0.3}, "ap": [1, 2]}
    assert project.latest_checkpoint() == project.checkpoint_dir / "r2.pt"
    stored = project.con.execute("SELECT checkpoint FROM rounds WHERE round = 2").fetchone()[0]
    assert stored == "checkpoints/r2.pt"  # relative: the project folder can move
    assert project.stats()["rounds"] == 2


def test_add_round_errors(project):
    ckpt = project.checkpoint_dir / "r.pt"
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        project.add_round(checkpoint=None, image_ids=[], metrics={})
    with pytest.raises(TypeError, match="metrics must be a dict"):
        project.add_round(checkpoint=ckpt, image_ids=[], metrics=[0.1])
    with pytest.raises(TypeError, match="metrics must be JSON-serializable"):
        project.add_round(checkpoint=ckpt, image_ids=[], metrics={"ap": float("nan")})
    with pytest.raises(TypeError, match="metrics must be JSON-serializable"):
        project.add_round(checkpoint=ckpt, image_ids=[], metrics={"ap": object()})
    with pytest.raises(ValueError, match="parent round 5 does not exist"):
        project.add_round(checkpoint=ckpt, parent=5, image_ids=[], metrics={})
    with pytest.raises(ValueError, match=r"image_ids \[42\] are not in this project"):
        project.add_round(checkpoint=ckpt, image_ids=[1, 42], metrics={})
    with pytest.raises(ValueError, match="n_instances must be an int >= 0"):
        project.add_round(checkpoint=ckpt, image_ids=[], metrics={}, n_instances=-1)
    assert project.rounds() == []


# -- COCO -------------------------------------------------------------------------------------
def test_empty_project_exports_a_valid_coco_file(tmp_path):
    with Project.create(tmp_path / "p", classes=["nucleus", "debris"]) as p:
        out = p.export_coco(tmp_path / "empty.json")
    coco = COCO(str(out))
    assert coco.getImgIds() == [] and coco.getAnnIds() == []
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["nucleus", "debris"]
    assert len(read_coco(out)) == 0


def test_export_coco_reviewed_images(project, tmp_path):
    geoms = _odd_geometries()
    project.save_instances(1, Instances(geoms, [0, 1, 0], [1.0, 1.0, 1.0], SHAPE), source="human")
    project.save_instances(2, _inst([(0, 0, 4, 4)], [1], [0.6]), source="model")
    project.set_status(1, "reviewed")
    project.set_status(3, "reviewed")  # reviewed, no objects
    out = project.export_coco(tmp_path / "data" / "labels.json")  # next to the images
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [1, 3]
    assert [coco.imgs[i]["file_name"] for i in (1, 3)] == ["img0.png", "img2.png"]
    assert len(coco.getAnnIds(imgIds=[1])) == 3 and coco.getAnnIds(imgIds=[3]) == []
    assert {a["category_id"] for a in coco.loadAnns(coco.getAnnIds())} == {1, 2}
    back = read_coco(out)
    assert (back.image_root / back.images[0]["file_name"]) == project.image_path(1)
    mask_back = back.instances[1].masks()
    np.testing.assert_array_equal(mask_back, project.instances(1).masks())
    # every image, one split
    project.set_split([1, 2], "train")
    out = project.export_coco(tmp_path / "data" / "train.json", status="all", split="train")
    assert sorted(COCO(str(out)).getImgIds()) == [1, 2]
    out = project.export_coco(tmp_path / "data" / "rle.json", segmentation="rle")
    assert all(
        isinstance(a["segmentation"], dict) for a in json.loads(out.read_text())["annotations"]
    )


def test_export_coco_image_root(project, tmp_path):
    project.set_status(1, "reviewed")
    elsewhere = tmp_path / "exports" / "labels.json"
    with pytest.warns(UserWarning, match=f"relative to {tmp_path / 'data'}"):
        out = project.export_coco(elsewhere)  # images are not under exports/ nor the project
    data = json.loads(out.read_text())
    assert data["info"]["image_root"] == (tmp_path / "data").as_posix()
    assert data["images"][0]["file_name"] == "img0.png"
    assert read_coco(out, image_root=tmp_path / "data").image_path(1) == project.image_path(1)
    out = project.export_coco(elsewhere, image_root=tmp_path)
    assert json.loads(out.read_text())["images"][0]["file_name"] == "data/img0.png"
    with pytest.raises(ValueError, match="image_root .* does not hold 1 of the exported images"):
        project.export_coco(elsewhere, image_root=tmp_path / "exports")
    with pytest.raises(ValueError, match="status must be one of"):
        project.export_coco(elsewhere, status="done")
    with pytest.raises(ValueError, match=r"segmentation must be one of \[.polygon., .rle.\]"):
        project.export_coco(elsewhere, segmentation="mask")


def test_dataset(project):
    inst = _inst([(0, 0, 4, 4), (5, 5, 9, 9)], [0, 1], [1.0, 0.5])
    project.save_instances(1, inst, source="model")
    project.set_status(1, "reviewed")
    project.set_split(1, "train")
    project.set_status(2, "reviewed")
    ds = project.dataset()
    assert ds.categories == ["nucleus", "debris"]
    assert ds.image_ids == [1, 2]
    assert ds.image_path(1) == project.image_path(1)
    assert ds.instances[1].replace(extra={}) == inst
    assert ds.instances[1].extra["source"].tolist() == ["model", "model"]
    assert len(ds.instances[2]) == 0
    assert project.dataset(split="train").image_ids == [1]
    assert project.dataset(split="val").image_ids == []
    assert project.dataset(status=None).image_ids == [1, 2, 3, 4]
    assert len(project.dataset(status="skipped")) == 0


def test_import_coco_round_trip(project, tmp_path):
    geoms = _odd_geometries()[1:]  # no holes: exact through COCO polygons
    project.save_instances(1, Instances(geoms, [1, 0], [1.0, 1.0], SHAPE), source="human")
    project.set_status(1, "reviewed")
    out = project.export_coco(tmp_path / "data" / "labels.json")
    with Project.create(
        tmp_path / "other", classes=["debris", "nucleus", "extra"], copy_images=True
    ) as other:
        ids = other.import_coco(out)
        assert ids == [1]
        record = other.image(1)
        assert record["status"] == "reviewed" and record["n_instances"] == 2
        assert Path(record["path"]).parent == other.folder / "images"
        got = other.instances(1)
        assert got.labels.tolist() == [0, 1]  # mapped by name: debris, nucleus
        assert got.extra["source"].tolist() == ["human", "human"]
        np.testing.assert_array_equal(got.masks(), project.instances(1).masks())
        # importing again replaces the instances as a new version, no new image
        assert other.import_coco(out) == [1]
        assert len(other.images()) == 1 and len(other.history(1)) == 2
    # into the project the file came from: same files, new reviewed versions
    assert project.import_coco(out) == [1]
    assert len(project.history(1)) == 2


def test_import_coco_empty_and_errors(project, tmp_path):
    empty = write_coco(tmp_path / "empty.json", ["nucleus"], [])
    assert project.import_coco(empty) == []
    bad = write_coco(tmp_path / "bad.json", ["cat"], [])
    with pytest.raises(
        ValueError, match=r"categories \['cat'\] of .* are not classes of this project"
    ):
        project.import_coco(bad)
    record = {"id": 1, "file_name": "missing.png", "height": 24, "width": 32}
    missing = write_coco(tmp_path / "missing.json", ["nucleus"], [(record, None)])
    with pytest.raises(FileNotFoundError, match="1 image file.* not found.*image_root"):
        project.import_coco(missing)
    # image_root tells where the images are
    record = {"id": 1, "file_name": "img3.png", "height": 24, "width": 32}
    moved = write_coco(
        tmp_path / "sub" / "moved.json", ["nucleus"], [(record, _inst([(0, 0, 5, 5)]))]
    )
    assert project.import_coco(moved, image_root=tmp_path / "data") == [4]
    assert project.image(4)["status"] == "reviewed"
    assert len(project.images()) == 4


# -- command line -----------------------------------------------------------------------------
def test_cli_end_to_end(tmp_path, capsys):
    _write_images(tmp_path / "imgs", 3)
    proj = str(tmp_path / "proj")
    assert main(["project", "init", proj, "--classes", "nucleus, debris"]) == 0
    assert "classes nucleus, debris" in capsys.readouterr().out
    assert main(["project", "add", proj, str(tmp_path / "imgs"), "--split", "train"]) == 0
    assert "added 3 images" in capsys.readouterr().out
    with Project.open(proj) as p:
        p.save_instances(2, _inst([(0, 0, 3, 3)], [1], [0.5]), source="model")
        p.set_status(1, "reviewed")
        p.add_round(
            checkpoint=p.checkpoint_dir / "r1.pt", image_ids=[1], metrics={"segm_AP": 0.4321}
        )
    assert main(["project", "status", proj]) == 0
    out = capsys.readouterr().out
    assert "3 images, 1 instances" in out
    assert re.search(r"^reviewed +1$", out, re.M) and re.search(r"^debris +1$", out, re.M)
    assert "0.432" in out and "r1.pt" in out
    assert main(["project", "next", proj]) == 0
    assert capsys.readouterr().out.startswith("2\tpre-annotated\t")
    assert main(["project", "next", proj, "--strategy", "order"]) == 0
    assert capsys.readouterr().out.startswith("2\t")
    json_out = tmp_path / "imgs" / "all.json"
    assert main(["project", "export", proj, str(json_out), "--status", "all", "--rle"]) == 0
    assert "wrote 3 images" in capsys.readouterr().out
    assert len(COCO(str(json_out)).getAnnIds()) == 1
    two = tmp_path / "imgs" / "two.json"  # converted in 2 spawned processes: same content
    assert (
        main(["project", "export", proj, str(two), "--status", "all", "--rle", "--workers", "2"])
        == 0
    )
    drop_date = lambda f: {**json.loads(f.read_text()), "info": None}  # noqa: E731
    assert drop_date(two) == drop_date(json_out)
    proj2 = str(tmp_path / "proj2")
    assert main(["project", "init", proj2, "--classes", "nucleus,debris", "--copy-images"]) == 0
    assert (
        main(["project", "import", proj2, str(json_out), "--image-root", str(tmp_path / "imgs")])
        == 0
    )
    assert "imported 3 images as reviewed" in capsys.readouterr().out
    assert main(["project", "next", proj2]) == 0
    assert "nothing left to label" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["project", "status", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not a labelassist project" in err and len(err.strip().splitlines()) == 1
    assert main(["project", "init", str(tmp_path / "p"), "--classes", ","]) == 1
    assert "at least one class" in capsys.readouterr().err
    assert main(["project", "init", str(tmp_path / "p"), "--classes", "a"]) == 0
    assert main(["project", "add", str(tmp_path / "p"), str(tmp_path / "none.png")]) == 1
    assert "no such image file or folder" in capsys.readouterr().err
    assert main(["project", "import", str(tmp_path / "p"), str(tmp_path / "none.json")]) == 1
    assert "COCO file not found" in capsys.readouterr().err
    assert main(["project"]) == 2  # usage error from argparse
    assert main(["project", "--help"]) == 0
    assert "init" in capsys.readouterr().out


def test_no_unexpected_warnings_in_normal_use(project, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        project.save_instances(1, _inst([(0, 0, 2, 2)]), source="model")
        project.set_status(1, "reviewed")
        project.export_coco(tmp_path / "data" / "x.json")


# -- label images -------------------------------------------------------------------------------
def _label_image(shape=SHAPE) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[2:6, 3:9] = 5  # 24 px
    labels[10:13, 20:30] = 700  # 30 px
    labels[20:24, 0:2] = 6  # 8 px, touches the border
    return labels


def test_import_label_images(project, tmp_path):
    labels = _label_image()
    tifffile.imwrite(tmp_path / "labels1.tif", labels)
    new_image = _write_images(tmp_path / "more", 1)[0]
    ids = project.import_label_images(
        [tmp_path / "data" / "img0.png", new_image], [labels, tmp_path / "labels1.tif"], label=1
    )
    assert ids == [1, 5]  # an image in the project and a new one
    for image_id in ids:
        inst = project.instances(image_id)
        assert sorted(inst.areas.tolist()) == [8.0, 24.0, 30.0]
        assert inst.labels.tolist() == [1, 1, 1]
        assert inst.extra["source"].tolist() == ["human"] * 3
        ids_back = np.zeros(SHAPE, np.uint16)
        for k, mask in enumerate(inst.masks()):
            ids_back[mask] = k + 1
        assert len(np.unique(ids_back)) == 4
        np.testing.assert_array_equal(ids_back > 0, labels > 0)  # same pixels
        assert project.image(image_id)["status"] == "reviewed"
    # an empty label image: reviewed with no objects
    assert project.import_label_images(
        [new_image], [np.zeros(SHAPE, np.int32)], status="in-review"
    ) == [5]
    assert len(project.instances(5)) == 0 and project.image(5)["status"] == "in-review"


def test_import_label_images_errors(project, tmp_path):
    img = tmp_path / "data" / "img0.png"
    with pytest.raises(TypeError, match="must be lists"):
        project.import_label_images(img, [_label_image()])
    with pytest.raises(ValueError, match="images has 1 entries but label_images has 2"):
        project.import_label_images([img], [_label_image(), _label_image()])
    with pytest.raises(ValueError, match=r"label_images\[0\] is 10x10 but image .* is 24x32"):
        project.import_label_images([img], [np.zeros((10, 10), np.int32)])
    with pytest.raises(ValueError, match=r"label must be a class index in \[0, 2\)"):
        project.import_label_images([img], [_label_image()], label=2)
    with pytest.raises(ValueError, match="status must be one of"):
        project.import_label_images([img], [_label_image()], status="done")
    with pytest.raises(FileNotFoundError, match="image files not found"):
        project.import_label_images([tmp_path / "nope.png"], [_label_image()])
    assert project.history(1) == [] and len(project.images()) == 4


def test_next_image_with_a_model_ranks_the_open_images(project, tmp_path):
    import torch

    from labelassist.active import rank_images
    from labelassist.model import Model, build_maskrcnn

    torch.manual_seed(0)
    tiny = {"fpn_channels": 32, "representation_size": 64, "mask_channels": 16, "mask_layers": 1}
    arch = "maskrcnn_resnet18_fpn"
    net = build_maskrcnn(arch, len(project.classes) + 1, **tiny)
    model = Model(net, project.classes, arch=arch, options=tiny, device="cpu")
    project.set_status(1, "reviewed")
    open_records = [r for r in project.images() if r["id"] not in (1, 3)]
    expected = open_records[int(rank_images(model, [r["path"] for r in open_records])[0])]
    got = project.next_image(model=model, exclude=[3])
    assert got["id"] == expected["id"] and got["id"] in (2, 4)
    for image_id in (2, 4):
        project.set_status(image_id, "skipped")
    assert project.next_image(model=model, exclude=[3]) is None


def test_a_project_folder_can_move(tmp_path):
    import shutil

    _write_images(tmp_path / "data", 2)
    with Project.create(tmp_path / "a" / "proj", classes=["a"], copy_images=True) as p:
        p.add_images(tmp_path / "data")
        p.save_instances(1, _inst([(0, 0, 4, 4)]), source="human")
        p.add_round(checkpoint=p.checkpoint_dir / "r1.pt", image_ids=[1], metrics={})
    shutil.move(tmp_path / "a" / "proj", tmp_path / "moved")
    shutil.rmtree(tmp_path / "data")
    with Project.open(tmp_path / "moved") as p:
        assert p.image_path(1) == tmp_path / "moved" / "images" / "img0.png"
        assert p.image_path(1).is_file()
        assert p.latest_checkpoint() == tmp_path / "moved" / "checkpoints" / "r1.pt"
        p.set_status(1, "reviewed")
        out = p.export_coco(tmp_path / "moved" / "labels.json")
    assert read_coco(out).image_path(1) == tmp_path / "moved" / "images" / "img0.png"


def test_dataset_rows_decoded_in_blocks_match_instances(project, monkeypatch):
    """Images split over several fetches (blocks of 3 rows) decode like `instances`."""
    from labelassist.project import exchange as _project_coco

    geoms = _odd_geometries()
    project.save_instances(1, Instances(geoms, [0, 1, 0], [1.0, 0.5, 0.25], SHAPE))
    project.save_instances(3, _inst([(k, k, k + 2, k + 3) for k in range(7)]), source="human")
    project.save_instances(4, _inst([(0, 0, 4, 4)], [1], [0.75]))
    monkeypatch.setattr(_project_coco, "_FETCH_ROWS", 3)
    ds = project.dataset(status="all")
    assert ds.image_ids == [1, 2, 3, 4]
    for image_id in ds.image_ids:
        assert ds.instances[image_id] == project.instances(image_id)
        assert ds.instances[image_id].extra["source"].tolist() == (
            project.instances(image_id).extra["source"].tolist()
        )
    assert len(ds.instances[2]) == 0 and set(ds.instances[2].extra) == {"source", "instance_id"}


def test_export_coco_file_names_outside_the_root(tmp_path):
    """Images in and outside the project folder: names relative to their common folder."""
    inside = _write_images(tmp_path / "proj" / "images", 2)
    outside = _write_images(tmp_path / "elsewhere" / "deep", 1, prefix="other")
    with Project.create(tmp_path / "proj", classes=["nucleus"]) as p:
        p.add_images(inside + outside)
        for image_id in (1, 2, 3):
            p.set_status(image_id, "reviewed")
        with pytest.warns(UserWarning, match=f"relative to {tmp_path}"):
            out = p.export_coco(tmp_path / "exports" / "labels.json")
        names = [r["file_name"] for r in json.loads(out.read_text())["images"]]
        assert names == [
            "proj/images/img0.png",
            "proj/images/img1.png",
            "elsewhere/deep/other0.png",
        ]
        with pytest.raises(ValueError, match="does not hold 1 of the exported images"):
            p.export_coco(tmp_path / "x.json", image_root=tmp_path / "proj")
        ds = p.dataset()
        assert ds.image_root == tmp_path
        assert [r["file_name"] for r in ds.images] == names
