"""Stacks in the project store (#15 item 4): schema 3 -> 4, planes as images, object ids,
per-plane history/undo/effort, the queue by stack and by plane, splits per stack, the
training path, label volumes and COCO video out and in.

``tests/data/project_v3`` was written by labelassist before stacks (schema 3; the
script is in this file's `_V3_SCRIPT` note): 3 copied 24 x 32 images; image 1 saved by
the model (2 boxes), corrected (the second deleted), 12.5 s logged, reviewed; image 2
saved by the model (1 box); round 1 recorded; image 2 saved again (2 boxes) and undone.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import shapely
import tifffile
from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.coco import read_coco
from labelassist.instances import Instances
from labelassist.io import read_image, read_stack
from labelassist.project import Project
from labelassist.project.schema import SCHEMA_VERSION
from labelassist.rounds import run_round
from labelassist.stacks import StackInstances, read_coco_video
from labelassist.synthetic_stacks import synthetic_timelapse, synthetic_zstack
from labelassist.train.data import check_images, resolve_data

V3 = Path(__file__).parent / "data" / "project_v3"


def _layout(con: sqlite3.Connection) -> dict:
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {t: [tuple(r[1:3]) for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}


# -- the schema 3 -> 4 migration ---------------------------------------------------------------
def test_a_schema_3_project_opens_migrated_and_unchanged(tmp_path):
    folder = tmp_path / "p"
    shutil.copytree(V3, folder)
    con = sqlite3.connect(folder / "project.db")
    assert con.execute("PRAGMA user_version").fetchone() == (3,)
    con.close()
    with Project.open(folder) as p:
        assert p.con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (5,)
        assert p.check() == []
        records = p.images()
        assert [r["id"] for r in records] == [1, 2, 3]
        assert all(
            set(r) == {"id", "file_name", "path", "height", "width", "status", "split",
                       "n_instances", "updated", "version"}
            for r in records
        )  # fmt: skip
        assert [r["status"] for r in records] == ["reviewed", "pre-annotated", "new"]
        first = p.instances(1)
        assert set(first.extra) == {"source", "instance_id"}
        assert shapely.equals_exact(first.polygons[0], shapely.box(2, 2, 8, 8), tolerance=0)
        assert [h["source"] for h in p.history(1)] == ["model", "corrected"]
        assert len(p.instances(2)) == 1 and [h["current"] for h in p.history(2)] == [
            True,
            False,
        ]
        row = p.effort(image=1)["rows"][0]
        assert row["seconds"] == 12.5
        assert row["actions"]["deleted"] == 1 and row["actions"]["accepted"] == 1
        assert p.rounds()[0]["metrics"] == {"segm_AP": 0.25}
        assert p.stacks() == []
        # the migrated project takes stacks
        s = p.add_stack(np.zeros((2, 24, 32), np.uint8), axes="ZYX")
        assert [r["plane"] for r in p.planes(s)] == [0, 1]
        assert p.check() == []
    fresh = tmp_path / "fresh"
    Project.create(fresh, classes=["cell"]).close()
    migrated, new = sqlite3.connect(folder / "project.db"), sqlite3.connect(fresh / "project.db")
    assert _layout(migrated) == _layout(new)
    migrated.close()
    new.close()


# -- adding stacks -----------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "proj", classes=["nucleus", "debris"]) as p:
        yield p


def test_add_stack_from_a_tiff_and_from_an_array(project, tmp_path):
    rng = np.random.default_rng(0)
    zstack = rng.integers(0, 4000, (4, 20, 24), dtype=np.uint16)
    path = tmp_path / "embryo.ome.tif"
    tifffile.imwrite(path, zstack, ome=True, metadata={"axes": "ZYX"})
    s = project.add_stack(path)
    record = project.stack(s)
    assert record["name"] == "embryo" and record["axes"] == "ZYX"
    assert record["shape"] == (4, 20, 24) and record["source"] == path.resolve().as_posix()
    assert record["planes"] == 4 and record["status"]["new"] == 4
    assert np.array_equal(project.stack_image(s), zstack)
    planes = project.planes(s)
    assert [r["plane"] for r in planes] == [0, 1, 2, 3] and {r["stack"] for r in planes} == {s}
    assert np.array_equal(read_image(planes[2]["path"]), zstack[2])  # a plane is a 2-D image
    # a time-lapse of z-stacks with 3 channels, from an array in another axis order
    movie = rng.integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)  # T Z Y X C
    t = project.add_stack(movie, axes="TZYXC", name="cells")
    assert project.stack(t)["axes"] == "TZYX" and project.stack(t)["shape"] == (2, 3, 16, 16)
    assert project.plane(t, (1, 2)) == project.plane(t, 5)
    assert project.plane(t, (1, 2))["plane"] == 5
    assert np.array_equal(project.stack_image(t), movie)
    # one channel kept
    u = project.add_stack(movie[:, 0], axes="TYXC", channels=1, name="cells")
    assert np.array_equal(project.stack_image(u), movie[:, 0, :, :, 1])
    assert Path(project.planes(u)[0]["path"]).parent.name == "cells_1"  # names kept apart
    assert [r["id"] for r in project.stacks()] == [s, t, u]
    assert project.stats()["images"] == 4 + 6 + 2


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p, f: p.add_stack(np.zeros((2, 8, 8))), ValueError, "axes is needed"),
        (lambda p, f: p.add_stack([[1]], axes="YX"), TypeError, "must be a TIFF path or an array"),
        (lambda p, f: p.add_stack(np.zeros((8, 8)), axes="YX"), ValueError, "add_images"),
        (lambda p, f: p.add_stack(np.zeros((2, 8, 8)), axes="ZQX"), ValueError, "axes"),
        (lambda p, f: p.add_stack(np.zeros((2, 8, 8)), axes="ZYX", name=" "), ValueError, "name"),
        (lambda p, f: p.add_stack(np.zeros((2, 8, 8)), axes="ZYX", split="test"), ValueError,
         "split"),
        (lambda p, f: p.add_stack(np.zeros((2, 8, 8, 2)), axes="ZYXC"), ValueError, "channels"),
        (lambda p, f: p.add_stack(f / "missing.tif"), FileNotFoundError, "missing.tif"),
        (lambda p, f: p.add_stack(f / "z.tif"), ValueError, "already in this project as stack 1"),
        (lambda p, f: p.stack(9), ValueError, "stack 9 is not in this project"),
        (lambda p, f: p.stack("a"), TypeError, "stack must be a stack id"),
        (lambda p, f: p.plane(1, 3), ValueError, r"plane index 3 is not in stack 1 \(3 planes"),
        (lambda p, f: p.plane(1, (0, 1)), ValueError, "plane index"),
        (lambda p, f: p.next_image(stack=7), ValueError, "stack 7 is not in this project"),
        (lambda p, f: p.save_stack_instances(1, "x"), TypeError, "must be a StackInstances"),
        (lambda p, f: p.save_stack_instances(1, _objects((2, 8, 8))), ValueError,
         r"shape \(2, 8, 8\), but stack 1 is 'ZYX' \(3, 8, 8\)"),
        (lambda p, f: p.save_stack_instances(1, _objects((3, 8, 8), label=2)), ValueError,
         "label 2, but the project has 2 classes"),
        (lambda p, f: p.save_stack_instances(1, _objects((3, 8, 8)), source="robot"),
         ValueError, "source"),
        (lambda p, f: p.import_label_volume(1, np.zeros((3, 8, 9), np.uint8)), ValueError,
         r"labels has shape \(3, 8, 9\), but stack 1 is ZYX \(3, 8, 8\)"),
        (lambda p, f: p.import_label_volume(1, np.zeros((3, 8, 8), np.uint8), label=5),
         ValueError, "label must be a class index"),
        (lambda p, f: p.save_instances(p.plane(1, 0), _plane_with_ids([-1])), ValueError,
         "object ids >= 1"),
        (lambda p, f: p.next_stack(strategy="random"), ValueError, "strategy"),
    ],
)  # fmt: skip
def test_bad_stack_input(project, tmp_path, call, error, match):
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    assert project.add_stack(tmp_path / "z.tif") == 1
    before = project.stats()
    with pytest.raises(error, match=match):
        call(project, tmp_path)
    assert project.stats() == before  # nothing written


def _objects(shape, label=0) -> StackInstances:
    volume = np.zeros(shape, np.uint8)
    volume[:, 1:4, 1:4] = 3
    objects = StackInstances.from_labels(volume, "ZYX")
    planes = [p.replace(labels=np.full(len(p), label)) for p in objects.planes]
    return StackInstances(planes, shape, "ZYX")


def _plane_with_ids(ids) -> Instances:
    polygons = [shapely.box(k, k, k + 1, k + 1) for k in range(len(ids))]
    return Instances(polygons, [0] * len(ids), None, (8, 8), extra={"object_id": np.array(ids)})


def test_a_failed_add_leaves_no_plane_files(project):
    bad = np.zeros((2, 8, 8, 2), np.uint8)
    with pytest.raises(ValueError, match="channels"):
        project.add_stack(bad, axes="ZYXC", name="two")
    assert not (project.folder / "planes" / "two").exists()


# -- objects, provenance, history, undo, effort ------------------------------------------------
def test_objects_round_trip_and_edits_keep_provenance_per_plane(project, tmp_path):
    image, objects, labels = synthetic_zstack((6, 48, 48), n=4, seed=3)
    s = project.add_stack(image, axes="ZYX")
    versions = project.save_stack_instances(s, objects, model_id="starter")
    assert versions == [1] * 6
    assert project.stack(s)["status"]["pre-annotated"] == 6
    back = project.stack_instances(s)
    assert np.array_equal(back.to_labels(), labels)  # pixels and object ids
    # edit plane 2: delete one object, move another; history, effort and undo per plane
    plane = project.plane(s, 2)
    current, version = project.instances(plane, with_version=True)
    assert set(current.extra) == {"source", "instance_id", "object_id"}
    assert current.extra["source"].tolist() == ["model"] * len(current)
    kept = current[1:]
    moved = kept.replace(polygons=[shapely.affinity.translate(kept.polygons[0], 1, 0)]
                         + list(kept.polygons[1:]))  # fmt: skip
    saved = project.save_instances(plane, moved, source="corrected", expected_version=version)
    assert saved.instances.extra["object_id"].tolist() == kept.extra["object_id"].tolist()
    assert saved.instances.extra["source"].tolist()[0] == "corrected"
    actions = project.effort(image=plane)["rows"][0]["actions"]
    assert actions["deleted"] == 1 and actions["edited"] == 1
    assert [h["version"] for h in project.history(plane)] == [1, 2]
    assert project.instances(project.plane(s, 1)).extra["source"].tolist() != []  # untouched
    assert project.image(project.plane(s, 1))["version"] == 1
    deleted = int(current.extra["object_id"][0])
    assert deleted not in project.stack_instances(s).planes[2].extra["object_id"].tolist()
    project.undo(plane)
    assert np.array_equal(project.stack_instances(s).to_labels(), labels)
    assert project.check() == []


def test_instances_without_object_id_get_new_ids(project):
    s = project.add_stack(np.zeros((2, 8, 8), np.uint8), axes="ZYX")
    project.save_stack_instances(s, _objects((2, 8, 8)))  # object 3 in both planes
    plane = project.plane(s, 1)
    drawn = Instances([shapely.box(5, 5, 7, 7)], [1], None, (8, 8))  # no object_id column
    both = Instances.concat([project.instances(plane).replace(extra={}), drawn])
    project.save_instances(plane, both, source="corrected")
    assert project.instances(plane).extra["object_id"].tolist() == [0, 0]  # 0: none yet
    objects = project.stack_instances(s)
    assert objects.planes[0].extra["object_id"].tolist() == [3]
    assert objects.planes[1].extra["object_id"].tolist() == [4, 5]  # new, above the stack's


def test_tracks_keep_their_divisions(project, tmp_path):
    movie, tracks, labels = synthetic_timelapse((5, 48, 48), n=3, division_rate=0.6, seed=1)
    assert tracks.parents  # the data has a division
    s = project.add_stack(movie, axes="TYX")
    project.save_stack_instances(s, tracks)
    back = project.stack_instances(s)
    assert back.parents == tracks.parents and project.stack(s)["parents"] == tracks.parents
    assert np.array_equal(back.to_labels(), labels)
    # COCO video and the label volume out, and the label volume back in as pre-annotations
    video = project.export_coco_video(s, tmp_path / "video.json")
    objects, classes = read_coco_video(video)
    assert classes == ["nucleus", "debris"]
    assert np.array_equal(objects.to_labels(), labels) and objects.parents == tracks.parents
    out = project.export_label_volume(s, tmp_path / "labels.tif")
    volume, axes = read_stack(out)
    assert axes == "TYX" and volume.dtype == np.uint32 and np.array_equal(volume, labels)
    t = project.add_stack(movie, axes="TYX", name="again")
    assert project.import_label_volume(t, out, label=1, parents=tracks.parents) == [1] * 5
    again = project.stack_instances(t)
    assert np.array_equal(again.to_labels(), labels) and again.parents == tracks.parents
    assert {int(v) for p in again.planes for v in p.labels} == {1}


# -- the queue and splits ----------------------------------------------------------------------
def test_queue_by_stack_and_by_plane(project):
    a = project.add_stack(np.zeros((3, 8, 8), np.uint8), axes="ZYX")
    b = project.add_stack(np.zeros((3, 8, 8), np.uint8), axes="ZYX")
    assert project.next_stack(strategy="order")["id"] == a
    assert project.next_stack()["id"] == a  # nothing predicted: by id
    # stack b gets an uncertain plane (score 0.5 lies in UNCERTAIN_BAND)
    unsure = Instances([shapely.box(1, 1, 4, 4)], [0], [0.5], (8, 8))
    project.save_instances(project.plane(b, 2), unsure, source="model")
    sure = Instances([shapely.box(1, 1, 4, 4)], [0], [0.99], (8, 8))
    project.save_instances(project.plane(a, 0), sure, source="model")
    assert project.next_stack()["id"] == b
    assert project.next_stack(exclude=[b])["id"] == a
    assert project.next_image(stack=b)["plane"] == 2
    assert project.next_image(stack=b, strategy="order")["plane"] == 0
    for plane in project.planes(a):
        project.set_status(plane, "reviewed")
    assert project.next_image(stack=a) is None
    assert project.next_stack(strategy="order")["id"] == b
    for plane in project.planes(b):
        project.set_status(plane, "skipped")
    assert project.next_stack() is None
    assert project.stack(b)["status"]["skipped"] == 3


def test_splits_keep_a_stack_together(project, tmp_path):
    for k in range(4):
        project.add_stack(np.zeros((3, 8, 8), np.uint8), axes="ZYX", name=f"s{k}")
    counts = project.assign_splits(val_fraction=0.5, seed=0)
    assert counts == {"train": 6, "val": 6}
    for stack in project.stacks():
        assert len({r["split"] for r in project.planes(stack)}) == 1


# -- training on reviewed planes ---------------------------------------------------------------
def test_reviewed_planes_feed_the_training_path(project):
    image, objects, labels = synthetic_zstack((4, 32, 32), n=3, seed=5)
    s = project.add_stack(image, axes="ZYX", split="train")
    project.save_stack_instances(s, objects)
    for index in (1, 2):
        project.set_status(project.plane(s, index), "reviewed")
    pairs = list(project.reviewed_planes())
    assert len(pairs) == 2
    for (plane, inst), index in zip(pairs, (1, 2), strict=True):
        assert np.array_equal(plane, image[index])
        assert np.array_equal(inst.labels, objects.planes[index].labels)
    # what labelassist.rounds.run_round trains on: project.dataset -> finetune's data
    train = project.dataset(status="reviewed", split="train")
    resolved, categories, points = resolve_data(train, None, "train")
    assert categories == ["nucleus", "debris"] and len(resolved) == 2 and points is None
    check_images(resolved)
    for (source, inst), index in zip(resolved, (1, 2), strict=True):
        assert np.array_equal(read_image(source), image[index])
        assert len(inst) == len(objects.planes[index])
    # and a COCO export of the project holds the reviewed planes as images
    coco = read_coco(project.export_coco(project.folder / "reviewed.json"))
    assert len(coco.images) == 2 and sum(len(v) for v in coco.instances.values()) == sum(
        len(objects.planes[i]) for i in (1, 2)
    )


def test_a_training_round_trains_on_the_reviewed_planes(project):
    ids = {}
    for split, seed in (("train", 1), ("val", 2)):
        image, objects, _ = synthetic_zstack((3, 64, 64), n=3, seed=seed)
        s = project.add_stack(image, axes="ZYX", name=split, split=split)
        project.save_stack_instances(s, objects, source="human")
        for index in (0, 1):
            project.set_status(project.plane(s, index), "reviewed")
        ids[split] = [project.plane(s, index)["id"] for index in (0, 1)]
    result = run_round(
        project,
        base_model=tiny_model(["nucleus", "debris"]),
        epochs=1,
        config=fast_config(),
        progress=False,
        plot=False,
    )
    assert sorted(result["image_ids"]) == ids["train"]  # the reviewed train planes only
    assert 0.0 <= result["metrics"]["segm_AP50"] <= 1.0  # evaluated on the val planes
    assert result["n_instances"] == sum(len(project.instances(i)) for i in ids["train"])
