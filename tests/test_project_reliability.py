"""Reliability of the project store: crashes mid-save, concurrent processes.

The child processes are small Python scripts run with the test's interpreter; they use
the real `Project` on a real SQLite file in ``tmp_path``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import imageio.v3 as iio
import numpy as np
import pytest
import shapely

from labelassist.instances import Instances
from labelassist.project import Project

N_IMAGES = 6
SHAPE = (32, 32)

# Saves edits in a loop, one transaction each, and prints the sequence number of every
# edit after save_instances returned (the edit is committed).
_WRITER = textwrap.dedent(
    """
    import sys, time
    import shapely
    from labelassist.instances import Instances
    from labelassist.project import Project

    folder, seq, n_images, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    min_edits = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    project = Project.open(folder)
    stop, first = time.monotonic() + seconds, seq
    # SQLite does not queue writers fairly: on a busy machine one writer can wait out
    # the other for seconds, so a minimum number of edits, not only a time, ends the run
    while time.monotonic() < stop or seq - first < min_edits:
        k = 1 + seq % 5
        inst = Instances(
            [shapely.box(i, i, i + 1 + seq % 7, i + 2) for i in range(k)],
            [seq % 2] * k,
            [(seq % 100) / 100] * k,
            (32, 32),
        )
        source = ("model", "corrected", "human")[seq % 3]
        project.save_instances(1 + seq % n_images, inst, source=source, model_id=str(seq))
        print(seq, flush=True)
        seq += 1
    print("done", flush=True)
    """
)

# Reads like a training process: whole datasets and single images, checking that each
# image's instances come from one save (all scores equal within an image).
_READER = textwrap.dedent(
    """
    import sys, time
    from labelassist.project import Project

    folder, seconds = sys.argv[1], float(sys.argv[2])
    project = Project.open(folder)
    stop = time.monotonic() + seconds
    reads = 0
    while time.monotonic() < stop:
        ds = project.dataset(status="all")
        for inst in ds.instances.values():
            assert len(set(inst.scores.tolist())) <= 1, "instances of two saves mixed"
        for record in project.images():
            inst = project.instances(record)
            assert len(set(inst.scores.tolist())) <= 1, "instances of two saves mixed"
        project.stats()
        project.next_image()
        reads += 1
    print("reads", reads, flush=True)
    """
)


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for k in range(N_IMAGES):
        iio.imwrite(data / f"{k}.png", np.zeros(SHAPE, np.uint8))
    with Project.create(tmp_path / "proj", classes=["a", "b"]) as p:
        p.add_images(data)
    return tmp_path / "proj"


def _spawn(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _expected(seq: int) -> tuple[int, int, str, int]:
    """(image id, n instances, source, label) of edit ``seq`` as the writer makes it."""
    return 1 + seq % N_IMAGES, 1 + seq % 5, ("model", "corrected", "human")[seq % 3], seq % 2


def _check_consistent(folder) -> dict[int, tuple[int, int]]:
    """Integrity, no half-written edit, counters = recount; return {seq: (image, version)}."""
    with Project.open(folder) as p:
        con = p.con
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        edits = con.execute("SELECT image_id, version, model_id, n_instances FROM edits").fetchall()
        rows = dict(
            ((i, v), n)
            for i, v, n in con.execute(
                "SELECT image_id, version, count(*) FROM annotations GROUP BY image_id, version"
            )
        )
        found = {}
        for image_id, version, model_id, n in edits:
            seq = int(model_id)
            assert (image_id, n) == _expected(seq)[:2]
            assert rows.get((image_id, version), 0) == n  # every edit complete
            found[seq] = (image_id, version)
        assert sum(rows.values()) == sum(e[3] for e in edits)  # no orphan annotations
        # the current version of each image is its latest save, and matches its record
        for record in p.images():
            saves = [(v, s) for s, (i, v) in found.items() if i == record["id"]]
            if not saves:
                assert record["version"] == 0
                continue
            version, latest = max(saves)  # no undo here: the newest version is current
            assert record["version"] == version
            inst = p.instances(record)
            _, n, source, label = _expected(latest)
            assert len(inst) == record["n_instances"] == n
            assert set(inst.labels.tolist()) == {label}
        # stats counters agree with a recount of the current instances
        stats = p.stats()
        recount = con.execute(
            "SELECT a.label, a.source, count(*) FROM annotations a JOIN images i"
            " ON a.image_id = i.id AND a.version = i.version GROUP BY a.label, a.source"
        ).fetchall()
        assert stats["instances"] == sum(r[2] for r in recount)
        for name, label in zip(p.classes, range(2), strict=True):
            assert stats["classes"][name] == sum(r[2] for r in recount if r[0] == label)
        for source in ("model", "corrected", "human"):
            assert stats["source"][source] == sum(r[2] for r in recount if r[1] == source)
    return found


def test_sigkill_during_saves_loses_no_committed_edit(folder):
    rng = np.random.default_rng(2024)
    reported: set[int] = set()
    before: set[int] = set()
    seq = 0
    for _ in range(10):
        child = _spawn(_WRITER, folder, seq, N_IMAGES, 60)
        target = int(rng.integers(1, 30))
        n_read = 0
        for line in child.stdout:  # wait until the child reported `target` commits
            reported.add(int(line))
            n_read += 1
            if n_read >= target:
                break
        time.sleep(float(rng.uniform(0, 0.02)))  # land the kill anywhere in a save
        os.kill(child.pid, signal.SIGKILL)
        # the rest of the pipe, through the same buffered reader (communicate() would
        # bypass lines already buffered by the loop above)
        rest, err = child.stdout.read(), child.stderr.read()
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, err
        reported.update(int(s) for s in rest.split())  # printed before the kill: committed
        found = _check_consistent(folder)
        assert reported <= set(found), f"committed edits lost: {sorted(reported - set(found))}"
        # at most the one edit being saved when killed is in the file without a report
        assert len(set(found) - reported - before) <= 1
        before = set(found)
        seq = max(found) + 1
    assert len(reported) >= 10


def test_concurrent_writers_and_reader_never_see_database_is_locked(folder):
    seconds = 3
    min_edits = 5
    writers = [
        _spawn(_WRITER, folder, start, N_IMAGES, seconds, min_edits) for start in (0, 100_000)
    ]
    reader = _spawn(_READER, folder, seconds)
    # this process reads too, as a training process would
    reads = 0
    stop = time.monotonic() + seconds
    with Project.open(folder) as p:
        while time.monotonic() < stop:
            ds = p.dataset(status="all")
            assert all(len(set(inst.scores.tolist())) <= 1 for inst in ds.instances.values())
            reads += 1
    outputs = [proc.communicate(timeout=120) for proc in [*writers, reader]]
    for proc, (_, err) in zip([*writers, reader], outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "busy" not in err
    for out, _ in outputs[:2]:
        lines = out.split()
        assert lines[-1] == "done" and len(lines) > min_edits  # each writer committed edits
    assert int(outputs[2][0].split()[-1]) >= 1 and reads >= 1
    _check_consistent(folder)


def test_a_write_transaction_waits_for_another_instead_of_failing(folder):
    """A second writer blocks on the busy timeout while the first holds the lock."""
    holder = sqlite3.connect(folder / "project.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    inst = Instances([shapely.box(0, 0, 3, 3)], [0], [0.5], SHAPE)
    script = textwrap.dedent(
        """
        import sys, shapely
        from labelassist.instances import Instances
        from labelassist.project import Project
        with Project.open(sys.argv[1]) as p:
            p.save_instances(1, Instances([shapely.box(0, 0, 3, 3)], [0], [0.5], (32, 32)))
        print("saved", flush=True)
        """
    )
    child = _spawn(script, folder)
    time.sleep(1.5)  # the child is waiting on the lock (or still starting)
    assert child.poll() is None
    holder.execute("COMMIT")
    holder.close()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "saved"
    with Project.open(folder) as p:
        assert p.instances(1).replace(extra={}) == inst


def test_one_project_shared_by_threads(folder):
    """The napari plugin autosaves from a worker thread while the UI thread reads."""
    import threading

    errors: list[BaseException] = []
    stop = time.monotonic() + 1.5

    def save_loop():
        seq = 0
        try:
            while time.monotonic() < stop:
                k = 1 + seq % 4
                inst = Instances(
                    [shapely.box(i, i, i + 2, i + 2) for i in range(k)], None, [0.5] * k, SHAPE
                )
                p.save_instances(1 + seq % N_IMAGES, inst, source="human")
                seq += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    with Project.open(folder) as p:
        threads = [threading.Thread(target=save_loop) for _ in range(2)]
        for t in threads:
            t.start()
        reads = 0
        while time.monotonic() < stop:
            for record in p.images():
                p.instances(record)
            p.stats()
            reads += 1
        for t in threads:
            t.join()
    assert errors == []
    assert reads > 0
    _check_thread_saves(folder)


def _check_thread_saves(folder) -> None:
    with Project.open(folder) as p:
        assert p.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for record in p.images():
            inst = p.instances(record)
            assert len(inst) == record["n_instances"]
            assert len(p.history(record)) == record["version"]  # every save a version
        total = sum(r["n_instances"] for r in p.images())
        assert p.stats()["instances"] == total
