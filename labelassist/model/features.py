"""Image features computed once for many prompts: `encode` runs the transform, backbone and FPN.

`encode` keeps what a prompt needs to reach the Mask R-CNN heads without running the
backbone again (`labelassist.model.prompts`): the FPN feature maps, the size the network's
transform gave the image, and the scale between the image's pixel coordinates and the
network's. An image is encoded whole, or, with ``tile_size``, per tile on demand: only
the tiles that prompts touch are encoded, and only the most recently used ``max_tiles``
are kept (memory bounded).

Coordinates follow COCO's convention: pixel ``(row i, col j)`` covers ``[j, j+1] x [i,
i+1]``. The network sees a window resized by ``(sx, sy)`` (1 for the native-resolution
light architecture), and a point ``(x, y)`` of the image is ``((x - x0) * sx, (y - y0) *
sy)`` in the network's coordinates of the window whose top-left pixel is ``(x0, y0)``
(torchvision's ``resize_boxes``).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_int
from .inference import inference_setup
from .normalize import check_array_image, intensity_range, to_tensor
from .tiling import Tile, default_overlap, edge_distance, tile_grid

__all__ = ["DEFAULT_MAX_TILES", "EncodedWindow", "ImageFeatures", "encode"]

#: Tiles an `ImageFeatures` keeps encoded at most (least recently used ones are dropped).
DEFAULT_MAX_TILES = 4


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """float16 autocast on CUDA (like `labelassist.model.inference.detect`), else nothing."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@dataclass(eq=False)
class EncodedWindow:
    """The FPN features of one window of an image (the whole image, or a tile).

    Attributes
    ----------
    window : Tile
        Pixels ``[y0:y1, x0:x1]`` of the image.
    features : OrderedDict of str to Tensor of shape (1, C, h_k, w_k)
        The backbone + FPN maps (torchvision's ``net.backbone`` output).
    net_size : (int, int)
        ``(height, width)`` of the window after the network's transform (before padding):
        the image size the RoI poolers and box coder expect.
    padded_size : (int, int)
        ``(height, width)`` of the padded batch the backbone saw (for the RPN's anchors).
    cache : dict
        Results derived from the features (e.g. point candidates), dropped with them.
    """

    window: Tile
    features: OrderedDict[str, torch.Tensor]
    net_size: tuple[int, int]
    padded_size: tuple[int, int]
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> tuple[int, int]:
        """``(x0, y0)``: the window's top-left corner in image pixel coordinates."""
        return self.window.x0, self.window.y0

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the window in image pixels."""
        return self.window.y1 - self.window.y0, self.window.x1 - self.window.x0

    @property
    def scale(self) -> tuple[float, float]:
        """``(sx, sy)``: network pixels per image pixel along x and y."""
        h, w = self.shape
        return self.net_size[1] / w, self.net_size[0] / h

    def to_network(self, coords: np.ndarray) -> np.ndarray:
        """Image coordinates -> the network's coordinates of this window.

        ``coords`` has shape (..., 2k): ``(x, y)`` pairs, e.g. points (N, 2) or boxes
        (N, 4) ``x0, y0, x1, y1``. Returns float64.
        """
        pairs = np.asarray(coords, np.float64).reshape(-1, 2)
        out = (pairs - self.origin) * self.scale
        return out.reshape(np.shape(coords))

    def to_image(self, coords: np.ndarray) -> np.ndarray:
        """The inverse of `to_network`: network coordinates -> image coordinates."""
        pairs = np.asarray(coords, np.float64).reshape(-1, 2)
        out = pairs / self.scale + self.origin
        return out.reshape(np.shape(coords))


class ImageFeatures:
    """An image encoded by a Mask R-CNN's backbone + FPN, ready for prompts.

    Made by `encode` (or `labelassist.model.Model.encode`); consumed by
    `labelassist.model.Model.segment`. Holds the network it was computed with (tiles are
    encoded on demand), the image (not copied: do not modify it; refinement reads it)
    and its intensity range, so every tile is normalised like the whole image.

    Attributes
    ----------
    net : torch.nn.Module
        The network; prompts must use the same one.
    image : ndarray of shape (H, W[, C])
        The original image.
    image_shape : (int, int)
        ``(H, W)``.
    limits : (float, float)
        The intensities mapped to 0 and 1 (`labelassist.model.intensity_range`).
    normalization : dict or str or None
        The model's normalisation the limits came from.
    device : torch.device
        Where the features are.
    tiles : list of Tile or None
        None: the image is encoded whole (`features`, `to_network`, `to_image` apply).
        Otherwise the tile grid (`labelassist.model.tiling.tile_grid`) prompts are served
        from; see `window_for`.
    max_tiles : int
        Encoded tiles kept at most.
    """

    def __init__(
        self,
        net: nn.Module,
        image: np.ndarray,
        *,
        normalization: Mapping[str, Any] | str | None,
        device: torch.device,
        limits: tuple[float, float],
        tile_size: int | None = None,
        tile_overlap: int = 0,
        max_tiles: int = DEFAULT_MAX_TILES,
    ) -> None:
        self.net = net
        self.image = image
        self.image_shape = (int(image.shape[0]), int(image.shape[1]))
        self.normalization = normalization
        self.device = device
        self.limits = limits
        self.tile_size = tile_size
        self.tile_overlap = int(tile_overlap)
        self.max_tiles = int(max_tiles)
        h, w = self.image_shape
        tiled = tile_size is not None and (h > tile_size or w > tile_size)
        self.tiles: list[Tile] | None = (
            tile_grid(self.image_shape, tile_size, self.tile_overlap)
            if tiled and tile_size is not None
            else None
        )
        self._whole = Tile(0, 0, h, w, (0.0, 0.0, float(w), float(h)))
        self._windows: OrderedDict[Tile, EncodedWindow] = OrderedDict()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        how = "whole" if self.tiles is None else f"{len(self.tiles)} tiles of {self.tile_size}"
        return (
            f"ImageFeatures(image_shape={self.image_shape}, {how}, "
            f"encoded={len(self._windows)}, device={self.device})"
        )

    @property
    def tiled(self) -> bool:
        """Whether the image is encoded per tile."""
        return self.tiles is not None

    @property
    def encoded(self) -> list[Tile]:
        """The windows encoded now, least recently used first."""
        with self._lock:
            return list(self._windows)

    def _whole_window(self) -> EncodedWindow:
        if self.tiles is not None:
            raise ValueError(
                "these features are tiled (one transform per tile): use "
                "features.window_for(box) to get a tile's features and coordinates"
            )
        return self.encode_window(self._whole)

    @property
    def features(self) -> OrderedDict[str, torch.Tensor]:
        """The FPN maps of the whole image (untiled features only)."""
        return self._whole_window().features

    @property
    def net_size(self) -> tuple[int, int]:
        """``(height, width)`` of the whole image after the network's transform (untiled)."""
        return self._whole_window().net_size

    def to_network(self, coords: np.ndarray) -> np.ndarray:
        """Image ``(x, y)`` coordinates (..., 2k) -> the network's (untiled features only).

        Examples
        --------
        >>> from labelassist.model import load_model
        >>> model = load_model(None, classes=["cell"], device="cpu")
        >>> feats = model.encode(np.zeros((40, 60), np.uint8))
        >>> feats.to_network(np.array([[0.0, 0.0, 60.0, 40.0]])).tolist()  # no resizing
        [[0.0, 0.0, 60.0, 40.0]]
        """
        return self._whole_window().to_network(coords)

    def to_image(self, coords: np.ndarray) -> np.ndarray:
        """The network's coordinates -> image ``(x, y)`` coordinates (untiled features only)."""
        return self._whole_window().to_image(coords)

    def window_for(self, box: tuple[float, float, float, float] | np.ndarray) -> Tile:
        """The window a prompt inside ``box`` (image ``x0, y0, x1, y1``; a point as ``x, y,
        x, y``) is served from.

        Untiled: the whole image. Tiled: of the grid's tiles that hold the box whole, the
        one where it lies farthest from the tile's inner edges
        (`labelassist.model.tiling.edge_distance`); when none does (a box larger than
        the overlap), a window centred on the box, ``tile_size`` or the box plus the
        overlap per side, whichever is larger, clipped to the image. Deterministic: the
        result never depends on which tiles happen to be encoded.
        """
        if self.tiles is None:
            return self._whole
        x0, y0, x1, y1 = (float(v) for v in box)
        best, best_d = None, -math.inf
        for tile in self.tiles:
            if tile.x0 <= x0 and x1 <= tile.x1 and tile.y0 <= y0 and y1 <= tile.y1:
                local = np.array([[x0 - tile.x0, y0 - tile.y0, x1 - tile.x0, y1 - tile.y0]])
                d = float(edge_distance(local, tile, self.image_shape)[0])
                if d > best_d:
                    best, best_d = tile, d
        if best is not None:
            return best
        size = int(self.tile_size or 0)
        h, w = self.image_shape
        spans = []
        for lo, hi, length in ((x0, x1, w), (y0, y1, h)):
            side = min(length, max(size, math.ceil(hi - lo) + 2 * self.tile_overlap))
            start = int(round((lo + hi) / 2 - side / 2))
            start = min(max(start, 0), length - side)
            spans.append((start, start + side))
        (wx0, wx1), (wy0, wy1) = spans
        return Tile(wy0, wx0, wy1, wx1, (float(wx0), float(wy0), float(wx1), float(wy1)))

    def encode_window(self, window: Tile) -> EncodedWindow:
        """The features of ``window`` (from `window_for`), encoded now unless cached.

        Tiled features keep the `max_tiles` most recently used windows.
        """
        with self._lock:
            hit = self._windows.get(window)
            if hit is not None:
                self._windows.move_to_end(window)
                return hit
            encoded = _encode_window(self, window)
            self._windows[window] = encoded
            if self.tiles is not None:
                while len(self._windows) > self.max_tiles:
                    self._windows.popitem(last=False)
            return encoded


def _encode_window(feats: ImageFeatures, window: Tile) -> EncodedWindow:
    """Run the network's transform, backbone and FPN on one window of the image."""
    net: Any = feats.net
    crop = feats.image[window.y0 : window.y1, window.x0 : window.x1]
    tensor = to_tensor(crop, normalization=feats.normalization, limits=feats.limits)
    with inference_setup(net, float(net.roi_heads.score_thresh)), autocast(feats.device):
        image_list, _ = net.transform([tensor.to(feats.device)])
        maps = net.backbone(image_list.tensors)
    if isinstance(maps, torch.Tensor):
        maps = OrderedDict([("0", maps)])
    # torchvision's roi_align copies a channels-last input to contiguous on every call
    # (the whole map, for one box): make the copy once here
    maps = OrderedDict((k, v.contiguous()) for k, v in maps.items())
    net_size = tuple(int(s) for s in image_list.image_sizes[0])
    padded = tuple(int(s) for s in image_list.tensors.shape[-2:])
    return EncodedWindow(window, maps, (net_size[0], net_size[1]), (padded[0], padded[1]))


def encode(
    net: nn.Module,
    image: np.ndarray,
    *,
    normalization: Mapping[str, Any] | str | None = None,
    device: torch.device | str | None = None,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    max_tiles: int = DEFAULT_MAX_TILES,
) -> ImageFeatures:
    """Encode an image once (transform + backbone + FPN) for many prompts.

    `labelassist.model.Model.encode` calls this with the model's network and metadata.

    Parameters
    ----------
    net : torch.nn.Module
        A torchvision ``MaskRCNN``.
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        Any dtype `labelassist.model.to_tensor` takes. Kept by reference, not copied.
    normalization : dict or str, optional
        How intensities map to [0, 1]; one range for the whole image, tiles included.
    device : torch.device or str, optional
        Where ``net`` is. Default: the device of its parameters.
    tile_size : int, optional
        For images larger than this: encode ``tile_size`` tiles on demand, those that
        prompts touch (see `ImageFeatures.window_for`), instead of the whole image now.
    tile_overlap : int, optional
        Overlap of neighbouring tiles; must exceed the largest object. Default
        `labelassist.model.tiling.default_overlap`.
    max_tiles : int
        Encoded tiles kept (least recently used dropped): memory stays below ``max_tiles``
        tiles' features.

    Returns
    -------
    ImageFeatures
        Untiled: encoded now. Tiled: nothing is encoded until a prompt needs it.

    Examples
    --------
    >>> from labelassist.model import build_maskrcnn
    >>> net = build_maskrcnn(num_classes=2)
    >>> encode(net, np.zeros((64, 96), np.uint8)).net_size
    (64, 96)
    >>> encode(net, np.zeros((600, 900), np.uint8), tile_size=512)
    ImageFeatures(image_shape=(600, 900), 6 tiles of 512, encoded=0, device=cpu)
    """
    image = check_array_image(image)
    size = check_int(tile_size, "tile_size", minimum=32, allow_none=True)
    if size is None and tile_overlap is not None:
        raise ValueError(
            f"tile_overlap={tile_overlap!r} is only used with tile_size; pass tile_size too"
        )
    overlap = 0
    if size is not None:
        overlap = default_overlap(size) if tile_overlap is None else tile_overlap
        try:
            overlap = check_int(overlap, "tile_overlap", minimum=0, maximum=size // 2)
        except ValueError as exc:
            raise ValueError(
                f"{exc} (tile_size // 2 at most, larger than the largest object)"
            ) from None
    check_int(max_tiles, "max_tiles", minimum=1)
    if device is None:
        device = next(net.parameters()).device
    limits = intensity_range(image, normalization=normalization)
    feats = ImageFeatures(
        net,
        image,
        normalization=normalization,
        device=torch.device(device),
        limits=limits,
        tile_size=size,
        tile_overlap=overlap,
        max_tiles=max_tiles,
    )
    if not feats.tiled:
        feats.encode_window(feats.window_for((0, 0, 0, 0)))
    return feats
