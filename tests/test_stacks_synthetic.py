"""Synthetic z-stacks and time-lapse movies: exact labels, true tracks, seeded, small."""

from __future__ import annotations

import numpy as np
import pytest

from labelassist.stacks import StackInstances
from labelassist.synthetic_stacks import synthetic_timelapse, synthetic_zstack


def test_zstack_labels_match_the_instances_exactly():
    stack, objects, labels = synthetic_zstack((10, 64, 64), n=8, seed=3)
    assert stack.shape == labels.shape == (10, 64, 64)
    assert stack.dtype == np.uint8 and labels.dtype == np.uint32
    np.testing.assert_array_equal(objects.to_labels(), labels)
    assert objects == StackInstances.from_labels(labels, "ZYX")
    assert len(objects.object_ids) == int(labels.max()) >= 5
    # each nucleus is one 3-D object spanning several planes
    spans = objects.tracks  # without T, every object is in "frame" 0
    assert (spans[:, 1:] == 0).all()
    planes_per_object = [
        sum(oid in p.extra["object_id"] for p in objects.planes) for oid in objects.object_ids
    ]
    assert min(planes_per_object) >= 2


def test_zstack_brightness_falls_with_depth():
    stack, _, labels = synthetic_zstack(
        (12, 96, 96), depth_falloff=0.6, noise=0.0, dtype=np.float32, seed=1
    )
    top = stack[:4][labels[:4] > 0].mean()
    bottom = stack[-4:][labels[-4:] > 0].mean()
    assert bottom < 0.75 * top


def test_zstack_is_seeded_and_honours_options():
    a = synthetic_zstack((6, 48, 48), n=5, seed=7)
    b = synthetic_zstack((6, 48, 48), n=5, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    assert int(a[2].max()) <= 5
    assert synthetic_zstack((6, 48, 48), n=2, dtype=np.uint16, seed=0)[0].dtype == np.uint16
    assert synthetic_zstack((6, 48, 48), n=0, seed=0)[1].object_ids.tolist() == []


def test_timelapse_tracks_are_true():
    movie, tracks, labels = synthetic_timelapse(
        (30, 64, 64), division_rate=0.1, enter_rate=0.5, speed=2.0, seed=2
    )
    assert movie.shape == labels.shape == (30, 64, 64)
    np.testing.assert_array_equal(tracks.to_labels(), labels)
    assert tracks == StackInstances.from_labels(labels, "TYX", parents=tracks.parents)
    table = {row[0]: row for row in tracks.tracks.tolist()}
    assert tracks.parents  # divisions happened
    born_in_place = 0
    for daughter, mother in tracks.parents.items():
        assert table[mother][2] < table[daughter][1]  # the mother ends before
        if table[mother][2] + 1 == table[daughter][1]:  # visible in consecutive frames
            m_last = labels[table[mother][2]] == mother
            d_first = labels[table[daughter][1]] == daughter
            born_in_place += (m_last & d_first).sum() >= 0.3 * d_first.sum()
    assert born_in_place >= len(tracks.parents) // 2
    daughters = list(tracks.parents.values())
    assert max(daughters.count(m) for m in daughters) <= 2
    assert any(row[1] > 0 and row[0] not in tracks.parents for row in table.values())  # entered
    assert any(
        row[2] < 29 and row[0] not in tracks.parents.values() for row in table.values()
    )  # left


def test_timelapse_nuclei_move_a_little_each_frame():
    _, tracks, labels = synthetic_timelapse(
        (8, 96, 96), n=6, division_rate=0.0, enter_rate=0.0, speed=1.0, seed=4
    )
    for oid in tracks.object_ids.tolist():
        frames = [t for t in range(8) if (labels[t] == oid).any()]
        centres = [np.argwhere(labels[t] == oid).mean(0) for t in frames]
        steps = [np.hypot(*(b - a)) for a, b in zip(centres[:-1], centres[1:], strict=True)]
        assert max(steps, default=0) < 6


@pytest.mark.parametrize("make", [synthetic_zstack, synthetic_timelapse])
def test_same_seed_same_result(make):
    a, b = make((5, 40, 40), seed=11), make((5, 40, 40), seed=11)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_zstack_tilt_and_elongation():
    """A tilted nucleus's sections slide sideways from plane to plane; a flat one's lie on
    top of each other; ``elongation`` is the ratio of the in-plane axes."""
    from scipy import ndimage as ndi
    from skimage.measure import regionprops

    def centres(labels):
        return np.array([ndi.center_of_mass(p > 0) for p in labels if p.any()])

    kw = dict(n=1, elongation=(3.0, 3.0), seed=24)  # one nucleus inside the volume
    _, _, flat = synthetic_zstack((16, 64, 64), **kw)
    _, _, tilted = synthetic_zstack((16, 64, 64), tilt=60, **kw)
    drift_flat = np.linalg.norm(np.diff(centres(flat), axis=0), axis=1)
    assert drift_flat.max() < 1.0
    ends = centres(tilted)[[0, -1]]
    assert np.linalg.norm(ends[1] - ends[0]) > 5.0
    middle = flat[np.argmax((flat > 0).sum((1, 2)))] > 0
    props = regionprops(middle.astype(np.uint8))[0]
    assert 2.5 < props.axis_major_length / props.axis_minor_length < 4.0
