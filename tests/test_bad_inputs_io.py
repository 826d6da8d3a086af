"""Bad inputs to labelassist.io.read_image: one row per file, each a clear one-line error.

Each row builds a real file in ``tmp_path`` (a FIFO, a truncated PNG, a 5-D TIFF, a small
file declaring a 50,000 x 50,000 image, ...) and states the exception and message. Then
the pixel limit (`MAX_IMAGE_PIXELS`, issue #12 item 12), CMYK JPEG (item 13) and FIFOs
(item 11) in more detail.
"""

from __future__ import annotations

import binascii
import itertools
import os
import struct
import threading
import tracemalloc
import warnings
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from PIL import Image

import labelassist.io.image as image_module
from labelassist.io import pixel_limit, read_image


# -- file makers -------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", binascii.crc32(kind + data))
    )


def png_declaring(height: int, width: int) -> bytes:
    """A PNG whose header declares ``height x width`` 8-bit gray pixels, with a few rows of
    data: what a decompression bomb looks like to a header reader."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")
    )


def empty_tiff(path: Path, shape: tuple[int, int]) -> Path:
    """A zlib-tiled TIFF of ``shape`` whose tiles are empty but the first: a few kB on
    disk however large the image (tifffile writes ``None`` tiles as zero bytes)."""
    tile = (1024, 1024)
    count = -(-shape[0] // tile[0]) * -(-shape[1] // tile[1])
    tiles = itertools.chain([np.zeros(tile, np.uint8)], itertools.repeat(None, count - 1))
    tifffile.imwrite(path, tiles, shape=shape, dtype=np.uint8, tile=tile, compression="zlib")
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "nope.png"


def _folder(tmp: Path) -> Path:
    (tmp / "imgs.png").mkdir()
    return tmp / "imgs.png"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "f.png")
    return tmp / "f.png"


def _device(tmp: Path) -> Path:
    (tmp / "zero.png").symlink_to("/dev/zero")
    return tmp / "zero.png"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.tif").write_bytes(b"")
    return tmp / "empty.tif"


def _text(tmp: Path) -> Path:
    (tmp / "notes.png").write_text("these are my notes, not a picture\n")
    return tmp / "notes.png"


def _truncated_png(tmp: Path) -> Path:
    iio.imwrite(tmp / "full.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    data = (tmp / "full.png").read_bytes()
    (tmp / "cut.png").write_bytes(data[: len(data) // 2])
    return tmp / "cut.png"


def _corrupt_tiff(tmp: Path) -> Path:
    tifffile.imwrite(tmp / "ok.tif", np.zeros((32, 32), np.uint16))
    data = bytearray((tmp / "ok.tif").read_bytes())
    data[4:8] = b"\xff\xff\xff\x7f"  # first IFD offset far past the end
    (tmp / "bad.tif").write_bytes(bytes(data))
    return tmp / "bad.tif"


def _five_d_tiff(tmp: Path) -> Path:
    tifffile.imwrite(tmp / "t.tif", np.zeros((2, 3, 2, 8, 8), np.uint8), imagej=True)
    return tmp / "t.tif"


def _complex_tiff(tmp: Path) -> Path:
    tifffile.imwrite(tmp / "c.tif", np.zeros((8, 8), np.complex64))
    return tmp / "c.tif"


def _gray_alpha_png(tmp: Path) -> Path:
    Image.fromarray(np.zeros((8, 8, 2), np.uint8), "LA").save(tmp / "la.png")
    return tmp / "la.png"


def _huge_tiff(tmp: Path) -> Path:
    return empty_tiff(tmp / "huge.tif", (50_000, 50_000))


def _huge_png(tmp: Path) -> Path:
    (tmp / "huge.png").write_bytes(png_declaring(20_000, 20_000))
    return tmp / "huge.png"


BAD_FILES = [
    ("missing", _missing, FileNotFoundError, r"^image file not found: .*nope\.png$"),
    ("folder", _folder, ValueError, r"imgs\.png is a folder, expected an image file$"),
    ("fifo", _fifo, ValueError, r"f\.png is not a regular file \(a FIFO\); expected an image"),
    ("device", _device, ValueError, r"zero\.png is not a regular file \(a device\)"),
    ("empty file", _empty, ValueError, r"empty\.tif: the file is empty \(0 bytes\)$"),
    ("text as png", _text, ValueError, r"^cannot read image .*notes\.png: cannot identify"),
    ("truncated png", _truncated_png, ValueError, r"cut\.png: image file is truncated"),
    ("corrupt tiff", _corrupt_tiff, ValueError, r"^cannot read image .*bad\.tif"),
    ("5-D tiff", _five_d_tiff, ValueError, r"t\.tif: a 5-D stack of shape \(2, 3, 2, 8, 8\)"),
    ("complex tiff", _complex_tiff, ValueError, r"c\.tif: unsupported pixel type complex64"),
    ("gray+alpha png", _gray_alpha_png, ValueError, r"la\.png: 2-channel images"),
    (
        "50k x 50k tiff",
        _huge_tiff,
        ValueError,
        r"huge\.tif: the image has 50000 x 50000 = 2,500,000,000 pixels, more than the limit "
        r"of 178,956,970 \(MAX_IMAGE_PIXELS\); if it is genuine, raise the limit",
    ),
    (
        "20k x 20k png",
        _huge_png,
        ValueError,
        r"huge\.png: the image has 20000 x 20000 = 400,000,000 pixels, more than the limit of "
        r"178,956,970",
    ),
]


@pytest.mark.timeout(60)  # a FIFO must not hang the reader
@pytest.mark.parametrize(
    ("make", "exc", "match"), [row[1:] for row in BAD_FILES], ids=[row[0] for row in BAD_FILES]
)
def test_read_image_bad_files(tmp_path, make, exc, match):
    path = make(tmp_path)
    with pytest.raises(exc, match=match) as info:
        read_image(path)
    assert "\n" not in str(info.value)


# -- the pixel limit: one for every format, checked before decoding (item 12) ------------------
def test_huge_tiff_is_refused_from_its_header_without_decoding(tmp_path):
    path = empty_tiff(tmp_path / "huge.tif", (50_000, 50_000))
    assert path.stat().st_size < 100_000  # decoding it would take 2.5 GB
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more than the limit"):
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000


def test_stack_is_refused_from_its_header_without_decoding(tmp_path):
    path = tmp_path / "stack.tif"
    tiles = itertools.chain([np.zeros((1024, 1024), np.uint8)], itertools.repeat(None, 63))
    tifffile.imwrite(path, tiles, shape=(4, 4096, 4096), dtype=np.uint8, tile=(1024, 1024),
                     compression="zlib", photometric="minisblack")  # fmt: skip
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"a 3-D stack of shape \(4, 4096, 4096\)"):
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # the stack is 64 MB


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".bmp"])
def test_one_limit_for_every_format(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"img{suffix}"
    image = np.full((30, 40), 100, np.uint8)
    if suffix == ".tif":
        tifffile.imwrite(path, image)
    else:
        iio.imwrite(path, image)
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 1200)
    assert read_image(path).shape == (30, 40)  # exactly at the limit
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 1199)
    with pytest.raises(ValueError, match=r"30 x 40 = 1,200 pixels, more than the limit of 1,199"):
        read_image(path)
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", None)  # no limit
    assert read_image(path).shape == (30, 40)


def test_environment_variable_overrides_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "img.png"
    iio.imwrite(path, np.zeros((30, 40), np.uint8))
    monkeypatch.setenv("LABELASSIST_MAX_IMAGE_PIXELS", "1000")
    assert pixel_limit() == 1000
    with pytest.raises(ValueError, match="more than the limit of 1,000"):
        read_image(path)
    monkeypatch.setenv("LABELASSIST_MAX_IMAGE_PIXELS", "0")  # 0: no limit
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 10)
    assert pixel_limit() is None
    assert read_image(path).shape == (30, 40)
    monkeypatch.delenv("LABELASSIST_MAX_IMAGE_PIXELS")
    assert pixel_limit() == 10
    monkeypatch.setenv("LABELASSIST_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match=r"LABELASSIST_MAX_IMAGE_PIXELS='lots': expected a number"):
        read_image(path)


def test_our_limit_replaces_pillows_own(tmp_path, monkeypatch):
    # Pillow warns above PIL.Image.MAX_IMAGE_PIXELS and refuses above twice that, on
    # open; for read_image only labelassist's limit counts (Pillow's is restored after)
    path = tmp_path / "img.png"
    iio.imwrite(path, np.full((50, 60), 7, np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # Pillow refuses > 2,000
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning
        assert read_image(path).shape == (50, 60)
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 1_500)
    with pytest.raises(ValueError, match=r"50 x 60 = 3,000 pixels, more than the limit of 1,500"):
        read_image(path)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # restored
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)  # Pillow's own check still works for everyone else


def test_lifting_pillows_limit_is_safe_across_threads(tmp_path, monkeypatch):
    path = tmp_path / "img.png"
    iio.imwrite(path, np.full((50, 60), 7, np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    monkeypatch.setattr(image_module, "MAX_IMAGE_PIXELS", 10_000)
    shapes = []

    def work():
        for _ in range(20):
            shapes.append(read_image(path).shape)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shapes == [(50, 60)] * 80
    assert Image.MAX_IMAGE_PIXELS == 1_000


# -- CMYK JPEG (item 13) -----------------------------------------------------------------------
def test_cmyk_jpeg_is_read_as_rgb(tmp_path):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :8] = (200, 40, 30)
    rgb[:, 8:16] = (20, 180, 60)
    rgb[:, 16:] = (250, 250, 250)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    out = read_image(tmp_path / "cmyk.jpg")
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    # the colours come back (JPEG is lossy: compare the middle of each band)
    for cols, colour in ((slice(2, 6), rgb[0, 0]), (slice(10, 14), rgb[0, 8]),
                         (slice(18, 22), rgb[0, 16])):  # fmt: skip
        assert np.abs(out[4:12, cols].astype(int) - colour).max() <= 12


def test_palette_png_is_expanded_to_rgb(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (255, 0, 0)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), rgb)


# -- FIFO (item 11) ----------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["f.png", "f.tif", "f.jpg"])
def test_fifo_is_refused_at_once(tmp_path, name):
    # opening a FIFO for reading waits for a writer: read_image must not open it
    os.mkfifo(tmp_path / name)
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')} is not a regular file"):
        read_image(tmp_path / name)
