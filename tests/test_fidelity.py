"""Mask fidelity (labelassist.fidelity) and the model's stored mask threshold."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist import Instances, load_model
from labelassist.fidelity import ACCEPT_IOU, choose_mask_threshold, mask_fidelity, match_masks
from labelassist.geometry import polygons_to_masks
from labelassist.synthetic import synthetic_nuclei

SHAPE = (40, 40)


def _boxes(boxes, shape=SHAPE):
    return Instances([shapely.box(*b) for b in boxes], [0] * len(boxes), [1.0] * len(boxes), shape)


integer_box = st.tuples(
    st.integers(0, 30), st.integers(0, 30), st.integers(1, 10), st.integers(1, 10)
).map(lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))


@settings(max_examples=60, deadline=None)
@given(integer_box, integer_box)
def test_iou_and_bias_of_two_pixel_boxes_are_exact(a, b):
    iou, bias = match_masks(_boxes([b]), _boxes([a]))
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    assert iou[0] == pytest.approx(inter / (area_a + area_b - inter))
    if inter:
        assert bias[0] == pytest.approx((area_b - area_a) / area_a)
    else:
        assert np.isnan(bias[0])


def test_each_true_object_takes_its_best_proposal():
    truth = _boxes([(0, 0, 10, 10), (20, 20, 30, 30), (5, 30, 8, 33)])
    pred = _boxes([(20, 20, 30, 32), (0, 0, 10, 10), (0, 0, 9, 10)])  # 3rd: a worse copy
    iou, bias = match_masks(pred, truth)
    np.testing.assert_allclose(iou, [1.0, 100 / 120, 0.0])
    np.testing.assert_allclose(bias[:2], [0.0, 0.2])
    assert np.isnan(bias[2])
    f = mask_fidelity([(pred, truth)])
    assert f.objects == 3 and f.found == pytest.approx(2 / 3)
    assert f.median_iou == pytest.approx((1.0 + 100 / 120) / 2)
    assert f.accepted == pytest.approx(1 / 3)  # only the exact one reaches 0.9
    assert f.area_bias == pytest.approx(0.1)


def test_no_proposals_and_no_objects():
    truth = _boxes([(0, 0, 10, 10)])
    iou, bias = match_masks(_boxes([]), truth)
    assert iou.tolist() == [0.0] and np.isnan(bias[0])
    assert mask_fidelity([(_boxes([]), truth)]).found == 0.0
    assert len(match_masks(truth, _boxes([]))[0]) == 0
    assert mask_fidelity([]).objects == 0


def test_different_images_are_refused():
    with pytest.raises(ValueError, match=r"different images: image_shape \(40, 40\) vs \(8, 8\)"):
        match_masks(_boxes([(0, 0, 4, 4)]), _boxes([(0, 0, 4, 4)], (8, 8)))


# -- the threshold ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter():
    return load_model("starter", device="cpu")


@pytest.fixture(scope="module")
def nuclei():
    return [synthetic_nuclei((96, 96), n=8, seed=s) for s in (71, 72)]


def test_a_higher_threshold_gives_smaller_masks(starter, nuclei):
    image = nuclei[0][0]
    low = starter.predict(image, mask_threshold=0.3)
    high = starter.predict(image, mask_threshold=0.8)
    area = polygons_to_masks(low.polygons, low.image_shape).sum()
    assert polygons_to_masks(high.polygons, high.image_shape).sum() < area


def test_the_stored_threshold_is_predict_and_segments_default(starter, nuclei, tmp_path):
    image = nuclei[0][0]
    model = load_model(starter.save(tmp_path / "s.pt"), device="cpu")
    model.set_input(mask_threshold=0.75)
    explicit = model.predict(image, mask_threshold=0.75)
    default = model.predict(image)
    assert len(default) > 0
    assert all(p.equals(q) for p, q in zip(default.polygons, explicit.polygons, strict=True))
    box = np.array([shapely.bounds(default.polygons[0])])
    a = model.segment(image, boxes=box, box_scale=1).polygons[0]
    b = model.segment(image, boxes=box, box_scale=1, mask_threshold=0.75).polygons[0]
    c = model.segment(image, boxes=box, box_scale=1, mask_threshold=0.3).polygons[0]
    assert a.equals(b) and c.area > a.area
    loaded = load_model(model.save(tmp_path / "t.pt"), device="cpu")
    assert loaded.mask_threshold == 0.75
    assert load_model(None, classes=["x"], device="cpu").mask_threshold == 0.5


def test_choose_mask_threshold_picks_the_most_accepted(starter, nuclei):
    best, table = choose_mask_threshold(starter, nuclei, thresholds=(0.1, 0.5, 0.9))
    assert set(table) == {0.1, 0.5, 0.9}
    assert table[best].accepted == max(f.accepted for f in table.values())
    # the extremes are worse than the middle on masks the network learnt at 0.5
    assert table[0.5].accepted > table[0.1].accepted
    assert table[0.5].accepted >= table[0.9].accepted
    assert table[0.1].area_bias > table[0.5].area_bias > table[0.9].area_bias
    # the table is what the module's own summary gives for predictions at that threshold
    again = mask_fidelity([(starter.predict(im, mask_threshold=0.9), gt) for im, gt in nuclei])
    assert again == table[0.9]
    assert 0 < table[best].accepted <= 1 and ACCEPT_IOU == 0.9


def test_choose_mask_threshold_bad_input(starter, nuclei):
    with pytest.raises(ValueError, match="needs at least one"):
        choose_mask_threshold(starter, [])
    with pytest.raises(ValueError, match="thresholds is empty"):
        choose_mask_threshold(starter, nuclei, thresholds=())
    with pytest.raises(ValueError, match="mask_threshold must be"):
        choose_mask_threshold(starter, nuclei, thresholds=(1.5,))


def test_fine_tuning_stores_the_configured_threshold(tmp_path):
    from tiny_models import fast_config

    from labelassist.train import finetune

    model = tiny_model().set_input(mask_threshold=0.6)
    pairs = [synthetic_nuclei((64, 64), n=4, seed=3)]
    kept = finetune(model, pairs, progress=False, config=fast_config(steps=2, mask_threshold=None))
    assert kept.model.mask_threshold == 0.6
    default = finetune(model, pairs, progress=False, config=fast_config(steps=2))
    assert default.model.mask_threshold == 0.5
    fixed = finetune(
        model,
        pairs,
        progress=False,
        out=tmp_path / "run",
        config=fast_config(steps=2, mask_threshold=0.55),
    )
    assert fixed.model.mask_threshold == 0.55
    assert load_model(fixed.checkpoint, device="cpu").mask_threshold == 0.55
    assert model.mask_threshold == 0.6  # the input model is not modified


def test_fine_tuning_chooses_the_threshold_on_the_training_images(starter, nuclei, tmp_path):
    """``"auto"``: the threshold whose proposals on the training images most
    often reach IoU 0.9 against their annotations, recorded and saved with the model."""
    from tiny_models import fast_config

    from labelassist.train import TrainConfig, finetune

    assert TrainConfig().mask_threshold == 0.5  # what a round trains the mask head at
    start = load_model(starter.save(tmp_path / "s.pt"), device="cpu").set_input(mask_threshold=0.3)
    result = finetune(
        start,
        nuclei,
        progress=False,
        out=tmp_path / "run",
        config=fast_config(steps=1, lr=1e-6, mask_threshold="auto"),
    )
    chosen = result.model.mask_threshold
    choice = result.model.meta["mask_threshold_choice"]
    assert choice["images"] == 2 and str(chosen) in choice["accepted"]
    assert choice["accepted"][str(chosen)] == max(choice["accepted"].values())
    # 0.3 makes the starter's masks too large: a higher threshold is chosen, and its
    # proposals on these images are accepted more often than at 0.3
    assert chosen > 0.3
    at = {
        t: mask_fidelity(
            [(result.model.predict(im, mask_threshold=t), gt) for im, gt in nuclei]
        ).accepted
        for t in (0.3, chosen)
    }
    assert at[chosen] > at[0.3]
    assert load_model(result.checkpoint, device="cpu").mask_threshold == chosen


@pytest.mark.parametrize("bad", [0, 1, "high", True, -0.2])
def test_bad_configured_threshold(bad):
    from labelassist.train import TrainConfig

    with pytest.raises(ValueError, match=r"^mask_threshold must be 'auto', None or a probability"):
        TrainConfig(mask_threshold=bad)


# -- the mirrored pass (test-time augmentation) ---------------------------------------------


def _heads_on(net, image, boxes):
    """The mask head's probabilities of class 1 on ``boxes`` (network coordinates) of
    ``image`` (network input), with the image list the detector builds."""
    il, _ = net.transform([image])
    feats = net.backbone(il.tensors)
    heads = net.roi_heads
    logits = heads.mask_predictor(
        heads.mask_head(heads.mask_roi_pool(feats, [boxes], il.image_sizes))
    )
    return il, logits[:, 1:2].sigmoid()


def test_mirrored_masks_are_exactly_mirror_equivariant(starter, nuclei):
    """Averaged with the mirrored image's, the masks of an image and of its mirror are each
    other's mirror, exactly: it fails if the mirrored boxes are off by a pixel or the
    mirrored pass is skipped (the network itself is not mirror-equivariant)."""
    import torch

    from labelassist.model.inference import _average_mirrored
    from labelassist.model.normalize import to_tensor

    net = starter.net.eval()
    image = to_tensor(nuclei[0][0], normalization=starter.normalization)
    width = image.shape[-1]
    boxes = torch.tensor(
        [[10.0, 12.0, 31.5, 30.0], [40.2, 50.0, 60.0, 75.5], [0.0, 3.0, 20.0, 22.0]]
    )
    mirrored = torch.stack(
        [width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]], 1
    )
    labels = torch.ones(3, dtype=torch.int64)
    with torch.inference_mode():
        il, plain = _heads_on(net, image, boxes)
        il_m, plain_m = _heads_on(net, torch.flip(image, [-1]), mirrored)
        assert il.tensors.shape[-1] == width  # no padding: the mirror of the batch is exact
        a = [{"boxes": boxes, "labels": labels, "masks": plain.clone()}]
        b = [{"boxes": mirrored, "labels": labels, "masks": plain_m.clone()}]
        _average_mirrored(net, il, a)
        _average_mirrored(net, il_m, b)
    torch.testing.assert_close(a[0]["masks"], b[0]["masks"].flip(-1), atol=1e-5, rtol=1e-4)
    assert (plain - plain_m.flip(-1)).abs().max() > 1e-3  # the network alone is not


def test_mirror_changes_only_the_masks(starter, nuclei):
    image = nuclei[1][0]
    on = starter.predict(image)  # the default
    off = starter.predict(image, mirror=False)
    assert len(on) == len(off) > 3
    np.testing.assert_array_equal(on.labels, off.labels)
    np.testing.assert_allclose(on.scores, off.scores, rtol=1e-5)
    same = [p.equals(q) for p, q in zip(on.polygons, off.polygons, strict=True)]
    assert not all(same)
    iou, _ = match_masks(on, off)
    assert iou.min() > 0.8


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_bad_mirror(starter, bad):
    with pytest.raises(TypeError, match="mirror must be True or False"):
        starter.predict(np.zeros((32, 32), np.uint8), mirror=bad)
