"""Data augmentation for microscopy: flips, 90° rotations, scale jitter, intensity jitter.

Geometric transforms move the image, the boxes and the masks together (torchvision's
``transforms.v2`` on ``tv_tensors``) and the keypoints with them (`flip_points`,
`rotate_points`, `zoom_points`: exact maps in COCO pixel coordinates, written here because
torchvision 0.29's ``KeyPoints`` kernels mix conventions: its flips map ``x`` to
``W - 1 - x``, its rotations ``x`` to ``W - x``); intensity transforms change the image
only. All randomness comes from torch's global generator, which the dataset seeds per
``(seed, epoch, index)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "augment",
    "flip_points",
    "intensity_jitter",
    "rotate_points",
    "swap_sides",
    "zoom_points",
]

Target = dict[str, Any]


def augment(
    image: torch.Tensor,
    target: Target,
    strength: float,
    scale_range: tuple[float, float],
    *,
    flip_order: Sequence[int] | None = None,
) -> tuple[torch.Tensor, Target]:
    """Random geometric (image, boxes and masks together) and intensity augmentation.

    Parameters
    ----------
    image : Tensor of shape (C, H, W), float32 in [0, 1]
        The network input.
    target : dict
        ``boxes`` (``tv_tensors.BoundingBoxes``), ``masks`` (``tv_tensors.Mask``),
        ``labels`` and optionally ``keypoints`` (Tensor (N, K, 3), COCO pixel
        coordinates; moved with the image, visibility kept: `sanitize` hides the ones
        moved outside).
    strength : float
        0 (only flips and rotations) to 1 (full scale and intensity jitter).
    scale_range : (float, float)
        Scale jitter range at full strength.
    flip_order : sequence of int, optional
        The keypoint columns after a mirror image (`labelassist.model.keypoint_flips.flip_order`:
        ``left_eye`` and ``right_eye`` swap); each flip applies it (`swap_sides`). None:
        no keypoint changes name.

    Returns
    -------
    image : Tensor of shape (C, H', W'), float32 in [0, 1]
        (H', W') is (W, H) after an odd number of 90° rotations.
    target : dict
        The transformed boxes and masks (some may now be empty).
    """
    from torchvision import tv_tensors  # heavy: torchvision
    from torchvision.transforms.v2 import functional as F

    sample = (tv_tensors.Image(image), target)
    if torch.rand(()) < 0.5:
        points = _points(
            sample, lambda p, h, w: swap_sides(flip_points(p, (h, w), horizontal=True), flip_order)
        )
        sample = F.horizontal_flip(sample[0]), _map_target(sample[1], F.horizontal_flip, points)
    if torch.rand(()) < 0.5:
        points = _points(
            sample,
            lambda p, h, w: swap_sides(flip_points(p, (h, w), horizontal=False), flip_order),
        )
        sample = F.vertical_flip(sample[0]), _map_target(sample[1], F.vertical_flip, points)
    k = int(torch.randint(0, 4, ()))
    if k:

        def rot(x: Any) -> Any:
            return F.rotate(x, 90.0 * k, expand=True)

        points = _points(sample, lambda p, h, w: rotate_points(p, (h, w), k))
        sample = rot(sample[0]), _map_target(sample[1], rot, points)
    if torch.rand(()) < 0.5 * strength:
        aff, zoom = _random_affine(tuple(sample[0].shape[-2:]), strength, scale_range)
        points = _points(sample, lambda p, h, w: zoom_points(p, (h, w), *zoom))
        sample = aff(sample[0]), _map_target(sample[1], aff, points)
    out, target = sample
    return intensity_jitter(out.as_subclass(torch.Tensor), strength), target


def _random_affine(
    shape: tuple[int, ...], strength: float, scale_range: tuple[float, float]
) -> tuple[Callable[[Any], Any], tuple[float, float, float]]:
    """A random zoom about the centre with a random shift of up to the zoom's margin, and
    its ``(scale, dx, dy)``."""
    from torchvision.transforms.v2 import functional as F  # heavy: torchvision

    lo, hi = scale_range
    lo, hi = 1 - (1 - lo) * strength, 1 + (hi - 1) * strength
    scale = math.exp(float(torch.empty(()).uniform_(math.log(lo), math.log(hi))))
    h, w = shape
    max_dx, max_dy = abs(scale - 1) * w / 2, abs(scale - 1) * h / 2
    dx = float(torch.empty(()).uniform_(-max_dx, max_dx)) if max_dx else 0.0
    dy = float(torch.empty(()).uniform_(-max_dy, max_dy)) if max_dy else 0.0

    def aff(x: Any) -> Any:
        return F.affine(x, angle=0.0, translate=[dx, dy], scale=scale, shear=[0.0, 0.0])

    return aff, (scale, dx, dy)


def _points(
    sample: tuple[Any, Target], fn: Callable[[torch.Tensor, int, int], torch.Tensor]
) -> torch.Tensor | None:
    """``fn(keypoints, height, width)`` of the sample's keypoints (None if it has none)."""
    points = sample[1].get("keypoints")
    if points is None:
        return None
    h, w = sample[0].shape[-2:]
    return fn(points, int(h), int(w))


def _map_target(target: Target, fn: Callable[[Any], Any], points: torch.Tensor | None) -> Target:
    out = dict(target)
    out["boxes"] = fn(target["boxes"])
    out["masks"] = fn(target["masks"])
    if points is not None:
        out["keypoints"] = points
    return out


def flip_points(points: torch.Tensor, shape: tuple[int, int], *, horizontal: bool) -> torch.Tensor:
    """Keypoints (..., 3) of an image of ``shape`` (H, W) after a horizontal (``x -> W - x``)
    or vertical (``y -> H - y``) flip of the image; visibility kept.

    Examples
    --------
    >>> p = torch.tensor([[[1.5, 0.5, 2.0]]])
    >>> flip_points(p, (4, 6), horizontal=True).tolist()
    [[[4.5, 0.5, 2.0]]]
    """
    out = points.clone()
    axis, size = (0, shape[1]) if horizontal else (1, shape[0])
    out[..., axis] = size - points[..., axis]
    return out


def swap_sides(points: torch.Tensor, flip_order: Sequence[int] | None) -> torch.Tensor:
    """Keypoints (..., K, 3) of a mirror image with their left/right columns swapped:
    ``points[..., flip_order, :]`` (`labelassist.model.keypoint_flips.flip_order`); after a flip
    the point that was the left eye is the right eye of the mirrored object. Apply it once
    per flip (a horizontal and a vertical flip, a half turn, swap twice: not at all); 90°
    rotations do not mirror. ``flip_order`` None: ``points`` as they are.

    Examples
    --------
    >>> p = torch.tensor([[[1.0, 1.0, 2.0], [5.0, 1.0, 2.0], [3.0, 4.0, 1.0]]])
    >>> swap_sides(p, [1, 0, 2])[0, :, 0].tolist()
    [5.0, 1.0, 3.0]
    """
    if flip_order is None:
        return points
    order = list(flip_order)
    if sorted(order) != list(range(points.shape[-2])):
        raise ValueError(
            f"flip_order must be a permutation of the {points.shape[-2]} keypoint columns, "
            f"got {order}"
        )
    return points[..., order, :]


def rotate_points(points: torch.Tensor, shape: tuple[int, int], k: int) -> torch.Tensor:
    """Keypoints (..., 3) of an image of ``shape`` (H, W) after ``k`` quarter turns
    counter-clockwise (``torch.rot90(image, k, (-2, -1))``, torchvision's
    ``rotate(90 * k, expand=True)``): one turn maps ``(x, y)`` to ``(y, W - x)``.

    Examples
    --------
    >>> p = torch.tensor([[1.5, 0.5, 2.0]])
    >>> rotate_points(p, (4, 6), 1).tolist(), rotate_points(p, (4, 6), 2).tolist()
    ([[0.5, 4.5, 2.0]], [[4.5, 3.5, 2.0]])
    """
    out = points.clone()
    h, w = shape
    for _ in range(k % 4):
        x, y = out[..., 0].clone(), out[..., 1].clone()
        out[..., 0], out[..., 1] = y, w - x
        h, w = w, h
    return out


def zoom_points(
    points: torch.Tensor, shape: tuple[int, int], scale: float, dx: float, dy: float
) -> torch.Tensor:
    """Keypoints (..., 3) after torchvision's ``affine(angle=0, translate=[dx, dy],
    scale=scale)`` of an image of ``shape`` (H, W): a zoom about the image centre
    ``(W / 2, H / 2)``, then the shift.

    Examples
    --------
    >>> zoom_points(torch.tensor([[1.5, 0.5, 2.0]]), (4, 6), 1.5, 2.0, 1.0).tolist()
    [[2.75, 0.75, 2.0]]
    """
    out = points.clone()
    h, w = shape
    out[..., 0] = w / 2 + scale * (points[..., 0] - w / 2) + dx
    out[..., 1] = h / 2 + scale * (points[..., 1] - h / 2) + dy
    return out


def intensity_jitter(image: torch.Tensor, strength: float) -> torch.Tensor:
    """Gamma, contrast, brightness and noise jitter for a float image in about [0, 1]."""
    if torch.rand(()) < 0.8 * strength:
        gamma = math.exp(float(torch.empty(()).uniform_(-0.4, 0.4)) * strength)
        image = image.clamp(min=0) ** gamma
    if torch.rand(()) < 0.8 * strength:
        contrast = 1 + float(torch.empty(()).uniform_(-0.4, 0.4)) * strength
        brightness = float(torch.empty(()).uniform_(-0.1, 0.1)) * strength
        mean = image.mean()
        image = (image - mean) * contrast + mean + brightness
    if torch.rand(()) < 0.3 * strength:
        sigma = float(torch.empty(()).uniform_(0.0, 0.05)) * strength
        image = image + sigma * torch.randn_like(image)
    return image.clamp(0.0, 1.0).contiguous()  # the range `predict.to_tensor` gives
