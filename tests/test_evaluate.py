"""Tests for labelassist.evaluation: COCO metrics against known answers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import affinity
from skimage.measure import label as label_components

from labelassist.coco import Dataset, read_coco
from labelassist.evaluation import METRIC_KEYS, evaluate, evaluate_predictions
from labelassist.geometry import masks_to_polygons
from labelassist.instances import Instances
from labelassist.synthetic import synthetic_dataset, synthetic_nuclei

RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # COCO's 101-point interpolation


def _grid(n_rows, n_cols, *, size=6, step=8, shape=None):
    """Instances of ``n_rows * n_cols`` separate squares of ``size`` pixels."""
    shape = shape or (n_rows * step, n_cols * step)
    boxes = [
        shapely.box(c * step + 1, r * step + 1, c * step + 1 + size, r * step + 1 + size)
        for r in range(n_rows)
        for c in range(n_cols)
    ]
    return Instances(boxes, None, None, shape)


def _dataset(*instances, categories=("nucleus",)):
    records = [
        {"id": k + 1, "file_name": f"{k}.png", "height": inst.image_shape[0],
         "width": inst.image_shape[1]}
        for k, inst in enumerate(instances)
    ]  # fmt: skip
    return Dataset(list(categories), records, {k + 1: inst for k, inst in enumerate(instances)})


def _shift(inst, dx):
    return inst.replace(polygons=[affinity.translate(p, dx, 0) for p in inst.polygons])


def _synthetic_truth(seed, n=30):
    _, inst = synthetic_nuclei((128, 128), n=n, touching=0, seed=seed)
    return inst


# -- known answers -----------------------------------------------------------------------
def test_ground_truth_as_predictions_scores_one():
    truth = [_synthetic_truth(0), _synthetic_truth(1)]
    metrics = evaluate_predictions({1: truth[0], 2: truth[1]}, _dataset(*truth))
    for key in METRIC_KEYS:
        assert metrics[key] == pytest.approx(1.0), key
    assert metrics["n_images"] == 2
    assert metrics["n_instances"] == metrics["n_predictions"] == len(truth[0]) + len(truth[1])


def test_list_of_predictions_is_aligned_with_images():
    truth = [_synthetic_truth(2), _synthetic_truth(3)]
    ds = _dataset(*truth)
    assert evaluate_predictions(truth, ds)["segm_AP"] == pytest.approx(1.0)
    assert evaluate_predictions(truth[::-1], ds)["segm_AP"] < 0.2


def test_more_than_100_instances_per_image_are_counted():
    truth = _grid(15, 20)  # 300 objects in one image
    ds = _dataset(truth)
    metrics = evaluate_predictions({1: truth}, ds)
    assert metrics["n_instances"] == 300
    for key in METRIC_KEYS:
        assert metrics[key] == pytest.approx(1.0), key
    # a cap of 100 detections finds a third of them: the default of 1000 does not cap
    assert evaluate_predictions({1: truth}, ds, max_detections=100)["segm_AR"] == pytest.approx(
        100 / 300
    )


def test_empty_predictions_score_zero():
    truth = _synthetic_truth(4)
    metrics = evaluate_predictions({1: Instances.empty(truth.image_shape)}, _dataset(truth))
    for key in METRIC_KEYS:
        assert metrics[key] == 0.0, key
    assert metrics["n_predictions"] == 0


@pytest.mark.parametrize("n_dropped", [0, 7, 15])
def test_dropped_instances_follow_the_coco_definition(n_dropped):
    truth = _grid(5, 6)  # 30 objects, all predictions with score 1
    kept = truth[n_dropped:]
    recall = len(kept) / len(truth)
    expected_ap = np.mean(RECALL_THRESHOLDS <= recall + 1e-12)  # precision 1 up to recall
    metrics = evaluate_predictions({1: kept}, _dataset(truth))
    for kind in ("segm", "bbox"):
        assert metrics[f"{kind}_AR"] == pytest.approx(recall)
        assert metrics[f"{kind}_AP"] == pytest.approx(expected_ap)


def test_shifted_predictions_lower_ap_monotonically():
    truth = _synthetic_truth(5)
    ds = _dataset(truth)
    aps = [evaluate_predictions({1: _shift(truth, dx)}, ds) for dx in (0, 1, 2, 4)]
    for kind in ("segm", "bbox"):
        values = [m[f"{kind}_AP"] for m in aps]
        assert values[0] == pytest.approx(1.0)
        assert np.all(np.diff(values) < 0), (kind, values)


def test_eroded_predictions_lower_segm_ap_monotonically():
    truth = _synthetic_truth(6)
    ds = _dataset(truth)
    values = []
    for d in (0.0, 1.0, 2.0, 3.0):  # (0.5 keeps every pixel centre inside)
        polygons = [p.buffer(-d, join_style="mitre") if d else p for p in truth.polygons]
        values.append(evaluate_predictions({1: truth.replace(polygons=polygons)}, ds)["segm_AP"])
    assert values[0] == pytest.approx(1.0)
    assert np.all(np.diff(values) < 0), values


def test_false_positives_ranked_above_lower_ap_monotonically():
    truth = _grid(4, 5, shape=(64, 80))  # objects in the top half only
    ds = _dataset(truth)
    values = []
    for n_fp in (0, 3, 10, 30):
        fps = Instances(
            [shapely.box(2 * k, 40, 2 * k + 2, 42 + k % 5) for k in range(n_fp)],
            None,
            None,
            truth.image_shape,
        )
        pred = Instances.concat([fps, truth.replace(scores=np.full(len(truth), 0.9))])
        values.append(evaluate_predictions({1: pred}, ds)["segm_AP"])
    assert values[0] == pytest.approx(1.0)
    assert np.all(np.diff(values) < 0), values


def test_false_positives_with_lower_scores_do_not_matter():
    truth = _grid(4, 5, shape=(64, 80))
    fps = Instances([shapely.box(0, 50, 6, 56)] * 5, None, np.full(5, 0.3), truth.image_shape)
    metrics = evaluate_predictions({1: Instances.concat([truth, fps])}, _dataset(truth))
    assert metrics["segm_AP"] == pytest.approx(1.0)
    assert metrics["n_predictions"] == 25


def test_predictions_on_an_image_without_objects_are_false_positives():
    truth = _grid(4, 5)
    empty = Instances.empty(truth.image_shape)
    ds = _dataset(truth, empty)
    truth = truth.replace(scores=np.full(len(truth), 0.9))
    fps = truth.replace(scores=np.ones(len(truth)))  # ranked above every true positive
    assert evaluate_predictions({1: truth, 2: empty}, ds)["segm_AP"] == pytest.approx(1.0)
    metrics = evaluate_predictions({1: truth, 2: fps}, ds)
    assert metrics["segm_AP"] < 0.9
    assert metrics["segm_AR"] == pytest.approx(1.0)


def test_unannotated_images_are_skipped():
    truth = _grid(4, 5)
    records = [{"id": i, "file_name": f"{i}.png", "height": 32, "width": 40} for i in (1, 2)]
    ds = Dataset(["nucleus"], records, {1: truth})  # image 2 not annotated yet
    metrics = evaluate_predictions({1: truth, 2: truth}, ds)
    assert metrics["segm_AP"] == pytest.approx(1.0)
    assert metrics["n_images"] == 1 and metrics["n_predictions"] == 20


def test_categories_are_matched_separately():
    truth = _grid(2, 5)
    truth = truth.replace(labels=[0] * 5 + [1] * 5)
    ds = _dataset(truth, categories=("a", "b", "unused"))
    assert evaluate_predictions({1: truth}, ds)["segm_AP"] == pytest.approx(1.0)
    swapped = truth.replace(labels=1 - truth.labels)
    assert evaluate_predictions({1: swapped}, ds)["segm_AP"] == 0.0


def test_per_class_ap():
    truth = _grid(2, 5).replace(labels=[0] * 5 + [1] * 5)
    ds = _dataset(truth, categories=("a", "b", "unused"))
    pred = truth[:5]  # all of class a, none of class b
    metrics = evaluate_predictions({1: pred}, ds, per_class=True)
    assert metrics["segm_AP/a"] == metrics["bbox_AP50/a"] == pytest.approx(1.0)
    assert metrics["segm_AP/b"] == metrics["segm_AP50/b"] == 0.0
    assert np.isnan(metrics["segm_AP/unused"])
    assert metrics["segm_AP"] == pytest.approx(0.5)  # mean over the classes with objects
    assert "segm_AP/a" not in evaluate_predictions({1: pred}, ds)


def test_crowd_regions_are_ignored():
    truth = _grid(2, 5)
    crowd = np.zeros(10, bool)
    crowd[:3] = True
    ds = _dataset(truth.replace(extra={"iscrowd": crowd}))
    metrics = evaluate_predictions({1: truth[3:]}, ds)
    assert metrics["segm_AP"] == pytest.approx(1.0)  # missing crowd regions are not misses
    assert metrics["n_instances"] == 10


def test_empty_geometries_in_predictions_are_dropped():
    truth = _grid(2, 5)
    pred = Instances.concat([truth, Instances([shapely.Polygon()], None, None, (16, 40))])
    metrics = evaluate_predictions({1: pred}, _dataset(truth))
    assert metrics["segm_AP"] == pytest.approx(1.0)
    assert metrics["n_predictions"] == 10


def test_nothing_printed(capsys):
    truth = _grid(2, 2)
    evaluate_predictions({1: truth}, _dataset(truth))
    assert capsys.readouterr().out == ""


# -- errors -----------------------------------------------------------------------------------
def _errors_dataset():
    return _dataset(_grid(2, 2), _grid(2, 2))


@pytest.mark.parametrize(
    ("predictions", "kwargs", "error", "match"),
    [
        ({1: _grid(2, 2), 2: _grid(2, 2), 9: _grid(2, 2)}, {}, ValueError, "not image ids"),
        ({1: _grid(2, 2)}, {}, ValueError, r"lack the annotated images \[2\]"),
        ([_grid(2, 2)], {}, ValueError, "list of 1 items but the dataset holds 2"),
        ("predictions", {}, TypeError, "predictions must be a dict"),
        ({1: _grid(2, 2), 2: None}, {}, TypeError, "image 2 is NoneType"),
        ({1: _grid(2, 2), 2: _grid(3, 3)}, {}, ValueError, r"image 2 have image_shape \(24"),
        (
            {1: _grid(2, 2), 2: _grid(2, 2).replace(labels=[0, 0, 0, 1])},
            {},
            ValueError,
            "label 1, but the dataset has 1 categories",
        ),
        ({1: _grid(2, 2), 2: _grid(2, 2)}, {"max_detections": 0}, ValueError, "max_detections"),
        (
            {1: _grid(2, 2), 2: _grid(2, 2)},
            {"max_detections": 1.5},
            ValueError,
            r"max_detections must be an integer >= 1, got 1.5",
        ),
    ],
)
def test_invalid_predictions(predictions, kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate_predictions(predictions, _errors_dataset(), **kwargs)


def test_dataset_without_ground_truth_raises():
    empty = Instances.empty((16, 16))
    with pytest.raises(ValueError, match="no ground-truth instances"):
        evaluate_predictions({1: empty}, _dataset(empty))
    unannotated = Dataset(["a"], [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}])
    with pytest.raises(ValueError, match="no ground-truth instances"):
        evaluate_predictions({}, unannotated)


def test_dataset_with_crowd_regions_only_raises():
    crowd = _grid(2, 2).replace(extra={"iscrowd": np.ones(4, bool)})
    with pytest.raises(ValueError, match="crowd regions do not count"):
        evaluate_predictions({1: _grid(2, 2)}, _dataset(crowd))


def test_dataset_as_a_coco_path(tmp_path):
    truth = _grid(2, 3)
    path = _dataset(truth).to_coco(tmp_path / "gt.json")
    assert evaluate_predictions({1: truth}, path)["segm_AP"] == pytest.approx(1.0)
    with pytest.raises(FileNotFoundError, match="COCO file not found"):
        evaluate_predictions({1: truth}, tmp_path / "missing.json")


def test_dataset_must_be_a_dataset():
    with pytest.raises(TypeError, match="dataset must be a labelassist Dataset"):
        evaluate_predictions({}, {"images": []})


# -- ground truth outside the image (issue #12 item 17) ------------------------------------------
def test_ground_truth_outside_the_image_is_an_error_not_nan():
    outside = Instances([shapely.box(-10, -10, -2, -2)], None, None, (32, 32))  # was: nan
    with pytest.warns(UserWarning, match="1 ground-truth instance\\(s\\) cover no pixel"):
        with pytest.raises(ValueError, match="no ground-truth instances"):
            evaluate_predictions({1: outside}, _dataset(outside))


def test_ground_truth_partly_outside_counts_its_pixels_inside():
    truth = Instances([shapely.box(-10, -10, 8, 8), shapely.box(20, 20, 40, 28)], None, None,
                      (32, 32))  # fmt: skip
    inside = Instances([shapely.box(0, 0, 8, 8), shapely.box(20, 20, 32, 28)], None, None,
                       (32, 32))  # fmt: skip
    with pytest.warns(UserWarning, match="2 ground-truth instance\\(s\\) reach outside"):
        metrics = evaluate_predictions({1: inside}, _dataset(truth))
    assert metrics["segm_AP"] == pytest.approx(1.0) and metrics["n_instances"] == 2


def test_ground_truth_outside_is_left_out_with_a_warning():
    truth = _grid(2, 2).replace(
        polygons=[*_grid(2, 2).polygons[:3], shapely.box(100, 100, 110, 110)]
    )
    with pytest.warns(UserWarning, match="1 ground-truth instance\\(s\\) cover no pixel"):
        metrics = evaluate_predictions({1: _grid(2, 2)[:3]}, _dataset(truth))
    assert metrics["n_instances"] == 3 and metrics["segm_AP"] == pytest.approx(1.0)


def test_coco_file_with_negative_polygons_is_clipped_on_read(tmp_path):
    # a file as another tool might write it: one polygon partly, one wholly off the image
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 16}],
        "categories": [{"id": 1, "name": "nucleus"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1,
             "segmentation": [[-4, -4, 6, -4, 6, 6, -4, 6]]},
            {"id": 2, "image_id": 1, "category_id": 1,
             "segmentation": [[-9, -9, -2, -9, -2, -2, -9, -2]]},
        ],
    }  # fmt: skip
    path = tmp_path / "neg.json"
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning) as record:
        ds = read_coco(path)
    messages = " ".join(sorted(str(w.message) for w in record))
    assert "clipped 1 polygon annotation(s) to their image" in messages
    assert "skipped 1 annotation(s) with a polygon outside the image" in messages
    (polygon,) = ds.instances[1].polygons
    assert polygon.equals(shapely.box(0, 0, 6, 6))
    pred = Instances([shapely.box(0, 0, 6, 6)], None, None, (16, 16))
    with pytest.warns(UserWarning) as record:  # the same two warnings, from the reader
        assert evaluate_predictions({1: pred}, path)["segm_AP"] == pytest.approx(1.0)
    assert " ".join(sorted(str(w.message) for w in record)) == messages


@settings(max_examples=25, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(st.integers(-40, 40), st.integers(-40, 40), st.integers(1, 30),
                  st.integers(1, 30)),
        min_size=1, max_size=4,
    ),
)  # fmt: skip
def test_metrics_are_never_nan_without_a_message(boxes):
    truth = Instances([shapely.box(x, y, x + w, y + h) for x, y, w, h in boxes], None, None,
                      (24, 24))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            metrics = evaluate_predictions({1: truth}, _dataset(truth))
        except ValueError as error:
            assert "no ground-truth instances" in str(error)
            return
    assert all(np.isfinite(metrics[k]) for k in METRIC_KEYS)
    assert metrics["segm_AP"] == pytest.approx(1.0)


# -- evaluate(model, dataset) --------------------------------------------------------------
class ThresholdSegmenter:
    """A classical segmenter with the `Model.predict` interface: pixels brighter than the
    darkest value are foreground, 4-connected components are instances."""

    def __init__(self):
        self.calls = []

    def predict(self, images, *, score_threshold=0.5, batch_size=4):
        self.calls.append((len(images), score_threshold))
        out = []
        for image in images:
            labels = label_components(image > image.min(), connectivity=1)
            polygons = masks_to_polygons(labels, tolerance=0) if labels.max() else []
            out.append(Instances(polygons, None, None, image.shape))
        return out


def test_evaluate_reads_every_annotated_image(tmp_path):
    kwargs = {"n": 4, "radius": (4, 7), "touching": 0, "overlap": 0, "dividing": 0}
    kwargs.update(texture=0, blur=0, noise=0)
    written = synthetic_dataset(5, out=tmp_path, shape=(64, 64), background="flat", **kwargs)
    ds = read_coco(tmp_path / "annotations.json")
    model = ThresholdSegmenter()
    metrics = evaluate(model, ds, batch_size=2, progress=False)
    assert model.calls == [(2, 0.05), (2, 0.05), (1, 0.05)]
    assert metrics["n_images"] == 5
    assert metrics["n_instances"] == sum(len(v) for v in written.instances.values())
    assert metrics["segm_AP"] > 0.9  # only nuclei touching by chance are merged
    assert metrics["segm_AP"] == pytest.approx(evaluate_predictions(
        model.predict([synthetic_nuclei((64, 64), background="flat", seed=s, **kwargs)[0]
                       for s in np.random.SeedSequence(0).spawn(5)]), written)["segm_AP"])  # fmt: skip


def test_evaluate_a_coco_path_with_image_root(tmp_path):
    kwargs = {"n": 3, "radius": (4, 6), "touching": 0, "overlap": 0, "dividing": 0}
    kwargs.update(texture=0, blur=0, noise=0, background="flat")  # ThresholdSegmenter's case
    ds = synthetic_dataset(2, out=tmp_path / "images", shape=(48, 48), **kwargs)
    path = ds.to_coco(tmp_path / "elsewhere.json")  # not next to the images
    metrics = evaluate(ThresholdSegmenter(), path, image_root=tmp_path / "images", progress=False)
    assert metrics["n_images"] == 2 and metrics["segm_AP"] > 0.5
    with pytest.raises(FileNotFoundError):
        evaluate(ThresholdSegmenter(), path, progress=False)  # images are not next to it
    with pytest.raises(ValueError, match="image_root is only used"):
        evaluate(ThresholdSegmenter(), ds, image_root=tmp_path, progress=False)


def test_evaluate_with_a_real_untrained_model(tmp_path, capsys):
    from labelassist.model import load_model

    ds = synthetic_dataset(2, out=tmp_path, shape=(64, 64), n=3)
    model = load_model(None, classes=["nucleus"], device="cpu")
    metrics = evaluate(model, ds, score_threshold=0.5, max_detections=50, progress=False)
    assert set(METRIC_KEYS) <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in METRIC_KEYS)
    assert metrics["n_images"] == 2 and metrics["n_instances"] == 6
    assert capsys.readouterr().out == ""


def test_evaluate_without_ground_truth_raises_before_predicting(tmp_path):
    ds = synthetic_dataset(1, out=tmp_path, shape=(32, 32), n=0)
    model = ThresholdSegmenter()
    with pytest.raises(ValueError, match="no ground-truth instances"):
        evaluate(model, ds, progress=False)
    assert model.calls == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": "2"}, ValueError, "batch_size must be an integer >= 1, got '2'"),
        ({"max_detections": -1}, ValueError, "max_detections must be an integer >= 1, got -1"),
        (
            {"score_threshold": 1.5},
            ValueError,
            r"score_threshold must be a finite number in \[0, 1\]",
        ),
    ],
)
def test_evaluate_invalid_arguments(tmp_path, kwargs, error, match):
    ds = synthetic_dataset(1, out=tmp_path, shape=(32, 32), n=2)
    with pytest.raises(error, match=match):
        evaluate(ThresholdSegmenter(), ds, progress=False, **kwargs)


class WrongCountModel(ThresholdSegmenter):
    def predict(self, images, **kwargs):
        return super().predict(images, **kwargs)[:1]


def test_evaluate_checks_one_result_per_image(tmp_path):
    ds = synthetic_dataset(2, out=tmp_path, shape=(32, 32), n=2)
    with pytest.raises(ValueError, match="returned 1 result"):
        evaluate(WrongCountModel(), ds, progress=False)
