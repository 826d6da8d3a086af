"""Input channels: select_channels, the model's stored channels and predict(channels=)."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.model.normalize import check_channels, select_channels

# the untrained tiny model at score_threshold=0 fills its detection limit
pytestmark = pytest.mark.filterwarnings("ignore:.*reached the model's limit:UserWarning")


def _four_channels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 60000, (6, 7, 4)).astype(np.uint16)


def test_one_channel_is_gray():
    image = _four_channels()
    out = select_channels(image, 2)
    assert out.shape == (6, 7) and out.dtype == np.uint16
    np.testing.assert_array_equal(out, image[:, :, 2])
    np.testing.assert_array_equal(select_channels(image, [3]), image[:, :, 3])
    np.testing.assert_array_equal(select_channels(image, np.int64(0)), image[:, :, 0])


def test_two_channels_go_to_green_and_blue():
    image = _four_channels()
    out = select_channels(image, (3, 1))
    assert out.shape == (6, 7, 3) and out.dtype == np.uint16
    assert not out[..., 0].any()
    np.testing.assert_array_equal(out[..., 1], image[..., 3])
    np.testing.assert_array_equal(out[..., 2], image[..., 1])


def test_two_channels_of_a_synthetic_cells_image_keep_it_as_it_is():
    from labelassist.synthetic import synthetic_image

    image, _ = synthetic_image("cells", (48, 48), size=16, seed=1)
    np.testing.assert_array_equal(select_channels(image, (1, 2)), image)
    pair = image[..., [1, 2]]  # the (H, W, 2) cytoplasm + nucleus image a lab would have
    np.testing.assert_array_equal(select_channels(pair, (0, 1)), image)


def test_three_channels_reorder_and_the_input_is_untouched():
    image = _four_channels()
    before = image.copy()
    image.flags.writeable = False
    out = select_channels(image, [2, 0, 3])
    np.testing.assert_array_equal(out, before[..., [2, 0, 3]])
    np.testing.assert_array_equal(image, before)
    out[...] = 0  # a new array
    np.testing.assert_array_equal(image, before)


def test_check_channels():
    assert check_channels(None) is None
    assert check_channels(0) == (0,)
    assert check_channels((np.int32(2), 1)) == (2, 1)


@pytest.mark.parametrize(
    "image, channels, match",
    [
        (
            np.zeros((5, 5), np.uint8),
            0,
            r"needs a multichannel \(H, W, C\) image, but the image is gray",
        ),
        (np.zeros((5, 5), np.uint8), (0, 1), "the image is gray"),
        (
            np.zeros((5, 5, 3), np.uint8),
            3,
            r"channels=3 is out of range: the image has 3 channels \(indices 0-2\)",
        ),
        (np.zeros((5, 5, 2), np.uint8), (0, 2), "out of range: the image has 2 channels"),
        (np.zeros((5, 5, 3), np.uint8), (0, 0), "1, 2 or 3 distinct channel indices"),
        (np.zeros((5, 5, 5), np.uint8), (0, 1, 2, 3), "1, 2 or 3 distinct"),
        (np.zeros((5, 5, 3), np.uint8), [], "1, 2 or 3 distinct"),
        (np.zeros((5, 5, 3), np.uint8), -1, "1, 2 or 3 distinct"),
        (np.zeros((5, 5, 3), np.uint8), True, "1, 2 or 3 distinct"),
        (np.zeros((5, 5, 3), np.uint8), 1.0, "1, 2 or 3 distinct"),
        (np.zeros((5, 5, 3), np.uint8), "0,1", "1, 2 or 3 distinct"),
        (np.zeros((5, 5, 3), np.uint8), None, "channels must be given"),
        (np.zeros((2, 5, 5, 3), np.uint8), 0, r"needs an \(H, W, C\) image, got shape"),
    ],
)
def test_select_channels_errors(image, channels, match):
    with pytest.raises(ValueError, match=match) as info:
        select_channels(image, channels)
    assert "\n" not in str(info.value)


def test_select_channels_refuses_non_arrays():
    import torch

    with pytest.raises(TypeError, match="image must be a numpy array"):
        select_channels(torch.zeros(4, 4, 3), 0)
    with pytest.raises(TypeError, match="image must be a numpy array"):
        select_channels([[1, 2]], 0)


# -- predict(channels=) ----------------------------------------------------------------------


def _cells():
    from labelassist.synthetic import synthetic_image

    image, _ = synthetic_image("cells", (64, 80), size=20, seed=3)
    return image


def test_predict_two_channel_image_equals_its_rgb_layout():
    model = tiny_model()
    rgb = _cells()
    pair = np.ascontiguousarray(rgb[..., [1, 2]])  # (H, W, 2): cytoplasm, nucleus
    expected = model.predict(rgb, score_threshold=0.0)
    assert len(expected) > 0
    assert model.predict(pair, channels=(0, 1), score_threshold=0.0) == expected
    # order matters: swapped channels are another image
    assert model.predict(pair, channels=(1, 0), score_threshold=0.0) != expected


def test_predict_picks_gray_and_rgb_channels():
    model = tiny_model()
    rng = np.random.default_rng(4)
    five = rng.integers(0, 255, (48, 56, 5)).astype(np.uint8)
    gray = model.predict(five, channels=3, score_threshold=0.0)
    assert gray == model.predict(np.ascontiguousarray(five[..., 3]), score_threshold=0.0)
    rgb = model.predict(five, channels=[4, 0, 2], score_threshold=0.0)
    assert rgb == model.predict(np.ascontiguousarray(five[..., [4, 0, 2]]), score_threshold=0.0)
    assert gray.image_shape == rgb.image_shape == (48, 56)


def test_model_channels_are_the_default_and_saved(tmp_path):
    from labelassist.model import load_model

    model = tiny_model()
    rgb = _cells()
    expected = model.predict(np.ascontiguousarray(rgb[..., 1]), score_threshold=0.0)
    blue = model.predict(np.ascontiguousarray(rgb[..., 2]), score_threshold=0.0)
    model.set_input(channels=1)
    assert model.predict(rgb, score_threshold=0.0) == expected
    loaded = load_model(model.save(tmp_path / "m.pt"), device="cpu")
    assert loaded.channels == (1,)
    assert loaded.predict(rgb, score_threshold=0.0) == expected
    # an explicit choice wins over the stored one
    assert loaded.predict(rgb, channels=2, score_threshold=0.0) == blue


@pytest.mark.parametrize(
    "images, channels, match",
    [
        (np.zeros((32, 32), np.uint8), 0, r"^image: channels=0 needs a multichannel .* gray"),
        (
            np.zeros((32, 32, 3), np.uint8),
            3,
            r"^image: channels=3 is out of range: the image has 3",
        ),
        (
            [np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8)],
            (0, 1),
            r"^images\[1\]: channels=\(0, 1\) needs a multichannel",
        ),
        (np.zeros((32, 32, 3), np.uint8), [1, 1], "1, 2 or 3 distinct channel indices"),
        (np.zeros((32, 32, 2), np.uint8), None, "2-channel images"),  # and no channels
    ],
)
def test_predict_channel_errors(images, channels, match):
    model = tiny_model()
    with pytest.raises(ValueError, match=match) as info:
        model.predict(images, channels=channels)
    assert "\n" not in str(info.value)


def test_stored_channels_on_a_gray_image_say_so():
    model = tiny_model().set_input(channels=[1, 2])
    with pytest.raises(ValueError, match=r"channels=\(1, 2\) needs a multichannel"):
        model.predict(np.zeros((32, 32), np.uint8))


# -- preannotate and the command line --------------------------------------------------------


def test_preannotate_with_channels_takes_any_channel_count():
    from labelassist.bulk import preannotate

    model = tiny_model()
    rgb = _cells()
    pair = np.ascontiguousarray(rgb[..., [1, 2]])
    ds = preannotate([pair], model, channels=[0, 1], score_threshold=0.0, progress=False)
    assert ds.failed == [] and ds.instances[1] == model.predict(rgb, score_threshold=0.0)
    # without channels a 2-channel array is refused, alone
    with pytest.warns(UserWarning, match="1 of 2 images"):
        ds = preannotate([rgb, pair], model, score_threshold=0.0, progress=False)
    [(name, reason)] = ds.failed
    assert name == "array_0001" and "2-channel images" in reason
    # with channels a gray image fails alone, saying why
    with pytest.warns(UserWarning, match="1 of 2 images"):
        ds = preannotate([rgb, rgb[..., 0]], model, channels=2, score_threshold=0.0, progress=False)
    [(name, reason)] = ds.failed
    assert name == "array_0001" and "needs a multichannel" in reason
    assert ds.instances[1] == model.predict(rgb[..., 2].copy(), score_threshold=0.0)
    with pytest.raises(ValueError, match="1, 2 or 3 distinct channel indices"):
        preannotate([rgb], model, channels=[0, 0], progress=False)


def test_preannotate_uses_the_models_channels():
    from labelassist.bulk import preannotate

    model = tiny_model()
    rgb = _cells()
    expected = model.predict(rgb[..., 1].copy(), score_threshold=0.0)
    model.set_input(channels=1)
    ds = preannotate([rgb], model, score_threshold=0.0, progress=False)
    assert ds.instances[1] == expected


def test_cli_channels(tmp_path, capsys):
    import imageio.v3 as iio

    from labelassist.cli import main
    from labelassist.coco import read_coco

    model = tiny_model()
    rgb = _cells()
    (tmp_path / "imgs").mkdir()
    iio.imwrite(tmp_path / "imgs" / "cells.png", rgb)
    path = model.save(tmp_path / "m.pt")
    base = ["preannotate", str(tmp_path / "imgs"), "--model", str(path), "--no-progress"]
    base += ["--score-threshold", "0.0"]
    assert main([*base, "--out", str(tmp_path / "p.json"), "--channels", "2,1"]) == 0
    got = read_coco(tmp_path / "p.json").instances[1]
    swapped = np.zeros_like(rgb)
    swapped[..., 1], swapped[..., 2] = rgb[..., 2], rgb[..., 1]
    expected = model.predict(swapped, score_threshold=0.0)
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose(np.sort(got.scores), np.sort(expected.scores), rtol=1e-5)
    capsys.readouterr()
    for bad in ("0,0", "a", "1,2,3,4", "-1", ""):
        assert main([*base, "--out", str(tmp_path / "q.json"), "--channels", bad]) == 2
        assert "argument --channels: must be 1 to 3 distinct" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "r.json"), "--channels", "5"]) == 1
    err = capsys.readouterr().err
    assert "skipped imgs/cells.png: prediction failed" in err
    assert "channels=(5,) is out of range: the image has 3 channels" in err


def test_encode_and_segment_pick_the_channels():
    model = tiny_model()
    rgb = _cells()
    gray = np.ascontiguousarray(rgb[..., 1])
    box = [[10, 10, 40, 40]]
    expected = model.segment(model.encode(gray), boxes=box, score_threshold=0.0)
    assert model.segment(model.encode(rgb, channels=1), boxes=box, score_threshold=0.0) == expected
    model.set_input(channels=1)
    assert model.segment(model.encode(rgb), boxes=box, score_threshold=0.0) == expected
    assert model.segment(rgb, boxes=box, score_threshold=0.0) == expected
    with pytest.raises(ValueError, match=r"^image: channels=\(1,\) needs a multichannel"):
        model.encode(gray)
