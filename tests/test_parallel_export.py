"""COCO export in worker processes (``workers=``): the same file as in one process.

A spawned pool costs about a second: this file starts three (one per test that names
``workers=2``); the chunks are made small so that a few images span many of them.
"""

from __future__ import annotations

import json
import re
import resource
import sqlite3
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely
from gallery import mixed_coco_items, mixed_geometries

from labelassist.coco import write as _coco_write
from labelassist.coco import write_coco
from labelassist.instances import Instances
from labelassist.project import Project
from labelassist.project import exchange as _project_coco

SHAPE = (24, 30)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of at most 3 images (cut in this process; the workers convert what they get)."""
    monkeypatch.setattr(_coco_write, "_CHUNK_IMAGES", 3)
    monkeypatch.setattr(_coco_write, "_CHUNK_INSTANCES", 8)
    monkeypatch.setattr(_project_coco, "_FETCH_ROWS", 5)


def _without_date(path: Path) -> bytes:
    return re.sub(rb'"date_created":"[^"]*"', b"", path.read_bytes())


def test_write_coco_in_workers_writes_the_same_bytes(tmp_path, small_chunks):
    items = mixed_coco_items(40, SHAPE)
    files = {}
    for workers in (1, 2):
        with pytest.warns(UserWarning, match=r"skipped \d+ empty instance") as record:
            files[workers] = write_coco(tmp_path / f"w{workers}.json", ["cell", "debris"],
                                        items, info={}, workers=workers)  # fmt: skip
        assert len(record) == 1
    assert files[2].read_bytes() == files[1].read_bytes()
    anns = json.loads(files[2].read_text())["annotations"]
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    assert {a["iscrowd"] for a in anns} == {0, 1}
    assert {type(a["segmentation"]).__name__ for a in anns} == {"list", "dict"}
    assert len({a["image_id"] for a in anns}) > 8 * _coco_write._CHUNK_IMAGES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1.json", "w2.json"]


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_write_coco_workers_errors(tmp_path, workers):
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        write_coco(tmp_path / "x.json", ["cell"], [], workers=workers)
    assert list(tmp_path.iterdir()) == []


def _project(tmp_path: Path) -> Project:
    """A project of 30 images (holes, multi-parts, images without instances)."""
    data = tmp_path / "data"
    data.mkdir()
    for k in range(30):
        iio.imwrite(data / f"img{k:02d}.png", np.zeros(SHAPE, dtype=np.uint8))
    p = Project.create(tmp_path / "proj", classes=["nucleus", "debris"])
    ids = p.add_images(data)
    geoms = [g for g in mixed_geometries() if not g.is_empty]
    for k, image_id in enumerate(ids):
        if k % 4 == 3:
            continue
        pick = [g for j, g in enumerate(geoms) if (j + k) % 3 != 0]
        inst = Instances(pick, np.arange(len(pick)) % 2, np.linspace(0.2, 1, len(pick)), SHAPE)
        p.save_instances(image_id, inst)
    return p


def _children_cpu() -> float:
    """CPU seconds of this process's finished (joined) child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_project_export_in_workers_is_the_same_file(tmp_path, small_chunks):
    with _project(tmp_path) as p, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped slivers
        before = _children_cpu()
        auto = p.export_coco(tmp_path / "auto.json", status="all", workers=None)  # small
        assert _children_cpu() == before
        one = p.export_coco(tmp_path / "one.json", status="all", workers=1)
        two = p.export_coco(tmp_path / "two.json", status="all", workers=2, progress=True)
        assert _children_cpu() > before
    assert _without_date(two) == _without_date(one) == _without_date(auto)
    data = json.loads(two.read_text())
    assert len(data["images"]) == 30
    assert {type(a["segmentation"]).__name__ for a in data["annotations"]} == {"list", "dict"}


def test_error_in_a_worker_is_raised_as_in_process(tmp_path, small_chunks):
    with _project(tmp_path) as p:
        (image_id,) = p.con.execute("SELECT max(image_id) FROM annotations").fetchone()
    with sqlite3.connect(tmp_path / "proj" / "project.db") as con:  # a broken stored row
        con.execute("UPDATE annotations SET geometry = x'0103' WHERE image_id = ?", (image_id,))
    con.close()
    errors = []
    with Project.open(tmp_path / "proj") as p:
        for workers in (1, 2):
            with pytest.raises(shapely.errors.GEOSException) as info:
                p.export_coco(tmp_path / "out.json", status="all", workers=workers)
            errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
    assert sorted(q.name for q in tmp_path.iterdir()) == ["data", "proj"]  # no temp file
