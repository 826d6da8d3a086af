"""Benchmark of stack prediction: batching speed, 3-D object F1 and tracking on synthetic stacks.

(a) `labelassist.stacks.predict_stack` (planes batched through ``Model.predict``) against a
    naive loop of ``model.predict(plane)`` over the same z-stack, in the same run, with the
    shipped starter model; peak memory (process RSS, and Python/numpy allocations by
    tracemalloc) of the batched run.
(b) 3-D object F1 at IoU 0.5 of the batched result against the stack's true label
    volume; the same for the linking alone (exact per-plane instances, ids removed,
    linked by `link_planes`), which separates linking errors from the model's.
(c) Tracking on a synthetic time-lapse (moving, dividing, entering and leaving nuclei):
    the fraction of true links (consecutive appearances of a nucleus, and mother to
    daughter at divisions) that are found, and ID switches (true continuations whose two
    ends are detected but get different ids), for the linking alone and with the model;
    the Cell Tracking Challenge's TRA and DET (`labelassist.stacks.tracking_metrics`).

Both (b) and (c) also link the model's raw per-plane instances without the clean-ups of
imperfect planes (`OLD_LINKING`: no merge cuts, no nested-duplicate removal, every object
kept, division_threshold 0.5 as before 2026-12-06; the pairwise choice of daughters
stays), in the same run, and give per-plane detection F1 and the
per-plane ceiling of (b): true objects found at IoU 0.5 when each predicted instance
takes the id of the true object it overlaps most (ideal linking; unmatched instances
dropped).

Default sizes fit a few minutes on 2 busy CPU cores::

    python bench/bench_stacks.py                 # z-stack 16 x 256 x 256, 50-frame 256 x 256
    python bench/bench_stacks.py --full          # z-stack 64 x 512 x 512 (the issue's size), ~6 min
    python bench/bench_stacks.py --seed 1 --no-naive --rounds 1   # other synthetic stacks
    python bench/bench_stacks.py --full --no-naive --object-size none --threads 1

``--object-size`` goes to `predict_stack` (a number of pixels, ``auto``, its default:
measured once per stack, or ``none``: the model's own scale, as ``Model.predict``). With
``auto`` the size is measured once first (`labelassist.stacks.stack_object_size`, timed on
its own) and given to both the naive loop and `predict_stack`, so (a) compares the same
work; the estimate's time is reported beside it. ``--threads`` sets torch's CPU threads
(default: torch's).

Prefix ``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4`` for faster CPU
torch. Results go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

import labelassist as la
from labelassist.stacks import StackInstances, link_planes, predict_stack, stack_object_size
from labelassist.stacks.tracking_metrics import tracking_scores as ctc_scores
from labelassist.synthetic_stacks import synthetic_timelapse, synthetic_zstack


def contingency(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(IoU matrix, predicted ids, true ids) of two label volumes."""
    pred, true = pred.astype(np.int64).ravel(), true.astype(np.int64).ravel()
    n_true = int(true.max()) + 1
    counts = np.bincount(pred * n_true + true, minlength=(int(pred.max()) + 1) * n_true)
    counts = counts.reshape(-1, n_true)
    p_ids, t_ids = np.flatnonzero(counts.sum(1)), np.flatnonzero(counts.sum(0))
    p_ids, t_ids = p_ids[p_ids > 0], t_ids[t_ids > 0]
    inter = counts[np.ix_(p_ids, t_ids)].astype(np.float64)
    size_p, size_t = counts.sum(1)[p_ids], counts.sum(0)[t_ids]
    iou = inter / (size_p[:, None] + size_t[None, :] - inter)
    return iou, p_ids, t_ids


def object_f1(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> dict:
    """F1 of objects matched one-to-one at IoU >= threshold (label volumes)."""
    iou, p_ids, t_ids = contingency(pred, true)
    tp = _matched(iou, threshold)
    n_p, n_t = len(p_ids), len(t_ids)
    return {"tp": tp, "pred": n_p, "true": n_t, "f1": 2 * tp / max(n_p + n_t, 1)}


def _matched(iou: np.ndarray, threshold: float) -> int:
    if iou.size == 0:
        return 0
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return int((iou[rows, cols] >= threshold).sum())


def per_frame_f1(pred: np.ndarray, true: np.ndarray) -> dict:
    """Object F1 at IoU 0.5 over all frames (objects matched frame by frame)."""
    scores = [object_f1(p, t) for p, t in zip(pred, true, strict=True)]
    tp, n_p, n_t = (sum(s[k] for s in scores) for k in ("tp", "pred", "true"))
    return {"tp": tp, "pred": n_p, "true": n_t, "f1": 2 * tp / max(n_p + n_t, 1)}


def frame_matches(pred: np.ndarray, true: np.ndarray) -> dict[int, int]:
    """True id -> predicted id of one frame, matched one-to-one at IoU >= 0.5."""
    iou, p_ids, t_ids = contingency(pred, true)
    if iou.size == 0:
        return {}
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return {
        int(t_ids[c]): int(p_ids[r]) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= 0.5
    }


def tracking_scores(pred: StackInstances, true: StackInstances, labels: np.ndarray) -> dict:
    """Correct links and ID switches of ``pred`` against the true tracks (module notes)."""
    pred_labels = pred.to_labels()
    matches = [frame_matches(pred_labels[t], labels[t]) for t in range(labels.shape[0])]
    appear: dict[int, list[int]] = {}
    for t in range(labels.shape[0]):
        for oid in np.unique(labels[t]).tolist():
            if oid:
                appear.setdefault(oid, []).append(t)
    links = []  # (true id at t1, t1, true id at t2, t2, is_division)
    for oid, frames in appear.items():
        links += [(oid, a, oid, b, False) for a, b in zip(frames[:-1], frames[1:], strict=True)]
    for child, mother in true.parents.items():
        links.append((mother, appear[mother][-1], child, appear[child][0], True))
    correct = switches = detected = 0
    for g1, t1, g2, t2, division in links:
        p1, p2 = matches[t1].get(g1), matches[t2].get(g2)
        if p1 is None or p2 is None:
            continue
        detected += 1
        ok = pred.parents.get(p2) == p1 if division else p1 == p2
        correct += ok
        switches += (not division) and not ok
    return {
        "links": len(links),
        "divisions": len(true.parents),
        "detected": detected,
        "correct": correct,
        "fraction": correct / max(len(links), 1),
        "fraction_detected": correct / max(detected, 1),
        "id_switches": switches,
    }


def strip_ids(stack: StackInstances) -> list:
    return [p.replace(extra={}) for p in stack.planes]


#: Linking without the clean-ups of imperfect planes (the defaults before 2026-12-06).
OLD_LINKING: dict[str, Any] = {"merge_threshold": None, "min_planes": 1, "division_threshold": 0.5}


class Recorder:
    """A model whose ``predict`` also keeps the raw per-plane instances it returned and the
    object size it was given."""

    def __init__(self, model) -> None:
        self.model = model
        self.planes: list = []
        self.used_size = None  # the object_size predict was given
        self.object_size = model.object_size  # the model's own (predict_stack checks it)

    def predict(self, images, **options):
        out = self.model.predict(images, **options)
        self.planes += out
        self.used_size = options.get("object_size")
        return out

    def estimate_object_size(self, images, **options):
        return self.model.estimate_object_size(images, **options)


def plane_labels(plane) -> np.ndarray:
    """The label image of one plane's raw instances, instance k as label k + 1."""
    return link_planes([plane], axes="YX", merge_threshold=None).to_labels()


def ideal_linking_tp(planes: list, labels: np.ndarray) -> int:
    """True objects matched at IoU 0.5 when each instance takes the id it overlaps most."""
    linked = []
    for z, plane in enumerate(planes):
        own = plane_labels(plane)
        ids = []
        for k in range(len(plane)):
            values, counts = np.unique(labels[z][own == k + 1], return_counts=True)
            counts, values = counts[values > 0], values[values > 0]
            ids.append(int(values[np.argmax(counts)]) if len(values) else 0)
        ids_arr = np.array(ids, dtype=np.int64)
        dup = np.zeros(len(ids_arr), bool)  # a second instance of one object in a plane
        _, first = np.unique(ids_arr, return_index=True)
        dup[np.setdiff1d(np.arange(len(ids_arr)), first)] = True
        keep = (ids_arr > 0) & ~dup
        linked.append(plane[keep].replace(extra={"object_id": ids_arr[keep]}))
    volume = StackInstances(linked, labels.shape, "ZYX", {}).to_labels()
    return object_f1(volume, labels)["tp"]


def bench_zstack(
    model,
    shape: tuple[int, int, int],
    batch_size: int,
    naive: bool,
    rounds: int,
    trace: bool,
    seed: int = 0,
    object_size: float | str | None = None,
) -> dict:
    stack, truth, labels = synthetic_zstack(shape, seed=seed)
    model.predict(stack[0])  # warm-up: first-call costs out of both timings
    out: dict = {"shape": shape, "objects": len(truth.object_ids), "rounds": rounds}
    naive_s, batched_s = [], []
    naive_cpu: list[float] = []  # process CPU seconds (all threads)
    batched_cpu: list[float] = []
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = object_size
    if object_size == "auto":  # predict_stack's default: measured once, timed on its own
        t0, c0 = time.perf_counter(), time.process_time()
        size = stack_object_size(model, stack, axes="ZYX")
        out["estimate_s"] = time.perf_counter() - t0
        out["estimate_cpu"] = time.process_time() - c0
    for _ in range(rounds):  # alternating, so load changes on a shared machine hit both
        recorder = Recorder(model)
        t0, c0 = time.perf_counter(), time.process_time()
        result = predict_stack(
            recorder,
            stack,
            axes="ZYX",
            batch_size=batch_size,
            object_size=size,
            progress=False,
        )
        batched_s.append(time.perf_counter() - t0)
        batched_cpu.append(time.process_time() - c0)
        if naive:  # the same work: every plane at the same size
            t0, c0 = time.perf_counter(), time.process_time()
            _ = [model.predict(plane, object_size=size) for plane in stack]
            naive_s.append(time.perf_counter() - t0)
            naive_cpu.append(time.process_time() - c0)
    if naive_s:
        out["naive_s"] = naive_s
        out["naive_cpu"] = naive_cpu
    out["batched_s"] = batched_s
    out["batched_cpu"] = batched_cpu
    out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    if trace:  # an untimed run: tracemalloc slows Python allocations
        tracemalloc.start()
        predict_stack(
            model, stack, axes="ZYX", batch_size=batch_size, object_size=object_size, progress=False
        )
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    out["stack_mb"] = stack.nbytes / 2**20
    out["object_size"] = recorder.used_size
    out["f1"] = object_f1(result.to_labels(), labels)
    raw = recorder.planes
    out["old_f1"] = object_f1(link_planes(raw, axes="ZYX", **OLD_LINKING).to_labels(), labels)
    out["plane_f1"] = per_frame_f1(np.stack([plane_labels(p) for p in raw]), labels)
    out["ideal_tp"] = ideal_linking_tp(raw, labels)
    t0 = time.perf_counter()
    oracle = link_planes(strip_ids(truth), axes="ZYX")
    out["link_s"] = time.perf_counter() - t0
    out["oracle_f1"] = object_f1(oracle.to_labels(), labels)
    return out


def bench_timelapse(
    model,
    shape: tuple[int, int, int],
    batch_size: int,
    seed: int = 0,
    object_size: float | str | None = None,
) -> dict:
    movie, truth, labels = synthetic_timelapse(shape, seed=seed)
    oracle = link_planes(strip_ids(truth), axes="TYX")
    recorder = Recorder(model)
    t0 = time.perf_counter()
    result = predict_stack(
        recorder,
        movie,
        axes="TYX",
        batch_size=batch_size,
        object_size=object_size,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    old = link_planes(recorder.planes, axes="TYX", **OLD_LINKING)
    raw_frames = np.stack([plane_labels(p) for p in recorder.planes])
    return {
        "shape": shape,
        "tracks": len(truth.object_ids),
        "oracle": tracking_scores(oracle, truth, labels),
        "model": tracking_scores(result, truth, labels),
        "old": tracking_scores(old, truth, labels),
        "ctc": {
            k: ctc_scores(v, truth)
            for k, v in (("oracle", oracle), ("model", result), ("old", old))
        },
        "model_f1_per_frame": per_frame_f1(result.to_labels(), labels),
        "raw_f1_per_frame": per_frame_f1(raw_frames, labels),
        "predict_s": seconds,
        "object_size": recorder.used_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the issue's 64 x 512 x 512 z-stack")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="of both synthetic stacks")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    parser.add_argument("--rounds", type=int, help="timing rounds (default 2; 1 with --full)")
    parser.add_argument(
        "--object-size",
        default="auto",
        help="object size (px), 'auto' (predict_stack's default) or 'none' (the model's own)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    size: float | str | None = args.object_size
    if size == "none":
        size = None
    elif size != "auto":
        size = float(size)
    zshape = (64, 512, 512) if args.full else (16, 256, 256)
    model = la.load_model("starter", device="cpu")
    import torch  # heavy: already loaded by the model

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch threads {torch.get_num_threads()}, batch_size {args.batch_size}, seed {args.seed}, "
        f"object_size {size!r} (model: object_size {model.object_size}, data_object_size "
        f"{model.data_object_size})"
    )
    rounds = args.rounds or (1 if args.full else 2)
    z = bench_zstack(
        model, zshape, args.batch_size, not args.no_naive, rounds, not args.full, args.seed, size
    )
    t = bench_timelapse(model, (args.frames, 256, 256), args.batch_size, args.seed, size)
    print("\n| measure | value |\n|---|---|")
    print(f"| z-stack | {z['shape']}, {z['objects']} nuclei, {z['stack_mb']:.0f} MB |")
    print(
        f"| object size given to predict (px) | z-stack {z['object_size']}, "
        f"time-lapse {t['object_size']} (None: the model's default) |"
    )
    times = ", ".join
    if "naive_s" in z:
        naive = z["naive_s"]
        print(f"| (a) naive loop of model.predict(plane) | {times(f'{s:.1f}' for s in naive)} s |")
    batched = z["batched_s"]
    print(
        f"| (a) predict_stack, batch {args.batch_size} | {times(f'{s:.1f}' for s in batched)} s |"
    )
    if "naive_s" in z:
        print(f"| (a) speed-up (best of each) | {min(naive) / min(batched):.2f}x |")
        cpu_n, cpu_b = min(z["naive_cpu"]), min(z["batched_cpu"])
        print(
            f"| (a) CPU seconds (all threads), naive / batched | {cpu_n:.1f} / {cpu_b:.1f} "
            f"({cpu_n / cpu_b:.2f}x) |"
        )
    if "estimate_s" in z:
        line = f"{z['estimate_s']:.1f} s ({z['estimate_cpu']:.1f} CPU s)"
        if "naive_s" in z:
            line += (
                f"; predict_stack with it, against the naive loop at the same size: "
                f"{min(naive) / (min(batched) + z['estimate_s']):.2f}x"
            )
        print(f'| (a) the "auto" estimate (8 planes, once per stack) | {line} |')
    traced = z.get("tracemalloc_peak_mb")
    print(
        f"| (a) peak memory | process RSS {z['rss_peak_mb']:.0f} MB (grew "
        f"{z['rss_growth_mb']:.0f} MB during the timed runs)"
        + (f"; Python/numpy allocations {traced:.1f} MB (tracemalloc)" if traced else "")
        + " |"
    )
    f1, of1 = z["f1"], z["oracle_f1"]
    print(
        f"| (b) 3-D object F1 @ IoU 0.5, starter | {f1['f1']:.3f} "
        f"({f1['tp']} TP, {f1['pred']} predicted, {f1['true']} true) |"
    )
    old, pf1 = z["old_f1"], z["plane_f1"]
    print(
        f"| (b) 3-D F1, starter + linking without clean-ups | {old['f1']:.3f} "
        f"({old['tp']} TP, {old['pred']} predicted) |"
    )
    print(
        f"| (b) 3-D F1, linking exact per-plane instances | {of1['f1']:.3f} "
        f"({of1['tp']} TP, {of1['pred']} linked, {of1['true']} true; {z['link_s']:.1f} s) |"
    )
    print(
        f"| (b) starter per-plane 2-D F1 @ 0.5 | {pf1['f1']:.3f} ({pf1['tp']} TP, "
        f"{pf1['pred']} predicted, {pf1['true']} true sections) |"
    )
    print(
        f"| (b) ceiling: true objects found with ideal linking of the starter's planes | "
        f"{z['ideal_tp']} of {of1['true']} |"
    )
    print(f"| time-lapse | {t['shape']}, {t['tracks']} tracks |")
    labels = {
        "oracle": "linking exact instances",
        "model": "starter + linking",
        "old": "starter + linking without clean-ups",
    }
    for name in ("oracle", "model", "old"):
        s = t[name]
        label = labels[name]
        print(
            f"| (c) correct links, {label} | {s['fraction']:.3f} ({s['correct']} of "
            f"{s['links']}; {s['fraction_detected']:.3f} of the {s['detected']} with both "
            f"ends detected; {s['divisions']} division links) |"
        )
        print(f"| (c) ID switches, {label} | {s['id_switches']} |")
        c = t["ctc"][name]
        print(
            f"| (c) CTC TRA / DET, {label} | {c.tra:.4f} / {c.det:.4f} (NS {c.NS}, FN {c.FN}, "
            f"FP {c.FP}, ED {c.ED}, EA {c.EA}, EC {c.EC}) |"
        )
    pf, rf = t["model_f1_per_frame"], t["raw_f1_per_frame"]
    print(
        f"| (c) starter per-frame object F1 @ 0.5, after linking / raw | {pf['f1']:.3f} / "
        f"{rf['f1']:.3f} |"
    )
    print(f"| (c) time-lapse predict_stack | {t['predict_s']:.1f} s |")


if __name__ == "__main__":
    main()
