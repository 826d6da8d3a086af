"""`labelassist.io.read_stack`: TIFF/OME-TIFF stacks with their axes, lazily when large."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import tifffile

import labelassist.io.stack as stack_module
from labelassist.io import read_image, read_stack


def _data(shape, dtype=np.uint16, seed=0):
    return np.random.default_rng(seed).integers(0, 200, shape).astype(dtype)


def test_imagej_hyperstack_tzcyx(tmp_path):
    data = _data((2, 3, 2, 16, 20), np.uint8)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    array, axes = read_stack(path)
    assert axes == "TZCYX"
    assert isinstance(array, np.ndarray)
    np.testing.assert_array_equal(array, data)


def test_ome_tiff_is_returned_in_tzcyx_order(tmp_path):
    data = _data((3, 2, 16, 20))  # written as CZYX
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CZYX"})
    array, axes = read_stack(path)
    assert axes == "ZCYX"
    np.testing.assert_array_equal(array, data.transpose(1, 0, 2, 3))


def test_plain_3d_stack_is_z(tmp_path):
    data = _data((6, 16, 20))
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data)
    array, axes = read_stack(path)
    assert axes == "ZYX"
    np.testing.assert_array_equal(array, data)


def test_axes_override_renames_the_files_axes(tmp_path):
    data = _data((6, 16, 20))
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, data)
    array, axes = read_stack(path, axes="tyx")
    assert axes == "TYX"
    np.testing.assert_array_equal(array, data)


def test_samples_become_channels(tmp_path):
    data = _data((4, 16, 20, 3), np.uint8)
    path = tmp_path / "rgb_stack.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    array, axes = read_stack(path)
    assert axes == "ZCYX"
    np.testing.assert_array_equal(array, data.transpose(0, 3, 1, 2))


def test_two_d_image_reads_as_yx(tmp_path):
    data = _data((16, 20))
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, data)
    array, axes = read_stack(path)
    assert axes == "YX"
    np.testing.assert_array_equal(array, data)


def test_big_endian_data_comes_back_native(tmp_path):
    data = _data((5, 8, 8))
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, byteorder=">")
    array, _ = read_stack(path)
    assert array.dtype.isnative
    np.testing.assert_array_equal(array, data)


@pytest.mark.parametrize(
    "options",
    [
        {},  # uncompressed, contiguous: memory-mapped
        {"compression": "zlib"},  # one chunk per page, decoded on demand
        {"compression": "zlib", "tile": (16, 16)},
    ],
    ids=["memmap", "pages", "tiled"],
)
def test_lazy_reading_gives_a_dask_array_with_the_same_pixels(tmp_path, options):
    da = pytest.importorskip("dask.array")
    data = _data((2, 5, 32, 32))
    path = tmp_path / "lazy.tif"
    tifffile.imwrite(path, data, metadata={"axes": "TZYX"}, **options)
    array, axes = read_stack(path, lazy=True)
    assert isinstance(array, da.Array)
    assert axes == "TZYX"
    assert array.shape == data.shape
    np.testing.assert_array_equal(np.asarray(array[1, 3]), data[1, 3])
    np.testing.assert_array_equal(array.compute(), data)


def test_stacks_above_lazy_bytes_are_lazy(tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    data = _data((5, 16, 16))
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, data, compression="zlib")
    assert isinstance(read_stack(path)[0], np.ndarray)
    monkeypatch.setattr(stack_module, "LAZY_BYTES", data.nbytes - 1)
    array, _ = read_stack(path)
    assert isinstance(array, da.Array)
    np.testing.assert_array_equal(array.compute(), data)
    assert isinstance(read_stack(path, lazy=False)[0], np.ndarray)


def test_lazy_read_without_dask_says_which_extra(tmp_path, monkeypatch):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, _data((5, 16, 16)))
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"pip install 'labelassist\[dask\]'.*lazy=False"):
        read_stack(path, lazy=True)


def test_read_image_still_refuses_stacks(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, _data((6, 16, 20)))
    with pytest.raises(
        ValueError, match="is not a 2-D image; read stacks with labelassist.read_stack"
    ):
        read_image(path)


def _write(path, data, **options):
    tifffile.imwrite(path, data, **options)
    return path


def test_refusals_of_files(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="stack file not found"):
        read_stack(tmp_path / "missing.tif")
    with pytest.raises(ValueError, match="is a folder"):
        read_stack(tmp_path)
    with pytest.raises(ValueError, match="cannot read stack .*: File name too long"):
        read_stack(tmp_path / ("x" * 300 + ".tif"))
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_stack(fifo)
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match="reads TIFF and OME-TIFF files.*read_image"):
        read_stack(png)
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"the file is empty \(0 bytes\)"):
        read_stack(empty)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="cannot read stack"):
        read_stack(junk)
    broken = _write(tmp_path / "broken.tif", _data((6, 64, 64)), compression="zlib")
    raw = bytearray(broken.read_bytes())
    raw[-200:] = b"\xff" * 200  # the last page's compressed pixels
    broken.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="cannot read stack .*broken.tif: .*Error"):
        read_stack(broken)


def test_refusals_of_contents(tmp_path, monkeypatch):
    plain = _write(tmp_path / "plain.tif", _data((6, 16, 20)))
    cplx = _write(tmp_path / "complex.tif", np.zeros((6, 8, 8), np.complex64))
    with pytest.raises(ValueError, match="unsupported pixel type complex64"):
        read_stack(cplx)
    with pytest.raises(ValueError, match=r"has 1 series; series must be in \[0, 0\], got 3"):
        read_stack(plain, series=3)
    unknown = _write(
        tmp_path / "qq.tif",
        _data((2, 3, 8, 8)),
        metadata={"axes": "QQYX"},
        photometric="minisblack",
    )
    with pytest.raises(ValueError, match="unknown meaning.*axes='TZYX'"):
        read_stack(unknown)
    unknown_z = _write(
        tmp_path / "zq.tif",
        _data((2, 3, 8, 8)),
        metadata={"axes": "ZQYX"},
        photometric="minisblack",
    )
    with pytest.raises(ValueError, match="unknown meaning"):
        read_stack(unknown_z)
    angle = _write(
        tmp_path / "angle.tif", _data((2, 3, 8, 8)), metadata={"axes": "AZYX"},
        photometric="minisblack",
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"axes \['A'\] of 'AZYX'.*are not supported"):
        read_stack(angle)
    both = _write(
        tmp_path / "cs.tif", _data((2, 8, 8, 3), np.uint8), photometric="rgb",
        metadata={"axes": "CYXS"},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"both channels \(C\) and samples \(S\)"):
        read_stack(both)
    with pytest.raises(ValueError, match="lack Y and X"):
        read_stack(plain, axes="TZC")
    monkeypatch.setenv("LABELASSIST_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ValueError, match=r"each plane has 16 x 20 = 320 pixels, more than"):
        read_stack(plain)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axes": 3}, "axes must be a str like 'ZYX'"),
        ({"axes": "ZYXC"}, "does not fit .*shape \\(6, 16, 20\\).*give 3 distinct letters"),
        ({"axes": "ZZX"}, "does not fit"),
        ({"axes": "ZYW"}, "does not fit"),
        ({"lazy": "yes"}, "lazy must be True, False or None"),
        ({"series": -1}, "series must be an integer >= 0"),
        ({"series": True}, "series must be an integer >= 0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    path = _write(tmp_path / "plain.tif", _data((6, 16, 20)))
    with pytest.raises(ValueError, match=message):
        read_stack(path, **kwargs)
