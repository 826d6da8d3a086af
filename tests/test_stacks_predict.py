"""`predict_stack`: planes batched through ``Model.predict``, channels, linking, lazy stacks."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist import Instances
from labelassist.stacks import predict_stack, stack_planes


class BoxModel:
    """A real object with the public ``predict`` interface: one box per bright region's
    bounding box, so the expected ids follow from the pixels. Records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict]] = []

    def predict(self, images, **options):
        self.calls.append((len(images), options))
        out = []
        for image in images:
            gray = image if image.ndim == 2 else image[..., 0]
            rows, cols = np.nonzero(gray > 100)
            polygons = []
            if len(rows):
                polygons = [shapely.box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)]
            out.append(Instances(polygons, None, None, gray.shape))
        return out


@pytest.mark.filterwarnings("ignore:.*reached the model's limit")
def test_predict_stack_with_a_tiny_untrained_model():
    model = tiny_model()
    stack = np.random.default_rng(0).integers(0, 255, (3, 64, 64)).astype(np.uint8)
    result = predict_stack(
        model,
        stack,
        axes="ZYX",
        score_threshold=0.0,
        merge_threshold=None,
        min_planes=1,
        progress=False,
    )
    assert (result.axes, result.shape, len(result)) == ("ZYX", (3, 64, 64), 3)
    expected = model.predict(list(stack), score_threshold=0.0)
    for got, want in zip(result.planes, expected, strict=True):
        assert got.replace(extra={}) == want  # the model's own instances, plus ids
        assert got.extra["object_id"].dtype == np.int64


def test_batches_of_planes_go_to_one_predict_call_each():
    model = BoxModel()
    stack = np.zeros((5, 16, 16), np.uint8)
    stack[1:4, 4:8, 4:8] = 200
    result = predict_stack(model, stack, axes="ZYX", batch_size=2, progress=False)
    assert [n for n, _ in model.calls] == [2, 2, 1]
    assert model.calls[0][1] == {"score_threshold": 0.5, "tile_size": None, "batch_size": 2}
    assert [p.extra["object_id"].tolist() for p in result.planes] == [[], [1], [1], [1], []]


def test_time_and_channels_in_any_order():
    model = BoxModel()
    stack = np.zeros((16, 3, 2, 16), np.uint8)  # Y, T, C, X
    stack[2:6, 0, 0, 2:6] = 200  # channel 0 at t = 0
    stack[2:6, 2, 0, 3:7] = 200  # moved by one pixel at t = 2; nothing at t = 1
    stack[10:14, :, 1, 10:14] = 200  # only in channel 1
    result = predict_stack(model, stack, axes="YTCX", channels=0, progress=False)
    assert (result.axes, result.shape) == ("TYX", (3, 16, 16))
    assert [p.extra["object_id"].tolist() for p in result.planes] == [[1], [], [1]]
    result = predict_stack(model, stack, axes="YTCX", channels=1, progress=False)
    assert [p.extra["object_id"].tolist() for p in result.planes] == [[1], [1], [1]]


def test_tz_stack_with_rgb_channels_last():
    model = BoxModel()
    stack = np.zeros((2, 2, 12, 12, 3), np.uint8)
    stack[:, :, 2:6, 2:6, :] = 200
    result = predict_stack(model, stack, axes="TZYXC", progress=False)
    assert (result.axes, result.shape) == ("TZYX", (2, 2, 12, 12))
    assert [p.extra["object_id"].tolist() for p in result.planes] == [[1], [1], [1], [1]]


def test_lazy_dask_stack_is_read_a_batch_at_a_time():
    da = pytest.importorskip("dask.array")
    stack = np.zeros((4, 16, 16), np.uint8)
    stack[:, 3:9, 3:9] = 200
    lazy = da.from_array(stack, chunks=(1, 16, 16))
    result = predict_stack(BoxModel(), lazy, axes="ZYX", progress=False)
    assert [p.extra["object_id"].tolist() for p in result.planes] == [[1]] * 4


def test_stack_planes_loaders():
    stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # C, Z, Y, X
    planes, layout, shape = stack_planes(stack, axes="CZYX", channels=[1])
    assert (len(planes), layout, shape) == (3, "ZYX", (3,))
    np.testing.assert_array_equal(planes[2](), stack[1, 2])
    planes, layout, shape = stack_planes(stack[0, 0], axes="YX")
    assert (len(planes), layout, shape) == (1, "YX", ())
    np.testing.assert_array_equal(planes[0](), stack[0, 0])


def test_model_predict_stack_has_the_same_options_and_defaults():
    """`Model.predict_stack` is a thin method: its options (and their defaults) are those
    of `labelassist.stacks.predict_stack`, so neither drifts from the other."""
    import inspect

    from labelassist.model import Model
    from labelassist.stacks import predict_stack

    method = dict(inspect.signature(Model.predict_stack).parameters)
    function = dict(inspect.signature(predict_stack).parameters)
    method.pop("self"), function.pop("model")
    assert {k: p.default for k, p in method.items()} == {k: p.default for k, p in function.items()}


def test_a_model_with_stored_channels_picks_them_once():
    """A fine-tuned model remembers its channels: a 2-channel stack needs no channels=,
    and an explicit choice replaces the stored one instead of being applied twice."""
    from labelassist.model import load_model

    model = load_model(None, classes=["cell"], device="cpu").set_input(channels=(0, 1))
    rng = np.random.default_rng(0)
    stack = (rng.random((2, 2, 48, 48)) * 255).astype(np.uint8)  # Z, C, Y, X
    result = predict_stack(model, stack, axes="ZCYX", score_threshold=0.99, progress=False)
    assert result.axes == "ZYX" and len(result.planes) == 2
    # picking one channel explicitly: the plane given to the model is not reduced twice
    one = predict_stack(model, stack, axes="ZCYX", channels=1, score_threshold=0.99, progress=False)
    assert len(one.planes) == 2
    with pytest.raises(ValueError, match="channels"):
        predict_stack(model, stack, axes="ZCYX", channels=5, progress=False)


@pytest.fixture(scope="module")
def starter():
    from labelassist.model import load_model

    return load_model("starter", device="cpu")


def test_object_size_rescales_every_plane_as_model_predict_does(starter):
    """A number goes to ``Model.predict`` for every plane: the planes' instances are the
    model's own at that size (polygons on the stack's pixels), plus the ids."""
    from labelassist.synthetic_stacks import synthetic_zstack

    stack, _, _ = synthetic_zstack((2, 96, 96), n=4, radius=(14.0, 18.0), seed=2)
    result = predict_stack(
        starter, stack, axes="ZYX", object_size=32, merge_threshold=None, min_planes=1,
        progress=False,
    )  # fmt: skip
    expected = starter.predict(list(stack), object_size=32)
    native = starter.predict(list(stack))
    assert [len(p) for p in expected] != [0, 0]
    for got, want in zip(result.planes, expected, strict=True):
        assert got.image_shape == (96, 96)
        assert got.replace(extra={}) == want
    assert [p.replace(extra={}) for p in result.planes] != native  # the size made a difference


def test_auto_object_size_is_measured_once_for_the_whole_stack(starter):
    """``"auto"``: one size for every plane, the median of the model's estimates on the
    planes (all of them here: fewer than AUTO_PLANES)."""
    from labelassist.synthetic_stacks import synthetic_zstack

    stack, _, _ = synthetic_zstack((3, 96, 96), n=4, radius=(14.0, 18.0), seed=2)
    sizes = starter.estimate_object_size(list(stack))
    assert all(s is not None for s in sizes)
    result = predict_stack(
        starter, stack, axes="ZYX", object_size="auto", merge_threshold=None, min_planes=1,
        progress=False,
    )  # fmt: skip
    expected = starter.predict(list(stack), object_size=float(np.median(sizes)))
    assert [p.replace(extra={}) for p in result.planes] == expected
    # "auto" is the default of both entry points
    default = predict_stack(starter, stack, axes="ZYX", merge_threshold=None, min_planes=1,
                            progress=False)  # fmt: skip
    assert [p.replace(extra={}) for p in default.planes] == expected
    method = starter.predict_stack(stack, axes="ZYX", merge_threshold=None, min_planes=1,
                                   progress=False)  # fmt: skip
    assert [p.replace(extra={}) for p in method.planes] == expected
    native = starter.predict(list(stack))
    assert expected != native  # the estimate made a difference


def test_auto_object_size_on_an_empty_stack_warns_and_keeps_the_default_scale(starter):
    stack = np.zeros((3, 64, 64), np.uint8)
    with pytest.warns(UserWarning, match='object_size="auto" found no objects in 3 planes'):
        result = predict_stack(starter, stack, axes="ZYX", object_size="auto", progress=False)
    assert [len(p) for p in result.planes] == [0, 0, 0]


def test_object_size_none_leaves_the_model_default():
    """None: nothing passed on; a number: passed on; the default "auto" with a model that
    cannot estimate sizes (not a labelassist.Model): its own scale, nothing passed on."""
    model = BoxModel()
    assert not hasattr(model, "estimate_object_size")
    predict_stack(model, np.zeros((2, 8, 8), np.uint8), axes="ZYX", object_size=None,
                  progress=False)  # fmt: skip
    assert "object_size" not in model.calls[0][1]
    predict_stack(model, np.zeros((2, 8, 8), np.uint8), axes="ZYX", object_size=12, progress=False)
    assert model.calls[1][1]["object_size"] == 12.0
    predict_stack(model, np.zeros((2, 8, 8), np.uint8), axes="ZYX", progress=False)
    assert "object_size" not in model.calls[2][1]
