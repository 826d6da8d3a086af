"""The step recipe end to end: plan, auto freeze, object sizes, channels, renamed class, time cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.coco import Dataset
from labelassist.model import load_model
from labelassist.model.scale import median_object_size
from labelassist.synthetic import synthetic_image, synthetic_nuclei
from labelassist.train import TrainConfig, finetune
from labelassist.train.config import AUTO_FREEZE_INSTANCES, auto_freeze
from labelassist.train.engine import build_optimizer, build_scheduler
from labelassist.train.heads import class_mapping
from labelassist.train.recipe import fit_time, plan_run

STEPS = fast_config(steps=3, chunk_steps=2, crop_size=48)


def nuclei_pairs(n=2, shape=(64, 64)):
    return [synthetic_nuclei(shape, n=4, seed=seed) for seed in range(n)]


def test_plan_counts_steps_not_images():
    model = tiny_model()
    for n_images in (1, 2, 8):
        plan = plan_run(model, nuclei_pairs(n_images), TrainConfig(steps=200, chunk_steps=50))
        assert (plan.epochs, plan.per_epoch, plan.iterations) == (4, 50, 200)
    plan = plan_run(model, nuclei_pairs(2), TrainConfig(steps=120, chunk_steps=50))
    assert (plan.epochs, plan.per_epoch) == (3, 40)  # equal chunks, at least the budget
    old = plan_run(model, nuclei_pairs(8), TrainConfig(epochs=3, batch_size=4))
    assert (old.epochs, old.per_epoch, old.factor) == (3, 2, 1.0)


def test_auto_freeze_follows_the_amount_of_data():
    assert auto_freeze(AUTO_FREEZE_INSTANCES) == "none"
    if AUTO_FREEZE_INSTANCES > 0:
        assert auto_freeze(AUTO_FREEZE_INSTANCES - 1) == "backbone"
    pairs = nuclei_pairs(2)
    n = sum(len(i) for _, i in pairs)
    assert plan_run(tiny_model(), pairs, TrainConfig()).freeze == auto_freeze(n)
    assert plan_run(tiny_model(), pairs, TrainConfig(freeze="heads")).freeze == "heads"


def test_step_recipe_trains_chunks_and_stores_sizes():
    pairs = nuclei_pairs(2)
    result = finetune(tiny_model(), pairs, progress=False, config=STEPS)
    assert [r["step"] for r in result.history] == [2, 4]
    assert [r["iterations"] for r in result.history] == [2, 2]
    size = median_object_size([inst for _, inst in pairs])
    # a model that knew no object size trained at the data's own scale
    assert result.model.object_size == pytest.approx(size)
    assert result.model.data_object_size == pytest.approx(size)
    assert result.model.meta["train_config"]["steps"] == 3


def test_step_recipe_trains_at_the_model_object_size(tmp_path):
    """A model with an object size: the data are rescaled to it; the trained model keeps
    it and learns the data's own size (what `predict` rescales from)."""
    model = tiny_model().set_input(object_size=8.0)
    pairs = nuclei_pairs(2, shape=(96, 96))
    plan = plan_run(model, pairs, STEPS)
    size = median_object_size([inst for _, inst in pairs])
    assert plan.factor == pytest.approx(8.0 / size)
    result = finetune(model, pairs, progress=False, config=STEPS, out=tmp_path / "run")
    assert result.model.object_size == 8.0
    assert result.model.data_object_size == pytest.approx(size)
    loaded = load_model(result.checkpoint, device="cpu")
    assert loaded.object_size == 8.0 and loaded.data_object_size == pytest.approx(size)
    assert model.data_object_size is None  # the input model is not modified
    off = plan_run(model, pairs, fast_config(steps=3, size_norm=False))
    assert off.factor == 1.0


def test_channels_are_chosen_and_stored():
    image, inst = synthetic_image("cells", (64, 64), seed=1, n=4, size=(12.0, 20.0))
    result = finetune(tiny_model(), [(image, inst)], channels=(1, 2), progress=False, config=STEPS)
    assert result.model.channels == (1, 2)
    # a later round without channels= keeps the model's
    again = finetune(result.model, [(image, inst)], progress=False, config=STEPS)
    assert again.model.channels == (1, 2)
    with pytest.raises(ValueError, match=r"^channels=\(5,\) is out of range"):
        finetune(tiny_model(), [(image, inst)], channels=5, progress=False, config=STEPS)


def test_one_class_model_is_renamed_to_one_class_data():
    classes, mapping = class_mapping(["nucleus"], ["cell"])
    assert classes == ["cell"] and mapping.tolist() == [0]
    assert class_mapping(["nucleus"], ["cell", "debris"])[0] == ["nucleus", "cell", "debris"]
    assert class_mapping(["a", "b"], ["c"])[0] == ["a", "b", "c"]
    model = tiny_model(["nucleus"])
    image, inst = synthetic_nuclei((64, 64), n=4, seed=0)
    data = Dataset(
        ["cell"],
        [{"id": 1, "file_name": "a.png", "height": 64, "width": 64, "image": image}],
        {1: inst},
    )
    result = finetune(model, data, progress=False, config=STEPS)
    assert result.model.classes == ["cell"] and model.classes == ["nucleus"]
    cls_score = result.model.net.roi_heads.box_predictor.cls_score
    assert cls_score.out_features == 2  # the starter's rows, not fresh ones
    assert result.model.meta["label_ids"] == [1]


def test_epochs_select_the_old_recipe():
    pairs = nuclei_pairs(3)
    result = finetune(tiny_model(), pairs, epochs=2, progress=False, config=fast_config())
    assert [r["iterations"] for r in result.history] == [2, 2]  # 3 images, batch 2
    assert result.model.meta["train_config"]["epochs"] == 2


def test_fit_time_shortens_the_schedule_to_the_cap():
    net = torch.nn.Linear(2, 2)
    config = TrainConfig(steps=100, chunk_steps=10, warmup_iters=30)
    scheduler = build_scheduler(build_optimizer(net, config), config, 100)
    assert fit_time(scheduler, 10, 0, 0.0, 1.0) == 10  # nothing measured yet
    assert fit_time(scheduler, 10, 2, 20.0, None) == 10  # no cap
    assert fit_time(scheduler, 10, 2, 20.0, 1.0) == 6  # 10 s a chunk: 6 fit in a minute
    schedule = scheduler.lr_lambdas[0]
    assert schedule.total == 60 and schedule.warmup == 20
    assert schedule(60) == pytest.approx(config.final_lr_factor)
    assert fit_time(scheduler, 6, 3, 300.0, 1.0) == 3  # over already: stop now


def test_max_minutes_stops_a_run_early():
    pairs = nuclei_pairs(1)
    config = fast_config(steps=40, chunk_steps=2, crop_size=48, max_minutes=1e-6)
    result = finetune(tiny_model(), pairs, progress=False, config=config)
    assert len(result.history) == 1 and result.history[-1]["step"] == 2
    assert np.isfinite(result.history[-1]["loss"])


def test_select_best_returns_the_best_chunk_on_val(tmp_path):
    import imageio.v3 as iio

    from labelassist.evaluation import evaluate

    pairs = nuclei_pairs(2)
    image, inst = synthetic_nuclei((64, 64), n=4, seed=9)
    iio.imwrite(tmp_path / "v.png", image)
    val = Dataset(
        ["nucleus"],
        [{"id": 1, "file_name": "v.png", "height": 64, "width": 64}],
        {1: inst},
        image_root=tmp_path,
    )
    config = fast_config(steps=6, chunk_steps=2, crop_size=48, lr=0.05, val_score_threshold=0.0)
    starter = load_model("starter", device="cpu")  # good at nuclei: the chunks differ
    result = finetune(starter, pairs, val=val, progress=False, config=config)
    scores = [r["segm_AP50"] for r in result.history]
    assert len(scores) == 3 and len(set(scores)) > 1, scores
    again = evaluate(result.model, val, score_threshold=0.0, progress=False)["segm_AP50"]
    assert again == pytest.approx(max(scores))
    best = int(np.argmax(scores))
    assert result.model.meta.get("selected_epoch", len(scores)) == best + 1
    last = finetune(
        tiny_model(),
        pairs,
        val=val,
        progress=False,
        config=fast_config(
            steps=6, chunk_steps=2, crop_size=48, lr=0.05, val_score_threshold=0.0, select="last"
        ),
    )
    assert "selected_epoch" not in last.model.meta


def test_cli_train_runs_the_step_recipe(tmp_path, capsys):
    from labelassist.cli import main
    from labelassist.synthetic import synthetic_dataset

    synthetic_dataset(2, out=tmp_path / "data", shape=(64, 64), n=3, seed=4)
    coco = tmp_path / "data" / "annotations.json"
    start = tiny_model().save(tmp_path / "start.pt")
    args = ["train", "--train", str(coco), "--model", str(start), "--out", str(tmp_path / "run")]
    options = ["--steps", "3", "--crop-size", "48", "--no-copy-paste", "--freeze", "backbone"]
    assert main([*args, *options, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trained 1 chunk(s), 3 steps" in out
    trained = load_model(tmp_path / "run" / "last.pt", device="cpu")
    config = trained.meta["train_config"]
    assert (config["steps"], config["crop_size"], config["copy_paste"]) == (3, 48, 0.0)
    assert trained.meta["history"][-1]["freeze"] == "backbone"
    assert trained.data_object_size is not None
