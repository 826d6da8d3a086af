"""Bad inputs to training (`TrainConfig`, `finetune`, ``labelassist train``): one table per kind.

Each row: an input -> the exception type and a ``match=`` on its one-line message, raised
before any training step. Data loading runs in a worker process in these tables
(``num_workers=1``), as it does by default: before issue #12 a missing image surfaced as a
20-line traceback from inside a DataLoader worker, and a damaged ``last.state.pt`` as a bare
``KeyError``/``EOFError``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)

from labelassist.coco import Dataset, read_coco
from labelassist.instances import Instances
from labelassist.synthetic import synthetic_dataset, synthetic_nuclei
from labelassist.train import TrainConfig, finetune

SHAPE = (64, 64)
WORKERS = fast_config(num_workers=1)  # images would be read in a DataLoader worker


def one_line(exc_info: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message, message
    return message


# -- TrainConfig values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epochs": 0}, r"^epochs must be an integer >= 1 or None, got 0$"),
        ({"epochs": 1.5}, r"^epochs must be an integer >= 1 or None, got 1.5$"),
        ({"epochs": True}, r"^epochs must be an integer >= 1 or None, got True$"),
        ({"batch_size": 0}, r"^batch_size must be an integer >= 1, got 0$"),
        ({"batch_size": "4"}, r"^batch_size must be an integer >= 1, got '4'$"),
        ({"lr": 0.0}, r"^lr must be a positive finite number, got 0.0$"),
        ({"lr": -1.0}, r"^lr must be a positive finite number, got -1.0$"),
        ({"lr": float("nan")}, r"^lr must be a positive finite number, got nan$"),
        ({"lr": float("inf")}, r"^lr must be a positive finite number, got inf$"),
        ({"lr": "0.1"}, r"^lr must be a positive finite number, got '0.1'$"),
        ({"momentum": -0.1}, r"^momentum must be a finite number in \[0, 1\], got -0.1$"),
        ({"momentum": 2}, r"^momentum must be a finite number in \[0, 1\], got 2$"),
        ({"weight_decay": -1e-4}, r"^weight_decay must be a finite number >= 0, got -0.0001$"),
        ({"warmup_iters": -1}, r"^warmup_iters must be an integer >= 0, got -1$"),
        ({"warmup_factor": 1.5}, r"^warmup_factor must be a finite number in \[0, 1\]"),
        ({"final_lr_factor": -0.5}, r"^final_lr_factor must be a finite number in \[0, 1\]"),
        (
            {"freeze": "everything"},
            r"^freeze must be one of \['auto', 'none', 'backbone', 'features'",
        ),
        ({"freeze": None}, r"^freeze must be one of .*, got None$"),
        ({"augment": 2.0}, r"^augment must be within \[0, 1\] \(or a bool\), got 2.0$"),
        ({"augment": -0.1}, r"^augment must be within \[0, 1\]"),
        ({"augment": "1"}, r"^augment must be within \[0, 1\] \(or a bool\), got '1'$"),
        ({"scale_range": (1.2, 1.5)}, r"^scale_range must be \(low <= 1, high >= 1\)"),
        ({"scale_range": (0.0, 1.5)}, r"^scale_range must be .* with low > 0, got \(0.0, 1.5\)"),
        ({"scale_range": (0.5,)}, r"^scale_range must be .*, got \(0.5,\)$"),
        ({"scale_range": 1.3}, r"^scale_range must be .*, got 1.3$"),
        ({"scale_range": "ab"}, r"^scale_range must be .*, got 'ab'$"),
        ({"scale_range": ("a", 2)}, r"^scale_range must be .*, got \('a', 2\)$"),
        ({"num_workers": -1}, r"^num_workers must be an integer >= 0 or None, got -1$"),
        ({"num_workers": 1.5}, r"^num_workers must be an integer >= 0 or None, got 1.5$"),
        ({"seed": 1.5}, r"^seed must be an integer, got 1.5$"),
        ({"seed": "0"}, r"^seed must be an integer, got '0'$"),
        ({"amp": "yes"}, r"^amp must be True or False, got 'yes'$"),
        ({"clip_grad_norm": 0}, r"^clip_grad_norm must be a positive finite number or None"),
        ({"clip_grad_norm": -1.0}, r"^clip_grad_norm must be a positive finite number or None"),
        ({"val_score_threshold": 1.5}, r"^val_score_threshold must be a finite number in \[0, 1\]"),
        ({"roi_samples": 0}, r"^roi_samples must be an integer >= 1 or None, got 0$"),
        ({"rpn_proposals": 0}, r"^rpn_proposals must be an integer >= 1 or None, got 0$"),
        ({"steps": 0}, r"^steps must be an integer >= 1, got 0$"),
        ({"steps": None}, r"^steps must be an integer >= 1, got None$"),
        ({"max_minutes": 0}, r"^max_minutes must be a positive finite number or None, got 0$"),
        ({"chunk_steps": 0}, r"^chunk_steps must be an integer >= 1, got 0$"),
        ({"crop_size": 16}, r"^crop_size must be an integer >= 32 or None, got 16$"),
        ({"crop_on_objects": 1.5}, r"^crop_on_objects must be a finite number in \[0, 1\]"),
        ({"crop_region": "all"}, r"^crop_region must be one of \['annotated', 'image'\]"),
        ({"copy_paste": -0.1}, r"^copy_paste must be a finite number in \[0, 1\]"),
        ({"paste_max": 0}, r"^paste_max must be an integer >= 1, got 0$"),
        ({"size_norm": "yes"}, r"^size_norm must be True or False, got 'yes'$"),
        ({"channels": [0, 0]}, r"^channels must be 1, 2 or 3 distinct channel indices"),
        ({"channels": "1,2"}, r"^channels must be 1, 2 or 3 distinct .* got '1,2'$"),
        ({"channels": (0, 1, 2, 3)}, r"^channels must be 1, 2 or 3 distinct"),
        ({"channels": -1}, r"^channels must be 1, 2 or 3 distinct .* got -1$"),
        ({"select": "first"}, r"^select must be one of \['last', 'best'\], got 'first'$"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else "",
)
def test_train_config_rejects(changes, match):
    with pytest.raises(ValueError, match=match) as exc_info:
        TrainConfig(**changes)
    one_line(exc_info)


def test_train_config_normalises_good_values():
    config = TrainConfig(epochs=np.int64(3), lr=1, scale_range=[0.5, 2], augment=True)
    assert type(config.epochs) is int and config.epochs == 3
    assert type(config.lr) is float and config.lr == 1.0
    assert config.scale_range == (0.5, 2.0) and config.augment == 1.0


# -- training data ---------------------------------------------------------------------------


@pytest.fixture
def tmp(tmp_path):
    """tmp_path with data/ (a COCO json and 2 images of 64 x 64) and empty/ (a folder)."""
    synthetic_dataset(2, out=tmp_path / "data", shape=SHAPE, n=3, seed=4)
    (tmp_path / "empty").mkdir()
    return tmp_path


def _coco(tmp, **kwargs):
    return {"train": tmp / "data" / "annotations.json", **kwargs}


def _replace_image(tmp, content):
    path = tmp / "data" / "image_00000.png"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "folder":
        path.unlink()
        path.mkdir()
    else:
        iio.imwrite(path, np.zeros(content, np.uint8))
    return _coco(tmp)


def _truncated(tmp):
    path = tmp / "data" / "image_00000.png"
    return _replace_image(tmp, path.read_bytes()[:200])


def _one_missing(tmp):
    (tmp / "data" / "image_00001.png").unlink()
    return _coco(tmp)


def _pairs(tmp=None):
    return [synthetic_nuclei(SHAPE, n=3, radius=(5, 8), seed=s) for s in range(2)]


def _array(image):
    def build(tmp):
        inst = _pairs(tmp)[0][1]
        return {"train": [(image, inst)]}

    return build


def _bad_label(tmp):
    image, inst = _pairs(tmp)[0]
    return {"train": [(image, inst.replace(labels=np.full(len(inst), 3)))]}


def _val_missing(tmp):
    val = read_coco(tmp / "data" / "annotations.json", image_root=tmp / "empty")
    return {"train": _pairs(tmp), "val": val}


def _nothing_annotated(tmp):
    image = _pairs(tmp)[0][0]
    record = {"id": 1, "file_name": "a.png", "height": 64, "width": 64, "image": image}
    return {"train": Dataset(["nucleus"], [record], {})}


_NOT_FOUND = r"give the folder that holds them as image_root \(--image-root on the command line\)$"


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda tmp: _coco(tmp, image_root=tmp / "missing"),
            FileNotFoundError,
            r"^train: 2 of 2 image files not found: \S*missing/image_00000.png, "
            r"\S*missing/image_00001.png; " + _NOT_FOUND,
        ),
        (
            lambda tmp: _coco(tmp, image_root=tmp / "empty"),
            FileNotFoundError,
            r"^train: 2 of 2 image files not found: \S*empty/image_00000.png, ",
        ),
        (
            _one_missing,
            FileNotFoundError,
            r"^train: 1 of 2 image files not found: \S*data/image_00001.png; " + _NOT_FOUND,
        ),
        (
            lambda tmp: _replace_image(tmp, b"this is not an image\n"),
            ValueError,
            r"^train image 0 \(\S*image_00000.png\) cannot be read: .*; fix or remove the image",
        ),
        (
            lambda tmp: _replace_image(tmp, np.random.default_rng(0).bytes(5000)),
            ValueError,
            r"^train image 0 \(\S*image_00000.png\) cannot be read: ",
        ),
        (_truncated, ValueError, r"^train image 0 \(\S*image_00000.png\) cannot be read: "),
        (
            lambda tmp: _replace_image(tmp, (32, 48)),
            ValueError,
            r"^train image 0 \(\S*image_00000.png\) has shape \(32, 48\) but its annotations "
            r"say \(64, 64\); fix or remove the image, then train again$",
        ),
        (
            lambda tmp: _replace_image(tmp, "folder"),
            ValueError,
            r"^train image 0 \(\S*image_00000.png\) is not a regular file",
        ),
        (
            _array(np.zeros((32, 64), np.uint8)),
            ValueError,
            r"^train image 0 \(in-memory array\) has shape \(32, 64\) but its annotations say",
        ),
        (
            _array(np.zeros((3, 64, 64, 5), np.uint8)),
            ValueError,
            r"^train image 0 \(in-memory array\) cannot be read: .* 4-D stack",
        ),
        (_array(np.zeros(SHAPE, complex)), ValueError, r"unsupported pixel type complex128"),
        (
            _bad_label,
            ValueError,
            r"^train image 0 has an instance with label 3 but there are only 1 classes",
        ),
        (
            _val_missing,
            FileNotFoundError,
            r"^val: 2 of 2 image files not found: \S*empty/image_00000.png, ",
        ),
        (lambda tmp: {"train": []}, ValueError, r"^train has no images; annotate"),
        (_nothing_annotated, ValueError, r"^train has no images; annotate"),
        (
            lambda tmp: {"train": [np.zeros(SHAPE)]},
            TypeError,
            r"^train\[0\] must be an \(image, Instances\) pair, got ndarray$",
        ),
        (lambda tmp: {"train": 42}, TypeError, r"^train must be a Dataset, a COCO json path"),
        (
            lambda tmp: {"train": tmp / "nope.json"},
            FileNotFoundError,
            r"^train: COCO file not found: \S*nope.json$",
        ),
        (
            lambda tmp: {"train": _pairs(tmp), "val": [1, 2]},
            TypeError,
            r"^val must be a Dataset or a COCO json path, got list$",
        ),
        (
            lambda tmp: {"train": _pairs(tmp), "model": tiny_model().net},
            TypeError,
            r"^model must be a labelassist Model \(load_model\(...\)\), got MaskRCNN$",
        ),
        (
            lambda tmp: {"train": _pairs(tmp), "config": {"epochs": 1}},
            TypeError,
            r"^config must be a TrainConfig, got dict$",
        ),
    ],
    ids=[
        "image_root missing",
        "image_root without the images",
        "one image deleted",
        "text file as png",
        "random bytes as png",
        "truncated png",
        "image of another size",
        "folder named like an image",
        "array of another size",
        "array 4-D",
        "array complex",
        "label beyond the classes",
        "val images missing",
        "no pairs",
        "nothing annotated",
        "not pairs",
        "not data",
        "COCO file missing",
        "val not a dataset",
        "model not a Model",
        "config a dict",
    ],
)
def test_finetune_rejects_bad_data(tmp, build, error, match):
    kwargs = {"model": tiny_model(), "config": WORKERS, "progress": False, **build(tmp)}
    with pytest.raises(error, match=match) as exc_info:
        finetune(kwargs.pop("model"), kwargs.pop("train"), **kwargs)
    one_line(exc_info)


# -- resume states ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run folder after one epoch: last.pt and last.state.pt."""
    out = tmp_path_factory.mktemp("run") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # restored: later tests compare results across processes
    try:
        finetune(tiny_model(), _pairs(), epochs=1, out=out, progress=False, config=fast_config())
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture
def run_dir(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def _write_state(obj):
    def corrupt(run):
        torch.save(obj, run / "last.state.pt")

    return corrupt


def _edit_state(**changes):
    def corrupt(run):
        state = torch.load(run / "last.state.pt", weights_only=True)
        state.update(changes)
        torch.save(state, run / "last.state.pt")

    return corrupt


_STATE = r"\S*run/last.state.pt is not a training state written by finetune"
_EXPECTED = (
    r"; expected the last.state.pt that finetune\(out=...\) writes with last.pt after every "
    r"epoch; to start over, train without resume \(--resume\) into a new out folder$"
)


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (
            lambda run: (run / "last.state.pt").write_bytes(b""),
            rf"^{_STATE} \(the file is empty\){_EXPECTED}",
        ),
        (
            lambda run: (run / "last.state.pt").write_bytes(np.random.default_rng(1).bytes(5000)),
            rf"^{_STATE} \(unreadable: \w+: .*\){_EXPECTED}",
        ),
        (
            lambda run: (run / "last.state.pt").write_text("this is not a checkpoint\n"),
            rf"^{_STATE} \(unreadable: \w+: .*\){_EXPECTED}",
        ),
        (
            lambda run: (run / "last.state.pt").write_bytes(
                (run / "last.state.pt").read_bytes()[:1000]
            ),
            rf"^{_STATE} \(unreadable: \w+: .*\){_EXPECTED}",
        ),
        (
            _write_state({"epoch": 1, "weights": torch.zeros(3)}),
            rf"^{_STATE} \(it lacks \['optimizer', 'scheduler', 'scaler', 'rng', "
            rf"'prior_history', 'history', 'config'\]\){_EXPECTED}",
        ),
        (_write_state(torch.zeros(3)), rf"^{_STATE} \(it holds a Tensor, not a dict\)"),
        (
            lambda run: shutil.copy(run / "last.pt", run / "last.state.pt"),
            rf"^{_STATE} \(it is a model checkpoint \(Model.save\), not the training state\)",
        ),
        (_edit_state(epoch="1"), rf"^{_STATE} \('epoch' is a str\)"),
        (_edit_state(epoch=True), rf"^{_STATE} \('epoch' is a bool\)"),
        (_edit_state(epoch=-1), rf"^{_STATE} \('epoch' is -1\)"),
        (_edit_state(history=[1, 2]), rf"^{_STATE} \('history' holds other things than dicts\)"),
        (
            _edit_state(rng={"python": []}),
            rf"^{_STATE} \('rng' lacks the torch generator state \(a uint8 tensor\)\)",
        ),
        (
            _edit_state(optimizer={"state": {}}),
            rf"^{_STATE} \('optimizer' lacks \['param_groups'\]\)",
        ),
        (
            lambda run: (run / "last.pt").write_text("this is not a checkpoint\n"),
            r"\S*run/last.pt is not a",
        ),
        (lambda run: (run / "last.pt").write_bytes(b""), r"\S*run/last.pt is not a"),
        (
            lambda run: (run / "last.state.pt").unlink(),
            r"^resume=True but \S*run holds no checkpoint \(last.pt and last.state.pt\)",
        ),
    ],
    ids=[
        "empty",
        "5 kB random bytes",
        "text file",
        "truncated",
        "wrong keys",
        "a tensor",
        "the model checkpoint",
        "epoch a str",
        "epoch a bool",
        "epoch negative",
        "history of ints",
        "rng without torch",
        "optimizer without groups",
        "last.pt a text file",
        "last.pt empty",
        "no state file",
    ],
)
def test_resume_rejects_bad_states(run_dir, corrupt, match):
    corrupt(run_dir)
    with pytest.raises(ValueError, match=match) as exc_info:
        finetune(
            tiny_model(),
            _pairs(),
            epochs=2,
            out=run_dir,
            resume=True,
            progress=False,
            config=fast_config(),
        )
    one_line(exc_info)


def test_resume_with_other_settings_does_not_fit(run_dir):
    # the run trained every parameter; frozen heads leave fewer for the optimizer
    with pytest.raises(ValueError, match=r"last.state.pt does not fit this run \(") as exc_info:
        finetune(
            tiny_model(),
            _pairs(),
            epochs=2,
            out=run_dir,
            resume=True,
            progress=False,
            config=fast_config(freeze="heads"),
        )
    one_line(exc_info)


def test_state_written_without_amp_restores_into_a_scaler_with_amp(finished_run):
    # a CPU run stores an empty scaler state; resuming it where AMP is on (CUDA) must not
    # fail with torch's "The source state dict is empty"
    from labelassist.train.engine import build_optimizer, build_scheduler
    from labelassist.train.state import read_state, restore

    state = read_state(finished_run / "last.state.pt")
    assert state["scaler"] == {}
    net, config = tiny_model().net, fast_config()
    optimizer = build_optimizer(net, config)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    optimisation = (optimizer, build_scheduler(optimizer, config, 10), scaler)
    first, prior, history = restore(state, optimisation, finished_run / "last.state.pt", 2)
    assert (first, prior, [h["epoch"] for h in history]) == (1, [], [1])
    assert scaler.is_enabled()


# -- the command line ------------------------------------------------------------------------


def _run_without_state(tmp, state=None):
    (tmp / "run").mkdir()
    shutil.copy(tmp / "start.pt", tmp / "run" / "last.pt")
    if state is not None:
        (tmp / "run" / "last.state.pt").write_bytes(state)


@pytest.fixture
def cli_args(tmp):
    start = tiny_model().save(tmp / "start.pt")
    coco = tmp / "data" / "annotations.json"
    return [
        "train",
        "--train",
        str(coco),
        "--model",
        str(start),
        "--out",
        str(tmp / "run"),
        "--epochs",
        "1",
        "--workers",
        "1",
        "--no-progress",
    ]


@pytest.mark.parametrize(
    ("extra", "prepare", "match"),
    [
        (
            ["--image-root", "{tmp}/missing"],
            None,
            r"^labelassist train: error: --image-root: folder not found: \S*missing; give the "
            r"folder that holds the images",
        ),
        (
            ["--image-root", "{tmp}/empty"],
            None,
            r"^labelassist train: error: train: 2 of 2 image files not found: "
            r"\S*empty/image_00000.png, .*\(--image-root on the command line\)$",
        ),
        (
            [],
            lambda tmp: _replace_image(tmp, b"not an image"),
            r"^labelassist train: error: train image 0 \(\S*image_00000.png\) cannot be read",
        ),
        (
            ["--resume"],
            _run_without_state,
            r"^labelassist train: error: resume=True but \S*run holds no checkpoint",
        ),
        (
            ["--resume"],
            lambda tmp: _run_without_state(tmp, b""),
            rf"^labelassist train: error: {_STATE} \(the file is empty\){_EXPECTED}",
        ),
        (
            ["--epochs", "0"],
            None,
            r"^labelassist train: error: epochs must be an integer >= 1 or None, got 0$",
        ),
        (
            ["--channels", "a,b"],
            None,
            r"^labelassist train: error: --channels must be comma-separated channel indices "
            r"such as 1,2, got 'a,b'$",
        ),
        (
            ["--steps", "0"],
            None,
            r"^labelassist train: error: steps must be an integer >= 1, got 0$",
        ),
    ],
    ids=[
        "image root missing",
        "image root empty",
        "text as png",
        "no state",
        "empty state",
        "0",
        "channels",
        "steps",
    ],
)
def test_cli_train_bad_inputs_one_line(tmp, cli_args, extra, prepare, match, capsys):
    from labelassist.cli import main

    if prepare is not None:
        prepare(tmp)
    argv = cli_args + [a.format(tmp=tmp) for a in extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err.strip()), err
    assert not (tmp / "run" / "last.state.pt").exists() or "--resume" in extra


def test_cli_evaluate_image_root_missing(tmp, capsys):
    from labelassist.cli import main

    coco = tmp / "data" / "annotations.json"
    assert main(["evaluate", str(coco), "--image-root", str(tmp / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("labelassist evaluate: error: --image-root: folder not found")
    assert len(err.strip().splitlines()) == 1


def test_cli_train_missing_images_in_a_real_process(tmp, cli_args):
    """The issue's repro as a user runs it: a separate process, data loading in a worker."""
    argv = [*cli_args, "--image-root", str(tmp / "empty")]
    code = "import sys; from labelassist.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "image files not found" in lines[0] and "image_00000.png" in lines[0]
    assert "--image-root" in lines[0] and "Traceback" not in proc.stderr


def test_images_are_checked_once_up_front_and_training_still_works(tmp):
    # a good COCO file with num_workers=1: the check reads in this process, training in
    # a worker, and the run goes through
    result = finetune(
        tiny_model(), tmp / "data" / "annotations.json", epochs=1, progress=False, config=WORKERS
    )
    assert result.history[0]["n_train_images"] == 2
    assert isinstance(result.model.predict(np.zeros(SHAPE, np.uint8)), Instances)
