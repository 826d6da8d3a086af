"""Copy-paste augmentation: objects pasted with their exact masks and keypoints, hidden parts removed.

`copy_paste` pastes objects onto a training crop (Ghiasi et al., "Simple Copy-Paste",
CVPR 2021) and removes the pixels they cover from the masks below; `paste_points` moves
each pasted object's keypoints with it (patch flips included) and `occlude_points` sets
visibility 0 on every keypoint that a later paste covers, for the objects already in the
crop and the pasted ones alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["copy_paste", "occlude_points", "paste_points"]


def copy_paste(
    image: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    pastes: Sequence[tuple[torch.Tensor, np.ndarray, int]],
    positions: Sequence[tuple[int, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste objects onto an image with their exact masks (Ghiasi et al., "Simple
    Copy-Paste", CVPR 2021); the pixels they cover are removed from the masks below.

    Parameters
    ----------
    image : Tensor of shape (C, H, W)
        The image (not modified).
    masks : Tensor of shape (N, H, W), uint8
        Masks of the objects already in ``image``.
    labels : Tensor of shape (N,), int64
    pastes : sequence of (Tensor (C, h, w), ndarray (h, w) of bool, int)
        Each object's pixels, its mask and its label; pasted in order (later on top).
    positions : sequence of (int, int)
        ``(x, y)`` of each paste's top-left corner; parts outside the image are cut.

    Returns
    -------
    image, masks, labels
        New tensors with one mask and label per paste appended, in order (masks may now
        be empty, e.g. a paste wholly outside or covered: drop them).

    Examples
    --------
    >>> image = torch.zeros(1, 4, 4, dtype=torch.uint8)
    >>> masks = torch.ones(1, 4, 4, dtype=torch.uint8)
    >>> patch = (torch.full((1, 2, 2), 9, dtype=torch.uint8), np.ones((2, 2), bool), 0)
    >>> out, m, lab = copy_paste(image, masks, torch.tensor([0]), [patch], [(1, 1)])
    >>> int(out.sum()), m.sum(dim=(1, 2)).tolist(), lab.tolist()
    (36, [12, 4], [0, 0])
    """
    image = image.clone()
    h, w = image.shape[-2:]
    new_masks = [masks]
    new_labels = [labels]
    occupied = torch.zeros((h, w), dtype=torch.bool)
    for (pixels, mask, label), (x, y) in reversed(list(zip(pastes, positions, strict=True))):
        # later pastes lie on top: paint from the top down, skipping pixels already taken
        ph, pw = mask.shape
        xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
        full = torch.zeros((h, w), dtype=torch.bool)
        if xb > xa and yb > ya:
            sub = torch.from_numpy(np.ascontiguousarray(mask[ya - y : yb - y, xa - x : xb - x]))
            full[ya:yb, xa:xb] = sub
            full &= ~occupied
            region = image[:, ya:yb, xa:xb]
            src = pixels[:, ya - y : yb - y, xa - x : xb - x].to(image.dtype)
            region[:, full[ya:yb, xa:xb]] = src[:, full[ya:yb, xa:xb]]
            occupied |= full
        new_masks.append(full[None].to(masks.dtype))
        new_labels.append(torch.tensor([int(label)], dtype=labels.dtype))
    masks_out = torch.cat([new_masks[0], *reversed(new_masks[1:])])
    masks_out[: len(masks)] &= (~occupied).to(masks.dtype)
    labels_out = torch.cat([new_labels[0], *reversed(new_labels[1:])])
    return image, masks_out, labels_out


def paste_points(
    points: np.ndarray,
    box: tuple[int, int, int, int],
    position: tuple[int, int],
    *,
    flip_x: bool = False,
    flip_y: bool = False,
    flip_order: Sequence[int] | None = None,
) -> np.ndarray:
    """The keypoints of an object cut out at pixel ``box`` and pasted (its patch flipped
    first, as `copy_paste` receives it) with its top-left corner at ``position``.

    Parameters
    ----------
    points : ndarray of shape (K, 3)
        x, y (COCO pixel coordinates of the source image) and visibility.
    box : (int, int, int, int)
        ``x0, y0, x1, y1`` of the patch in the source image (end exclusive).
    position : (int, int)
        ``(x, y)`` of the patch's top-left corner in the crop.
    flip_x, flip_y : bool
        Whether the patch was flipped left-right (``x -> width - x``) or up-down.
    flip_order : sequence of int, optional
        The keypoint order of a mirror image (`labelassist.model.keypoint_flips.flip_order`),
        applied once per flip (``left_eye`` and ``right_eye`` swap). None: no swap.

    Returns
    -------
    ndarray of shape (K, 3), float64

    Examples
    --------
    >>> p = np.array([[12.5, 21.5, 2.0]])
    >>> paste_points(p, (10, 20, 15, 24), (3, 4), flip_x=True).tolist()
    [[5.5, 5.5, 2.0]]
    """
    x0, y0, x1, y1 = box
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, 0] -= x0
    out[:, 1] -= y0
    if flip_x:
        out[:, 0] = (x1 - x0) - out[:, 0]
    if flip_y:
        out[:, 1] = (y1 - y0) - out[:, 1]
    out[:, 0] += position[0]
    out[:, 1] += position[1]
    if flip_order is not None and flip_x != flip_y:
        order = list(flip_order)
        if sorted(order) != list(range(len(out))):
            raise ValueError(
                f"flip_order must be a permutation of the {len(out)} keypoints, got {order}"
            )
        out = out[order]
    return out


def occlude_points(points: torch.Tensor, masks: torch.Tensor, first_paste: int) -> torch.Tensor:
    """Keypoints with visibility 0 where an object pasted above covers them.

    Parameters
    ----------
    points : Tensor of shape (M, K, 3)
        Keypoints of the masks of `copy_paste`'s output, in the same order.
    masks : Tensor of shape (M, H, W)
        `copy_paste`'s masks: the objects that were there, then the pastes (later on top).
    first_paste : int
        Index of the first pasted object (the number of objects that were there).

    Returns
    -------
    Tensor of shape (M, K, 3)
        A copy; a keypoint in pixel ``(floor(y), floor(x))`` covered by any paste after
        its object gets visibility 0 (the pixels a paste covers are its mask plus those of
        the pastes above it, so the union of the output masks after it is exactly what
        hides it). Keypoints outside the image are left as they are (`sanitize` hides
        them).

    Examples
    --------
    >>> masks = torch.zeros(2, 4, 4, dtype=torch.uint8)
    >>> masks[0, :, :2] = 1
    >>> masks[1, :, 2:] = 1  # pasted over the right half
    >>> points = torch.tensor([[[0.5, 0.5, 2.0], [3.5, 1.5, 2.0]], [[3.0, 3.0, 1.0]] * 2])
    >>> occlude_points(points, masks, 1)[:, :, 2].tolist()
    [[2.0, 0.0], [1.0, 1.0]]
    """
    out = points.clone()
    m, h, w = masks.shape
    if m == 0 or first_paste >= m:
        return out
    covered = masks.bool().flip(0).cumsum(0).flip(0) > 0  # covered[i]: union of masks i..
    above = torch.zeros((m, h, w), dtype=torch.bool)
    for i in range(m):
        start = max(i + 1, first_paste)
        if start < m:
            above[i] = covered[start]
    col = out[..., 0].floor().long()
    row = out[..., 1].floor().long()
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    index = torch.arange(m)[:, None].expand_as(col)
    hidden = torch.zeros_like(inside)
    hidden[inside] = above[index[inside], row[inside], col[inside]]
    out[..., 2] = torch.where(hidden, torch.zeros_like(out[..., 2]), out[..., 2])
    return out
