"""Tests for prediction: image conversion (normalize), RoI polygons (roi_masks), tiling,
the network forward and its limits (inference), and predict (which takes the network)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shapely
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import clip_boxes_to_image

from labelassist.geometry import polygons_to_masks
from labelassist.instances import Instances
from labelassist.model import Model, build_maskrcnn, intensity_range, to_tensor
from labelassist.model.inference import DetectionLimits, _ThreadedRoIPool, detection_limits
from labelassist.model.predict import _collect, _finish, _Pending, predict
from labelassist.model.roi_masks import rois_to_polygons
from labelassist.model.tiling import Tile, select_candidates, tile_grid

LIGHT = "maskrcnn_resnet18_fpn"
SMALL = {
    "box_detections_per_img": 40,
    "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 100,
}


def _blobs(shape=(96, 128), n=6, seed=0, dtype=np.uint8) -> np.ndarray:
    """Bright discs on a dark noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(30, 5, shape)
    for _ in range(n):
        cy, cx = rng.uniform(10, shape[0] - 10), rng.uniform(10, shape[1] - 10)
        r = rng.uniform(4, 9)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = 200
    return np.clip(image, 0, 255).astype(dtype)


@pytest.fixture(scope="module")
def model() -> Model:
    torch.manual_seed(0)
    net = build_maskrcnn(LIGHT, 3, **SMALL)
    return Model(net, ["a", "b"], arch=LIGHT, options=SMALL, device="cpu")


def _predict(m: Model, images, **kwargs):
    """`predict` with a model's network and metadata (what `Model.predict` passes)."""
    meta = {"label_ids": m.meta["label_ids"], "normalization": m.normalization}
    return predict(m.net, images, device=m.device, **meta, **kwargs)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# -- to_tensor / intensity_range ----------------------------------------------------------


def test_to_tensor_uint8_gray_is_divided_by_255_and_repeated():
    image = np.array([[0, 51], [102, 255]], np.uint8)
    t = to_tensor(image)
    assert t.shape == (3, 2, 2) and t.dtype == torch.float32
    expected = torch.tensor([[0.0, 0.2], [0.4, 1.0]])
    for c in range(3):
        assert torch.allclose(t[c], expected)


def test_to_tensor_rgb_and_rgba():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 0, 51
    t = to_tensor(rgb)
    assert t.shape == (3, 4, 5)
    assert t[0].eq(1).all() and t[1].eq(0).all() and torch.allclose(t[2], torch.full((4, 5), 0.2))
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 7, np.uint8)], axis=-1)
    assert torch.equal(to_tensor(rgba), t)
    assert torch.equal(to_tensor(rgb[..., :1]), to_tensor(rgb[..., 0]))  # (H, W, 1) is gray


def test_to_tensor_uint16_uses_percentiles():
    rng = np.random.default_rng(0)
    image = rng.integers(100, 4000, size=(50, 60)).astype(np.uint16)
    lo, hi = np.percentile(image.astype(np.float64), [1.0, 99.8])
    t = to_tensor(image)
    expected = np.clip((image - lo) / (hi - lo), 0, 1)
    assert np.allclose(t[0].numpy(), expected, atol=1e-5)
    assert t.min() == 0 and t.max() == 1


def test_to_tensor_float_bool_constant_and_modes():
    image = np.linspace(-1, 3, 20, dtype=np.float32).reshape(4, 5)
    assert float(to_tensor(image).min()) == 0.0 and float(to_tensor(image).max()) == 1.0
    scaled = to_tensor(image, normalization={"mode": "scale"})  # floats taken as [0, 1]
    assert np.allclose(scaled[0].numpy(), np.clip(image, 0, 1))
    mask = np.array([[True, False]])
    assert to_tensor(mask)[0].tolist() == [[1.0, 0.0]]
    assert to_tensor(np.full((3, 3), 500, np.uint16)).eq(0).all()
    u16 = np.array([[0, 65535]], np.uint16)
    assert to_tensor(u16, normalization="scale")[0].tolist() == [[0.0, 1.0]]
    u8 = np.array([[10, 20, 30]], np.uint8)  # percentile mode stretches uint8 too
    assert to_tensor(u8, normalization={"mode": "percentile", "percentiles": [0, 100]})[
        0
    ].tolist() == [[0.0, 0.5, 1.0]]
    nan = np.array([[np.nan, 1.0, 2.0]], np.float32)
    assert torch.isfinite(to_tensor(nan)).all()


def test_to_tensor_with_limits_for_tiles():
    image = np.arange(100, dtype=np.uint16).reshape(10, 10)
    t = to_tensor(image[:5], limits=(0.0, 99.0))
    assert np.allclose(t[0].numpy(), image[:5] / 99.0)


def test_intensity_range_subsamples_large_images():
    rng = np.random.default_rng(1)
    image = rng.normal(1000, 100, size=(1500, 1500)).astype(np.float32)
    exact = np.percentile(image, [1.0, 99.8])
    lo, hi = intensity_range(image, max_pixels=50_000)
    assert abs(lo - exact[0]) < 15 and abs(hi - exact[1]) < 25
    assert intensity_range(np.zeros((2, 2), bool)) == (0.0, 1.0)
    assert intensity_range(np.full((2, 2), np.nan, np.float32)) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("image", "kwargs", "exc", "match"),
    [
        (np.zeros((3, 8, 8), np.uint8), {}, ValueError, "3-D stack"),
        (np.zeros((8, 8, 2), np.uint8), {}, ValueError, "2-channel"),
        (np.zeros((0, 8), np.uint8), {}, ValueError, "empty"),
        (np.zeros((4, 4), complex), {}, ValueError, "unsupported pixel type"),
        (torch.zeros(8, 8), {}, TypeError, "got a torch.Tensor"),
        ([[1, 2]], {}, TypeError, "got list"),
        (np.zeros((4, 4), np.uint8), {"normalization": "zscore"}, ValueError, "mode 'zscore'"),
        (np.zeros((4, 4), np.uint8), {"normalization": 3}, TypeError, "normalization must be"),
        (
            np.zeros((4, 4), np.uint16),
            {"normalization": {"percentiles": [50, 10]}},
            ValueError,
            "0 <= low < high <= 100",
        ),
        (np.zeros((4, 4), np.uint8), {"limits": (1.0, 1.0)}, ValueError, "limits must be finite"),
    ],
)
def test_to_tensor_errors(image, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        to_tensor(image, **kwargs)


# -- tile_grid ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"), [((100, 250), 100, 20), ((517, 300), 128, 40), ((50, 40), 64, 16)]
)
def test_tile_grid_covers_and_cores_partition(shape, tile, overlap):
    tiles = tile_grid(shape, tile, overlap)
    cover = np.zeros(shape, int)
    core_area = 0.0
    for t in tiles:
        assert t.y1 - t.y0 == min(tile, shape[0]) and t.x1 - t.x0 == min(tile, shape[1])
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        cx0, cy0, cx1, cy1 = t.core
        assert t.x0 <= cx0 < cx1 <= t.x1 and t.y0 <= cy0 < cy1 <= t.y1
        # the core keeps at least overlap / 2 away from the tile edges inside the image
        if cx0 > 0:
            assert cx0 - t.x0 >= overlap / 2
        if cx1 < shape[1]:
            assert t.x1 - cx1 >= overlap / 2
        core_area += (cx1 - cx0) * (cy1 - cy0)
    assert cover.min() >= 1
    cores = shapely.union_all([shapely.box(*t.core) for t in tiles])
    assert core_area == pytest.approx(shape[0] * shape[1])
    assert cores.area == pytest.approx(shape[0] * shape[1])


def test_tile_grid_single_tile_when_image_fits():
    assert tile_grid((30, 40), 64, 16) == [Tile(0, 0, 30, 40, (0.0, 0.0, 40.0, 30.0))]


# -- rois_to_polygons: where the RoI masks are placed ------------------------------------------------


def _random_rois(n=25, shape=(60, 80), seed=0):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.rand(n, 1, 28, 28, generator=gen)
    probs = torch.nn.functional.avg_pool2d(probs, 5, 1, 2)  # smooth blobs, not salt
    probs = (probs - probs.amin(dim=(2, 3), keepdim=True)) / (
        probs.amax(dim=(2, 3), keepdim=True) - probs.amin(dim=(2, 3), keepdim=True)
    )
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([shape[1], shape[0]]) - 10
    wh = torch.rand(n, 2, generator=gen) * 40 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    # clipped like the detector's boxes; expanded for pasting they still stick out
    boxes = clip_boxes_to_image(boxes, shape)
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return probs[keep], boxes[keep]


def _reference_placement(probs, boxes, shape, threshold):
    """The documented mapping written independently with torch's grid_sample: pixel j (its
    centre is index coordinate j) inside the box reads the bins at
    u = (j - x0) * M / (x1 - x0) - 0.5, clamped to the edge bins; nothing outside the box."""
    h, w = shape
    m = probs.shape[-1]
    out = np.zeros((len(boxes), h, w), dtype=bool)
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    for k, (x0, y0, x1, y1) in enumerate(boxes.double().tolist()):
        u = ((cols - x0) * m / (x1 - x0) - 0.5).clamp(0, m - 1)
        v = ((rows - y0) * m / (y1 - y0) - 0.5).clamp(0, m - 1)
        grid = torch.stack([(u + 0.5) * 2 / m - 1, (v + 0.5) * 2 / m - 1], dim=-1)[None].float()
        sampled = torch.nn.functional.grid_sample(
            probs[k : k + 1].float(), grid, mode="bilinear", align_corners=False
        )[0, 0]
        inside = (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)
        out[k] = ((sampled.double() > threshold) & inside).numpy()
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_rois_to_polygons_match_the_documented_placement(seed):
    shape = (60, 80)
    probs, boxes = _random_rois(shape=shape, seed=seed)
    assert len(boxes) >= 15
    expected = _reference_placement(probs, boxes, shape, 0.5)
    polygons = rois_to_polygons(probs, boxes, shape, tolerance=0)
    assert len(polygons) == len(boxes)
    ours = polygons_to_masks(polygons, shape)
    # float32 grid_sample vs float64 weights: a pixel may differ where a value is ~0.5
    assert (ours != expected).sum() <= 3
    assert np.mean([_iou(a, b) for a, b in zip(ours, expected, strict=True) if b.any()]) > 0.995


@pytest.mark.parametrize("seed", range(4))
def test_rois_to_polygons_invert_torchvisions_mask_targets(seed):
    """The mask head learns torchvision's training targets (``project_masks_on_boxes``:
    roi_align of the true mask over its box, aligned=False). Placing exactly such a target
    back at its box must give the object back: no size bias (v1 grew every mask ~1 px)."""
    from torchvision.models.detection.roi_heads import project_masks_on_boxes

    rng = np.random.default_rng(seed)
    shape = (96, 96)
    ious, bias = [], []
    for _ in range(12):
        cy, cx = rng.uniform(25, 71, 2)
        ry, rx = rng.uniform(4, 20, 2)
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        mask = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1
        rows, cols = np.nonzero(mask)
        box = torch.tensor([[cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0]])
        target = project_masks_on_boxes(
            torch.from_numpy(mask[None]).float(), box, torch.tensor([0]), 28
        )
        [polygon] = rois_to_polygons(target[:, None], box, shape, tolerance=0)
        [placed] = polygons_to_masks([polygon], shape)
        ious.append(_iou(placed, mask))
        bias.append(placed.sum() / mask.sum() - 1)
    assert min(ious) >= 0.9
    assert abs(np.median(bias)) <= 0.03
    # torchvision's own pasting of the same targets is biased large (the v1 defect)
    pasted = paste_masks_in_image(target[:, None], box, shape)[0, 0].numpy() > 0.5
    assert pasted.sum() > placed.sum()


def test_rois_to_polygons_default_tolerance_and_offset():
    shape = (60, 80)
    probs, boxes = _random_rois(shape=shape, seed=3)
    expected = _reference_placement(probs, boxes, shape, 0.6)
    polygons = rois_to_polygons(probs, boxes, shape, mask_threshold=0.6)
    ours = polygons_to_masks(polygons, shape)
    ious = [_iou(a, b) for a, b in zip(ours, expected, strict=True) if b.sum() >= 10]
    assert np.mean(ious) >= 0.95
    shifted = rois_to_polygons(probs, boxes, shape, mask_threshold=0.6, offset=(100, 7))
    for a, b in zip(polygons, shifted, strict=True):
        assert a.is_empty == b.is_empty
        if not a.is_empty:
            assert shapely.equals_exact(shapely.affinity.translate(a, 100, 7), b, 1e-9)


def test_rois_to_polygons_empty_and_outside():
    assert rois_to_polygons(torch.zeros(0, 1, 28, 28), torch.zeros(0, 4), (10, 10)) == []
    # all below threshold, and a box entirely outside the image -> empty polygons
    out = rois_to_polygons(
        torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)]),
        torch.tensor([[1.0, 1.0, 5.0, 5.0], [50.0, 50.0, 60.0, 60.0]]),
        (10, 10),
    )
    assert len(out) == 2 and all(p.is_empty for p in out)


# -- predict --------------------------------------------------------------------------------


def test_predict_matches_stock_torchvision_pipeline(model):
    """The same detections as torchvision's own forward; the masks are torchvision's RoI
    masks placed at their exact box coordinates instead of its pasting (which grows every
    mask by about a pixel), so they overlap the pasted ones well and are never larger."""
    image = _blobs()
    score = 0.2
    preds = _predict(model, image, score_threshold=score, tolerance=0)
    net = model.net
    old = net.roi_heads.score_thresh
    net.roi_heads.score_thresh = score
    try:
        with torch.inference_mode():
            stock = net([to_tensor(image)])[0]
    finally:
        net.roi_heads.score_thresh = old
    masks = stock["masks"][:, 0].numpy() > 0.5
    nonempty = masks.reshape(len(masks), -1).any(axis=1)
    assert nonempty.sum() >= 5  # an untrained net still detects at a low threshold
    assert len(preds) <= len(masks)
    assert len(preds) >= 0.9 * nonempty.sum()
    stock_scores = stock["scores"].numpy()
    stock_labels = stock["labels"].numpy() - 1
    for s, label in zip(preds.scores, preds.labels, strict=True):  # every one is a stock one
        assert np.any(np.isclose(stock_scores, s, atol=1e-5) & (stock_labels == label))
    ours = preds.masks()
    ious, growth = [], []
    for mine, s, label in zip(ours, preds.scores, preds.labels, strict=True):
        k = np.flatnonzero(np.isclose(stock_scores, s, atol=1e-5) & (stock_labels == label))
        best = max(k, key=lambda i: _iou(mine, masks[i]))
        ious.append(_iou(mine, masks[best]))
        growth.append(masks[best].sum() - mine.sum())
    assert np.median(ious) >= 0.7
    assert np.median(growth) > 0  # torchvision's pasting is the larger one


def _pooler_inputs(seed=0):
    """Two images' FPN-like features (channels-last, as in inference) and boxes: uneven
    counts, one image without boxes, sizes spanning several pyramid levels."""
    gen = torch.Generator().manual_seed(seed)
    feats = {
        str(k): torch.randn(3, 8, 64 >> k, 48 >> k, generator=gen).contiguous(
            memory_format=torch.channels_last
        )
        for k in range(3)
    }
    boxes = []
    for n in (37, 0, 58):
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([150.0, 200.0])
        wh = torch.rand(n, 2, generator=gen) ** 2 * 120 + 2
        boxes.append(clip_boxes_to_image(torch.cat([xy, xy + wh], 1), (256, 192)))
    return feats, boxes, [(256, 192)] * 3


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_threaded_roi_pool_equals_the_pooler(monkeypatch, threads):
    from torchvision.ops import MultiScaleRoIAlign

    pool = MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2)
    feats, boxes, shapes = _pooler_inputs()
    wrapped = _ThreadedRoIPool(pool, threads)
    monkeypatch.setattr(_ThreadedRoIPool, "min_rois", 4)
    with torch.inference_mode():
        first = wrapped(feats, boxes, shapes)  # sets the pooler's scales, unthreaded
        expected = pool(feats, boxes, shapes)
        got = wrapped(feats, boxes, shapes)
    assert len({pool(feats, [b], shapes[:1]).shape[0] for b in boxes}) == 3
    assert got.shape == (95, 8, 7, 7)
    assert torch.equal(first, expected) and torch.equal(got, expected)


def test_predict_with_threaded_pooling_equals_unthreaded(model, monkeypatch):
    image = _blobs(seed=5)
    heads = model.net.roi_heads
    pools = (heads.box_roi_pool, heads.mask_roi_pool)
    monkeypatch.setattr(_ThreadedRoIPool, "min_rois", 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    plain = _predict(model, image, score_threshold=0.2, tolerance=0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    threaded = _predict(model, image, score_threshold=0.2, tolerance=0)
    assert len(plain) >= 5
    assert np.array_equal(plain.scores, threaded.scores)
    assert all(a.equals_exact(b, 0) for a, b in zip(plain.polygons, threaded.polygons, strict=True))
    # the model object gets its own poolers back
    assert (heads.box_roi_pool, heads.mask_roi_pool) == pools


def test_predict_outputs(model):
    image = _blobs(seed=2)
    preds = _predict(model, image, score_threshold=0.1)
    assert isinstance(preds, Instances) and preds.image_shape == image.shape
    assert len(preds) > 0
    assert preds.labels.dtype == np.int64 and set(preds.labels.tolist()) <= {0, 1}
    assert np.all(np.diff(preds.scores) <= 0) and preds.scores.min() > 0.1
    b = preds.boxes
    assert b.min() >= 0 and b[:, 2].max() <= image.shape[1] and b[:, 3].max() <= image.shape[0]
    assert all(not p.is_empty and p.is_valid for p in preds.polygons)


def test_predict_list_batches_and_empty(model):
    images = [_blobs(seed=3), _blobs((64, 80), seed=4), _blobs(seed=3).astype(np.uint16) * 200]
    one_by_one = [_predict(model, im, score_threshold=0.2) for im in images]
    batched = _predict(model, images, score_threshold=0.2, batch_size=3)
    assert isinstance(batched, list) and len(batched) == 3
    for a, b in zip(one_by_one, batched, strict=True):
        assert a.image_shape == b.image_shape
        assert abs(len(a) - len(b)) <= 1  # padding to a common size may shift a border box
    assert _predict(model, [], score_threshold=0.2) == []
    empty = _predict(model, images[0], score_threshold=1.0)
    assert len(empty) == 0 and empty.image_shape == images[0].shape


def test_predict_maps_net_labels_through_label_ids():
    torch.manual_seed(1)
    net = build_maskrcnn(LIGHT, 4, **{**SMALL, "box_detections_per_img": 300})
    # net label 2 is a placeholder (like COCO's "N/A"): never reported
    m = Model(net, ["x", "y"], arch=LIGHT, meta={"label_ids": [1, 3]}, device="cpu")
    # untrained mask logits are near 0 (probability 0.5): a low mask threshold keeps them
    preds = _predict(m, _blobs(seed=5), score_threshold=0.0, mask_threshold=0.05)
    torch_labels = set()
    old = net.roi_heads.score_thresh
    net.roi_heads.score_thresh = 0.0
    with torch.inference_mode():
        torch_labels = set(net([to_tensor(_blobs(seed=5))])[0]["labels"].tolist())
    net.roi_heads.score_thresh = old
    assert 2 in torch_labels  # the untrained net does predict the placeholder
    assert set(preds.labels.tolist()) == {0, 1}


def test_predict_untiled_when_image_fits_the_tile(model):
    image = _blobs((64, 64), seed=6)
    a = _predict(model, image, score_threshold=0.2)
    b = _predict(model, image, score_threshold=0.2, tile_size=64, tile_overlap=16)
    assert a == b


def test_predict_tiled_runs_and_is_consistent(model):
    image = _blobs((150, 170), n=12, seed=7)
    tiled = _predict(model, image, score_threshold=0.2, tile_size=96, tile_overlap=32, batch_size=1)
    batched = _predict(
        model, image, score_threshold=0.2, tile_size=96, tile_overlap=32, batch_size=4
    )
    assert tiled.image_shape == (150, 170)
    assert len(tiled) > 0
    assert abs(len(tiled) - len(batched)) <= max(2, len(tiled) // 20)
    b = tiled.boxes
    assert b.min() >= 0 and b[:, 2].max() <= 170 and b[:, 3].max() <= 150
    # no duplicates: no two instances of a label overlap as much as NMS allows within a tile
    from torchvision.ops import box_iou

    for label in np.unique(tiled.labels):
        bx = torch.from_numpy(b[tiled.labels == label])
        iou = box_iou(bx, bx).fill_diagonal_(0)
        assert float(iou.max()) <= 0.5 + 1e-6


def _roi_detection(box_in_tile, score=0.9, label=1):
    """A detection dict as `_detect` returns it: a full RoI mask in the given box."""
    return {
        "boxes": torch.tensor([box_in_tile], dtype=torch.float32),
        "scores": torch.tensor([score]),
        "labels": torch.tensor([label]),
        "masks": torch.ones(1, 1, 28, 28),
    }


def test_tile_merge_object_on_a_seam_is_one_instance():
    shape = (100, 250)
    tiles = tile_grid(shape, 100, 40)  # x ranges (0,100) (60,160) (120,220) (150,250)
    lookup = np.array([-1, 0])
    obj = (85.0, 40.0, 105.0, 60.0)  # straddles x=100 (end of tile 0) and lies in tile 1
    pending = _Pending(shape, False)
    for tile in tiles:
        x0, y0, x1, y1 = obj
        # what a detector sees: the part of the object inside the tile, in tile coordinates
        cx0, cx1 = max(x0, tile.x0) - tile.x0, min(x1, tile.x1) - tile.x0
        if cx1 <= cx0:
            continue
        det = _roi_detection([cx0, y0, cx1, y1])
        _collect(pending, det, tile, shape, lookup, 0.5, 0.0, overlap=40)
    out = _finish(pending)
    assert len(out) == 1
    # the whole object (from the tile that holds it whole), not the cut piece
    assert out.boxes[0].tolist() == pytest.approx([85.0, 40.0, 106.0, 61.0], abs=1.0)


def test_tile_merge_duplicates_near_core_border_are_suppressed():
    shape = (100, 250)
    tiles = tile_grid(shape, 100, 40)[:2]  # cores split at x = 80
    lookup = np.array([-1, 0])
    pending = _Pending(shape, False)
    # the same object seen by both tiles with centres on either side of the core border
    _collect(
        pending, _roi_detection([70.0, 10.0, 89.0, 30.0]), tiles[0], shape, lookup, 0.5, 0.0, 40
    )
    _collect(
        pending, _roi_detection([11.0, 10.0, 30.0, 30.0]), tiles[1], shape, lookup, 0.5, 0.0, 40
    )
    assert len(_finish(pending)) == 1
    assert len(_finish(_Pending(shape, True))) == 0


def test_tile_candidates_default_rule():
    shape = (100, 250)
    tile = tile_grid(shape, 100, 40)[1]  # x range (60, 160), core x in [80, 140)
    # default: centre in the core, or centre within overlap / 2 = 20 px of it with the box
    # >= overlap / 4 = 10 px from the tile's inner edges (x = 60 and x = 160)
    boxes = np.array(
        [
            [12, 40, 32, 60],  # centre x 82: in the core
            [70, 40, 88, 60],  # centre x 139: in the core, 12 px from the edge
            [10, 40, 24, 60],  # centre x 77: widened core, 10 px from the edge
            [9, 40, 29, 60],  # centre x 79: widened core, only 9 px from the edge
            [0, 40, 16, 60],  # centre x 68: cut by the tile edge
            [74, 40, 94, 60],  # centre x 144: widened core, 6 px from the edge
        ],
        np.float32,
    )
    got = select_candidates(boxes, tile, shape, 40)
    assert got.tolist() == [True, True, True, False, False, False]
    assert select_candidates(np.zeros((0, 4), np.float32), tile, shape, 40).shape == (0,)


def test_tile_candidates_edge_gap_drops_pieces_cut_by_the_tile(monkeypatch):
    shape = (100, 250)
    tiles = tile_grid(shape, 100, 40)  # x ranges (0,100) (60,160) ...; cores split at x=80
    lookup = np.array([-1, 0])
    obj = (86.0, 40.0, 116.0, 60.0)  # centre x=101: core of tile 1, cut by tile 0's edge
    cut_in_tile0 = np.array([[86.0, 40.0, 100.0, 60.0]], np.float32)  # centre x=93
    # widen the core to the whole overlap: the cut piece in tile 0 becomes a candidate...
    monkeypatch.setattr("labelassist.model.tiling._CORE_MARGIN", 0.5)
    monkeypatch.setattr("labelassist.model.tiling._EDGE_GAP", 0.0)
    assert select_candidates(cut_in_tile0, tiles[0], shape, 40).tolist() == [True]
    # ...unless boxes must keep clear of the tile's inner edges
    monkeypatch.setattr("labelassist.model.tiling._EDGE_GAP", 0.1)
    assert select_candidates(cut_in_tile0, tiles[0], shape, 40).tolist() == [False]
    # the whole object is one instance, from the tile that holds it whole
    pending = _Pending(shape, False)
    for tile in tiles[:2]:
        x0, y0, x1, y1 = obj
        cx0, cx1 = max(x0, tile.x0) - tile.x0, min(x1, tile.x1) - tile.x0
        _collect(pending, _roi_detection([cx0, y0, cx1, y1]), tile, shape, lookup, 0.5, 0.0, 40)
    out = _finish(pending)
    assert len(out) == 1
    assert out.boxes[0].tolist() == pytest.approx([86.0, 40.0, 117.0, 61.0], abs=1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"score_threshold": 1.5}, r"score_threshold must be a finite number in \[0, 1\]"),
        ({"mask_threshold": 0.0}, "mask_threshold must be within"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"tile_size": 8}, "tile_size must be an integer >= 32 or None"),
        ({"tile_size": 64, "tile_overlap": 40}, r"tile_overlap must be an integer in \[0, 32\]"),
        ({"tile_overlap": 16}, "tile_overlap=16 is only used with tile_size"),
    ],
)
def test_predict_argument_errors(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _predict(model, np.zeros((32, 32), np.uint8), **kwargs)


def test_predict_bad_image(model):
    with pytest.raises(ValueError, match=r"images\[1\]: a 3-D stack"):
        _predict(model, [np.zeros((8, 8), np.uint8), np.zeros((4, 8, 8), np.uint8)])


def test_predict_warns_when_detection_limit_is_reached(model):
    # at a zero threshold an untrained net fills its 40 detection slots
    with pytest.warns(UserWarning, match="reached the model's limit of 40 detections"):
        preds = _predict(model, _blobs(seed=8), score_threshold=0.0)
    assert len(preds) <= 40


def test_predict_default_overlap_follows_tile_size(model):
    # tile 64 -> overlap 24 (a fixed 192 would be invalid for such tiles)
    out = _predict(model, _blobs((100, 100), seed=9), tile_size=64, score_threshold=1.0)
    assert len(out) == 0 and out.image_shape == (100, 100)


# -- with the shipped starter model (a real detector) ---------------------------------------


def _polygon_iou(a, polygons) -> np.ndarray:
    if len(polygons) == 0:
        return np.zeros(0)
    inter = shapely.area(shapely.intersection(a, polygons))
    return inter / shapely.area(shapely.union(a, polygons))


@pytest.mark.slow
def test_tiled_agrees_with_untiled_on_seam_objects():
    from labelassist.model import STARTER_PATH, load_model
    from labelassist.synthetic import synthetic_nuclei

    if not STARTER_PATH.exists():
        pytest.skip("starter model not shipped in this checkout")
    starter = load_model("starter", device="cpu")
    image, truth = synthetic_nuclei((256, 256), n=40, seed=11)
    whole = starter.predict(image, score_threshold=0.5)
    # overlap 64 > the largest nucleus (about 33 px); at 48 the generalist starter, seeing a
    # 128 px window, adds a nested partial detection of one elongated nucleus (score 0.64,
    # box IoU 0.48 with the whole one, inside the tile: the model's context, not a seam)
    tiled = starter.predict(image, score_threshold=0.5, tile_size=128, tile_overlap=64)
    assert len(whole) >= 20
    edges = sorted({t.x1 for t in tile_grid((256, 256), 128, 64)} - {256})
    crossing = 0
    for poly in truth.polygons:
        x0, y0, x1, y1 = poly.bounds
        if not any(x0 < e < x1 or y0 < e < y1 for e in edges):
            continue
        found = int((_polygon_iou(poly, whole.polygons) >= 0.5).sum())
        if found == 0:
            continue  # the model misses it anyway
        crossing += 1
        # as often as untiled (the model may split a dividing cell): not cut, not duplicated
        assert (_polygon_iou(poly, tiled.polygons) >= 0.5).sum() == found
    assert crossing >= 3
    best = np.array([_polygon_iou(p, tiled.polygons).max() for p in whole.polygons])
    assert np.mean(best >= 0.5) >= 0.95
    assert np.mean(best >= 0.9) >= 0.75  # masks near tile borders see less context


# -- predict takes the network and its metadata (no Model) ----------------------------------


def test_predict_with_a_bare_network_equals_model_predict(model):
    image = _blobs(seed=10)
    # defaults: every non-background label, the device of the network's parameters
    bare = predict(model.net, image, score_threshold=0.2)
    assert len(bare) >= 3
    assert bare == model.predict(image, score_threshold=0.2)
    with pytest.raises(ValueError, match=r"label_ids must be network labels in \[1, 2\]"):
        predict(model.net, image, label_ids=[0, 1])


# -- #12 item 14: constant and huge-range float images ----------------------------------------


@pytest.mark.parametrize("value", [1e38, -1e38, 3.4e38, 1e-30, 0.0, 7.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_float_images_map_to_zero(value, dtype):
    image = np.full((16, 16), value, dtype)
    lo, hi = intensity_range(image)
    assert np.isfinite([lo, hi]).all() and hi > lo
    assert lo == pytest.approx(float(dtype(value)))  # the constant maps to 0
    tensor = to_tensor(image)
    assert tensor.shape == (3, 16, 16) and tensor.eq(0).all()


def test_constant_1e38_image_predicts(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model.predict(np.full((64, 64), 1e38, np.float32), max_detections=1000)
    assert out.image_shape == (64, 64)


def test_huge_ranges_do_not_overflow():
    image = np.array([[-3e38, -1e38, 0.0, 1e38, 3e38]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning
        t = to_tensor(image, normalization={"mode": "percentile", "percentiles": [0, 100]})
    assert t[0, 0].tolist() == pytest.approx([0.0, 1 / 3, 0.5, 2 / 3, 1.0], abs=1e-6)
    biggest = np.finfo(np.float64).max
    wide = np.array([[-biggest, 0.0, biggest]])
    lo, hi = intensity_range(wide, normalization={"mode": "percentile", "percentiles": [0, 100]})
    assert (lo, hi) == (-biggest, biggest)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_tensor(wide, limits=(lo, hi))[0, 0].tolist() == [0.0, 0.5, 1.0]
        # float64 values beyond float32's range in an ordinary image saturate at 1
        outlier = np.array([[0.0, 1.0, 2.0, 1e300]])
        assert to_tensor(outlier, limits=(0.0, 2.0))[0, 0].tolist() == [0.0, 0.5, 1.0, 1.0]


# -- no warnings, inputs left alone -----------------------------------------------------------


def _read_only(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, bool])
def test_to_tensor_takes_read_only_arrays_silently_and_never_modifies_input(dtype, monkeypatch):
    # torch warns about a read-only array only once per process, so also check the cause:
    # torch.from_numpy never sees a read-only array
    from_numpy = torch.from_numpy

    def writable_only(array):
        assert array.flags.writeable, "torch.from_numpy got a read-only array"
        return from_numpy(array)

    monkeypatch.setattr(torch, "from_numpy", writable_only)
    image = _blobs(seed=11).astype(dtype)
    before = image.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "non-writable tensor" UserWarning fails here
        ro = to_tensor(_read_only(image))
        rw = to_tensor(image)
    assert torch.equal(ro, rw)
    assert np.array_equal(image, before)  # float32 input used to be normalised in place


def test_predict_on_a_pil_image_array_gives_no_warnings(tmp_path):
    from PIL import Image

    from labelassist.model import STARTER_PATH, load_model
    from labelassist.synthetic import synthetic_nuclei

    if not STARTER_PATH.exists():
        pytest.skip("starter model not shipped in this checkout")
    starter = load_model("starter", device="cpu")
    pixels, _ = synthetic_nuclei((160, 192), n=12, seed=3)
    Image.fromarray(pixels).save(tmp_path / "nuclei.png")
    image = np.asarray(Image.open(tmp_path / "nuclei.png"))
    assert not image.flags.writeable  # what PIL gives
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "non-writable tensor" UserWarning fails here
        a = starter.predict(image)
        b = starter.predict(pixels)  # a normal, writable array
        c = starter.predict([image], tile_size=96)
    assert len(a) >= 6 and a == b and c[0].image_shape == image.shape


# -- #12 item 19: the detection limit grows with the image area --------------------------------


def test_detection_limits_scale_with_area():
    net = build_maskrcnn(LIGHT, 2, **SMALL)  # 40 detections, 300 / 100 proposals
    assert detection_limits(net, 100 * 100) == DetectionLimits(40, 300, 100)
    assert detection_limits(net, 512 * 512) == DetectionLimits(40, 300, 100)
    assert detection_limits(net, 1024 * 1024) == DetectionLimits(160, 1200, 400)
    assert detection_limits(net, 1024 * 768) == DetectionLimits(120, 900, 300)
    assert detection_limits(net, 100, max_detections=10) == DetectionLimits(10, 300, 100)
    assert detection_limits(net, 100, max_detections=80) == DetectionLimits(80, 600, 200)
    assert detection_limits(net, 2048 * 2048, max_detections=80) == DetectionLimits(80, 4800, 1600)


def test_large_images_get_more_detections_and_the_net_is_restored():
    torch.manual_seed(0)
    tiny = {**SMALL, "fpn_channels": 32, "representation_size": 64, "mask_channels": 16}
    tiny["box_detections_per_img"] = 4
    m = Model(build_maskrcnn(LIGHT, 2, **tiny), ["a"], arch=LIGHT, device="cpu")
    before = DetectionLimits.of(m.net)
    image = _blobs((1024, 1024), n=150, seed=13)
    # an untrained net at a zero threshold fills every slot: 4 per 512 x 512 px -> 16
    with pytest.warns(UserWarning, match="reached the model's limit of 16 detections"):
        out = m.predict(image, score_threshold=0.0, mask_threshold=0.01)
    assert len(out) == 16
    assert DetectionLimits.of(m.net) == before  # limits restored after the call
    with pytest.warns(UserWarning, match="reached max_detections=6"):
        capped = m.predict(image, score_threshold=0.0, mask_threshold=0.01, max_detections=6)
    assert len(capped) == 6
    assert DetectionLimits.of(m.net) == before


@pytest.mark.slow
def test_dense_field_keeps_every_object_beyond_the_old_cap():
    from labelassist.model import STARTER_PATH, load_model
    from labelassist.synthetic import synthetic_nuclei

    if not STARTER_PATH.exists():
        pytest.skip("starter model not shipped in this checkout")
    starter = load_model("starter", device="cpu")
    assert starter.net.roi_heads.detections_per_img == 300  # the old cap per image
    image, truth = synthetic_nuclei((1024, 1024), n=600, radius=(5.0, 10.0), seed=0)
    assert len(truth) == 600
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no detection-limit warning by default
        found = starter.predict(image, score_threshold=0.5)
    assert len(found) > 500
    matched = sum((_polygon_iou(p, found.polygons) >= 0.5).any() for p in truth.polygons)
    # the cap is the subject (300 would be 0.5 at most); the generalist starter matches
    # 0.84 of these small dense nuclei at its default size (the v1 nuclei starter 0.91)
    assert matched / len(truth) >= 0.8
    # the old behaviour, an explicit cap of 300, loses objects and says so
    with pytest.warns(UserWarning, match="reached max_detections=300"):
        assert len(starter.predict(image, score_threshold=0.5, max_detections=300)) == 300


def test_roi_polygon_does_not_depend_on_the_other_rois_in_the_call():
    """A crop reaching its right/bottom edge must trace the same alone and when stacked
    with larger crops (simplification treats array-edge pixels differently)."""
    from labelassist.model.roi_masks import _trace_crops

    mask = np.zeros((20, 9), bool)
    mask[3:15, 2:9] = True
    mask[14, 2] = False
    alone = _trace_crops([mask], np.array([[5.0, 7.0]]), 0.5)[0]
    stacked = _trace_crops(
        [mask, np.ones((30, 14), bool)], np.array([[5.0, 7.0], [0.0, 0.0]]), 0.5
    )[0]
    assert alone.equals(stacked)
    exact = _trace_crops([mask], np.array([[5.0, 7.0]]), 0.0)[0]
    assert exact.area == mask.sum()
    assert exact.bounds == (7.0, 10.0, 14.0, 22.0)
