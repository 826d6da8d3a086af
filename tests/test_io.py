import errno
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from labelassist.io import (
    TempFile,
    atomic_write,
    check_image,
    collect_image_paths,
    read_image,
    remove_stale_temp_files,
)

RNG = np.random.default_rng(0)

CASES = {
    "gray_u8": RNG.integers(0, 255, (9, 7), dtype=np.uint8),
    "gray_u16": RNG.integers(0, 65535, (9, 7), dtype=np.uint16),
    "rgb_u8": RNG.integers(0, 255, (9, 7, 3), dtype=np.uint8),
    "rgba_u8": RNG.integers(0, 255, (9, 7, 4), dtype=np.uint8),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_lossless_formats_round_trip(tmp_path, name, suffix):
    image = CASES[name]
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, image)
    else:
        iio.imwrite(path, image)
    out = read_image(path)
    assert out.dtype == image.dtype
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_tiff_other_dtypes(tmp_path, dtype):
    image = (RNG.random((6, 5)) * 100).astype(dtype)
    tifffile.imwrite(tmp_path / "x.tif", image)
    out = read_image(tmp_path / "x.tif")
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, image)


def test_jpeg_is_read_with_its_shape(tmp_path):
    image = np.full((16, 12, 3), 128, dtype=np.uint8)
    iio.imwrite(tmp_path / "x.jpg", image)
    out = read_image(tmp_path / "x.jpg")
    assert out.shape == (16, 12, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 128).max() <= 2


def test_planar_tiff_becomes_channels_last(tmp_path):
    planar = RNG.integers(0, 255, (3, 20, 30), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", planar, planarconfig="separate", photometric="rgb")
    out = read_image(tmp_path / "p.tif")
    assert out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, np.moveaxis(planar, 0, -1))


def test_singleton_channel_is_dropped():
    assert check_image(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((5, 8, 9), np.uint16), "3-D stack of shape .* pass one plane"),
        (np.zeros((2, 3, 8, 9), np.uint8), "4-D stack"),
        (np.zeros((8, 9, 2), np.uint8), "2-channel images"),
        (np.zeros(7, np.uint8), "expected a 2-D image"),
        (np.zeros((0, 4), np.uint8), "empty"),
        (np.zeros((3, 3), np.complex64), "unsupported pixel type"),
    ],
)
def test_bad_arrays_raise(array, match):
    with pytest.raises(ValueError, match=match):
        check_image(array)


@pytest.mark.parametrize("depth", [4, 5])
def test_stack_file_names_the_file(tmp_path, depth):
    tifffile.imwrite(
        tmp_path / "stack.tif", np.zeros((depth, 8, 8), np.uint8), photometric="minisblack"
    )
    with pytest.raises(ValueError, match=r"stack\.tif: a 3-D stack"):
        read_image(tmp_path / "stack.tif")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image(tmp_path / "nope.png")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"this is not an image at all")
    with pytest.raises(ValueError, match="cannot read image"):
        read_image(path)


# -- collect_image_paths -----------------------------------------------------------------------
def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_collect_folder_gives_its_image_files_sorted(tmp_path):
    folder = _touch(tmp_path / "imgs", "b.PNG", "a.tif", "c.jpeg", "notes.txt", ".hidden.png")
    (folder / "sub.png").mkdir()  # a folder with an image suffix is not a file
    _touch(folder / "deeper", "d.png")  # not recursive
    got = collect_image_paths(folder)
    assert [p.name for p in got] == ["a.tif", "b.PNG", "c.jpeg"]
    assert all(isinstance(p, Path) for p in got)


def test_collect_empty_folder_is_an_error(tmp_path):
    folder = _touch(tmp_path / "imgs", "notes.txt")
    with pytest.raises(ValueError, match=r"^images: folder '.*imgs' holds no image files .*check"):
        collect_image_paths(folder)
    with pytest.raises(ValueError, match=r"^sources: folder"):
        collect_image_paths(str(tmp_path), name="sources")


@pytest.mark.parametrize("empty", ["", "  ", [""]])
def test_collect_empty_path_is_an_error(empty):
    with pytest.raises(ValueError, match=r"^images(\[0\])? is an empty path; give a file"):
        collect_image_paths(empty)


def test_collect_glob_pattern(tmp_path):
    _touch(tmp_path / "a", "1.png", "2.tif")
    _touch(tmp_path / "a" / "b", "3.png")
    got = collect_image_paths(str(tmp_path / "a" / "*.png"))
    assert got == [tmp_path / "a" / "1.png"]
    got = collect_image_paths(str(tmp_path / "**" / "*.png"))
    assert got == [tmp_path / "a" / "1.png", tmp_path / "a" / "b" / "3.png"]


def test_collect_glob_without_match_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"^images: the pattern '.*\*\.png' matches no files"):
        collect_image_paths(str(tmp_path / "*.png"))


def test_collect_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^images: no such image file or folder: '.*"):
        collect_image_paths(tmp_path / "nope.png")
    folder = _touch(tmp_path / "imgs", "a.png")
    with pytest.raises(FileNotFoundError, match=r"^images\[1\]: no such image file"):
        collect_image_paths([folder, tmp_path / "nope"])


def test_collect_list_keeps_order_and_duplicates(tmp_path):
    folder = _touch(tmp_path / "imgs", "a.png", "b.png")
    single = folder / "b.png"
    got = collect_image_paths([single, str(folder), single])
    assert got == [single, folder / "a.png", folder / "b.png", single]
    # an existing file is taken whatever its suffix: the reader decides
    _touch(tmp_path, "scan.dat")
    assert collect_image_paths(tmp_path / "scan.dat") == [tmp_path / "scan.dat"]
    assert collect_image_paths([]) == []


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (42, r"^images must be a folder, a glob pattern, a file or a list of those, got int$"),
        (b"imgs/", r"got bytes$"),
        (None, r"got NoneType$"),
        (["a.png", 3], r"^images\[1\] is int; expected a path \(str or os.PathLike\)$"),
    ],
)
def test_collect_rejects_non_paths(value, match):
    with pytest.raises(TypeError, match=match):
        collect_image_paths(value)


# -- atomic writes -----------------------------------------------------------------------------
@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 kB tmpfs: a real full disk. Needs root (CI runs as root)."""
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _fill(folder):
    """Fill the file system of ``folder`` up to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(b"\0" * 1024)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break


def test_atomic_write_on_a_full_disk_leaves_nothing(tiny_fs):
    target = tiny_fs / "out.json"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as info:
        with atomic_write(target) as fh:
            fh.write(b"x" * 1_000_000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["out.json"]


def test_temp_file_is_removed_when_closing_fails_on_a_full_disk(tiny_fs):
    # the buffered bytes only fail when the file is closed: discard must still remove it
    tmp = TempFile(tiny_fs / "out.json")
    _fill(tiny_fs)
    tmp.file.write(b"y" * 100)  # buffered: no error yet
    tmp.discard()
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler"]
    tmp = TempFile(tiny_fs / "out.json")
    tmp.file.write(b"y" * 100)
    with pytest.raises(OSError, match="No space left on device"):
        tmp.commit()
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler"]


_WRITER = """
import sys, time
from labelassist.io import atomic_write
with atomic_write(sys.argv[1]) as fh:
    fh.write(b"partial")
    fh.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def _start_writer(target):
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"
    return proc


def _temp_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "labels.json"
    for _ in range(2):
        proc = _start_writer(target)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    left = _temp_files(tmp_path)
    assert left and all(re.fullmatch(r"\.labels\.json\.\w{8}\.labelassist\.tmp", n) for n in left)
    assert not target.exists()
    with atomic_write(target) as fh:
        fh.write(b"complete")
    assert target.read_bytes() == b"complete"
    assert _temp_files(tmp_path) == []


def test_temp_file_of_a_live_writer_is_kept(tmp_path):
    target = tmp_path / "labels.json"
    proc = _start_writer(target)
    try:
        (live,) = _temp_files(tmp_path)
        with atomic_write(target) as fh:
            fh.write(b"mine")
        assert _temp_files(tmp_path) == [live]  # still being written by the other process
        assert remove_stale_temp_files(tmp_path) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert remove_stale_temp_files(tmp_path) == [tmp_path / live]  # its writer is gone now
    assert target.read_bytes() == b"mine"


def test_other_files_are_never_removed(tmp_path):
    names = [
        ".labels.json.abcdefgh.tmp",  # another tool's temp file, or an old labelassist's
        ".labels.json.notes",
        "labels.json.abcdefgh.labelassist.tmp",  # not hidden
        ".other.abcdefgh.labelassist",  # no suffix is fine, but a folder is not a file:
    ]
    for name in names[:3]:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / names[3]).mkdir()
    with atomic_write(tmp_path / "labels.json") as fh:
        fh.write(b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "labels.json"])


def test_stale_temp_file_without_writer_is_removed(tmp_path):
    # a file with the temp naming that no process holds: its writer died
    stale = tmp_path / ".a.png.k2j3h4g5.labelassist.png"
    stale.write_bytes(b"half")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists()


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_atomic_write_never_replaces_a_device(device):
    before = os.stat(device)
    with pytest.raises(ValueError, match=rf"^{device} is not a regular file .* replace files"):
        with atomic_write(device) as fh:
            fh.write(b"x")
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_atomic_write_into_a_folder_path_is_an_error(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        with atomic_write(tmp_path) as fh:
            fh.write(b"x")


def test_atomic_write_long_names(tmp_path):
    # a name at the file-system limit works (the temp name is shortened) ...
    target = tmp_path / ("n" * 250 + ".json")
    with atomic_write(target) as fh:
        fh.write(b"ok")
    assert target.read_bytes() == b"ok"
    # ... a name over it fails with the system's error, and leaves nothing
    with pytest.raises(OSError) as info:
        with atomic_write(tmp_path / ("n" * 300 + ".json")) as fh:
            fh.write(b"x")
    assert info.value.errno == errno.ENAMETOOLONG
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_atomic_write_error_in_the_body_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as fh:
            fh.write(b"new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    umask = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "a.bin") as fh:
            fh.write(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640


@pytest.mark.parametrize("suffix", ["x", ".a/b", ". png", 5])
def test_atomic_write_rejects_odd_suffixes(tmp_path, suffix):
    with pytest.raises(ValueError, match="suffix must be '' or like '.tmp'"):
        with atomic_write(tmp_path / "a.bin", suffix=suffix):
            pass
