"""The nuclei generator's output is pinned: the same arguments and seed give the same bits.

The shipped starter model was trained on `synthetic_nuclei` and many tests build on its
images, so the generator v2 (new image kinds, the package split) must not change a single
pixel. The hashes below were computed from the generator *before* v2 (labelassist 0.x,
``labelassist/synthetic.py``) and hard-coded; they are expected values of the old code, not
of the code under test.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from labelassist.io import read_image
from labelassist.synthetic import DOMAIN_SHIFT, synthetic_dataset, synthetic_nuclei


def _digest(*arrays: np.ndarray) -> str:
    d = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        d.update(str(a.dtype).encode())
        d.update(str(a.shape).encode())
        d.update(a.tobytes())
    return d.hexdigest()[:32]


# (shape, keyword arguments, digest of image + label image, count, total area)
PINNED = [
    ((96, 96), {"seed": 0}, "75f72ca2ba80c52539f6fcfd46fb04aa", 7, 1734.0),
    ((80, 112), {"seed": 7, "dtype": np.uint16}, "700ebb5ee687e1b36f49f5e4376afbed", 7, 1874.0),
    (
        (64, 64),
        {"seed": 3, "dtype": np.float32, "n": 40, "touching": 0.9, "overlap": 0.4, "dividing": 0.3},
        "a7c3cfea2435245e8fc1edb6f9ce1764",
        33,
        3470.0,
    ),
    ((96, 96), {"seed": 11, **DOMAIN_SHIFT}, "6c0858002f08d707e8adfc0b107195f7", 1, 1004.0),
    (
        (64, 64),
        {"seed": np.random.SeedSequence(5).spawn(2)[1]},
        "9c29df9d846750464f2e379995aec2b6",
        2,
        721.0,
    ),
    # an image of the starter's training set: 128 x 128, seeds spawned from SeedSequence(0)
    (
        (128, 128),
        {"seed": np.random.SeedSequence(0).spawn(4)[3]},
        "e877115c1eddcbd9f302cb8b9cf14fab",
        9,
        2761.0,
    ),
]


@pytest.mark.parametrize(("shape", "kwargs", "digest", "count", "area"), PINNED)
def test_nuclei_output_is_unchanged(shape, kwargs, digest, count, area):
    image, inst, labels = synthetic_nuclei(shape, return_labels=True, **kwargs)
    assert _digest(image, labels) == digest
    assert len(inst) == count
    assert float(inst.areas.sum()) == area


def test_default_dataset_is_unchanged(tmp_path):
    ds = synthetic_dataset(3, out=tmp_path, shape=(48, 48), seed=2, dtype=np.uint16)
    images = [read_image(ds.image_path(k)) for k in (1, 2, 3)]
    assert _digest(*images) == "b5ecdc362e014dfccbd2b6efdcc9c8a8"
    assert [len(ds.instances[k]) for k in (1, 2, 3)] == [2, 2, 1]
    assert ds.categories == ["nucleus"]
    assert all("kind" not in record for record in ds.images)  # records as before v2
