"""Tests of labelassist.train: tiny models, tiny seeded synthetic data, CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
import torch
from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.coco import Dataset
from labelassist.instances import Instances
from labelassist.model import load_model
from labelassist.synthetic import synthetic_dataset, synthetic_nuclei
from labelassist.train import TrainConfig, TrainResult, finetune, train_one_epoch
from labelassist.train.data import TrainImages, instances_to_target
from labelassist.train.engine import rpn_training_limits, training_sampling
from labelassist.train.heads import extend_heads, with_classes

SHAPE = (64, 64)


@pytest.fixture(scope="module")
def pairs():
    return [synthetic_nuclei(SHAPE, n=4, radius=(5, 8), seed=s) for s in range(2)]


def state(model):
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


# -- finetune --------------------------------------------------------------------------------


def test_finetune_lowers_loss_and_writes_loadable_checkpoint(pairs, tmp_path):
    model = tiny_model()
    result = finetune(
        model, pairs, epochs=4, lr=0.01, out=tmp_path, progress=False, config=fast_config()
    )
    assert isinstance(result, TrainResult)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    for key in ("loss_mask", "loss_classifier", "lr", "time_s", "iterations"):
        assert key in result.history[0]
    assert result.checkpoint == tmp_path / "last.pt"
    loaded = load_model(result.checkpoint, device="cpu")
    assert loaded.classes == ["nucleus"]
    assert [h["epoch"] for h in loaded.meta["history"]] == [1, 2, 3, 4]
    for name, value in state(result.model).items():
        torch.testing.assert_close(loaded.net.state_dict()[name], value)
    extra = torch.load(tmp_path / "last.state.pt", map_location="cpu", weights_only=True)
    assert extra["epoch"] == 4 and extra["config"]["lr"] == 0.01
    json.dumps(loaded.meta)  # metadata stays JSON-able


def test_finetune_from_coco_path_with_validation(tmp_path):
    train = synthetic_dataset(2, out=tmp_path / "train", shape=SHAPE, n=3, seed=1)
    val = synthetic_dataset(1, out=tmp_path / "val", shape=SHAPE, n=3, seed=2)
    assert len(train.images) == 2
    result = finetune(
        tiny_model(),
        tmp_path / "train" / "annotations.json",
        val=val,
        epochs=1,
        progress=False,
        config=fast_config(),
    )
    record = result.history[0]
    assert 0.0 <= record["segm_AP50"] <= 1.0 and "bbox_AP" in record
    assert record["n_train_images"] == 2 and record["val_n_images"] == 1


def test_finetune_skips_unannotated_and_trains_on_empty_images(pairs):
    image, inst = pairs[0]
    empty = Instances.empty(SHAPE)
    data = Dataset(
        ["nucleus"],
        [
            {"id": 1, "file_name": "a.png", "height": 64, "width": 64, "image": image},
            {"id": 2, "file_name": "b.png", "height": 64, "width": 64, "image": image * 0},
            {"id": 3, "file_name": "c.png", "height": 64, "width": 64, "image": image},
        ],
        {1: inst, 2: empty},  # image 3 not annotated yet
    )
    result = finetune(tiny_model(), data, epochs=1, progress=False, config=fast_config())
    assert result.history[0]["n_train_images"] == 2
    assert np.isfinite(result.history[0]["loss"])


def test_finetune_only_negatives(pairs):
    negatives = [(pairs[0][0] * 0, Instances.empty(SHAPE))]
    result = finetune(tiny_model(), negatives, epochs=1, progress=False, config=fast_config())
    assert np.isfinite(result.history[0]["loss"])


def test_non_finite_loss_raises_with_epoch_and_parts(pairs):
    config = fast_config(batch_size=1, clip_grad_norm=None, warmup_iters=0)
    with pytest.raises(FloatingPointError, match=r"epoch 1, iteration \d+ \(loss_classifier="):
        finetune(tiny_model(), pairs * 3, epochs=1, lr=1e6, progress=False, config=config)


def test_freeze_backbone_keeps_backbone_weights(pairs):
    model = tiny_model()
    before = state(model)
    result = finetune(
        model, pairs, epochs=1, lr=0.01, freeze="backbone", progress=False, config=fast_config()
    )
    after = state(result.model)
    assert all(torch.equal(v, state(model)[k]) for k, v in before.items())  # input untouched
    body = [k for k in before if k.startswith("backbone.body.")]
    heads = [k for k in before if k.startswith("roi_heads.box_predictor.")]
    assert body and heads
    assert all(torch.equal(before[k], after[k]) for k in body)  # BN statistics too
    assert not all(torch.equal(before[k], after[k]) for k in heads)


def test_callback_stops_training(pairs, tmp_path):
    seen = []
    result = finetune(
        tiny_model(),
        pairs,
        epochs=3,
        out=tmp_path,
        progress=False,
        config=fast_config(),
        callback=lambda record: seen.append(record["epoch"]) or False,
    )
    assert seen == [1] and len(result.history) == 1


def test_resume_after_kill_matches_straight_run(pairs, tmp_path):
    config = fast_config(augment=1.0)  # augmentation randomness must be resumed as well
    straight = finetune(
        tiny_model(), pairs, epochs=2, lr=0.01, out=tmp_path / "a", progress=False, config=config
    )

    def kill(record):
        raise KeyboardInterrupt  # the process dies right after the first checkpoint

    with pytest.raises(KeyboardInterrupt):
        finetune(
            tiny_model(),
            pairs,
            epochs=2,
            lr=0.01,
            out=tmp_path / "b",
            progress=False,
            config=config,
            callback=kill,
        )
    resumed = finetune(
        tiny_model(),  # ignored: model and optimizer come from the checkpoint
        pairs,
        epochs=2,
        lr=0.01,
        out=tmp_path / "b",
        resume=True,
        progress=False,
        config=config,
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[1]["loss"] == pytest.approx(straight.history[1]["loss"], rel=1e-4)
    a, b = state(straight.model), state(resumed.model)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)


def test_resume_needs_a_checkpoint(pairs, tmp_path):
    with pytest.raises(ValueError, match="holds no checkpoint"):
        finetune(
            tiny_model(), pairs, out=tmp_path, resume=True, progress=False, config=fast_config()
        )
    with pytest.raises(ValueError, match="resume=True needs out"):
        finetune(tiny_model(), pairs, resume=True, progress=False, config=fast_config())


# -- classes and heads -----------------------------------------------------------------------


def test_new_class_extends_heads_and_keeps_other_weights(pairs):
    model = tiny_model(["nucleus"])
    before = state(model)
    extended = with_classes(model, ["nucleus", "debris"])
    assert extended is not model and model.classes == ["nucleus"]  # input not mutated
    assert extended.net is not model.net
    assert extended.classes == ["nucleus", "debris"]
    assert extended.meta["label_ids"] == [1, 2]
    after = state(extended)
    predictors = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits")
    for name, value in before.items():
        if name.startswith(predictors):
            assert after[name].shape[0] > value.shape[0]
            torch.testing.assert_close(after[name][: value.shape[0]], value)  # old rows kept
        else:
            assert torch.equal(after[name], value), name  # backbone, RPN, heads unchanged
    assert after["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3

    # the new class is predicted: make it win every box and predict
    with torch.no_grad():
        extended.net.roi_heads.box_predictor.cls_score.bias[2] = 50.0
        extended.net.roi_heads.mask_predictor.mask_fcn_logits.bias[2] = 50.0
    prediction = extended.predict(pairs[0][0], score_threshold=0.5)
    assert len(prediction) > 0 and set(prediction.labels.tolist()) == {1}


def test_finetune_maps_data_classes_by_name(pairs):
    image, inst = pairs[0]
    data = Dataset(
        ["debris", "nucleus"],  # other order than the model, plus a new class
        [{"id": 1, "file_name": "a.png", "height": 64, "width": 64, "image": image}],
        {1: inst.replace(labels=np.arange(len(inst)) % 2)},
    )
    model = tiny_model(["nucleus"])
    result = finetune(model, data, epochs=1, progress=False, config=fast_config())
    assert result.model.classes == ["nucleus", "debris"]
    assert model.classes == ["nucleus"]
    ds = TrainImages(
        [(image, inst.replace(labels=np.array([1, 0] * 2)[: len(inst)]))],
        normalization=None,
        label_ids=result.model.meta["label_ids"],
    )
    assert set(ds[0][1]["labels"].tolist()) <= {1, 2}


def test_extend_heads_copies_rows():
    import torchvision

    net = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=2, min_size=64, max_size=64
    )
    old = net.roi_heads.box_predictor.cls_score.weight.detach().clone()
    extend_heads(net, 2, 4)
    new = net.roi_heads.box_predictor.cls_score.weight
    assert new.shape == (4, old.shape[1]) and torch.equal(new[:2], old)
    assert net.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4


def test_rpn_training_limits_reach_torchvision():
    """The one use of torchvision privates (``rpn._pre_nms_top_n`` and ``_post_nms_top_n``,
    torchvision 0.29): fails loudly when torchvision renames them or stops reading them."""
    net = tiny_model().net
    rpn, sampler = net.rpn, net.roi_heads.fg_bg_sampler
    rpn.eval()
    testing = (rpn.pre_nms_top_n(), rpn.post_nms_top_n())
    rpn.train()
    training = (rpn.pre_nms_top_n(), rpn.post_nms_top_n())  # torchvision's public reading
    assert rpn_training_limits(rpn) == training
    roi = sampler.batch_size_per_image
    with training_sampling(net, roi_samples=7, rpn_proposals=33):
        assert (rpn.pre_nms_top_n(), rpn.post_nms_top_n()) == (33, 33)
        assert sampler.batch_size_per_image == 7
        rpn.eval()
        assert (rpn.pre_nms_top_n(), rpn.post_nms_top_n()) == testing  # prediction unchanged
        rpn.train()
    assert (rpn.pre_nms_top_n(), rpn.post_nms_top_n()) == training
    assert sampler.batch_size_per_image == roi
    with training_sampling(net, roi_samples=None, rpn_proposals=None):
        assert (rpn.pre_nms_top_n(), rpn.post_nms_top_n()) == training


# -- data and augmentation -------------------------------------------------------------------


def test_targets_follow_the_polygons():
    inst = Instances([shapely.box(2, 3, 10, 7)], [0], [1.0], (16, 16))
    target = instances_to_target(inst, torch.tensor([1]))
    assert target["boxes"].tolist() == [[2.0, 3.0, 10.0, 7.0]]
    assert target["labels"].tolist() == [1]
    assert int(target["masks"].sum()) == 8 * 4
    empty = instances_to_target(Instances.empty((16, 16)), torch.tensor([1]))
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 16, 16)


def test_augmentation_keeps_boxes_masks_and_image_consistent():
    from torchvision.ops import masks_to_boxes

    image, inst = synthetic_nuclei((48, 80), n=6, seed=3)
    ds = TrainImages([(image, inst)], normalization=None, label_ids=[1], augment=1.0, seed=5)
    shapes = set()
    for epoch in range(12):
        ds.epoch = epoch
        tensor, target = ds[0]
        masks, boxes = target["masks"], target["boxes"]
        assert tensor.dtype == torch.float32 and tensor.shape[0] == 3
        assert tensor.shape[1:] == masks.shape[1:]
        assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
        assert len(boxes) == len(masks) == len(target["labels"]) <= len(inst)
        expected = masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0])
        torch.testing.assert_close(boxes, expected)
        assert bool((masks.flatten(1).sum(1) >= 4).all())  # slivers are gone
        shapes.add(tuple(tensor.shape[1:]))
    assert shapes == {(48, 80), (80, 48)}  # 90° rotations happened
    ds.epoch = 3
    a, b = ds[0], ds[0]
    assert torch.equal(a[0], b[0])  # deterministic per (seed, epoch, index)


def test_augmentation_of_an_empty_image():
    ds = TrainImages(
        [(np.zeros(SHAPE, np.uint8), Instances.empty(SHAPE))],
        normalization=None,
        label_ids=[1],
        augment=1.0,
    )
    tensor, target = ds[0]
    assert target["boxes"].shape == (0, 4) and target["masks"].shape[0] == 0


def test_train_one_epoch_empty_loader():
    net = tiny_model().net
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    stats = train_one_epoch(net, opt, [], progress=False)
    assert stats["iterations"] == 0


# -- validation of the arguments -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
        ({"batch_size": 0}, ValueError, "batch_size must be"),
        ({"lr": -1.0}, ValueError, "lr must be a positive"),
        ({"lr": float("nan")}, ValueError, "lr must be a positive"),
        ({"freeze": "everything"}, ValueError, "freeze must be one of"),
        ({"config": {"epochs": 1}}, TypeError, "config must be a TrainConfig"),
        ({"val": [1, 2]}, TypeError, "val must be a Dataset"),
        ({"val": "missing.json"}, FileNotFoundError, "COCO file not found"),
    ],
)
def test_finetune_rejects_bad_arguments(pairs, kwargs, error, match):
    with pytest.raises(error, match=match):
        finetune(tiny_model(), pairs, progress=False, **kwargs)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"augment": 2.0}, "augment must be within"),
        ({"scale_range": (1.2, 1.5)}, "scale_range must be"),
        ({"num_workers": -1}, "num_workers must be"),
        ({"warmup_iters": -1}, "warmup_iters must be"),
    ],
)
def test_train_config_rejects_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_train_config_augment_bool():
    assert TrainConfig(augment=True).augment == 1.0
    assert TrainConfig(augment=False).augment == 0.0


def test_finetune_rejects_bad_data(pairs, tmp_path):
    model = tiny_model()
    with pytest.raises(TypeError, match="model must be a labelassist Model"):
        finetune(model.net, pairs, progress=False)
    with pytest.raises(ValueError, match="train has no images"):
        finetune(model, [], progress=False)
    with pytest.raises(TypeError, match=r"train\[0\] must be an \(image, Instances\) pair"):
        finetune(model, [pairs[0][0]], progress=False)
    with pytest.raises(TypeError, match="train must be a Dataset"):
        finetune(model, 42, progress=False)
    with pytest.raises(FileNotFoundError, match="COCO file not found"):
        finetune(model, tmp_path / "nope.json", progress=False)
    image, inst = pairs[0]
    with pytest.raises(ValueError, match="has shape"):
        finetune(model, [(image[:32], inst)], progress=False, config=fast_config())
    bad = inst.replace(labels=np.full(len(inst), 3))
    with pytest.raises(ValueError, match="label 3 but there are only 1 classes"):
        finetune(model, [(image, bad)], progress=False, config=fast_config())


# -- command line ----------------------------------------------------------------------------


def test_cli_train_and_evaluate(tmp_path, capsys):
    from labelassist.cli import main

    synthetic_dataset(2, out=tmp_path / "data", shape=SHAPE, n=3, seed=4)
    coco = tmp_path / "data" / "annotations.json"
    start = tiny_model().save(tmp_path / "start.pt")
    args = ["train", "--train", str(coco), "--model", str(start), "--out", str(tmp_path / "run")]
    rc = main([*args, "--epochs", "1", "--workers", "0", "--no-progress", "--no-augment"])
    out = capsys.readouterr().out
    assert rc == 0 and "trained 1 epoch(s)" in out and "loss_mask" in out
    checkpoint = tmp_path / "run" / "last.pt"
    assert load_model(checkpoint, device="cpu").meta["history"][-1]["epoch"] == 1

    rc = main(["evaluate", "--model", str(checkpoint), str(coco), "--json", "--no-progress"])
    metrics = json.loads(capsys.readouterr().out)
    assert rc == 0 and metrics["n_images"] == 2 and 0 <= metrics["segm_AP"] <= 1


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["train", "--train", "x.json"], "--train needs --out"),
        (["train", "--train", "missing.json", "--out", "o"], "COCO file not found"),
        (["train", "--project", "p", "--val", "v.json"], "go with --train"),
        (["evaluate", "missing.json"], "COCO file not found"),
    ],
)
def test_cli_errors(argv, match, capsys):
    from labelassist.cli import main

    assert main(argv) == 1
    assert match in capsys.readouterr().err


# -- the shipped starter model ---------------------------------------------------------------


@pytest.mark.slow
def test_starter_finds_nuclei_in_a_held_out_synthetic_image():
    from labelassist.evaluation import evaluate_predictions

    model = load_model("starter", device="cpu")
    assert model.classes == ["object"]  # the generalist starter's one class
    assert model.meta["starter"]["script"] == "examples/train_starter.py"
    image, truth = synthetic_nuclei((256, 256), seed=987_654)  # not a training seed
    prediction = model.predict(image, score_threshold=0.05)
    record = {"id": 1, "file_name": "held_out.png", "height": 256, "width": 256}
    metrics = evaluate_predictions({1: prediction}, Dataset(["nucleus"], [record], {1: truth}))
    assert metrics["segm_AP50"] >= 0.8, metrics
