"""Synthetic z-stacks and time-lapse movies of fluorescent nuclei with exact labels and tracks.

`synthetic_zstack` draws touching ellipsoidal nuclei in a volume (randomly oriented in
the plane, flattened along Z like a confocal stack with a coarser Z step), whose
brightness falls with depth, blurred by an anisotropic point-spread function (more blur
along Z) with Poisson and Gaussian camera noise. `synthetic_timelapse` moves 2-D nuclei
by a random walk that keeps them apart, lets them divide (a mother ends, two daughters of
about half its area start where it was and move apart), leave through the image border
and enter from it.

Ground truth is exact: the label volume (uint32, 0 = background, the object or track id
elsewhere), the same as `StackInstances.from_labels` of it (exact pixel outlines), and for
movies the divisions as ``parents``. Sizes and appearance follow `labelassist.synthetic`
(radii of 5-14 px, 8- or 16-bit), so the starter model sees familiar nuclei in each plane.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .checks import check_int, check_number
from .stacks import StackInstances

__all__ = ["synthetic_timelapse", "synthetic_zstack"]

_MIN_VOXELS = 30  # smaller 3-D remnants (cut by the border or neighbours) are dropped
_MIN_PIXELS = 15  # smaller visible parts of a nucleus in a movie frame are dropped
_DTYPES = (np.uint8, np.uint16, np.float32)


def synthetic_zstack(
    shape: tuple[int, int, int] = (24, 96, 96),
    *,
    n: int | None = None,
    radius: tuple[float, float] = (7.0, 12.0),
    elongation: tuple[float, float] = (1.0, 1.6),
    z_scale: float = 0.5,
    touching: float = 0.4,
    tilt: float = 0.0,
    depth_falloff: float = 0.5,
    intensity: tuple[float, float] = (0.3, 0.7),
    blur: float = 1.0,
    noise: float = 0.02,
    dtype: Any = np.uint8,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, StackInstances, np.ndarray]:
    """A synthetic z-stack of touching ellipsoidal nuclei and its exact 3-D labels.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, H, W)``.
    n : int, optional
        Number of nuclei to place; default: about 15 % of the volume. Fewer are placed
        when they do not fit.
    radius : (float, float)
        Range of the mean radius in the plane, in pixels.
    elongation : (float, float)
        Range of the ratio of a nucleus's long axis to its short axis in the plane (their
        geometric mean is the radius).
    z_scale : float
        Radius along Z relative to the plane radius, in planes (0.5: a Z step twice
        the pixel size).
    touching : float
        Probability, in [0, 1], that a nucleus is placed against an earlier one.
    tilt : float
        Largest tilt, in degrees in [0, 90], of a nucleus's long axis out of the plane
        (each drawn uniformly in ``[-tilt, tilt]``, in physical units: a plane is
        ``1 / z_scale`` pixels deep); 0: every nucleus lies flat, its sections stacked on
        top of each other.
    depth_falloff : float
        Fraction, in [0, 1), of the brightness lost at the deepest plane (light
        scattered and absorbed on the way down).
    intensity : (float, float)
        Range of nucleus brightness as a fraction of full scale.
    blur : float
        Point-spread function sigma in the plane (pixels); twice that along Z.
    noise : float
        Camera noise as a fraction of full scale (Gaussian read noise of ``noise / 2``
        plus shot noise).
    dtype : np.uint8, np.uint16 or np.float32
    seed : int or Generator, optional

    Returns
    -------
    stack : ndarray of shape (Z, H, W), ``dtype``
    objects : StackInstances
        Axes ``"ZYX"``, one object id per nucleus.
    labels : ndarray of shape (Z, H, W), uint32
        0 = background; ``objects.to_labels()`` equals it.

    Examples
    --------
    >>> stack, objects, labels = synthetic_zstack((8, 48, 48), n=4, seed=0)
    >>> stack.shape, stack.dtype.name, objects.axes, int(labels.max()) >= 3
    ((8, 48, 48), 'uint8', 'ZYX', True)
    >>> bool((objects.to_labels() == labels).all())
    True
    """
    zyx = _check_shape3(shape)
    r_lo, r_hi = _check_range(radius, "radius", low=1.0)
    e_lo, e_hi = _check_range(elongation, "elongation", low=1.0)
    z_scale = check_number(z_scale, "z_scale", minimum=0.05)
    touching = check_number(touching, "touching", minimum=0, maximum=1)
    tilt = check_number(tilt, "tilt", minimum=0, maximum=90)
    falloff = check_number(depth_falloff, "depth_falloff", minimum=0, maximum=0.99)
    i_lo, i_hi = _check_range(intensity, "intensity", low=0.0, high=1.0)
    blur = check_number(blur, "blur", minimum=0)
    noise = check_number(noise, "noise", minimum=0, maximum=1)
    dt = _check_dtype(dtype)
    count = check_int(n, "n", minimum=0, allow_none=True)
    rng = np.random.default_rng(seed)
    if count is None:
        mean_r = (r_lo + r_hi) / 2
        count = int(round(0.15 * np.prod(zyx) / (4 / 3 * np.pi * mean_r**3 * z_scale)))

    labels = np.zeros(zyx, dtype=np.uint32)
    centres: list[tuple[float, float, float, float]] = []
    failures = 0
    while len(centres) < count and failures < 200:
        failures += 1
        r = rng.uniform(r_lo, r_hi)
        elong = rng.uniform(e_lo, e_hi)
        axes_len = (r * z_scale, r * np.sqrt(elong), r / np.sqrt(elong))
        if centres and rng.random() < touching:
            cz, cy, cx, cr = centres[rng.integers(len(centres))]
            phi = rng.uniform(0, 2 * np.pi)
            dist = (cr + r) * rng.uniform(0.8, 0.95)
            centre = (cz + rng.uniform(-0.5, 0.5) * r * z_scale, cy + dist * np.sin(phi),
                      cx + dist * np.cos(phi))  # fmt: skip
        else:
            centre = (rng.uniform(0, zyx[0]), rng.uniform(0, zyx[1]), rng.uniform(0, zyx[2]))
        angle = rng.uniform(0, np.pi)
        lean = np.radians(rng.uniform(-tilt, tilt)) if tilt else 0.0
        mask, box = _ellipsoid(centre, axes_len, angle, zyx, lean, z_scale)
        if mask is None:
            continue
        free = mask & (labels[box] == 0)
        if np.count_nonzero(mask & ~free) > 0.1 * np.count_nonzero(mask):
            continue
        free = _largest_component(free)
        if np.count_nonzero(free) < _MIN_VOXELS:
            continue
        labels[box][free] = len(centres) + 1
        centres.append((centre[0], centre[1], centre[2], r))
        failures = 0

    level = np.concatenate([[0.0], rng.uniform(i_lo, i_hi, len(centres))])
    depth = 1.0 - falloff * np.arange(zyx[0]) / max(zyx[0] - 1, 1)
    signal = level[labels] * _texture(rng, zyx, labels > 0) * depth[:, None, None]
    image = _camera(rng, signal, (blur, blur, blur), noise, dt, background=depth)
    return image, StackInstances.from_labels(labels, "ZYX"), labels


def synthetic_timelapse(
    shape: tuple[int, int, int] = (20, 96, 96),
    *,
    n: int | None = None,
    radius: tuple[float, float] = (6.0, 10.0),
    speed: float = 1.0,
    division_rate: float = 0.02,
    enter_rate: float = 0.2,
    intensity: tuple[float, float] = (0.3, 0.7),
    blur: float = 1.0,
    noise: float = 0.02,
    dtype: Any = np.uint8,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, StackInstances, np.ndarray]:
    """A synthetic time-lapse of moving, dividing, entering and leaving nuclei, with true tracks.

    Parameters
    ----------
    shape : (int, int, int)
        ``(T, H, W)``.
    n : int, optional
        Nuclei in the first frame; default: about 12 % of the area.
    radius : (float, float)
        Range of nucleus radii in pixels.
    speed : float
        Typical displacement per frame, in pixels (a random walk with momentum).
    division_rate : float
        Probability per nucleus and frame, in [0, 1], of dividing (once at least 4
        frames old): the mother ends, two daughters of about half its area start where
        it was, each with the mother as parent.
    enter_rate : float
        Expected nuclei entering through the border per frame (>= 0); nuclei leave by
        moving out.
    intensity, blur, noise, dtype, seed
        As in `synthetic_zstack`.

    Returns
    -------
    movie : ndarray of shape (T, H, W), ``dtype``
    tracks : StackInstances
        Axes ``"TYX"``: one object id per track, divisions in ``parents``.
    labels : ndarray of shape (T, H, W), uint32

    Examples
    --------
    >>> movie, tracks, labels = synthetic_timelapse((6, 64, 64), n=5, division_rate=0.5,
    ...                                             seed=1)
    >>> movie.shape, tracks.axes, len(tracks.parents) > 0
    ((6, 64, 64), 'TYX', True)
    >>> bool((tracks.to_labels() == labels).all())
    True
    """
    tyx = _check_shape3(shape)
    r_lo, r_hi = _check_range(radius, "radius", low=1.0)
    speed = check_number(speed, "speed", minimum=0)
    division_rate = check_number(division_rate, "division_rate", minimum=0, maximum=1)
    enter_rate = check_number(enter_rate, "enter_rate", minimum=0)
    i_lo, i_hi = _check_range(intensity, "intensity", low=0.0, high=1.0)
    blur = check_number(blur, "blur", minimum=0)
    noise = check_number(noise, "noise", minimum=0, maximum=1)
    dt = _check_dtype(dtype)
    count = check_int(n, "n", minimum=0, allow_none=True)
    rng = np.random.default_rng(seed)
    n_t, h, w = tyx
    if count is None:
        count = int(round(0.12 * h * w / (np.pi * ((r_lo + r_hi) / 2) ** 2)))

    cells = _Cells(rng, (h, w), (r_lo, r_hi), (i_lo, i_hi), speed)
    for _ in range(count):
        cells.add_random()
    labels = np.zeros(tyx, dtype=np.uint32)
    levels: dict[int, float] = {}
    parents: dict[int, int] = {}
    for t in range(n_t):
        if t:
            parents.update(cells.step(division_rate, enter_rate))
        labels[t] = cells.paint()
        levels.update(cells.levels())
    present = set(np.unique(labels).tolist()) - {0}
    parents = {c: m for c, m in parents.items() if c in present and m in present}
    level = np.zeros(int(labels.max()) + 1)
    for oid in present:
        level[oid] = levels[oid]
    signal = level[labels] * _texture(rng, tyx, labels > 0, sigma=(0.0, 1.5, 1.5))
    movie = _camera(rng, signal, (0.0, blur, blur), noise, dt, background=np.ones(n_t))
    return movie, StackInstances.from_labels(labels, "TYX", parents=parents), labels


class _Cells:
    """The nuclei of a movie: positions, velocities, shapes; moved, divided, painted."""

    def __init__(
        self,
        rng: np.random.Generator,
        shape: tuple[int, int],
        radius: tuple[float, float],
        intensity: tuple[float, float],
        speed: float,
    ) -> None:
        self.rng, self.shape, self.radius = rng, shape, radius
        self.intensity, self.speed = intensity, speed
        self.state: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    def _new(self, x: float, y: float, r: float, level: float, v: tuple[float, float]) -> int:
        oid = self.next_id
        self.next_id += 1
        self.state[oid] = {
            "xy": np.array([x, y]), "v": np.array(v, dtype=float), "r": r, "age": 0,
            "elong": self.rng.uniform(1.0, 1.4), "angle": self.rng.uniform(0, np.pi),
            "level": level, "target": r,
        }  # fmt: skip
        return oid

    def add_random(self) -> None:
        h, w = self.shape
        for _ in range(50):
            r = self.rng.uniform(*self.radius)
            x, y = self.rng.uniform(0, w), self.rng.uniform(0, h)
            if all(np.hypot(*(s["xy"] - (x, y))) > (s["r"] + r) for s in self.state.values()):
                v = self.rng.normal(0, self.speed / 2, 2)
                self._new(x, y, r, self.rng.uniform(*self.intensity), (v[0], v[1]))
                return

    def levels(self) -> dict[int, float]:
        return {oid: s["level"] for oid, s in self.state.items()}

    def step(self, division_rate: float, enter_rate: float) -> dict[int, int]:
        """Divide, move, separate, enter, leave; returns the new {daughter: mother}."""
        rng = self.rng
        h, w = self.shape
        parents: dict[int, int] = {}
        for oid in list(self.state):
            s = self.state[oid]
            s["age"] += 1
            if s["age"] >= 4 and rng.random() < division_rate:
                del self.state[oid]
                axis = np.array([np.cos(s["angle"]), np.sin(s["angle"])])
                for sign in (-1.0, 1.0):
                    xy = s["xy"] + sign * 0.45 * s["r"] * axis
                    v = s["v"] + sign * 0.8 * axis
                    child = self._new(xy[0], xy[1], s["r"] * 0.75, s["level"], (v[0], v[1]))
                    self.state[child]["angle"] = s["angle"] + np.pi / 2
                    self.state[child]["target"] = s["target"]
                    parents[child] = oid
        for s in self.state.values():
            s["v"] = 0.7 * s["v"] + rng.normal(0, self.speed * 0.5, 2)
            s["xy"] = s["xy"] + s["v"]
            s["r"] = min(s["r"] * 1.03, s["target"])  # daughters grow back to full size
        self._separate()
        for _ in range(rng.poisson(enter_rate)):
            side = rng.integers(4)
            pos = rng.uniform(0, [w, h][side % 2])
            x, y = [(pos, 0.0), (0.0, pos), (pos, float(h)), (float(w), pos)][side]
            inward = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]][side], dtype=float)
            v = inward * max(self.speed, 0.5) * 1.5
            self._new(x, y, rng.uniform(*self.radius), rng.uniform(*self.intensity), (v[0], v[1]))
        for oid in [o for o, s in self.state.items() if not self._inside(s)]:
            del self.state[oid]
        return parents

    def _inside(self, s: dict[str, Any]) -> bool:
        x, y = s["xy"]
        reach = s["r"] * 1.5
        return -reach < x < self.shape[1] + reach and -reach < y < self.shape[0] + reach

    def _separate(self) -> None:
        """Push overlapping nuclei apart (a few relaxation passes)."""
        ids = list(self.state)
        for _ in range(3):
            for i, a in enumerate(ids):
                for b in ids[i + 1 :]:
                    sa, sb = self.state[a], self.state[b]
                    d = sb["xy"] - sa["xy"]
                    dist = float(np.hypot(*d))
                    gap = 0.95 * (sa["r"] + sb["r"]) - dist
                    if gap > 0:
                        u = d / dist if dist > 1e-9 else np.array([1.0, 0.0])
                        sa["xy"] = sa["xy"] - u * gap / 2
                        sb["xy"] = sb["xy"] + u * gap / 2

    def paint(self) -> np.ndarray:
        """The label image of the current nuclei (each pixel to one nucleus)."""
        h, w = self.shape
        out = np.zeros((h, w), dtype=np.uint32)
        for oid in sorted(self.state):
            s = self.state[oid]
            r, e = s["r"], s["elong"]
            mask, box = _ellipse(s["xy"], (r * np.sqrt(e), r / np.sqrt(e)), s["angle"], (h, w))
            if mask is None:
                continue
            free = _largest_component(mask & (out[box] == 0))
            if np.count_nonzero(free) >= _MIN_PIXELS:
                out[box][free] = oid
        return out


def _ellipsoid(centre, semi, angle, shape, tilt=0.0, z_scale=1.0):  # fmt: skip
    """Voxels whose centre lies in the ellipsoid (rotated by ``angle`` in the plane, its
    long axis then tilted by ``tilt`` radians out of the plane, in physical units: a
    plane is ``1 / z_scale`` pixels deep): (mask, box) or (None, None)."""
    reach = [semi[0] + 1, max(semi[1], semi[2]) + 1, max(semi[1], semi[2]) + 1]
    if tilt:
        reach = [max(semi[0], semi[1] * z_scale) + 1] + [max(semi[1], semi[0] / z_scale) + 1] * 2
    lo = [max(int(np.floor(c - r)), 0) for c, r in zip(centre, reach, strict=True)]
    hi = [min(int(np.ceil(c + r)) + 1, s) for c, r, s in zip(centre, reach, shape, strict=True)]
    if any(a >= b for a, b in zip(lo, hi, strict=True)):
        return None, None
    z, y, x = (np.arange(a, b) + 0.5 - c for a, b, c in zip(lo, hi, centre, strict=True))
    z, y, x = z[:, None, None], y[None, :, None], x[None, None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = x * cos + y * sin, -x * sin + y * cos
    if tilt:  # rotate (u, depth in pixels) about v
        depth = z / z_scale
        u, z = (
            u * np.cos(tilt) + depth * np.sin(tilt),
            (depth * np.cos(tilt) - u * np.sin(tilt)) * z_scale,
        )
    mask = (z / semi[0]) ** 2 + (u / semi[1]) ** 2 + (v / semi[2]) ** 2 <= 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    return (mask, box) if mask.any() else (None, None)


def _ellipse(centre, semi, angle, shape):  # fmt: skip
    """Pixels whose centre lies in the ellipse: (mask, box) or (None, None)."""
    mask, box = _ellipsoid((0.5, centre[1], centre[0]), (1.0, *semi), angle, (1, *shape))
    if mask is None:
        return None, None
    return mask[0], box[1:]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)  # face connectivity: one connected object
    if n <= 1:
        return mask
    return lab == (int(np.argmax(np.bincount(lab.ravel())[1:])) + 1)


def _texture(rng, shape, foreground, sigma=(0.75, 1.5, 1.5)):  # fmt: skip
    """Smooth within-nucleus variation around 1 (chromatin)."""
    smooth = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    smooth /= max(float(smooth.std()), 1e-9)
    return np.where(foreground, np.clip(1.0 + 0.2 * smooth, 0.3, None), 0.0)


def _camera(rng, signal, sigma, noise, dtype, *, background):  # fmt: skip
    """Blur, background, shot and read noise, quantisation."""
    offset = rng.uniform(0.03, 0.1)
    clean = ndi.gaussian_filter(signal.astype(np.float32), sigma)
    clean = clean + offset * background.reshape((-1,) + (1,) * (signal.ndim - 1))
    if noise > 0:
        photons = 1.0 / noise**2
        clean = rng.poisson(np.clip(clean, 0, None) * photons) / photons
        clean = clean + rng.normal(0.0, noise / 2, clean.shape)
    clean = np.clip(clean, 0.0, 1.0)
    if dtype == np.uint8:
        return np.round(clean * 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.round(100 + clean * 3000).astype(np.uint16)
    return clean.astype(np.float32)


def _check_shape3(shape: Any) -> tuple[int, int, int]:
    try:
        values = tuple(check_int(s, "shape entries", minimum=1) for s in shape)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3:
        raise ValueError(f"shape must be three integers >= 1, (Z or T, H, W), got {shape!r}")
    return values[0], values[1], values[2]


def _check_range(value: Any, name: str, *, low: float, high: float = np.inf) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
    if not (low <= lo <= hi <= high):
        raise ValueError(f"{name} must satisfy {low} <= low <= high <= {high}, got {value!r}")
    return lo, hi


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in [np.dtype(d) for d in _DTYPES]:
        raise ValueError(f"dtype must be np.uint8, np.uint16 or np.float32, got {dtype!r}")
    return dt
