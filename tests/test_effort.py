"""The effort log (#14 item 5): actions recorded with the saves that make them, active time,
`Project.effort` per image and per round, the schema 2 -> 3 migration, the CLI table.

Every expected count below is written by hand from the sequence of edits the test makes.
"""

from __future__ import annotations

import json
import math
import sqlite3

import imageio.v3 as iio
import numpy as np
import pytest
import shapely

from labelassist.cli import main
from labelassist.coco import write_coco
from labelassist.instances import Instances
from labelassist.project import (
    ACTIONS,
    IDLE_CAP_S,
    ActivityClock,
    Project,
    active_seconds,
)

SHAPE = (32, 48)
NOTHING = dict.fromkeys(ACTIONS, 0)


def _counts(**counts: int) -> dict[str, int]:
    return {**NOTHING, **counts}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data").mkdir()
    for k in range(3):
        iio.imwrite(tmp_path / "data" / f"img{k}.png", np.zeros(SHAPE, np.uint8))
    with Project.create(tmp_path / "proj", classes=["cell", "debris"]) as p:
        p.add_images(tmp_path / "data")
        yield p


def _boxes(*corners, labels=None, scores=None, **extra) -> Instances:
    polygons = [shapely.box(x, y, x + 4, y + 4) for x, y in corners]
    return Instances(polygons, labels, scores, SHAPE, extra=extra or None)


def _logged(project: Project) -> list[tuple]:
    """The actions table as (image, instance, action, version, round), in order."""
    return project.con.execute(
        "SELECT image_id, instance_id, action, version, round FROM actions ORDER BY id"
    ).fetchall()


def _proposals_then_correct(project: Project, image: int = 1) -> dict[str, int]:
    """Model proposals A-D, then one corrected save: A deleted, a vertex of B moved, C
    relabelled, D left alone, E drawn. Return the instance ids by letter."""
    proposal = _boxes((1, 1), (10, 1), (20, 1), (30, 1), scores=[0.9, 0.8, 0.7, 0.6])
    current, version = project.save_instances(image, proposal, source="model")
    a, b, c, d = current.extra["instance_id"].tolist()
    kept = current[[1, 2, 3]]
    moved = shapely.Polygon([(10, 1), (14, 1), (15, 6), (10, 5)])  # one vertex moved
    polygons = [moved, kept.polygons[1], kept.polygons[2], shapely.box(5, 20, 9, 24)]
    edited = Instances(
        polygons,
        [0, 1, 0, 0],  # C relabelled
        [*kept.scores, 1.0],
        SHAPE,
        extra={"instance_id": [b, c, d, -1]},  # -1: new (E)
    )
    saved = project.save_instances(
        image, edited, source="corrected", expected_version=version
    ).instances
    assert saved.extra["source"].tolist() == ["corrected", "corrected", "model", "human"]
    return {"A": a, "B": b, "C": c, "D": d, "E": int(saved.extra["instance_id"][3])}


def test_a_real_review_records_every_kind_of_correction(project):
    ids = _proposals_then_correct(project)
    assert project.effort(image=1)["rows"][0]["actions"] == _counts(
        deleted=1, drawn=1, edited=1, relabelled=1
    )
    project.set_status(1, "reviewed")  # accept: D was never changed
    assert _logged(project) == [
        (1, ids["B"], "edited", 2, 1),
        (1, ids["C"], "relabelled", 2, 1),
        (1, ids["E"], "drawn", 2, 1),
        (1, ids["A"], "deleted", 2, 1),
        (1, ids["D"], "accepted", 2, 1),
        (1, None, "reviewed", 2, 1),
    ]
    project.log_time(1, 30.0)
    project.log_time(1, 15.5)
    summary = project.effort()
    assert summary == {
        "by": "image",
        "rows": [
            {
                "image": 1,
                "file_name": "img0.png",
                "round": 1,
                "actions": _counts(
                    accepted=1, deleted=1, drawn=1, edited=1, relabelled=1, reviewed=1
                ),
                "seconds": 45.5,
            }
        ],
        "total": {
            "images": 1,
            "actions": _counts(accepted=1, deleted=1, drawn=1, edited=1, relabelled=1, reviewed=1),
            "seconds": 45.5,
            "seconds_per_image": 45.5,
        },
    }
    assert json.loads(json.dumps(summary)) == summary  # plain JSON values
    assert project.check() == []


def test_prompted_and_refined_instances_and_rounds(project, tmp_path):
    _proposals_then_correct(project, image=1)
    project.set_status(1, "reviewed")
    project.log_time(1, 40.0)
    project.add_round(checkpoint=tmp_path / "r1.pt", image_ids=[1], metrics={"segm_AP": 0.5})
    # round 2: image 2 with round 1's proposals P, Q
    current, _ = project.save_instances(2, _boxes((1, 1), (10, 1)), source="model")
    p, q = current.extra["instance_id"].tolist()
    # a prompt adds R (a save with source "prompted": P and Q are kept as they are)
    prompted = Instances.concat([current.replace(extra={}), _boxes((20, 1))])
    prompted = prompted.replace(extra={"instance_id": [p, q, -1]})
    current, _ = project.save_instances(2, prompted, source="prompted")
    assert current.extra["source"].tolist() == ["model", "model", "prompted"]
    r = int(current.extra["instance_id"][2])
    # then Q's edges are refined, S comes from a prompt and is refined, T is drawn
    refined_q = shapely.box(10, 1, 14.5, 5)
    edited = Instances(
        [current.polygons[0], refined_q, current.polygons[2], *_boxes((1, 20), (10, 20)).polygons],
        [0, 0, 0, 0, 1],
        None,
        SHAPE,
        extra={
            "instance_id": [p, q, r, -1, -1],
            "source": ["model", "model", "prompted", "prompted", "human"],
            "refined": [False, True, False, True, False],
        },
    )
    saved = project.save_instances(2, edited, source="corrected").instances
    assert saved.extra["source"].tolist() == ["model", "corrected", "prompted", "prompted", "human"]
    project.set_status(2, "reviewed")  # P is accepted as the model made it
    project.log_time(2, 20.0)
    project.log_time(2, 0)  # records nothing
    image2 = _counts(accepted=1, prompted=2, refined=2, drawn=1, reviewed=1)
    [row] = project.effort(image=2)["rows"]
    assert (row["round"], row["actions"], row["seconds"]) == (2, image2, 20.0)
    image1 = _counts(accepted=1, deleted=1, drawn=1, edited=1, relabelled=1, reviewed=1)
    by_round = project.effort(by="round")
    assert by_round["rows"] == [
        {"round": 1, "images": 1, "actions": image1, "seconds": 40.0, "seconds_per_image": 40.0},
        {"round": 2, "images": 1, "actions": image2, "seconds": 20.0, "seconds_per_image": 20.0},
    ]
    both = {a: image1[a] + image2[a] for a in ACTIONS}
    assert by_round["total"] == {
        "images": 2,
        "actions": both,
        "seconds": 60.0,
        "seconds_per_image": 30.0,
    }
    # filters: one round, one image; an image without entries still has its row
    assert [r["image"] for r in project.effort(round=2)["rows"]] == [2]
    assert project.effort(round=2, by="round")["rows"] == [by_round["rows"][1]]
    assert project.effort(image=3)["rows"] == [
        {"image": 3, "file_name": "img2.png", "round": None, "actions": NOTHING, "seconds": 0.0}
    ]
    assert project.effort(image=3)["total"]["seconds_per_image"] is None
    assert project.stats()["source"] == {"model": 2, "corrected": 3, "human": 2, "prompted": 2}
    assert project.check() == []


def test_accepting_again_counts_the_image_again_but_each_instance_once(project, tmp_path):
    project.save_instances(1, _boxes((1, 1), (10, 1)), source="model")
    project.set_status(1, "reviewed")
    project.set_status(1, "reviewed")  # already reviewed: nothing new
    assert project.effort(image=1)["rows"][0]["actions"] == _counts(accepted=2, reviewed=1)
    project.add_round(checkpoint=tmp_path / "r1.pt", image_ids=[1], metrics={})
    project.set_status(1, "in-review")
    project.set_status(1, "reviewed")
    [row] = project.effort(image=1)["rows"]
    assert (row["actions"], row["round"]) == (_counts(accepted=2, reviewed=2), 2)
    rows = project.effort(by="round")["rows"]
    assert [(r["round"], r["images"], r["actions"]["accepted"]) for r in rows] == [
        (1, 1, 2),
        (2, 1, 0),
    ]
    assert project.effort(by="round")["total"]["images"] == 1  # one image, accepted twice


def test_saves_that_are_not_edits_record_nothing(project, tmp_path):
    project.save_instances(1, _boxes((1, 1)), source="model")
    project.save_instances(1, _boxes((1, 1), (9, 9)), source="human")
    project.undo(1)
    project.set_status(2, "skipped")
    record = {"id": 1, "file_name": "img2.png", "height": SHAPE[0], "width": SHAPE[1]}
    write_coco(tmp_path / "in.json", ["cell", "debris"], [(record, _boxes((2, 2)))])
    [imported] = project.import_coco(tmp_path / "in.json", image_root=tmp_path / "data")
    assert project.image(imported)["status"] == "reviewed"  # imported, not accepted
    assert project.effort() == {
        "by": "image",
        "rows": [],
        "total": {"images": 0, "actions": NOTHING, "seconds": 0.0, "seconds_per_image": None},
    }
    assert _logged(project) == []


def test_a_first_corrected_save_draws_everything_and_an_empty_one_deletes(project):
    saved = project.save_instances(1, _boxes((1, 1), (9, 9)), source="corrected").instances
    assert saved.extra["source"].tolist() == ["human", "human"]
    project.save_instances(1, Instances.empty(SHAPE), source="corrected")
    assert project.effort(image=1)["rows"][0]["actions"] == _counts(drawn=2, deleted=2)


def test_a_failed_save_records_nothing(project):
    project.save_instances(1, _boxes((1, 1)), source="model")
    with pytest.raises(ValueError, match="instances have image_shape"):
        project.save_instances(1, Instances.empty((8, 8)), source="corrected")
    assert _logged(project) == []


# -- active time ------------------------------------------------------------------------------
def test_active_seconds_caps_each_idle_gap():
    assert IDLE_CAP_S == 60.0
    # gaps 5, 55, 200 (capped to 60), 61 (capped), 0
    assert active_seconds([0, 5, 60, 260, 321, 321]) == 5 + 55 + 60 + 60 + 0
    assert active_seconds([0, 100, 130], idle_cap=20) == 20 + 20
    assert active_seconds([]) == 0.0 and active_seconds([7.5]) == 0.0


def test_activity_clock_counts_gaps_between_events_capped():
    now = [100.0]
    clock = ActivityClock(clock=lambda: now[0])
    assert not clock.running and clock.lap() == 0.0
    clock.touch()  # not running: ignored
    clock.start()
    for t in (110.0, 130.0, 400.0):  # gaps 10, 20, 270 -> 60
        now[0] = t
        clock.touch()
    now[0] = 405.0
    assert clock.lap() == 10 + 20 + 60 + 5
    now[0] = 1000.0  # idle since the lap
    assert clock.stop() == 60.0
    assert not clock.running and clock.stop() == 0.0
    now[0] = 2000.0
    clock.start()  # a new image: starts from zero
    now[0] = 2030.0
    assert clock.stop() == 30.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: active_seconds([5, 3]), ValueError, "times must not decrease"),
        (lambda: active_seconds([0, math.nan]), ValueError, "times"),
        (lambda: active_seconds([0, 1], idle_cap=-1), ValueError, "idle_cap"),
        (lambda: ActivityClock(idle_cap=math.inf), ValueError, "idle_cap"),
    ],
)
def test_bad_activity_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: p.log_time(1, -1.0), ValueError, "seconds"),
        (lambda p: p.log_time(1, math.nan), ValueError, "seconds"),
        (lambda p: p.log_time(1, math.inf), ValueError, "seconds"),
        (lambda p: p.log_time(1, True), ValueError, "seconds"),
        (lambda p: p.log_time(1, "12"), ValueError, "seconds"),
        (lambda p: p.log_time(9, 1.0), ValueError, "image 9 is not in this project"),
        (lambda p: p.effort(by="day"), ValueError, "by"),
        (lambda p: p.effort(round=0), ValueError, "round"),
        (lambda p: p.effort(round=1.5), ValueError, "round"),
        (lambda p: p.effort(image=9), ValueError, "image 9 is not in this project"),
        (lambda p: p.effort(image="a.png"), TypeError, "image must be an image id"),
        (
            lambda p: p.save_instances(1, _boxes((1, 1), refined=["yes"]), source="corrected"),
            TypeError,
            r"extra\['refined'\] must be a bool column",
        ),
    ],
)
def test_bad_effort_inputs(project, call, error, match):
    with pytest.raises(error, match=match):
        call(project)
    assert _logged(project) == []
    assert project.con.execute("SELECT count(*) FROM active_time").fetchone() == (0,)


# -- the schema 2 -> 3 migration --------------------------------------------------------------
_V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY, file_name TEXT NOT NULL, path TEXT NOT NULL,
    origin TEXT NOT NULL UNIQUE, height INTEGER NOT NULL CHECK (height > 0),
    width INTEGER NOT NULL CHECK (width > 0),
    status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'pre-annotated',
        'in-review', 'reviewed', 'skipped')),
    split TEXT CHECK (split IN ('train', 'val')), version INTEGER NOT NULL DEFAULT 0,
    n_instances INTEGER NOT NULL DEFAULT 0, uncertainty REAL, updated TEXT NOT NULL
);
CREATE INDEX images_status ON images (status, split);
CREATE INDEX images_queue ON images (uncertainty DESC, id)
    WHERE status IN ('new', 'pre-annotated', 'in-review');
CREATE INDEX images_todo ON images (id) WHERE status IN ('new', 'pre-annotated', 'in-review');
CREATE TABLE edits (
    image_id INTEGER NOT NULL REFERENCES images (id), version INTEGER NOT NULL,
    parent INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('model', 'corrected', 'human')),
    model_id TEXT, n_instances INTEGER NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (image_id, version)
) WITHOUT ROWID;
CREATE TABLE annotations (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images (id),
    version INTEGER NOT NULL, instance_id INTEGER, label INTEGER NOT NULL CHECK (label >= 0),
    score REAL NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('model', 'corrected', 'human')),
    geometry BLOB NOT NULL
);
CREATE INDEX annotations_image ON annotations (image_id, version);
CREATE TABLE instance_counts (
    label INTEGER NOT NULL, source TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (label, source)
) WITHOUT ROWID;
CREATE TABLE rounds (
    round INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL,
    parent INTEGER REFERENCES rounds (round), image_ids TEXT NOT NULL,
    metrics TEXT NOT NULL, n_images INTEGER NOT NULL, n_instances INTEGER NOT NULL,
    created TEXT NOT NULL
);
"""


def _layout(con: sqlite3.Connection) -> dict:
    """Each table's columns (name, type, not null, default, pk) and each index's name."""
    names = con.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return {
        name: [r[1:] for r in con.execute(f"PRAGMA table_info({name})")] if kind == "table" else []
        for kind, name in names
    }


def test_open_migrates_a_version_2_project(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros(SHAPE, np.uint8))
    con = sqlite3.connect(tmp_path / "project.db")
    con.executescript(_V2_SCHEMA)
    con.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("format", "labelassist-project"), ("classes", '["cell", "junk"]'), ("copy_images", "0")],
    )
    stamp = "2024-05-01T10:00:00.000+00:00"
    con.execute(
        "INSERT INTO images VALUES (1, 'a.png', 'a.png', ?, 32, 48, 'in-review', NULL, 2, 2,"
        " 0.5, ?)",
        ((tmp_path / "a.png").resolve().as_posix(), stamp),
    )
    con.executemany(
        "INSERT INTO edits VALUES (1, ?, ?, ?, NULL, ?, ?)",
        [(1, 0, "model", 2, stamp), (2, 1, "corrected", 2, stamp)],
    )
    box, tri = shapely.box(1, 1, 5, 5), shapely.Polygon([(10, 1), (14, 1), (12, 4)])
    rows = [
        (1, 1, 1, 1, 0, 0.9, "model", box),
        (2, 1, 1, 2, 0, 0.6, "model", tri),
        (3, 1, 2, 1, 0, 0.9, "model", box),
        (4, 1, 2, 2, 1, 0.6, "corrected", tri),
    ]
    con.executemany(
        "INSERT INTO annotations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r[:7], shapely.to_wkb(r[7])) for r in rows],
    )
    con.executemany(
        "INSERT INTO instance_counts VALUES (?, ?, ?)", [(0, "model", 1), (1, "corrected", 1)]
    )
    con.execute(
        "INSERT INTO rounds VALUES (1, 'checkpoints/r1.pt', NULL, '[1]', '{}', 1, 2, ?)", (stamp,)
    )
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()

    with Project.open(tmp_path) as p:
        assert p.con.execute("PRAGMA user_version").fetchone() == (5,)  # 2 -> 3 -> 4 -> 5
        inst = p.instances(1)
        assert inst.extra["instance_id"].tolist() == [1, 2]
        assert inst.extra["source"].tolist() == ["model", "corrected"]
        assert inst.labels.tolist() == [0, 1]
        assert shapely.equals_exact(inst.polygons[1], tri, tolerance=0)
        assert [h["source"] for h in p.history(1)] == ["model", "corrected"]
        assert p.instances(1, version=1).extra["source"].tolist() == ["model", "model"]
        assert p.stats()["source"] == {"model": 1, "corrected": 1, "human": 0, "prompted": 0}
        assert p.check() == []
        assert p.effort(by="round")["rows"][-1]["round"] == 2  # one round recorded before
        # the migrated project holds the new provenance and records the effort
        added = Instances.concat([inst.replace(extra={}), _boxes((30, 20))])
        added = added.replace(extra={"instance_id": [1, 2, -1]})
        saved = p.save_instances(1, added, source="prompted").instances
        assert saved.extra["source"].tolist() == ["model", "corrected", "prompted"]
        p.set_status(1, "reviewed")
        assert p.effort(image=1)["rows"][0]["actions"] == _counts(
            prompted=1, accepted=1, reviewed=1
        )
        assert _logged(p)[0][2:] == ("prompted", 3, 2)
    fresh = tmp_path / "fresh"
    Project.create(fresh, classes=["cell"]).close()
    migrated, new = sqlite3.connect(tmp_path / "project.db"), sqlite3.connect(fresh / "project.db")
    assert _layout(migrated) == _layout(new)
    for con in (migrated, new):  # the CHECK constraints too: the same SQL
        sql = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        assert "'prompted'" in sql["annotations"] and "'prompted'" in sql["edits"]
        con.close()


# -- command line -----------------------------------------------------------------------------
def test_cli_status_effort_prints_the_table_per_round(project, capsys):
    _proposals_then_correct(project)
    project.set_status(1, "reviewed")
    project.log_time(1, 42.5)
    folder = str(project.folder)
    assert main(["project", "status", "--effort", folder]) == 0
    out = capsys.readouterr().out
    table = out[out.index("effort per round") :].splitlines()
    assert table[1:] == [
        "round  images  accepted  deleted  drawn  prompted  edited  relabelled  refined  "
        "active_s  s_per_image",
        "-----  ------  --------  -------  -----  --------  ------  ----------  -------  "
        "--------  -----------",
        "1      1       1         1        1      0         1       1           0        "
        "42.5      42.5",
        "total  1       1         1        1      0         1       1           0        "
        "42.5      42.5",
    ]
    assert main(["project", "status", folder]) == 0  # without --effort: no table
    assert "effort per round" not in capsys.readouterr().out


# -- effort next to AP in the round plot ------------------------------------------------------
def test_the_learning_curve_shows_effort_per_image(project, tmp_path):
    from labelassist.rounds import effort_points, plot_learning_curve

    _proposals_then_correct(project)
    project.set_status(1, "reviewed")
    project.log_time(1, 90.0)
    project.add_round(checkpoint=tmp_path / "r1.pt", image_ids=[1], metrics={"segm_AP50": 0.4})
    project.save_instances(2, _boxes((1, 1)), source="model")
    project.set_status(2, "reviewed")
    project.log_time(2, 30.0)
    project.set_status(3, "in-review")  # round 2's third image: not accepted, no time
    effort = project.effort(by="round")["rows"]
    assert effort_points(effort) == ([0, 1], [90.0, 30.0])  # round 1 on the starter's proposals
    rounds = [*project.rounds(), {"n_images": 2, "n_instances": 5, "metrics": {"segm_AP50": 0.6}}]
    out = plot_learning_curve(rounds, tmp_path / "curve.png", effort=effort)
    plain = plot_learning_curve(rounds, tmp_path / "plain.png")
    width = iio.imread(out).shape[1]
    assert width > iio.imread(plain).shape[1]  # the third panel
    with pytest.raises(ValueError, match=r"effort\[0\] lacks \['seconds_per_image'\]"):
        plot_learning_curve(rounds, tmp_path / "x.png", effort=[{"round": 1}])
