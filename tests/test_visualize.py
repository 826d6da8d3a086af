import numpy as np
import pytest
import shapely

from labelassist.instances import Instances
from labelassist.visualize import draw_outlines, to_display


def test_to_display_dtypes_and_shapes():
    gray16 = np.linspace(0, 4000, 64, dtype=np.uint16).reshape(8, 8)
    out = to_display(gray16, percentiles=(0, 100))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255
    rgba = np.zeros((4, 5, 4), np.uint8)
    assert to_display(rgba).shape == (4, 5, 3)
    flat = np.full((3, 3), 7.0, np.float32)
    assert (to_display(flat) == 0).all()  # no division by zero on a constant image


def test_outlines_follow_the_polygon_and_keep_the_input():
    image = np.zeros((20, 20), np.uint8)
    donut = shapely.box(2, 2, 14, 14).difference(shapely.box(6, 6, 10, 10))
    inst = Instances([donut], [1], [1.0], (20, 20))
    out = draw_outlines(image, inst)
    drawn = out.any(axis=2)
    # outer ring on the boundary pixels of the 12x12 square, inner ring around the hole
    assert drawn[2, 2:14].all() and drawn[13, 2:14].all() and drawn[2:14, 2].all()
    assert drawn[5, 6:10].all() and drawn[10, 6:10].all()  # pixels bordering the hole
    assert not drawn[7:9, 7:9].any()  # hole interior untouched
    assert not drawn[15:, :].any() and not drawn[:, 15:].any()
    assert image.max() == 0  # input not modified


def test_colour_by_instance_differs():
    inst = Instances([shapely.box(1, 1, 4, 4), shapely.box(6, 6, 9, 9)], [0, 0], None, (10, 10))
    by_label = draw_outlines(np.zeros((10, 10)), inst)
    by_instance = draw_outlines(np.zeros((10, 10)), inst, by="instance")
    assert (by_label[1, 1] == by_label[6, 6]).all()
    assert not (by_instance[1, 1] == by_instance[6, 6]).all()


def test_empty_instances_leave_the_image():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    out = draw_outlines(image, Instances.empty((4, 4)))
    assert (out[..., 0] == image).all()


def test_errors():
    inst = Instances.empty((4, 4))
    with pytest.raises(ValueError, match="does not match instances.image_shape"):
        draw_outlines(np.zeros((5, 4)), inst)
    with pytest.raises(ValueError, match="by must be 'label' or 'instance'"):
        draw_outlines(np.zeros((4, 4)), inst, by="class")
