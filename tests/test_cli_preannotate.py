"""Tests for ``labelassist preannotate`` (labelassist/cli/preannotate.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_bulk import SCORE, _coco_content, _worker_loads, _write_images, tiny_model

from labelassist.bulk import preannotate
from labelassist.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:.*reached the model's limit:UserWarning")

SUMMARY = re.compile(
    r"preannotate: (\d+) images, (\d+) instances, (\d+) failed, [\d.]+ s -> (.+\.json)"
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_model().save(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _args(images, checkpoint, out, *extra):
    return [
        "preannotate",
        *map(str, images),
        "--model",
        str(checkpoint),
        "--out",
        str(out),
        "--score-threshold",
        str(SCORE),
        "--no-progress",
        *extra,
    ]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_help_shows_examples(capsys):
    assert main(["preannotate", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("examples:", "--scheduler ADDRESS", "--tile-size", "labelassist preannotate"):
        assert text in out


def test_folder_to_coco_with_summary(tmp_path, checkpoint, capsys):
    _write_images(tmp_path / "imgs", 4)
    out = tmp_path / "preds.json"
    assert main(_args([tmp_path / "imgs"], checkpoint, out, "--workers", "0")) == 0
    match = SUMMARY.search(capsys.readouterr().out)
    assert match and match.group(1, 3, 4) == ("4", "0", str(out))
    from labelassist.model import load_model

    ref = tmp_path / "ref.json"
    preannotate(
        tmp_path / "imgs", load_model(checkpoint), out=ref, score_threshold=SCORE, progress=False
    )
    assert _coco_content(out) == _coco_content(ref)
    n_annotations = len(_coco_content(ref)["annotations"])
    assert int(match.group(2)) == n_annotations > 0


def test_files_folders_and_globs_together(tmp_path, checkpoint, capsys):
    _write_images(tmp_path / "a", 2)
    _write_images(tmp_path / "b", 2, start=2)
    (tmp_path / "c").mkdir()
    shutil.copy(tmp_path / "a" / "img_00.png", tmp_path / "c" / "x.png")
    images = [tmp_path / "a", str(tmp_path / "b" / "*.png"), tmp_path / "c" / "x.png"]
    out = tmp_path / "preds.json"
    assert main(_args(images, checkpoint, out, "--batch-size", "3")) == 0
    names = [r["file_name"] for r in _coco_content(out)["images"]]
    assert names == ["a/img_00.png", "a/img_01.png", "b/img_02.png", "b/img_03.png", "c/x.png"]


def test_unreadable_images_are_listed_and_skipped(tmp_path, checkpoint, capsys):
    _write_images(tmp_path, 2)
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    assert main(_args([tmp_path], checkpoint, tmp_path / "p.json")) == 0
    captured = capsys.readouterr()
    assert re.search(r"^skipped bad\.tif: .*cannot read", captured.err, re.M)
    assert SUMMARY.search(captured.out).group(1, 3) == ("2", "1")


def test_no_readable_image_is_an_error(tmp_path, checkpoint, capsys):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert main(_args([tmp_path / "bad.png"], checkpoint, tmp_path / "p.json")) == 1
    err = capsys.readouterr().err
    assert "skipped bad.png" in err
    assert "error: none of the 1 images could be read" in err and "Traceback" not in err


@pytest.mark.timeout(120)  # reading a FIFO would block forever
def test_a_fifo_named_like_an_image_is_skipped_not_read(tmp_path, checkpoint, capsys):
    os.mkfifo(tmp_path / "f.png")
    assert main(_args([tmp_path / "f.png"], checkpoint, tmp_path / "p.json")) == 1
    err = capsys.readouterr().err
    assert "skipped f.png: not a regular file (a FIFO" in err
    assert "error: none of the 1 images could be read" in err and "Traceback" not in err


def test_failed_images_are_retried_only_with_retry_failed(tmp_path, checkpoint, capsys):
    _write_images(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "late.png").write_bytes(b"not a png yet")
    out = tmp_path / "p.json"
    assert main(_args([tmp_path / "imgs"], checkpoint, out)) == 0
    captured = capsys.readouterr()
    assert re.search(r"^skipped imgs/late\.png: .*cannot read", captured.err, re.M)
    assert "add --retry-failed to try them again" in captured.err
    shutil.copy(tmp_path / "imgs" / "img_00.png", tmp_path / "imgs" / "late.png")  # fixed
    assert main(_args([tmp_path / "imgs"], checkpoint, out)) == 0
    captured = capsys.readouterr()
    assert "skipped imgs/late.png" in captured.err  # recorded as failed: not read again
    assert SUMMARY.search(captured.out).group(1, 3) == ("2", "1")
    assert main(_args([tmp_path / "imgs"], checkpoint, out, "--retry-failed")) == 0
    captured = capsys.readouterr()
    assert "skipped" not in captured.err
    assert SUMMARY.search(captured.out).group(1, 3) == ("3", "0")
    assert [r["file_name"] for r in _coco_content(out)["images"]] == [
        "imgs/img_00.png",
        "imgs/img_01.png",
        "imgs/late.png",
    ]


def test_mask_options_reach_the_model(tmp_path, checkpoint, capsys):
    _write_images(tmp_path / "imgs", 2)
    from labelassist.model import load_model

    model = load_model(checkpoint)
    for extra, options in [
        (["--no-mirror"], {"mirror": False}),
        (["--mask-threshold", "0.3"], {"mask_threshold": 0.3}),
    ]:
        out, ref = tmp_path / "preds.json", tmp_path / "ref.json"
        assert main(_args([tmp_path / "imgs"], checkpoint, out, "--workers", "0", *extra)) == 0
        preannotate(
            tmp_path / "imgs", model, out=ref, score_threshold=SCORE, progress=False, **options
        )
        default = tmp_path / "default.json"
        preannotate(tmp_path / "imgs", model, out=default, score_threshold=SCORE, progress=False)
        assert _coco_content(out) == _coco_content(ref)
        assert _coco_content(ref)["annotations"]
        assert _coco_content(ref) != _coco_content(default), extra
        for path in (out, ref, default):
            path.unlink()
    capsys.readouterr()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": ["{tmp}/missing"]}, r"no such image file or folder: '.*missing'"),
        ({"images": ["{tmp}/empty"]}, "holds no image files"),
        ({"out": "{tmp}/preds.txt"}, r"--out must be a \.json file"),
        ({"model": "{tmp}/nope.pt"}, "does not exist"),
        (
            {"extra": ["--score-threshold", "2"]},
            r"score_threshold must be a finite number in \[0, 1\]",
        ),
        ({"extra": ["--batch-size", "0"]}, "batch_size must be an integer >= 1"),
        ({"extra": ["--tile-size", "8"]}, r"tile_size must be .*>= 32"),
        ({"extra": ["--tile-size", "64", "--tile-overlap", "40"]}, "tile_overlap must be an int"),
        ({"extra": ["--tile-overlap", "16"]}, "only used with tile_size; pass tile_size too"),
        ({"extra": ["--mask-threshold", "1"]}, r"mask_threshold must be within \(0, 1\)"),
    ],
)
def test_errors_are_one_line(tmp_path, checkpoint, capsys, change, message):
    _write_images(tmp_path / "imgs", 1)
    (tmp_path / "empty").mkdir()
    images = [i.format(tmp=tmp_path) for i in change.get("images", [str(tmp_path / "imgs")])]
    out = change.get("out", "{tmp}/preds.json").format(tmp=tmp_path)
    model = change.get("model", str(checkpoint)).format(tmp=tmp_path)
    assert main(_args(images, model, out, *change.get("extra", []))) == 1
    line = _error_line(capsys)
    assert line.startswith("labelassist preannotate: error: ")
    assert re.search(message, line), line


def test_missing_out_is_a_usage_error(tmp_path, capsys):
    assert main(["preannotate", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, checkpoint, capsys):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    _write_images(tmp_path / "imgs", 1)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(
            _args(
                [tmp_path / "imgs"],
                checkpoint,
                tmp_path / "p.json",
                "--scheduler",
                "tcp://127.0.0.1:9",
            )
        )
    assert code == 1
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in _error_line(capsys)


def test_missing_dask_names_the_extra(tmp_path, checkpoint, capsys, monkeypatch):
    _write_images(tmp_path / "imgs", 1)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    code = main(_args([tmp_path / "imgs"], checkpoint, tmp_path / "p.json", "--scheduler", "x:1"))
    assert code == 1
    assert "pip install labelassist[dask]" in _error_line(capsys)


@pytest.mark.slow
def test_scheduler_runs_on_the_cluster(tmp_path, checkpoint, capsys):
    distributed = pytest.importorskip("distributed")
    _write_images(tmp_path / "imgs", 3)
    out = tmp_path / "preds.json"
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        args = _args([tmp_path / "imgs"], checkpoint, out, "--scheduler", cluster.scheduler_address)
        assert main(args) == 0
        loads = client.run(_worker_loads)
    assert list(loads.values()) == [1]  # the worker, not this process, ran the model
    assert SUMMARY.search(capsys.readouterr().out).group(1, 3) == ("3", "0")
    assert len(_coco_content(out)["images"]) == 3


def _command() -> list[str]:
    """The installed ``labelassist`` script of this environment (or the same entry point)."""
    script = Path(sys.executable).with_name("labelassist")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    # not installed (pip install -e .): run the same entry point the script would
    return [sys.executable, "-c", "import sys; from labelassist.cli import main; sys.exit(main())"]


def test_installed_command_runs(tmp_path, checkpoint):
    _write_images(tmp_path / "imgs", 2)
    out = tmp_path / "preds.json"
    proc = subprocess.run(
        [*_command(), *_args([tmp_path / "imgs"], checkpoint, out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert SUMMARY.search(proc.stdout).group(1, 3) == ("2", "0")
    assert [r["file_name"] for r in _coco_content(out)["images"]] == [
        "imgs/img_00.png",
        "imgs/img_01.png",
    ]
