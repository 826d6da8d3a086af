"""Bad inputs given to a labeling project: one row per case (#12 items 7, 8, 16; #11 rules).

Each row: what is given -> the exception type and a ``match=`` on its one-line message.
After every row the project is as it was (no image, version, copy or file added): a
refused input writes nothing. Files are made for real in ``tmp_path`` (truncated PNGs, a
5-D TIFF, a FIFO, symbolic links to ``/etc/passwd``); nothing is mocked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import shapely
import tifffile

from labelassist.cli import main
from labelassist.coco import write_coco
from labelassist.instances import Instances
from labelassist.project import Project, ProjectConflictError

SHAPE = (12, 16)
BOX = Instances([shapely.box(1, 1, 5, 5)], [0], [1.0], SHAPE)


def _png(path: Path, shape=SHAPE, fill=7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.full(shape, fill, np.uint8))
    return path


def _truncated_png(path: Path) -> Path:
    data = _png(path, (64, 64)).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _coco(path: Path, records: list[dict]) -> Path:
    return write_coco(path, ["cell"], [(r, None) for r in records])


def _record(name: str, height=SHAPE[0], width=SHAPE[1], image_id=1) -> dict:
    return {"id": image_id, "file_name": name, "height": height, "width": width}


def _symlink(link: Path, target: str | Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


# Setup steps: each makes something in tmp_path (``t``).
Step = Callable[[Path], object]


def _mkdir(name: str) -> Step:
    return lambda t: (t / name).mkdir(parents=True)


def _file(name: str, content: bytes | str) -> Step:
    def make(t: Path) -> None:
        (t / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            (t / name).write_text(content)
        else:
            (t / name).write_bytes(content)

    return make


def _image(name: str, data: np.ndarray) -> Step:
    def make(t: Path) -> None:
        (t / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".tif"):
            tifffile.imwrite(t / name, data)
        else:
            iio.imwrite(t / name, data)

    return make


def _cut(name: str) -> Step:
    return lambda t: _truncated_png(t / name)


def _fifo(name: str) -> Step:
    return lambda t: os.mkfifo(t / name)


def _link(name: str, target: str) -> Step:
    return lambda t: _symlink(t / name, target)


def _coco_file(records: list[dict], categories=("cell",)) -> Step:
    def make(t: Path) -> None:
        items = [(r, None) for r in records]
        write_coco(t / "in" / "c.json", list(categories), items)

    return make


GRAY = np.full(SHAPE, 7, np.uint8)

# (id, setup steps, the call on the project ``p`` (one image, id 1, of SHAPE, saved once)
# with tmp_path ``t``, error, match)
Call = Callable[[Project, Path], object]
CASES: list[tuple[str, list[Step], Call, type[Exception], str]] = [
    # -- add_images (#12 items 8 and 16; one rule for paths: labelassist.io) --
    (
        "empty folder",
        [_mkdir("empty")],
        lambda p, t: p.add_images(t / "empty"),
        ValueError,
        r"folder '.*empty' holds no image files \(.png, .jpg, .jpeg, .tif, .tiff, .bmp\)",
    ),
    (
        "folder of non-images",
        [_file("txt/a.txt", "x")],
        lambda p, t: p.add_images(t / "txt"),
        ValueError,
        "folder .*txt.* holds no image files",
    ),
    (
        "pattern without match",
        [],
        lambda p, t: p.add_images(str(t / "*.tif")),
        ValueError,
        r"the pattern '.*\*.tif' matches no files",
    ),
    (
        "missing file",
        [],
        lambda p, t: p.add_images(t / "missing.png"),
        FileNotFoundError,
        "no such image file or folder: '.*missing.png'",
    ),
    ("not a path", [], lambda p, t: p.add_images(3.5), TypeError, "got float"),
    (
        "truncated png",
        [_cut("cut.png")],
        lambda p, t: p.add_images(t / "cut.png"),
        ValueError,
        r"cannot read 1 of 1 image files, nothing was added: cannot read image .*cut.png: "
        "image file is truncated",
    ),
    (
        "5-D tiff",
        [_image("stack.tif", np.zeros((2, 2, 2, 8, 8), np.uint8))],
        lambda p, t: p.add_images(t / "stack.tif"),
        ValueError,
        r"nothing was added: .*stack.tif: a 5-D stack of shape \(2, 2, 2, 8, 8\)",
    ),
    (
        "3-D tiff",
        [_image("z.tif", np.zeros((5, 8, 8), np.uint16))],
        lambda p, t: p.add_images(t / "z.tif"),
        ValueError,
        r"z.tif: a 3-D stack of shape \(5, 8, 8\) is not a 2-D image",
    ),
    (
        "gray + alpha png",
        [_image("ga.png", np.zeros((8, 8, 2), np.uint8))],
        lambda p, t: p.add_images(t / "ga.png"),
        ValueError,
        "ga.png: 2-channel images",
    ),
    (
        "empty file",
        [_file("zero.png", b"")],
        lambda p, t: p.add_images(t / "zero.png"),
        ValueError,
        r"cannot read 1 of 1 image files.*zero.png",
    ),
    (
        "fifo named png",  # a reader would hang on it
        [_fifo("f.png")],
        lambda p, t: p.add_images(t / "f.png"),
        ValueError,
        r"nothing was added: .*f.png is not a regular file",
    ),
    (
        "text named png",
        [_file("notes.png", "hello")],
        lambda p, t: p.add_images(t / "notes.png"),
        ValueError,
        r"nothing was added: cannot read image .*notes.png",
    ),
    (
        "split",
        [],
        lambda p, t: p.add_images([], split="test"),
        ValueError,
        r"split must be one of \['train', 'val'\], got 'test'",
    ),
    (
        "copy",
        [],
        lambda p, t: p.add_images([], copy="yes"),
        TypeError,
        "copy must be True, False or None, got 'yes'",
    ),
    # -- saving and reading versions (#12 item 4) --
    (
        "stale expected_version",
        [],
        lambda p, t: p.save_instances(1, BOX, expected_version=0),
        ProjectConflictError,
        r"image 1 changed since it was read \(expected version 0, the current version is 1\)",
    ),
    (
        "negative expected_version",
        [],
        lambda p, t: p.save_instances(1, BOX, expected_version=-1),
        ValueError,
        "expected_version must be an integer >= 0 or None, got -1",
    ),
    (
        "str expected_version",
        [],
        lambda p, t: p.save_instances(1, BOX, expected_version="1"),
        ValueError,
        "expected_version must be an integer >= 0 or None, got '1'",
    ),
    (
        "with_version not a bool",
        [],
        lambda p, t: p.instances(1, with_version="yes"),
        TypeError,
        "with_version must be True or False, got 'yes'",
    ),
    (
        "version never saved",
        [],
        lambda p, t: p.instances(1, version=5),
        ValueError,
        r"image 1 has no version 5; see Project.history\(1\)",
    ),
    (
        "seed",
        [],
        lambda p, t: p.assign_splits(seed=-1),
        ValueError,
        "seed must be an integer >= 0, got -1",
    ),
    # -- import_coco and import_label_images (#12 item 7) --
    (
        "coco width 1e9",
        [_image("in/a.png", GRAY), _coco_file([_record("a.png", width=10**9)])],
        lambda p, t: p.import_coco(t / "in" / "c.json"),
        ValueError,
        r"1 image\(s\) of .*c.json differ from their COCO height x width, nothing was "
        r"imported: a.png is 12x16 but its record says 12x1000000000",
    ),
    (
        "coco height and width swapped",
        [_image("in/a.png", GRAY), _coco_file([_record("a.png", height=16, width=12)])],
        lambda p, t: p.import_coco(t / "in" / "c.json"),
        ValueError,
        "a.png is 12x16 but its record says 16x12",
    ),
    (
        "coco symlink to /etc/passwd",
        [_link("in/p.png", "/etc/passwd"), _coco_file([_record("p.png")])],
        lambda p, t: p.import_coco(t / "in" / "c.json"),
        ValueError,
        r"cannot read 1 image file\(s\) of .*c.json, nothing was imported: cannot read image "
        "/etc/passwd",
    ),
    (
        "coco truncated image",
        [_cut("in/cut.png"), _coco_file([_record("cut.png", 64, 64)])],
        lambda p, t: p.import_coco(t / "in" / "c.json"),
        ValueError,
        "nothing was imported: cannot read image .*cut.png: image file is truncated",
    ),
    (
        "coco category not a class",
        [_image("in/a.png", GRAY), _coco_file([_record("a.png")], categories=["dog"])],
        lambda p, t: p.import_coco(t / "in" / "c.json"),
        ValueError,
        r"categories \['dog'\] of .*c.json are not classes of this project",
    ),
    (
        "label image of another size",
        [_image("in/a.png", GRAY)],
        lambda p, t: p.import_label_images([t / "in" / "a.png"], [np.ones((3, 3), np.int32)]),
        ValueError,
        r"label_images\[0\] is 3x3 but image .*a.png is 12x16",
    ),
    (
        "label image for an unreadable image",
        [_cut("in/cut.png")],
        lambda p, t: p.import_label_images([t / "in" / "cut.png"], [np.ones((64, 64), np.int32)]),
        ValueError,
        "cannot read 1 image file.*nothing was imported: cannot read image .*cut.png",
    ),
]


def _state(p: Project) -> tuple:
    files = sorted(str(f.relative_to(p.folder)) for f in p.folder.rglob("*") if f.is_file())
    return p.images(), p.stats(), [p.history(r) for r in p.images()], files


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "proj", classes=["cell"]) as p:
        p.add_images(_png(tmp_path / "data" / "0.png"))
        p.save_instances(1, BOX)
        yield p


@pytest.mark.parametrize(
    ("steps", "call", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(project, tmp_path, steps, call, error, match):
    for step in steps:
        step(tmp_path)
    before = _state(project)
    with pytest.raises(error, match=match) as info:
        call(project, tmp_path)
    assert "\n" not in str(info.value)
    assert _state(project) == before


@pytest.mark.parametrize("copy_images", [True, False])
def test_import_coco_refuses_links_out_of_the_image_root_when_copying(tmp_path, copy_images):
    """7: a symlink inside the image folder to a real image elsewhere is not copied in."""
    outside = _png(tmp_path / "elsewhere" / "secret.png")
    _png(tmp_path / "in" / "a.png")
    _symlink(tmp_path / "in" / "b.png", outside)
    coco = _coco(tmp_path / "in" / "c.json", [_record("a.png"), _record("b.png", image_id=2)])
    with Project.create(tmp_path / "p", classes=["cell"], copy_images=copy_images) as p:
        if copy_images:
            with pytest.raises(
                ValueError,
                match=r"1 image file\(s\) of .*c.json lead outside the image root .*in "
                r"\(symbolic links\?\), e.g. b.png -> .*elsewhere/secret.png; this project "
                "copies images",
            ):
                p.import_coco(coco)
            assert p.images() == [] and not (p.folder / "images").exists()
        else:  # referred to where it is: nothing is copied, the file is a real image
            assert p.import_coco(coco) == [1, 2]
            assert p.image_path(2) == outside


def test_the_passwd_link_is_not_copied_into_a_copying_project(tmp_path):
    """7 (the issue's repro): the link is refused before anything is read or copied."""
    _symlink(tmp_path / "in" / "p.png", "/etc/passwd")
    coco = _coco(tmp_path / "in" / "c.json", [_record("p.png")])
    with Project.create(tmp_path / "p", classes=["cell"], copy_images=True) as p:
        with pytest.raises(ValueError, match=r"lead outside the image root.*p.png -> /etc/passwd"):
            p.import_coco(coco)
        assert p.images() == [] and not (p.folder / "images").exists()


def test_a_project_refuses_a_background_class(tmp_path):
    """#11: one rule for class lists (labelassist.checks.check_classes), like COCO export."""
    for classes in (["cell", "background"], ["_background_"], ["Background "]):
        with pytest.raises(ValueError, match=r"classes\[\d\] is .*background is not a class"):
            Project.create(tmp_path / "p", classes=classes)
    assert not (tmp_path / "p").exists()
    assert main(["project", "init", str(tmp_path / "p"), "--classes", "cell,background"]) == 1


def test_cli_add_of_an_empty_folder_exits_1_with_the_reason(tmp_path, capsys):
    """16: ``labelassist project add P emptydir`` exited 0 having added nothing."""
    assert main(["project", "init", str(tmp_path / "p"), "--classes", "cell"]) == 0
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert main(["project", "add", str(tmp_path / "p"), str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no image files" in err


def test_cli_add_lists_refused_files_and_exits_1(tmp_path, capsys):
    """8: the readable files are added, each refused one is listed, the exit code says so."""
    _png(tmp_path / "imgs" / "a.png")
    _truncated_png(tmp_path / "imgs" / "b.png")
    tifffile.imwrite(tmp_path / "imgs" / "c.tif", np.zeros((2, 2, 2, 8, 8), np.uint8))
    assert main(["project", "init", str(tmp_path / "p"), "--classes", "cell"]) == 0
    capsys.readouterr()
    assert main(["project", "add", str(tmp_path / "p"), str(tmp_path / "imgs")]) == 1
    out, err = capsys.readouterr()
    assert "added 1 images; the project has 1" in out
    lines = [line for line in err.splitlines() if line.startswith("labelassist")]  # no bar
    assert len(lines) == 3
    assert lines[0].startswith("labelassist project add: refused cannot read image ")
    assert "b.png" in lines[0] and "c.tif: a 5-D stack" in lines[1]
    assert lines[2] == (
        "labelassist project add: error: 2 file(s) cannot be read as images and were not added "
        "(listed above)"
    )
    with Project.open(tmp_path / "p") as p:
        assert [r["file_name"] for r in p.images()] == ["a.png"]


def test_import_coco_checks_every_image_before_writing_any(tmp_path):
    """7: one bad image among good ones: nothing imported, no copy left behind."""
    records = [_record(f"{k}.png", image_id=k + 1) for k in range(3)]
    for k in range(3):
        _png(tmp_path / "in" / f"{k}.png", fill=k)
    _png(tmp_path / "in" / "2.png", shape=(12, 17))  # the last one is wider than stated
    coco = _coco(tmp_path / "in" / "c.json", records)
    with Project.create(tmp_path / "p", classes=["cell"], copy_images=True) as p:
        with pytest.raises(ValueError, match="2.png is 12x17 but its record says 12x16"):
            p.import_coco(coco)
        assert p.images() == [] and not (p.folder / "images").exists()
        data = json.loads(coco.read_text())
        data["images"][2]["width"] = 17
        coco.write_text(json.dumps(data))
        assert p.import_coco(coco) == [1, 2, 3]
        assert [r["width"] for r in p.images()] == [16, 16, 17]


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_add_images_refuses_images_over_the_pixel_limit(tmp_path, monkeypatch, suffix):
    """The project applies read_image's pixel limit (from the header for TIFFs), so it never
    holds an image that prediction would refuse later."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    iio.imwrite(folder / f"big{suffix}", np.zeros((16, 16), np.uint8))
    iio.imwrite(folder / f"small{suffix}", np.zeros((8, 8), np.uint8))
    monkeypatch.setenv("LABELASSIST_MAX_IMAGE_PIXELS", "100")
    with Project.create(tmp_path / "p", classes=["cell"]) as project:
        with pytest.warns(UserWarning, match=r"big\.(tif|png).*limit"):
            added = project.add_images(folder)
        assert [Path(project.image(i)["file_name"]).name for i in added] == [f"small{suffix}"]
