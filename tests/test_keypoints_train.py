"""Fine-tuning with keypoints: every augmentation moves them, heads grow for new names, finetune."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import torch
from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from labelassist.instances import Instances
from labelassist.model.keypoints import (
    attach_keypoint_head,
    extend_keypoint_head,
    has_keypoint_head,
    num_keypoints,
)
from labelassist.synthetic.landmarks import LANDMARK_NAMES, landmark_dataset, synthetic_landmarks
from labelassist.train import TrainConfig, finetune
from labelassist.train.augment import flip_points, rotate_points, zoom_points
from labelassist.train.crops import CropImages, prepare_images
from labelassist.train.data import TrainImages, sanitize
from labelassist.train.heads import (
    keypoint_columns,
    keypoint_mapping,
    with_classes,
    with_keypoints,
)
from labelassist.train.paste import copy_paste, occlude_points, paste_points

NORM = {"mode": "auto", "percentiles": [0.0, 100.0]}
CONFIG = fast_config(steps=2, chunk_steps=2, crop_size=64, roi_samples=16, rpn_proposals=50)


def one_hot(shape, row, col):
    image = torch.zeros((1, *shape))
    image[0, row, col] = 1.0
    return image


def centre_of(image):
    """Centre (x, y) of the non-zero pixels, in COCO pixel coordinates (pixel centres)."""
    rows, cols = torch.nonzero(image[0] > 0.5, as_tuple=True)
    return [float(cols.float().mean() + 0.5), float(rows.float().mean() + 0.5)]


# -- the point maps against the image operations they follow ---------------------------------

OPS = [
    ("hflip", lambda im: im.flip(-1), lambda p, s: flip_points(p, s, horizontal=True)),
    ("vflip", lambda im: im.flip(-2), lambda p, s: flip_points(p, s, horizontal=False)),
    ("rot90 x1", lambda im: im.rot90(1, (-2, -1)), lambda p, s: rotate_points(p, s, 1)),
    ("rot90 x2", lambda im: im.rot90(2, (-2, -1)), lambda p, s: rotate_points(p, s, 2)),
    ("rot90 x3", lambda im: im.rot90(3, (-2, -1)), lambda p, s: rotate_points(p, s, 3)),
    (
        "torchvision rotate 90",
        lambda im: F.rotate(im, 90.0, expand=True),
        lambda p, s: rotate_points(p, s, 1),
    ),
    (
        "torchvision rotate 270",
        lambda im: F.rotate(im, 270.0, expand=True),
        lambda p, s: rotate_points(p, s, 3),
    ),
    (
        "torchvision zoom x3 + shift",
        lambda im: F.affine(
            tv_tensors.Mask(im), angle=0.0, translate=[1.0, -1.0], scale=3.0, shear=[0.0, 0.0]
        ),
        lambda p, s: zoom_points(p, s, 3.0, 1.0, -1.0),
    ),
]


@pytest.mark.parametrize(("name", "image_op", "point_op"), OPS, ids=[o[0] for o in OPS])
def test_point_maps_follow_the_image_operations(name, image_op, point_op):
    """A keypoint at a pixel's centre lands on the centre of where the pixel went."""
    shape = (6, 8)
    image = one_hot(shape, 3, 4)
    point = torch.tensor([[4.5, 3.5, 2.0]])
    moved = point_op(point, shape)
    assert moved[0, :2].tolist() == pytest.approx(centre_of(image_op(image)))
    assert moved[0, 2] == 2.0


def test_point_maps_by_hand():
    p = torch.tensor([[1.0, 2.0, 1.0]])
    assert flip_points(p, (10, 20), horizontal=True).tolist() == [[19.0, 2.0, 1.0]]
    assert flip_points(p, (10, 20), horizontal=False).tolist() == [[1.0, 8.0, 1.0]]
    # a quarter turn counter-clockwise of a 10 x 20 image: (x, y) -> (y, 20 - x)
    assert rotate_points(p, (10, 20), 1).tolist() == [[2.0, 19.0, 1.0]]
    assert rotate_points(p, (10, 20), 4).tolist() == p.tolist()
    assert zoom_points(p, (10, 20), 2.0, 0.0, 0.0).tolist() == [[-8.0, -1.0, 1.0]]


def test_sanitize_hides_keypoints_outside_and_drops_them_with_their_masks():
    masks = torch.zeros(2, 10, 10, dtype=torch.uint8)
    masks[0, 1:5, 1:5] = 1
    masks[1, 9, 9] = 1  # one pixel: dropped
    points = torch.tensor(
        [[[2.0, 2.0, 2.0], [-0.5, 3.0, 2.0], [3.0, 10.5, 1.0]], [[9.5, 9.5, 2.0]] * 3]
    )
    out = sanitize({"masks": masks, "labels": torch.tensor([1, 1]), "keypoints": points})
    assert out["keypoints"].tolist() == [[[2.0, 2.0, 2.0], [-0.5, 3.0, 0.0], [3.0, 10.5, 0.0]]]


# -- the epoch recipe: torchvision transforms.v2 on whole images -----------------------------


def squares(shape=(64, 80), corners=((10, 10), (40, 30), (60, 45)), side=7):
    """Bright odd-sided squares with one keypoint at each centre (a pixel centre) and a
    second one unlabelled."""
    image = np.zeros(shape, np.uint8)
    polygons, points = [], []
    for x0, y0 in corners:
        image[y0 : y0 + side, x0 : x0 + side] = 255
        polygons.append(shapely.box(x0, y0, x0 + side, y0 + side))
        points.append([[x0 + side / 2, y0 + side / 2, 2], [x0, y0, 0]])
    inst = Instances(polygons, [0] * len(polygons), None, shape, keypoints=points)
    return image, inst


def check_on_their_objects(target, *, centroid: bool):
    """Every labelled keypoint inside the picture lies on its own object's mask (and, for
    objects whole in the picture, at the centre of their mask when ``centroid``); every
    unlabelled second keypoint stays unlabelled."""
    masks, points = target["masks"], target["keypoints"]
    h, w = masks.shape[-2:]
    seen = 0
    for mask, (centre, corner) in zip(masks, points, strict=True):
        assert corner[2] == 0
        x, y, v = centre.tolist()
        inside = 0 <= x < w and 0 <= y < h
        if not inside:
            assert v == 0
            continue
        if v == 0:
            continue
        assert mask[int(y), int(x)] == 1
        rows, cols = torch.nonzero(mask, as_tuple=True)
        whole = rows.min() > 0 and cols.min() > 0 and rows.max() < h - 1 and cols.max() < w - 1
        if centroid and whole:
            assert [x, y] == pytest.approx(
                [float(cols.float().mean() + 0.5), float(rows.float().mean() + 0.5)], abs=0.75
            )
        seen += 1
    return seen


def test_epoch_recipe_augmentation_moves_keypoints_with_the_masks():
    image, inst = squares()
    dataset = TrainImages(
        [(image, inst)], normalization=NORM, label_ids=[1], augment=1.0, scale_range=(0.7, 1.4)
    )
    seen = 0
    for epoch in range(30):
        dataset.epoch = epoch
        _, target = dataset[0]
        assert target["keypoints"].shape == (len(target["masks"]), 2, 3)
        seen += check_on_their_objects(target, centroid=True)
    assert seen > 60


# -- the step recipe: crops, scale, flips, rotations, copy-paste, size normalisation ---------


def crop_items(prepared, n=40, **options):
    settings = dict(
        length=n,
        crop_size=40,
        augment=1.0,
        scale_range=(0.75, 1.33),
        crop_on_objects=0.8,
        copy_paste=0.0,
        paste_max=4,
        seed=0,
    )
    settings.update(options)
    dataset = CropImages(prepared, **settings)
    return [dataset[i] for i in range(len(dataset))]


def test_crops_move_keypoints_with_their_objects():
    prepared = prepare_images([squares()], normalization=NORM, label_ids=[1])
    seen = sum(check_on_their_objects(t, centroid=True) for _, t in crop_items(prepared))
    assert seen > 30


def test_copy_paste_carries_keypoints_and_hides_the_covered_ones():
    prepared = prepare_images([squares()], normalization=NORM, label_ids=[1])
    items = crop_items(prepared, n=60, copy_paste=1.0, paste_max=8)
    hidden = 0
    for _, target in items:
        check_on_their_objects(target, centroid=False)
        masks, points = target["masks"], target["keypoints"]
        h, w = masks.shape[-2:]
        for mask, (x, y, v) in zip(masks, points[:, 0].tolist(), strict=True):
            if v == 0 and 0 <= x < w and 0 <= y < h:
                assert mask[int(y), int(x)] == 0  # covered by an object pasted on top
                hidden += 1
    assert sum(len(t["masks"]) for _, t in items) > 2 * len(items)  # pastes were kept
    assert hidden > 0


def test_paste_points_and_occlusion_by_hand():
    image = torch.zeros((1, 8, 8), dtype=torch.uint8)
    below = torch.zeros((1, 8, 8), dtype=torch.uint8)
    below[0, 0:4, 0:4] = 1
    below_points = torch.tensor([[[1.5, 1.5, 2.0], [3.5, 3.5, 2.0]]])
    # a 3 x 2 patch cut at x 10..13, y 20..22 of its image, flipped left-right, pasted at (2, 2)
    mask = np.ones((2, 3), bool)
    pixels = torch.full((1, 2, 3), 9, dtype=torch.uint8)
    moved = paste_points(
        np.array([[10.5, 20.5, 2.0], [12.5, 21.5, 1.0]]), (10, 20, 13, 22), (2, 2), flip_x=True
    )
    assert moved.tolist() == [[4.5, 2.5, 2.0], [2.5, 3.5, 1.0]]
    _, masks, _ = copy_paste(image, below, torch.tensor([1]), [(pixels, mask, 1)], [(2, 2)])
    points = torch.cat([below_points, torch.as_tensor(moved, dtype=torch.float32)[None]])
    out = occlude_points(points, masks, 1)
    # (1.5, 1.5) is free, (3.5, 3.5) lies under the paste; the pasted object's are on top
    assert out[:, :, 2].tolist() == [[2.0, 0.0], [2.0, 1.0]]
    assert points[0, 1, 2] == 2.0  # input unchanged


def test_prepare_images_scales_keypoints_with_the_image():
    image, inst = squares((64, 80))
    [prepared] = prepare_images([(image, inst)], normalization=NORM, label_ids=[1], factor=0.5)
    assert tuple(prepared.image.shape[1:]) == (32, 40)
    # (13.5, 13.5) -> (6.75, 6.75); (40, 30) -> (20, 15): x * 40 / 80, y * 32 / 64
    assert prepared.keypoints[0].tolist() == [[6.75, 6.75, 2.0], [5.0, 5.0, 0.0]]
    assert prepared.keypoints[1, 1].tolist() == [20.0, 15.0, 0.0]


def test_mask_only_data_gives_mask_only_targets():
    image, inst = squares()
    [prepared] = prepare_images(
        [(image, inst.replace(keypoints=None))], normalization=NORM, label_ids=[1]
    )
    assert prepared.keypoints is None
    assert all("keypoints" not in t for _, t in crop_items([prepared], n=4, copy_paste=1.0))


# -- heads ----------------------------------------------------------------------------------


def test_keypoint_mapping_appends_new_names():
    names, columns = keypoint_mapping(["head"], ["tail", "head"])
    assert names == ["head", "tail"] and columns.tolist() == [1, 0]
    assert keypoint_mapping(None, None) == (None, None)


def test_with_keypoints_attaches_then_extends_keeping_the_old_heatmaps():
    model = with_classes(tiny_model(["rod"]), ["rod"])  # the copy finetune trains
    assert not has_keypoint_head(model.net)
    with_keypoints(model, ["head"])
    assert num_keypoints(model.net) == 1 and model.meta["keypoints"] == ["head"]
    old = model.net.roi_heads.keypoint_predictor.kps_score_lowres
    weight, bias = old.weight.detach().clone(), old.bias.detach().clone()
    with_keypoints(model, ["head", "tail"], [(1, 0)])
    new = model.net.roi_heads.keypoint_predictor.kps_score_lowres
    assert num_keypoints(model.net) == 2 and model.meta["keypoints"] == ["head", "tail"]
    assert torch.equal(new.weight[:, :1], weight) and torch.equal(new.bias[:1], bias)
    assert model.meta["skeleton"] == [[1, 0]] and model.meta["masks"] is True


def test_keypoint_columns_put_data_keypoints_in_model_order():
    _, inst = squares()
    [(_, out)] = keypoint_columns([(None, inst)], 3, np.array([2, 0]))
    assert out.keypoints[:, 2].tolist() == inst.keypoints[:, 0].tolist()
    assert out.keypoints[:, 0].tolist() == inst.keypoints[:, 1].tolist()
    assert (out.keypoints[:, 1] == 0).all()
    [(_, none)] = keypoint_columns([(None, inst.replace(keypoints=None))], 2, None)
    assert none.keypoints.shape == (3, 2, 3) and (none.keypoints == 0).all()


# -- finetune ---------------------------------------------------------------------------------


def test_finetune_gives_a_mask_model_the_keypoints_of_a_coco_dataset(tmp_path):
    dataset = landmark_dataset(2, out=tmp_path, shape=(64, 64), n=3, size=(14.0, 24.0))
    model = tiny_model(["rod"])
    result = finetune(model, tmp_path / "annotations.json", progress=False, config=CONFIG)
    trained = result.model
    assert trained.meta["keypoints"] == list(dataset.keypoints) == ["head", "tail"]
    assert trained.meta["skeleton"] == [[0, 1]]
    assert num_keypoints(trained.net) == 2 and not has_keypoint_head(model.net)
    assert np.isfinite(result.history[-1]["loss_keypoint"])
    image, _ = synthetic_landmarks((64, 64), n=3, seed=5)
    pred = trained.predict(image)
    assert pred.keypoints is not None and pred.keypoints.shape[1:] == (2, 3)


def test_finetune_epoch_recipe_and_reordered_pair_keypoints():
    pairs = [synthetic_landmarks((64, 64), n=3, seed=s, size=(14.0, 24.0)) for s in range(2)]
    swapped = [(im, inst.replace(keypoints=inst.keypoints[:, ::-1])) for im, inst in pairs]
    torch.manual_seed(0)
    model = tiny_model(["rod"])
    attach_keypoint_head(model.net, 1, channels=16, layers=1)
    model.meta.update({"keypoints": ["head"], "skeleton": [], "masks": True})
    model.meta["keypoint_head"] = {"channels": 16, "layers": 1}
    config = fast_config(epochs=1, augment=1.0, roi_samples=16, rpn_proposals=50)
    result = finetune(model, swapped, keypoints=["tail", "head"], progress=False, config=config)
    assert result.model.meta["keypoints"] == ["head", "tail"]
    assert num_keypoints(result.model.net) == 2 and num_keypoints(model.net) == 1
    assert np.isfinite(result.history[-1]["loss_keypoint"])


# -- bad input ----------------------------------------------------------------------------------


def _pairs(k=2):
    image, inst = synthetic_landmarks((64, 64), n=2, seed=0, size=(14.0, 24.0))
    return [(image, inst.replace(keypoints=np.zeros((len(inst), k, 3))))]


BAD = [
    (
        "names with a dataset",
        lambda tmp: (
            tiny_model(["rod"]),
            (landmark_dataset(1, out=tmp, shape=(64, 64), n=2), tmp / "annotations.json")[1],
            {"keypoints": ["head"]},
        ),
        ValueError,
        r"^keypoints= names the keypoint columns of a list of \(image, Instances\) pairs",
    ),
    (
        "pairs with unnamed keypoints",
        lambda tmp: (tiny_model(["rod"]), _pairs(), {}),
        ValueError,
        r"^train image 0 has keypoints but neither the model nor the data names them",
    ),
    (
        "more keypoints than names",
        lambda tmp: (tiny_model(["rod"]), _pairs(3), {"keypoints": ["head", "tail"]}),
        ValueError,
        r"^train image 0 has 3 keypoints per instance but 2 keypoint names are known",
    ),
    (
        "duplicate names",
        lambda tmp: (tiny_model(["rod"]), _pairs(), {"keypoints": ["head", "head"]}),
        ValueError,
        r"^keypoints must be unique names, got 'head' twice",
    ),
]


@pytest.mark.parametrize(("case", "make", "error", "match"), BAD, ids=[b[0] for b in BAD])
def test_finetune_bad_keypoint_input(tmp_path, case, make, error, match):
    model, train, kwargs = make(tmp_path)
    with pytest.raises(error, match=match):
        finetune(model, train, progress=False, config=CONFIG, **kwargs)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), "x"])
def test_keypoint_weight_bad_input(weight):
    with pytest.raises(ValueError, match="^keypoint_weight must be a finite number >= 0"):
        TrainConfig(keypoint_weight=weight)


def test_keypoint_weight_scales_the_keypoint_loss_only():
    """One step from the same weights and batch: the minimised sum is the weighted one."""
    from labelassist.train import train_one_epoch

    pairs = [synthetic_landmarks((64, 64), n=3, seed=0, size=(14.0, 24.0))]
    dataset = TrainImages(pairs, normalization=NORM, label_ids=[1])
    batch = ([dataset[0][0]], [dataset[0][1]])
    sums = {}
    for weight in (1.0, 3.0):
        model = tiny_model(["rod"])
        attach_keypoint_head(model.net, 2, channels=8, layers=1)
        opt = torch.optim.SGD(model.net.parameters(), lr=0.0)
        torch.manual_seed(0)
        sums[weight] = train_one_epoch(
            model.net, opt, [batch], progress=False, loss_weights={"loss_keypoint": weight}
        )
    a, b = sums[1.0], sums[3.0]
    assert b["loss_keypoint"] == pytest.approx(a["loss_keypoint"])
    assert b["loss"] == pytest.approx(a["loss"] + 2 * a["loss_keypoint"], rel=1e-5)


@pytest.mark.parametrize("factor", [0.0, -2.0, float("inf")])
def test_keypoint_lr_factor_bad_input(factor):
    with pytest.raises(ValueError, match="^keypoint_lr_factor must be a positive finite number"):
        TrainConfig(keypoint_lr_factor=factor)


def test_keypoint_lr_factor_gives_the_keypoint_head_its_own_learning_rate():
    from labelassist.train.engine import build_optimizer

    model = tiny_model(["rod"])
    attach_keypoint_head(model.net, 2, channels=8, layers=1)
    head = {id(p) for n, p in model.net.named_parameters() if "keypoint_" in n}
    plain = build_optimizer(model.net, TrainConfig())
    assert [g["lr"] for g in plain.param_groups] == [0.005, 0.005]
    fast = build_optimizer(model.net, TrainConfig(keypoint_lr_factor=4.0))
    for group in fast.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= head if group["lr"] == pytest.approx(0.02) else not ids & head
    assert sum(len(g["params"]) for g in fast.param_groups) == len(list(model.net.parameters()))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("keypoint_steps", 0.0, "^keypoint_steps must be a positive finite number"),
        ("keypoint_steps", float("nan"), "^keypoint_steps must be a positive finite number"),
        ("keypoint_margin", -0.1, r"^keypoint_margin must be a finite number in \[0, 1\]"),
        ("keypoint_margin", 2.0, r"^keypoint_margin must be a finite number in \[0, 1\]"),
        ("keypoint_roi_samples", 0, "^keypoint_roi_samples must be an integer >= 1"),
        ("keypoint_sigma", -1.0, "^keypoint_sigma must be a finite number >= 0"),
        ("keypoint_sigma", "x", "^keypoint_sigma must be a finite number >= 0"),
    ],
)
def test_keypoint_budget_and_sigma_bad_input(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_keypoint_steps_multiply_the_budget_of_keypoint_models_only():
    pairs = [synthetic_landmarks((64, 64), n=3, seed=0, size=(14.0, 24.0))]
    config = fast_config(steps=2, chunk_steps=2, crop_size=64, keypoint_steps=2.0)
    plain = [(image, inst.replace(keypoints=None)) for image, inst in pairs]
    masks = finetune(tiny_model(["rod"]), plain, progress=False, config=config)
    assert masks.history[-1]["step"] == 2
    points = finetune(tiny_model(["rod"]), pairs, keypoints=["head", "tail"], progress=False,
                      config=config)  # fmt: skip
    assert [r["step"] for r in points.history] == [2, 4]
    stored = points.model.meta["train_config"]
    assert (stored["steps"], stored["keypoint_steps"]) == (4, 1.0)
    assert (stored["roi_samples"], stored["keypoint_roi_samples"]) == (128, None)
    assert masks.model.meta["train_config"]["roi_samples"] == 32  # fast_config's


def test_keypoint_margin_reaches_a_new_head_and_its_checkpoint(tmp_path):
    from labelassist.model import load_model
    from labelassist.model.keypoints import GrownRoIAlign

    pairs = [synthetic_landmarks((64, 64), n=3, seed=0, size=(14.0, 24.0))]
    config = fast_config(steps=1, chunk_steps=1, crop_size=64, keypoint_margin=0.1)
    result = finetune(tiny_model(["rod"]), pairs, keypoints=["head", "tail"], progress=False,
                      config=config, out=tmp_path)  # fmt: skip
    assert result.model.meta["keypoint_head"]["margin"] == 0.1
    back = load_model(tmp_path / "last.pt", device="cpu")
    pool = back.net.roi_heads.keypoint_roi_pool
    assert isinstance(pool, GrownRoIAlign) and pool.margin == 0.1
    # a model that has a keypoint head keeps its own RoI
    again = finetune(back, pairs, progress=False, config=fast_config(steps=1, crop_size=64))
    assert again.model.meta["keypoint_head"]["margin"] == 0.1


def test_keypoint_sigma_trains_the_gaussian_target():
    """Same weights, batches and seed: the first chunk's keypoint loss is torchvision's at
    sigma 0 and another (the Gaussian target's) at sigma 2; the masks' loss is the same."""
    pairs = [synthetic_landmarks((64, 64), n=3, seed=0, size=(14.0, 24.0))]
    losses = {}
    for sigma in (0.0, 2.0):
        config = fast_config(steps=1, chunk_steps=1, crop_size=64, keypoint_sigma=sigma)
        result = finetune(tiny_model(["rod"]), pairs, keypoints=["head", "tail"],
                          progress=False, config=config)  # fmt: skip
        losses[sigma] = result.history[0]
    assert losses[0.0]["loss_mask"] == pytest.approx(losses[2.0]["loss_mask"], rel=1e-5)
    assert abs(losses[0.0]["loss_keypoint"] - losses[2.0]["loss_keypoint"]) > 1e-3


def test_extend_keypoint_head_bad_input():
    net = tiny_model(["rod"]).net
    with pytest.raises(ValueError, match="^net has no keypoint head to extend; attach one"):
        extend_keypoint_head(net, 2)
    attach_keypoint_head(net, 2, channels=8, layers=1)
    with pytest.raises(ValueError, match="^cannot shrink a keypoint head of 2 keypoints to 1"):
        extend_keypoint_head(net, 1)


def test_landmark_names_are_the_bench_names():
    assert LANDMARK_NAMES == ("head", "tail")


# -- learning -----------------------------------------------------------------------------------


def _oks_ap50(model, images, sigma):
    from labelassist.coco import Dataset
    from labelassist.evaluation import evaluate_predictions

    truth = Dataset(
        ["rod"],
        [{"id": k + 1, "file_name": f"{k}.png", "height": 128, "width": 128}
         for k in range(len(images))],
        {k + 1: inst for k, (_, inst) in enumerate(images)},
        keypoints=list(LANDMARK_NAMES),
    )  # fmt: skip
    preds = {}
    for k, (image, _) in enumerate(images):
        pred = model.predict(image, score_threshold=0.05)
        preds[k + 1] = pred.replace(labels=np.zeros(len(pred), np.int64))
    return evaluate_predictions(preds, truth, keypoint_sigmas=sigma)["keypoints_AP50"]


@pytest.mark.slow
def test_a_short_finetune_from_the_starter_learns_heads_and_tails():
    """The starter's masks plus an untrained keypoint head find no keypoint; 120 steps of
    the few-shot recipe on 4 images start to teach it (OKS AP50 on 4 images it never saw,
    with sigma 0.15 for ends: three times the default tolerance, for a short run;
    ``bench/bench_keypoints.py`` measures the default budget at sigma 0.05)."""
    from labelassist.model import load_model

    def rods(seeds):
        return [
            synthetic_landmarks((128, 128), seed=s, n=(4, 10), size=(14.0, 30.0)) for s in seeds
        ]

    train, test = rods(range(4)), rods(range(10_000, 10_004))
    names = list(LANDMARK_NAMES)
    starter = load_model("starter", device="cpu")
    torch.manual_seed(0)
    untrained = with_keypoints(with_classes(starter, ["rod"]), names)
    config = TrainConfig(steps=120, chunk_steps=120, crop_size=128, keypoint_steps=1.0)
    trained = finetune(starter, train, keypoints=names, progress=False, config=config).model
    before, after = _oks_ap50(untrained, test, 0.15), _oks_ap50(trained, test, 0.15)
    print(f"OKS AP50 (sigma 0.15) before {before:.3f}, after {after:.3f}")
    assert before < 0.05
    assert after > before + 0.1
