"""The step recipe's data: prepared images, crops inside the reviewed region, copy-paste."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch

from labelassist.geometry import polygons_to_masks
from labelassist.instances import Instances
from labelassist.model.scale import rescale_instances
from labelassist.synthetic import synthetic_nuclei
from labelassist.train.crops import (
    CropImages,
    PreparedImage,
    copy_paste,
    crop_region,
    prepare_images,
    training_factor,
)

NORM = {"mode": "auto", "percentiles": [0.0, 100.0]}


def bright_objects(shape=(96, 128), boxes=((10, 10, 22, 20), (40, 30, 52, 44), (80, 60, 90, 75))):
    """A 0/255 image whose objects (boxes x0, y0, x1, y1) are exactly the bright pixels."""
    image = np.zeros(shape, np.uint8)
    for x0, y0, x1, y1 in boxes:
        image[y0:y1, x0:x1] = 255
    inst = Instances([shapely.box(*b) for b in boxes], [0] * len(boxes), None, shape)
    return image, inst


def crops(prepared, n=24, **options):
    settings = dict(
        length=n,
        crop_size=48,
        augment=0.0,
        scale_range=(0.75, 1.33),
        crop_on_objects=0.8,
        copy_paste=0.0,
        paste_max=4,
        seed=0,
    )
    settings.update(options)
    dataset = CropImages(prepared, **settings)
    return [dataset[i] for i in range(len(dataset))]


def test_prepare_images_keeps_exact_masks_and_maps_labels():
    image, inst = synthetic_nuclei((64, 80), n=5, seed=3)
    [prepared] = prepare_images([(image, inst)], normalization=NORM, label_ids=[7])
    assert prepared.image.dtype == torch.uint8 and tuple(prepared.image.shape) == (3, 64, 80)
    assert prepared.labels.tolist() == [7] * len(inst)
    truth = polygons_to_masks(inst.polygons, (64, 80))
    for k, (x0, y0, x1, y1) in enumerate(prepared.boxes):
        full = np.zeros((64, 80), bool)
        full[y0:y1, x0:x1] = prepared.masks[k]
        assert np.array_equal(full, truth[k])


def test_prepare_images_rescales_image_and_instances_alike():
    image, inst = bright_objects()
    [prepared] = prepare_images([(image, inst)], normalization=NORM, label_ids=[1], factor=0.5)
    assert tuple(prepared.image.shape[1:]) == (48, 64)
    expected = rescale_instances(inst, 0.5, (48, 64))
    truth = polygons_to_masks(expected.polygons, (48, 64))
    for k, (x0, y0, x1, y1) in enumerate(prepared.boxes):
        assert truth[k, y0:y1, x0:x1].sum() == prepared.masks[k].sum() > 0


def test_crop_region_rule():
    boxes = np.array([[10, 10, 20, 20], [30, 12, 40, 22]])
    # median box size 10: grown by 10 px each side, clipped to the image
    assert crop_region(boxes, (100, 100)) == (0, 0, 50, 32)
    assert crop_region(boxes + 50, (100, 100)) == (50, 50, 100, 82)
    assert crop_region(np.zeros((0, 4)), (30, 40)) == (0, 0, 40, 30)


def test_crops_never_show_the_unreviewed_part_of_a_partly_annotated_image():
    """Objects annotated in the top-left only: the rest of the image (here marked by
    value 255 everywhere outside the annotated region) is never cropped."""
    image, inst = bright_objects((128, 128), boxes=((8, 8, 18, 18), (24, 10, 34, 20)))
    image = image.copy()
    image[:, 46:] = 255  # stands for unreviewed objects
    image[38:, :] = 255
    [prepared] = prepare_images([(image, inst)], normalization=NORM, label_ids=[1])
    assert prepared.region == (0, 0, 44, 30)
    for picture, _ in crops([prepared], crop_size=64, copy_paste=1.0):
        assert picture.shape[-2:] == (30, 44) or picture.shape[-2:] == (44, 30)
    [whole] = prepare_images([(image, inst)], normalization=NORM, label_ids=[1], region="image")
    seen = [picture for picture, _ in crops([whole], crop_size=64)]
    assert max(p.shape[-1] for p in seen) == 64


@pytest.mark.parametrize("paste", [0.0, 1.0])
def test_crop_masks_are_exactly_the_bright_pixels(paste):
    """Crops, flips, rotations and copy-paste move image and masks together, exactly."""
    image, inst = bright_objects()
    prepared = prepare_images([(image, inst)], normalization=NORM, label_ids=[1])
    items = crops(prepared, copy_paste=paste)
    assert sum(len(t["masks"]) for _, t in items) > len(items)  # objects were seen
    for picture, target in items:
        union = target["masks"].bool().any(0)
        assert torch.equal(picture[0] > 0.5, union)
        boxes = target["boxes"]
        for mask, box in zip(target["masks"], boxes, strict=True):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_scale_jitter_keeps_masks_on_the_objects():
    image, inst = bright_objects()
    prepared = prepare_images([(image, inst)], normalization=NORM, label_ids=[1])
    sizes = set()
    for picture, target in crops(prepared, augment=1.0, scale_range=(0.5, 2.0)):
        sizes.add(tuple(picture.shape[-2:]))
        union = target["masks"].bool().any(0)
        if union.any():  # nearest-neighbour masks vs bilinear image: edges may differ
            assert (picture[0][union] > 0.2).float().mean() > 0.9
    assert len(sizes) > 3


def test_crops_repeat_for_the_same_seed_and_epoch():
    image, inst = synthetic_nuclei((96, 96), n=6, seed=1)
    prepared = prepare_images([(image, inst)], normalization=NORM, label_ids=[1])
    dataset = CropImages(
        prepared,
        length=4,
        crop_size=48,
        augment=1.0,
        scale_range=(0.75, 1.33),
        crop_on_objects=0.8,
        copy_paste=0.5,
        paste_max=4,
        seed=5,
    )
    first = [dataset[i] for i in range(4)]
    again = [dataset[i] for i in range(4)]
    dataset.epoch = 1
    other = [dataset[i] for i in range(4)]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not all(
        a[0].shape == b[0].shape and torch.equal(a[0], b[0])
        for a, b in zip(first, other, strict=True)
    )


def test_copy_paste_removes_hidden_parts_from_the_masks_below():
    image = torch.zeros((1, 6, 6), dtype=torch.uint8)
    below = torch.zeros((2, 6, 6), dtype=torch.uint8)
    below[0, 0:3, 0:3] = 1  # partly hidden
    below[1, 2:4, 2:4] = 1  # wholly hidden
    pixels = torch.full((1, 3, 3), 200, dtype=torch.uint8)
    mask = np.ones((3, 3), bool)
    mask[0, 0] = False  # the pasted object's exact outline, not its box
    top = (torch.full((1, 2, 2), 50, dtype=torch.uint8), np.ones((2, 2), bool), 2)
    out, masks, labels = copy_paste(
        image, below, torch.tensor([0, 0]), [(pixels, mask, 1), top], [(1, 1), (5, 5)]
    )
    assert labels.tolist() == [0, 0, 1, 2]
    assert masks[1].sum() == 0  # hidden: dropped later by the target's sanitizer
    expected = np.zeros((6, 6), bool)
    expected[0:3, 0:3] = True
    expected[1:3, 1:3] = False
    expected[1, 1] = True  # the corner the pasted object leaves free
    assert np.array_equal(masks[0].numpy().astype(bool), expected)
    assert masks[2].sum() == 8 and masks[3].sum() == 1  # the top paste is cut at the border
    assert out[0, 2, 2] == 200 and out[0, 1, 1] == 0 and out[0, 5, 5] == 50
    assert image.sum() == 0 and below.sum() == 13  # inputs unchanged


def test_training_factor_brings_objects_to_the_model_size():
    inst = Instances([shapely.box(0, 0, 20, 20)] * 3, [0, 0, 0], None, (64, 64))
    factor, size = training_factor(None, [inst])
    assert factor == 1.0 and size == pytest.approx(2 * np.sqrt(400 / np.pi))
    factor, _ = training_factor(size / 2, [inst, Instances.empty((8, 8))])
    assert factor == pytest.approx(0.5)
    assert training_factor(10.0, [Instances.empty((8, 8))]) == (1.0, None)


def test_prepared_image_holds_what_crop_images_reads():
    empty = PreparedImage(
        torch.zeros((3, 40, 40), dtype=torch.uint8),
        np.zeros(0, np.int64),
        np.zeros((0, 4), np.int64),
        [],
        (0, 0, 40, 40),
    )
    [(picture, target)] = crops([empty], n=1, copy_paste=1.0)  # nothing to paste: a negative
    assert tuple(picture.shape) == (3, 40, 40) and len(target["masks"]) == 0
    assert target["boxes"].shape == (0, 4)
