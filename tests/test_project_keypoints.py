"""Keypoints in the project store (#16 item 6): schema 4 -> 5, names and skeleton, points
per version with provenance, history, undo and the effort log, COCO export and import.

``tests/data/project_v4`` was written by labelassist before keypoints (schema 4), with
the script in `_V4_SCRIPT`: 2 copied 24 x 32 images; image 1 saved by the model (2
boxes, model_id "m1"), corrected (the second deleted), 12.5 s logged, reviewed; image 2
saved by the model (1 box); round 1 recorded; a 2-plane z-stack "z" whose plane 0 holds
one human box with object id 1.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely

from labelassist.coco import read_coco, write_coco
from labelassist.evaluation import evaluate_predictions
from labelassist.instances import Instances
from labelassist.project import Project
from labelassist.project.schema import SCHEMA_VERSION
from labelassist.synthetic.landmarks import synthetic_landmarks

V4 = Path(__file__).parent / "data" / "project_v4"

_V4_SCRIPT = """
with Project.create(out, classes=["cell"], copy_images=True) as p:
    a, b = p.add_images(sorted(src.glob("*.png")))      # two 24 x 32 PNGs
    two = Instances([shapely.box(2, 2, 8, 8), shapely.box(10, 10, 20, 16)], [0, 0],
                    [0.9, 0.5], (24, 32))
    rev = p.save_instances(a, two, source="model", model_id="m1")
    p.save_instances(a, rev.instances[:1], source="corrected", expected_version=rev.version)
    p.log_time(a, 12.5); p.set_status(a, "reviewed")
    p.save_instances(b, two[1:], source="model")
    p.add_round(checkpoint=out / "checkpoints" / "round1.pt", image_ids=[a],
                metrics={"segm_AP": 0.25})
    s = p.add_stack(np.zeros((2, 24, 32), np.uint8), axes="ZYX", name="z")
    p.save_instances(p.plane(s, 0)["id"], Instances([shapely.box(4, 4, 9, 9)], [0], [1.0],
                     (24, 32), extra={"object_id": np.array([1])}), source="human")
"""


def _layout(con: sqlite3.Connection) -> dict:
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {t: [tuple(r[1:3]) for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}


def _boxes(*boxes, keypoints=None, ids=None, shape=(32, 48)) -> Instances:
    extra = {} if ids is None else {"instance_id": np.array(ids)}
    return Instances(
        [shapely.box(*b) for b in boxes],
        [0] * len(boxes),
        [0.9] * len(boxes),
        shape,
        extra=extra,
        keypoints=keypoints,
    )


@pytest.fixture
def project(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros((32, 48), np.uint8))
    with Project.create(
        tmp_path / "p", classes=["worm"], keypoints=["head", "tail"], skeleton=[(0, 1)]
    ) as p:
        p.add_images(tmp_path / "a.png")
        yield p


# -- the schema 4 -> 5 migration ---------------------------------------------------------------
def test_a_schema_4_project_opens_migrated_and_unchanged(tmp_path):
    folder = tmp_path / "p"
    shutil.copytree(V4, folder)
    con = sqlite3.connect(folder / "project.db")
    assert con.execute("PRAGMA user_version").fetchone() == (4,)
    con.close()
    with Project.open(folder) as p:
        assert p.con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (5,)
        assert p.check() == []
        assert p.keypoints is None and p.skeleton == []
        first = p.instances(1)
        assert first.keypoints is None and set(first.extra) == {"source", "instance_id"}
        assert shapely.equals_exact(first.polygons[0], shapely.box(2, 2, 8, 8), tolerance=0)
        assert [(h["source"], h["model_id"]) for h in p.history(1)] == [
            ("model", "m1"),
            ("corrected", None),
        ]
        row = p.effort(image=1)["rows"][0]
        assert row["seconds"] == 12.5 and row["actions"]["deleted"] == 1
        assert p.rounds()[0]["metrics"] == {"segm_AP": 0.25}
        [stack] = p.stacks()
        plane = p.instances(p.plane(stack["id"], 0))
        assert plane.extra["object_id"].tolist() == [1] and plane.keypoints is None
        # the migrated project takes keypoints
        p.set_keypoints(["pole 1", "pole 2"])
        assert p.instances(1).keypoints.tolist() == [[[0, 0, 0], [0, 0, 0]]]
        moved = p.instances(1).replace(keypoints=[[[2.5, 2.5, 2], [7.5, 7.5, 1]]])
        p.save_instances(1, moved, source="corrected")
        assert p.instances(1).keypoints[0, 1].tolist() == [7.5, 7.5, 1]
        assert p.check() == []
    fresh = tmp_path / "fresh"
    Project.create(fresh, classes=["cell"]).close()
    migrated, new = sqlite3.connect(folder / "project.db"), sqlite3.connect(fresh / "project.db")
    assert _layout(migrated) == _layout(new)
    migrated.close()
    new.close()


# -- names ---------------------------------------------------------------------------------------
def test_names_at_creation_survive_reopening(project):
    assert (project.keypoints, project.skeleton) == (["head", "tail"], [(0, 1)])
    folder = project.folder
    project.close()
    with Project.open(folder) as again:
        assert (again.keypoints, again.skeleton) == (["head", "tail"], [(0, 1)])
    # creating an empty project again with the same names opens it; others are refused
    empty = folder.parent / "empty"
    Project.create(empty, classes=["worm"], keypoints=["head", "tail"], skeleton=[(0, 1)]).close()
    Project.create(empty, classes=["worm"], keypoints=["head", "tail"], skeleton=[(0, 1)]).close()
    with pytest.raises(FileExistsError, match=r"keypoints \['head', 'tail'\]"):
        Project.create(empty, classes=["worm"], keypoints=["tail", "head"])


def test_appended_names_read_as_unlabelled_in_old_points(project):
    points = [[[3.5, 4.5, 2], [20.5, 4.5, 1]]]
    project.save_instances(1, _boxes((2, 2, 24, 8), keypoints=points), source="human")
    project.set_keypoints(["head", "tail", "middle"], skeleton=[(0, 2), (2, 1)])
    assert project.skeleton == [(0, 2), (2, 1)]
    assert project.instances(1).keypoints.tolist() == [[*points[0], [0, 0, 0]]]


# -- versions, provenance, undo, effort ------------------------------------------------------
def test_moving_a_point_is_a_correction_with_history_undo_and_effort(project):
    model = _boxes((2, 2, 24, 8), (4, 12, 40, 20), keypoints=[[[3.5, 4.5, 2], [22.5, 5.5, 2]]] * 2)
    saved = project.save_instances(1, model, source="model").instances
    assert saved.keypoints.tolist() == model.keypoints.tolist()
    # move the second object's tail and mark its head hidden; the first is untouched
    edit = saved.keypoints.copy()
    edit[1, 1, :2] = (38.5, 17.5)
    edit[1, 0, 2] = 1
    revision = project.save_instances(
        1, saved.replace(keypoints=edit), source="corrected", expected_version=1
    )
    assert revision.instances.extra["source"].tolist() == ["model", "corrected"]
    assert revision.instances.keypoints.tolist() == edit.tolist()
    assert revision.instances.extra["instance_id"].tolist() == saved.extra["instance_id"].tolist()
    assert project.effort(image=1)["rows"][0]["actions"]["edited"] == 1
    assert [h["source"] for h in project.history(1)] == ["model", "corrected"]
    assert project.instances(1, version=1).keypoints.tolist() == model.keypoints.tolist()
    back = project.undo(1)
    assert back.keypoints.tolist() == model.keypoints.tolist()
    assert project.instances(1).keypoints.tolist() == model.keypoints.tolist()
    # saving the same points again changes nothing: no action, sources kept
    again = project.save_instances(1, back, source="corrected")
    assert again.instances.extra["source"].tolist() == ["model", "model"]
    assert project.effort(image=1)["rows"][0]["actions"]["edited"] == 1


def test_a_save_without_keypoints_keeps_the_points_of_kept_instances(project):
    saved = project.save_instances(
        1, _boxes((2, 2, 24, 8), keypoints=[[[3.5, 4.5, 2], [22.5, 5.5, 2]]]), source="human"
    ).instances
    # an outline edit by a tool that knows nothing of keypoints, plus a new object
    ids = [int(saved.extra["instance_id"][0]), 0]
    edit = _boxes((2, 2, 26, 8), (30, 20, 40, 30), ids=ids)
    assert edit.keypoints is None
    out = project.save_instances(1, edit, source="corrected").instances
    assert out.keypoints.tolist() == [[[3.5, 4.5, 2], [22.5, 5.5, 2]], [[0, 0, 0], [0, 0, 0]]]


def test_points_on_a_plane_of_a_stack(project):
    s = project.add_stack(np.zeros((2, 32, 48), np.uint8), axes="ZYX")
    plane = project.plane(s, 1)
    inst = _boxes((2, 2, 24, 8), keypoints=[[[3.5, 4.5, 2], [0, 0, 0]]]).replace(
        extra={"object_id": np.array([3])}
    )
    out = project.save_instances(plane, inst, source="human").instances
    assert out.extra["object_id"].tolist() == [3]
    assert out.keypoints.tolist() == [[[3.5, 4.5, 2], [0, 0, 0]]]


# -- COCO out and in ---------------------------------------------------------------------------
def _landmark_files(folder: Path, n: int = 2) -> tuple[Path, list]:
    items = []
    for k in range(n):
        image, inst = synthetic_landmarks((64, 64), kind="worms", seed=k)
        iio.imwrite(folder / f"w{k}.png", image)
        items.append(({"id": k + 1, "file_name": f"w{k}.png", "height": 64, "width": 64}, inst))
    path = write_coco(
        folder / "truth.json", ["worm"], items, keypoints=["head", "tail"], skeleton=[(0, 1)]
    )
    return path, items


def test_the_first_import_names_the_keypoints_and_export_round_trips(tmp_path):
    path, items = _landmark_files(tmp_path)
    with Project.create(tmp_path / "p", classes=["worm"]) as p:
        ids = p.import_coco(path)
        assert (p.keypoints, p.skeleton) == (["head", "tail"], [(0, 1)])
        for number, (_, truth) in zip(ids, items, strict=True):
            assert p.instances(number).keypoints.tolist() == truth.keypoints.tolist()
        data = p.dataset()
        assert data.keypoints == ["head", "tail"] and data.skeleton == [(0, 1)]
        out = p.export_coco(tmp_path / "out.json")
    raw = json.loads(out.read_text())
    assert raw["categories"][0]["keypoints"] == ["head", "tail"]
    assert raw["categories"][0]["skeleton"] == [[1, 2]]
    back = read_coco(out)
    assert back.keypoints == ["head", "tail"]
    truth = {record["file_name"]: inst for record, inst in items}
    for record in back.images:
        assert back.instances[record["id"]].keypoints.tolist() == (
            truth[record["file_name"]].keypoints.tolist()
        )
    # the exported ground truth scores OKS AP 1.0 against itself (pycocotools' COCOeval)
    metrics = evaluate_predictions(back.instances, back)
    assert metrics["keypoints_AP"] == pytest.approx(1.0)


def test_an_import_with_other_names_appends_them_in_the_project_columns(project, tmp_path):
    iio.imwrite(tmp_path / "b.png", np.zeros((32, 48), np.uint8))
    record = {"id": 1, "file_name": "b.png", "height": 32, "width": 48}
    inst = _boxes((2, 2, 24, 8), keypoints=[[[12.5, 4.5, 2], [3.5, 4.5, 1]]])
    path = write_coco(
        tmp_path / "other.json", ["worm"], [(record, inst)], keypoints=["middle", "head"],
        skeleton=[(1, 0)],
    )  # fmt: skip
    [number] = project.import_coco(path)
    assert project.keypoints == ["head", "tail", "middle"]
    assert project.skeleton == [(0, 1), (0, 2)]  # the file's (head, middle)
    assert project.instances(number).keypoints.tolist() == [
        [[3.5, 4.5, 1], [0, 0, 0], [12.5, 4.5, 2]]
    ]


def test_a_project_without_keypoints_stores_and_writes_none(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros((32, 48), np.uint8))
    with Project.create(tmp_path / "p", classes=["cell"]) as p:
        p.add_images(tmp_path / "a.png")
        p.save_instances(1, _boxes((2, 2, 9, 8)), source="human")
        assert p.instances(1).keypoints is None and p.dataset(status="all").keypoints is None
        stored = p.con.execute("SELECT count(*) FROM annotations WHERE keypoints IS NOT NULL")
        assert stored.fetchone() == (0,)
        out = json.loads(p.export_coco(tmp_path / "o.json", status="all").read_text())
    assert "keypoints" not in out["categories"][0]
    assert "keypoints" not in out["annotations"][0]


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda p: p.save_instances(1, _boxes((2, 2, 9, 8), keypoints=[[[1, 1, 2]]])),
            ValueError,
            "instances have 1 keypoints per object, but the project names 2",
        ),
        (lambda p: p.set_keypoints(["tail", "head"]), ValueError, "can only be appended"),
        (lambda p: p.set_keypoints(["head"]), ValueError, "can only be appended"),
        (lambda p: p.set_keypoints("head"), TypeError, "list of keypoint names"),
        (lambda p: p.set_keypoints(["head", "tail"], [(0, 2)]), ValueError, "skeleton\\[0\\]"),
        (lambda p: p.set_keypoints(["head", "head"]), ValueError, "unique"),
    ],
)
def test_bad_input(project, call, error, match):
    with pytest.raises(error, match=match):
        call(project)
    assert project.keypoints == ["head", "tail"] and project.history(1) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"skeleton": [(0, 1)]}, ValueError, "skeleton needs keypoints"),
        ({"keypoints": []}, ValueError, "at least one keypoint"),
        ({"keypoints": ["a", "b"], "skeleton": [(1, 1)]}, ValueError, "two different"),
    ],
)
def test_bad_create(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        Project.create(tmp_path / "p", classes=["worm"], **kwargs)
    assert not (tmp_path / "p").exists()


def test_points_into_a_project_without_names(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros((32, 48), np.uint8))
    with Project.create(tmp_path / "p", classes=["cell"]) as p:
        p.add_images(tmp_path / "a.png")
        with pytest.raises(ValueError, match="names no keypoints; name them first"):
            p.save_instances(1, _boxes((2, 2, 9, 8), keypoints=[[[1, 1, 2]]]))
        assert p.history(1) == []
