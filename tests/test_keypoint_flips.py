"""Mirror images swap left/right keypoints: `flip_pairs`, `flip_order`, `swap_sides`, pastes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import one_thread  # noqa: F401 (autouse fixture)
from torchvision import tv_tensors
from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights

from labelassist.model.keypoint_flips import flip_order, flip_pairs
from labelassist.train.augment import augment, swap_sides
from labelassist.train.paste import paste_points

#: torchvision's detection reference (references/detection/transforms.py,
#: ``_flip_coco_person_keypoints``): the COCO person keypoint order after a horizontal flip.
TORCHVISION_COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def test_coco_person_keypoints_flip_as_torchvisions_reference():
    names = KeypointRCNN_ResNet50_FPN_Weights.COCO_V1.meta["keypoint_names"]
    assert flip_order(names) == TORCHVISION_COCO_FLIP


@pytest.mark.parametrize(
    ("names", "pairs"),
    [
        (["head", "tail"], []),
        (["pole"], []),
        ([], []),
        (["left_eye", "right_eye"], [(0, 1)]),
        (["right_eye", "nose", "left_eye"], [(0, 2)]),
        (["eye_left", "eye_right", "Left ear", "Right ear"], [(0, 1), (2, 3)]),
        (["leftPaw", "head", "rightPaw", "LEFT_WING", "RIGHT_WING"], [(0, 2), (3, 4)]),
        (["front-left-leg", "front-right-leg"], [(0, 1)]),
        (["left_eye", "nose"], []),  # no partner
        (["leftover", "rightover", "bright", "upright"], []),  # not side words
        (["left", "right"], [(0, 1)]),
    ],
)  # fmt: skip
def test_flip_pairs(names, pairs):
    assert flip_pairs(names) == pairs
    order = flip_order(names)
    if pairs:
        assert order is not None and sorted(order) == list(range(len(names)))
        assert all(order[i] == j and order[j] == i for i, j in pairs)
    else:
        assert order is None


def test_swap_sides_by_hand_and_bad_input():
    points = torch.tensor([[[1.0, 2.0, 2.0], [3.0, 4.0, 1.0], [5.0, 6.0, 0.0]]])
    assert swap_sides(points, [2, 1, 0]).tolist() == [
        [[5.0, 6.0, 0.0], [3.0, 4.0, 1.0], [1.0, 2.0, 2.0]]
    ]
    assert swap_sides(points, None) is points
    with pytest.raises(ValueError, match=r"^flip_order must be a permutation of the 3 keypoint"):
        swap_sides(points, [0, 0, 1])
    with pytest.raises(ValueError, match=r"^flip_order must be a permutation of the 3 keypoints"):
        paste_points(points[0].numpy(), (0, 0, 8, 8), (0, 0), flip_x=True, flip_order=[1, 0])


def test_paste_points_swap_once_per_flip():
    points = np.array([[1.5, 2.5, 2.0], [6.5, 2.5, 2.0]])  # left, right
    box, at = (0, 0, 8, 4), (10, 10)
    plain = paste_points(points, box, at, flip_x=True)
    swapped = paste_points(points, box, at, flip_x=True, flip_order=[1, 0])
    assert swapped.tolist() == plain[[1, 0]].tolist()
    # mirrored left-right, the point on the left of the patch is the pasted object's left
    assert swapped[0, 0] < swapped[1, 0]
    both = dict(flip_x=True, flip_y=True)  # a half turn: no mirror, no swap
    assert paste_points(points, box, at, **both, flip_order=[1, 0]).tolist() == (
        paste_points(points, box, at, **both).tolist()
    )


def _marked_sample(size=24):
    """An image with three dots of distinct values (a chiral triangle), one object whose
    keypoints ``left``, ``right``, ``apex`` sit on them."""
    image = torch.zeros(1, size, size)
    dots = {"left": (4, 16), "right": (17, 15), "apex": (9, 5)}  # (x, y) pixels
    for value, (x, y) in zip((0.3, 0.6, 0.9), dots.values(), strict=True):
        image[0, y, x] = value
    masks = torch.zeros(1, size, size, dtype=torch.uint8)
    masks[0, 3:20, 2:20] = 1
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor([[2.0, 3.0, 20.0, 20.0]]), format="XYXY", canvas_size=(size, size)
        ),
        "masks": tv_tensors.Mask(masks),
        "labels": torch.tensor([1]),
        "keypoints": torch.tensor([[[x + 0.5, y + 0.5, 2.0] for x, y in dots.values()]]),
    }
    return image, target


def _dot_at(image, point):
    x, y = int(point[0]), int(point[1])
    return round(float(image[0, y, x]), 1)


def _mirrored(image):
    """Whether the dots' triangle (0.3 -> 0.6 -> 0.9) turns the other way than at first
    (counter-clockwise in (x, y) with y down): a mirror image, found from the pixels."""
    where = {
        v: torch.nonzero((image[0] - v).abs() < 0.05)[0].flip(0).float() for v in (0.3, 0.6, 0.9)
    }
    a, b, c = where[0.3], where[0.6], where[0.9]
    cross = (b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]
    return bool(cross > 0)


def test_augment_swaps_left_and_right_on_mirror_images_only():
    """Over seeds giving every flip and rotation: with the flip order, ``left`` sits on the
    dot first marked ``right`` exactly when the image is a mirror image (found from the
    triangle of dots, not from the augmentation's choices); without it, never."""
    seen = set()
    for seed in range(24):
        results = []
        for order in (None, [1, 0, 2]):
            image, target = _marked_sample()
            torch.manual_seed(seed)
            out, moved = augment(image, target, 0.0, (1.0, 1.0), flip_order=order)
            results.append((out, moved["keypoints"][0]))
        (out, plain), (out2, swapped) = results
        assert torch.equal(out, out2)
        mirror = _mirrored(out)
        seen.add(mirror)
        assert [_dot_at(out, p) for p in plain] == [0.3, 0.6, 0.9]
        expected = [0.6, 0.3, 0.9] if mirror else [0.3, 0.6, 0.9]
        assert [_dot_at(out, p) for p in swapped] == expected
    assert seen == {True, False}


def test_training_crops_swap_left_and_right_on_mirror_images_only():
    """The step recipe's crops (`CropImages`, what `finetune` trains on) mirror keypoints
    the same way: ``left`` lands on the dot first marked ``right`` exactly when the crop
    is a mirror image (from its pixels)."""
    from labelassist.train.crops import CropImages, PreparedImage

    size = 24
    image = torch.zeros(3, size, size, dtype=torch.uint8)
    dots = {"left": (4, 16), "right": (17, 15), "apex": (9, 5)}  # (x, y) pixels
    for value, (x, y) in zip((77, 153, 230), dots.values(), strict=True):
        image[:, y, x] = value  # 0.3, 0.6, 0.9 once divided by 255
    mask = np.ones((17, 18), bool)  # the object: box x 2-20, y 3-20
    points = np.array([[[x + 0.5, y + 0.5, 2.0] for x, y in dots.values()]])
    prepared = PreparedImage(
        image, np.array([1]), np.array([[2, 3, 20, 20]]), [mask], (0, 0, size, size), points
    )
    seen = set()
    for order, swaps in ((None, False), ([1, 0, 2], True)):
        crops = CropImages(
            [prepared], length=32, crop_size=None, augment=0.0, scale_range=(1.0, 1.0),
            crop_on_objects=0.0, copy_paste=0.0, paste_max=1, seed=3, flip_order=order,
        )  # fmt: skip
        for index in range(len(crops)):
            out, target = crops[index]
            mirror = _mirrored(out)
            seen.add(mirror)
            got = [_dot_at(out, p) for p in target["keypoints"][0]]
            assert got == ([0.6, 0.3, 0.9] if mirror and swaps else [0.3, 0.6, 0.9])
    assert seen == {True, False}
