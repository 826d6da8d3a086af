"""Data augmentation for microscopy: flips, 90° rotations, scale jitter, intensity jitter.

Geometric transforms move the image, the boxes and the masks together (torchvision's
``transforms.v2`` on ``tv_tensors``); intensity transforms change the image only. All
randomness comes from torch's global generator, which the dataset seeds per
``(seed, epoch, index)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["augment", "intensity_jitter"]

Target = dict[str, Any]


def augment(
    image: torch.Tensor, target: Target, strength: float, scale_range: tuple[float, float]
) -> tuple[torch.Tensor, Target]:
    """Random geometric (image, boxes and masks together) and intensity augmentation.

    Parameters
    ----------
    image : Tensor of shape (C, H, W), float32 in [0, 1]
        The network input.
    target : dict
        ``boxes`` (``tv_tensors.BoundingBoxes``), ``masks`` (``tv_tensors.Mask``) and
        ``labels``.
    strength : float
        0 (only flips and rotations) to 1 (full scale and intensity jitter).
    scale_range : (float, float)
        Scale jitter range at full strength.

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
        sample = F.horizontal_flip(sample[0]), _map_target(sample[1], F.horizontal_flip)
    if torch.rand(()) < 0.5:
        sample = F.vertical_flip(sample[0]), _map_target(sample[1], F.vertical_flip)
    k = int(torch.randint(0, 4, ()))
    if k:

        def rot(x: Any) -> Any:
            return F.rotate(x, 90.0 * k, expand=True)

        sample = rot(sample[0]), _map_target(sample[1], rot)
    if torch.rand(()) < 0.5 * strength:
        aff = _random_affine(tuple(sample[0].shape[-2:]), strength, scale_range)
        sample = aff(sample[0]), _map_target(sample[1], aff)
    out, target = sample
    return intensity_jitter(out.as_subclass(torch.Tensor), strength), target


def _random_affine(
    shape: tuple[int, ...], strength: float, scale_range: tuple[float, float]
) -> Callable[[Any], Any]:
    """A random zoom about the centre with a random shift of up to the zoom's margin."""
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

    return aff


def _map_target(target: Target, fn: Callable[[Any], Any]) -> Target:
    out = dict(target)
    out["boxes"] = fn(target["boxes"])
    out["masks"] = fn(target["masks"])
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
