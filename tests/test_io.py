import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from labelassist.io import check_image, read_image

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
