"""Tests for labelassist.model: building (build), the Model wrapper (model), checkpoints
(checkpoint, including checkpoint_to_bytes / model_from_bytes) and load_model (load)."""

from __future__ import annotations

import io
import pickle
import urllib.error

import numpy as np
import pytest
import torch

from labelassist.instances import Instances
from labelassist.model import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    Model,
    build_maskrcnn,
    checkpoint_to_bytes,
    coco_weights_path,
    load_model,
    model_from_bytes,
    pick_device,
    read_checkpoint,
)
from labelassist.model import load as loading

LIGHT = "maskrcnn_resnet18_fpn"
SMALL = {"box_detections_per_img": 20, "rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 50}


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((size, size)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(0)
    net = build_maskrcnn(LIGHT, 3, **SMALL)
    return Model(net, ["nucleus", "debris"], arch=LIGHT, options=SMALL, device="cpu")


# -- build_maskrcnn -----------------------------------------------------------------------


def test_architectures_names():
    assert {"maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn", LIGHT} <= set(ARCHITECTURES)
    assert DEFAULT_ARCH == LIGHT


def test_light_arch_is_slim_and_configured():
    net = build_maskrcnn(LIGHT, 2)
    n_params = sum(p.numel() for p in net.parameters())
    # fp16 storage must stay <= 20 MB for the shipped starter
    assert 2 * n_params < 20e6
    assert not hasattr(net.backbone.body, "layer4")  # layer4 dropped
    assert net.backbone.out_channels == 128
    assert net.roi_heads.detections_per_img == 300
    sizes = net.rpn.anchor_generator.sizes
    assert [s[0] for s in sizes] == [8, 16, 32, 64]
    # trainable BatchNorm everywhere in the trunk (FrozenBatchNorm diverges from scratch)
    bns = [m for m in net.backbone.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(p.requires_grad for m in bns for p in m.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_light_arch_keeps_native_resolution():
    net = build_maskrcnn(LIGHT, 2).eval()
    images, _ = net.transform([torch.rand(3, 70, 100)])
    assert images.image_sizes == [(70, 100)]
    assert tuple(images.tensors.shape[-2:]) == (96, 128)  # only padded to /32
    net.train()
    target = {"boxes": torch.tensor([[10.0, 10.0, 30.0, 40.0]]), "labels": torch.tensor([1])}
    target["masks"] = torch.zeros(1, 70, 100, dtype=torch.uint8)
    _, targets = net.transform([torch.rand(3, 70, 100)], [target])
    assert targets[0]["boxes"].tolist() == [[10.0, 10.0, 30.0, 40.0]]


def test_light_arch_trains_one_step():
    torch.manual_seed(0)
    net = build_maskrcnn(LIGHT, 2, **SMALL)
    net.train()
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 20:40, 10:30] = 1
    target = {
        "boxes": torch.tensor([[10.0, 20.0, 30.0, 40.0]]),
        "labels": torch.tensor([1]),
        "masks": masks,
    }
    losses = net([torch.rand(3, 64, 64)], [target])
    assert {"loss_classifier", "loss_mask", "loss_objectness"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()


def test_build_options_reach_torchvision():
    net = build_maskrcnn(LIGHT, 5, fpn_channels=64, anchor_sizes=(4, 8, 16, 32), box_nms_thresh=0.3)
    assert net.backbone.out_channels == 64
    assert net.roi_heads.nms_thresh == 0.3
    assert net.roi_heads.box_predictor.cls_score.out_features == 5


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        (("maskrcnn_vit",), {}, ValueError, r"arch must be one of \[.*\], got 'maskrcnn_vit'"),
        ((LIGHT, 1), {}, ValueError, r"num_classes must be an integer >= 2, got 1 \(background"),
        ((LIGHT, 2.0), {}, ValueError, "num_classes must be an integer >= 2, got 2.0"),
        ((LIGHT, 2), {"anchor_sizes": (8, 16)}, ValueError, "one size per feature level"),
        ((LIGHT, 2), {"returned_layers": (0, 1)}, ValueError, "subset of 1..4"),
        ((LIGHT, 2), {"no_such_option": 1}, TypeError, r"unknown options \[.no_such_option.\]"),
        (
            (LIGHT, 2),
            {"weights_backbone": "Nope_Weights.X"},
            ValueError,
            "not a torchvision weights",
        ),
    ],
)
def test_build_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        build_maskrcnn(*args, **kwargs)


# -- devices ------------------------------------------------------------------------------


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert pick_device(None).type == "cuda"
    elif not (torch.backends.mps.is_available()):
        assert pick_device(None).type == "cpu"
    with pytest.raises(ValueError, match="not a torch device"):
        pick_device("gpu-please")


# -- Model ----------------------------------------------------------------------------------


def test_model_attributes(model):
    assert model.classes == ["nucleus", "debris"]
    assert model.arch == LIGHT
    assert model.device == torch.device("cpu")
    assert model.meta["label_ids"] == [1, 2]
    assert model.meta["num_classes"] == 3
    assert model.meta["normalization"]["mode"] == "auto"
    assert model.meta["history"] == []
    assert not model.net.training
    assert model.to("cpu") is model
    assert "nucleus" in repr(model)


@pytest.mark.parametrize(
    ("net_factory", "classes", "kwargs", "exc", "match"),
    [
        (lambda: torch.nn.Linear(2, 2), ["a"], {}, TypeError, "torchvision MaskRCNN"),
        (lambda: build_maskrcnn(LIGHT, 2), "a", {}, TypeError, "list of class names"),
        (
            lambda: build_maskrcnn(LIGHT, 2),
            [1],
            {},
            ValueError,
            r"classes\[0\] must be a non-empty str",
        ),
        (lambda: build_maskrcnn(LIGHT, 2), ["a", "a"], {}, ValueError, "must be unique"),
        (
            lambda: build_maskrcnn(LIGHT, 3),
            ["a", "background"],
            {},
            ValueError,
            "background is not",
        ),
        (lambda: build_maskrcnn(LIGHT, 2), [], {}, ValueError, "at least one class"),
        (lambda: build_maskrcnn(LIGHT, 2), ["a", "b"], {}, ValueError, "num_classes=len"),
        (lambda: build_maskrcnn(LIGHT, 2), ["a"], {"arch": "x"}, ValueError, "arch must be one of"),
        (
            lambda: build_maskrcnn(LIGHT, 2),
            ["a"],
            {"meta": {"bad": object()}},
            ValueError,
            "JSON-serialisable",
        ),
    ],
)
def test_model_errors(net_factory, classes, kwargs, exc, match):
    kwargs = {"arch": LIGHT, **kwargs}
    with pytest.raises(exc, match=match):
        Model(net_factory(), classes, device="cpu", **kwargs)


def test_model_predict_returns_instances_and_restores_state(model):
    model.net.train()
    old = model.net.roi_heads.score_thresh
    out = model.predict(_image(), score_threshold=0.0)
    assert isinstance(out, Instances)
    assert out.image_shape == (64, 64)
    assert len(out) > 0  # an untrained net still proposes at a zero threshold
    assert set(out.labels.tolist()) <= {0, 1}
    assert model.net.training  # restored
    assert model.net.roi_heads.score_thresh == old
    model.net.eval()
    assert len(model.predict(_image(), score_threshold=1.0)) == 0


# -- save / load ----------------------------------------------------------------------------


def test_save_load_roundtrip(model, tmp_path):
    model.meta["history"] = [{"epoch": 1, "loss": 0.5}]
    path = model.save(tmp_path / "sub" / "model.pt")
    assert path == tmp_path / "sub" / "model.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp files left
    data = torch.load(path, map_location="cpu", weights_only=True)
    assert data["format"] == "labelassist" and data["format_version"] == 1
    assert data["meta"]["arch"] == LIGHT and data["meta"]["options"] == SMALL
    assert "created" in data["meta"] and "labelassist_version" in data["meta"]

    loaded = load_model(path, device="cpu")
    assert loaded.classes == model.classes
    assert loaded.meta["history"] == [{"epoch": 1, "loss": 0.5}]
    assert loaded.net.roi_heads.detections_per_img == SMALL["box_detections_per_img"]
    for (name, a), b in zip(
        model.net.state_dict().items(), loaded.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    image = _image(1)
    assert loaded.predict(image, score_threshold=0.0) == model.predict(image, score_threshold=0.0)
    model.meta["history"] = []


def test_save_half_is_smaller_and_loads_as_float32(model, tmp_path):
    full = model.save(tmp_path / "full.pt")
    half = model.save(tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    data = torch.load(half, weights_only=True)
    assert data["state_dict"]["roi_heads.box_head.fc6.weight"].dtype == torch.float16
    loaded = load_model(half, device="cpu")
    weight = loaded.net.roi_heads.box_head.fc6.weight
    assert weight.dtype == torch.float32
    ref = model.net.roi_heads.box_head.fc6.weight
    assert torch.allclose(weight, ref, atol=1e-3, rtol=1e-3)
    assert not torch.equal(weight, ref)  # really went through fp16


def test_save_to_folder_raises(model, tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        model.save(tmp_path)


def test_checkpoint_bytes_do_not_depend_on_having_predicted(model):
    """CPU inference switches the conv weights to channels-last; the checkpoint must not
    carry that (the Dask workers' cache is keyed by these bytes)."""
    before = checkpoint_to_bytes(model)
    model.predict(np.zeros((32, 32), np.uint8))
    assert any(
        p.dim() == 4 and not p.is_contiguous() for p in model.net.parameters()
    )  # the switch happened
    assert checkpoint_to_bytes(model) == before


def test_checkpoint_bytes_roundtrip(model, tmp_path):
    data = checkpoint_to_bytes(model)
    assert isinstance(data, bytes)
    assert checkpoint_to_bytes(model) == data  # deterministic: no creation time inside
    # the same format as a saved file: torch reads it safely, load_model reads it from disk
    stored = torch.load(io.BytesIO(data), weights_only=True)
    assert stored["format"] == "labelassist" and "created" not in stored["meta"]
    assert stored["meta"]["options"] == SMALL and stored["meta"]["classes"] == model.classes
    (tmp_path / "m.pt").write_bytes(data)
    from_file = load_model(tmp_path / "m.pt", device="cpu")
    back = model_from_bytes(data, device="cpu")
    assert back.classes == model.classes and back.arch == model.arch
    assert back.meta["label_ids"] == model.meta["label_ids"]
    for (name, a), b, c in zip(
        model.net.state_dict().items(),
        back.net.state_dict().values(),
        from_file.net.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b) and torch.equal(a, c), name
    image = _image(2)
    expected = model.predict(image, score_threshold=0.0)
    assert len(expected) > 0
    assert back.predict(image, score_threshold=0.0) == expected
    # bytearray / memoryview are bytes too; other weights give other bytes
    assert model_from_bytes(bytearray(data), device="cpu").classes == model.classes
    torch.manual_seed(1)
    other = Model(
        build_maskrcnn(LIGHT, 3, **SMALL),
        ["nucleus", "debris"],
        arch=LIGHT,
        options=SMALL,
        device="cpu",
    )
    assert checkpoint_to_bytes(other) != data


def test_checkpoint_bytes_half_and_saved_file_agree(model, tmp_path):
    half = checkpoint_to_bytes(model, half=True)
    assert len(half) < 0.6 * len(checkpoint_to_bytes(model))
    saved = torch.load(model.save(tmp_path / "h.pt", half=True), weights_only=True)
    stored = read_checkpoint(half)
    assert stored["meta"]["stored_half"] and saved["meta"]["stored_half"]
    assert stored["state_dict"].keys() == saved["state_dict"].keys()
    assert all(torch.equal(stored["state_dict"][k], v) for k, v in saved["state_dict"].items())
    loaded = model_from_bytes(half, device="cpu")
    assert loaded.net.roi_heads.box_head.fc6.weight.dtype == torch.float32


def test_load_untrained():
    m = load_model(None, classes=["cell"], device="cpu")
    assert m.classes == ["cell"] and m.arch == LIGHT
    assert load_model(None, classes="cell", device="cpu").classes == ["cell"]


def test_load_untrained_other_arch():
    m = load_model(None, classes=["a", "b"], arch="maskrcnn_resnet50_fpn_v2", device="cpu")
    assert m.arch == "maskrcnn_resnet50_fpn_v2"
    assert m.net.roi_heads.box_predictor.cls_score.out_features == 3


def _write(path, obj):
    torch.save(obj, path)
    return path


def test_load_foreign_files(model, tmp_path):
    plain = _write(tmp_path / "plain.pth", build_maskrcnn(LIGHT, 2).state_dict())
    with pytest.raises(ValueError, match="plain state dict"):
        load_model(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        load_model(junk)

    evil = _write(tmp_path / "evil.pt", {"format": "labelassist", "obj": Instances.empty((2, 2))})
    with pytest.raises(ValueError, match="refuses to load"):
        load_model(evil)
    legacy = tmp_path / "legacy.pkl"
    with open(legacy, "wb") as fh:
        pickle.dump({"obj": Instances.empty((2, 2))}, fh, protocol=2)
    with pytest.raises(ValueError, match="refuses to load"):
        load_model(legacy)

    not_ours = _write(tmp_path / "other.pt", {"model": "x"})
    with pytest.raises(ValueError, match="not a labelassist checkpoint"):
        load_model(not_ours)

    data = model.checkpoint()
    data["state_dict"] = build_maskrcnn(LIGHT, 2).state_dict()  # 2 classes, meta says 3
    with pytest.raises(ValueError, match="does not fit architecture"):
        load_model(_write(tmp_path / "mismatch.pt", data))

    data = model.checkpoint()
    data["format_version"] = 99
    with pytest.raises(ValueError, match="upgrade labelassist"):
        load_model(_write(tmp_path / "future.pt", data))

    data = model.checkpoint()
    del data["meta"]["classes"]
    with pytest.raises(ValueError, match="meta lacks 'classes'"):
        load_model(_write(tmp_path / "damaged.pt", data))

    data = model.checkpoint()
    data["meta"]["arch"] = "maskrcnn_swin"
    with pytest.raises(ValueError, match="unknown to this labelassist"):
        load_model(_write(tmp_path / "arch.pt", data))

    good = model.save(tmp_path / "good.pt")
    with pytest.raises(ValueError, match="conflicts with the checkpoint"):
        load_model(good, arch="maskrcnn_resnet50_fpn")


@pytest.mark.parametrize(
    ("source", "kwargs", "exc", "match"),
    [
        (None, {}, ValueError, "needs classes"),
        ("starter", {"classes": ["a"]}, ValueError, "only used with source=None"),
        ("imagenet", {}, ValueError, "source='imagenet' is not valid"),
        (42, {}, ValueError, "source=42 is not valid"),
        ("missing/model.pt", {}, FileNotFoundError, "does not exist"),
        ("torchvision-coco", {"arch": LIGHT}, ValueError, "has no torchvision COCO weights"),
    ],
)
def test_load_model_errors(source, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_model(source, **kwargs)


def test_starter_missing_and_present(model, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "STARTER_PATH", tmp_path / "data" / "starter.pt")
    with pytest.raises(FileNotFoundError, match="starter model is not shipped"):
        load_model("starter")
    model.save(tmp_path / "data" / "starter.pt", half=True)
    starter = load_model(device="cpu")
    assert starter.classes == model.classes


# -- torchvision COCO weights (offline: the file is placed where torchvision caches it) -----


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch"


def test_coco_weights_offline_error_names_file_and_url(offline_hub):
    path, url = coco_weights_path()
    assert path.parent == offline_hub / "hub" / "checkpoints"
    assert url.startswith("https://") and url.endswith(path.name)
    with pytest.raises(RuntimeError, match="place the file at") as info:
        load_model("torchvision-coco")
    assert str(path) in str(info.value) and url in str(info.value)


@pytest.mark.parametrize("arch", ["maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn"])
def test_coco_weights_from_cache(offline_hub, arch):
    from torchvision.models.detection import (
        MaskRCNN_ResNet50_FPN_V2_Weights,
        MaskRCNN_ResNet50_FPN_Weights,
        maskrcnn_resnet50_fpn,
        maskrcnn_resnet50_fpn_v2,
    )

    builder, weights = {
        "maskrcnn_resnet50_fpn_v2": (maskrcnn_resnet50_fpn_v2, MaskRCNN_ResNet50_FPN_V2_Weights),
        "maskrcnn_resnet50_fpn": (maskrcnn_resnet50_fpn, MaskRCNN_ResNet50_FPN_Weights),
    }[arch]
    torch.manual_seed(0)
    state = builder(weights=None, weights_backbone=None, num_classes=91).state_dict()
    # torchvision's files hold no BatchNorm counters for the frozen v1 backbone
    if arch == "maskrcnn_resnet50_fpn":
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path, _ = coco_weights_path(arch)
    path.parent.mkdir(parents=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, path)

    kwargs = {} if arch == "maskrcnn_resnet50_fpn_v2" else {"arch": arch}
    m = load_model("torchvision-coco", device="cpu", **kwargs)
    assert m.arch == arch
    categories = weights.DEFAULT.meta["categories"]
    assert len(m.classes) == 80
    assert "N/A" not in m.classes and "__background__" not in m.classes
    for name in ("person", "stop sign", "toothbrush"):
        assert m.meta["label_ids"][m.classes.index(name)] == categories.index(name)
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(m.net.state_dict()[key], state[key].half().float())


def test_saved_checkpoint_has_normal_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = load_model(None, classes=["cell"], device="cpu").save(tmp_path / "m.pt")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind
