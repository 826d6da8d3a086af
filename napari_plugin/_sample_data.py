"""Sample data: synthetic nuclei with their exact outlines, a real nuclei image, coins.

Everything ships with labelassist or scikit-image: nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._style import image_layer_kwargs, shapes_layer_kwargs

__all__ = ["coins_sample", "real_nuclei_sample", "synthetic_nuclei_sample"]

LayerData = tuple[Any, dict[str, Any], str]


def _layers(image: np.ndarray, instances: Any, name: str) -> list[LayerData]:
    image_kwargs = image_layer_kwargs(image, name=name)
    shapes = shapes_layer_kwargs(
        instances.replace(extra={"provenance": np.full(len(instances), "human", dtype=object)}),
        classes=["nucleus"],
        name=f"{name} ground truth",
    )
    shapes.pop("feature_defaults")
    return [
        (image_kwargs.pop("data"), image_kwargs, "image"),
        (shapes.pop("data"), shapes, "shapes"),
    ]


def synthetic_nuclei_sample(seed: int = 0) -> list[LayerData]:
    """A 256 x 256 synthetic nuclei image and its ground-truth outlines.

    Examples
    --------
    >>> [kind for _, _, kind in synthetic_nuclei_sample()]
    ['image', 'shapes']
    """
    import labelassist as la

    image, instances = la.synthetic_nuclei((256, 256), seed=seed)[:2]
    return _layers(image, instances, "synthetic nuclei")


def real_nuclei_sample() -> list[LayerData]:
    """A real 16-bit fluorescence nuclei image (512 x 512) and its hand-made outlines.

    Examples
    --------
    >>> image_data, shapes_data = real_nuclei_sample()
    >>> image_data[0].dtype, len(shapes_data[0]) >= 125
    (dtype('uint16'), True)
    """
    import labelassist as la
    from labelassist.samples import real_nuclei

    image, label_image = real_nuclei(labels=True)
    polygons = la.masks_to_polygons(label_image)
    instances = la.Instances(polygons, None, None, label_image.shape)
    return _layers(image, instances, "real nuclei")


def coins_sample() -> list[LayerData]:
    """scikit-image's coins (303 x 384, 8-bit), to try the models on a real photo.

    Examples
    --------
    >>> [(data.shape, kind) for data, _, kind in coins_sample()]
    [((303, 384), 'image')]
    """
    from skimage import data

    kwargs = image_layer_kwargs(data.coins(), name="coins")
    return [(kwargs.pop("data"), kwargs, "image")]
