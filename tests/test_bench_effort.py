"""Tests of the scripted annotator's cost rules in bench/bench_effort.py, on hand-made cases.

The bench script is loaded by path (it is not part of the library). No model runs: the
proposals and prompt results are hand-built polygons; every expected number is worked out
by hand from the cost model (vertex 1 s, drag 1 s, box 7 s, accept 0.5 s, delete 1.5 s,
refine 1 s, undo 1 s, nudge 1 s).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import shapely

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_effort.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_effort", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_effort"] = module  # dataclasses resolve their module by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_effort", None)


SHAPE = (64, 64)
SQUARE = shapely.box(10, 10, 30, 30)  # 20 x 20 px, 400 pixels, 4 vertices
OTHER = shapely.box(40, 40, 50, 50)  # far from SQUARE


def test_cost_model_is_the_documented_one(bench):
    assert bench.COST == {
        "vertex": 1.0,
        "drag": 1.0,
        "box": 7.0,
        "accept": 0.5,
        "delete": 1.5,
        "refine": 1.0,
        "undo": 1.0,
        "nudge": 1.0,
    }


def test_manual_draws_every_vertex_at_least_four(bench):
    triangle = shapely.Polygon([(0, 0), (20, 0), (0, 20)])
    octagon = shapely.Point(32, 32).buffer(15, quad_segs=2)  # 8 vertices, well apart
    assert bench.vertex_count(SQUARE) == 4
    assert bench.vertex_count(triangle) == 4  # 3 vertices, the rule's minimum is 4
    assert bench.vertex_count(octagon) == 8
    assert bench.manual([SQUARE, octagon]).seconds == 4 + 8


def test_perfect_proposal_costs_one_glance(bench):
    out = bench.annotate([SQUARE], [SQUARE], SHAPE)
    assert dict(out.tally.actions) == {"delete": 0, "accept": 1}
    assert out.tally.seconds == 0.5
    assert out.accepted_unchanged == 1 and out.missed == 0


def test_missing_object_is_drawn(bench):
    out = bench.annotate([SQUARE], [], SHAPE)
    assert out.tally.seconds == 4 * 1.0  # four vertex clicks
    assert out.missed == 1


def test_false_positive_is_deleted(bench):
    out = bench.annotate([SQUARE], [SQUARE, OTHER], SHAPE)
    assert out.tally.seconds == 0.5 + 1.5  # accept the square, delete the other


def test_proposal_at_085_is_fixed_by_one_insert_greedy_or_two_exact(bench, monkeypatch):
    # The proposal misses the square's bottom 3 rows: IoU = 340 / 400 = 0.85. Its own
    # vertices all lie on the true outline ((30, 27) and (10, 27) on the sides), so no move
    # helps. Greedy: inserting the true corner (30, 30) between (30, 27) and (10, 27) adds
    # a triangle of 3 * 20 / 2 = 30 px: IoU 370 / 400 = 0.925 >= 0.9 after one drag (1 s).
    # Exact: both true corners (10, 30) and (30, 30) are 3 px off: two drags (2 s). Both
    # are cheaper than a redraw (delete 1.5 + 4 clicks).
    short = shapely.box(10, 10, 30, 27)
    iou = bench.mask_iou([SQUARE], [short], SHAPE)[0, 0]
    assert iou == pytest.approx(0.85)
    assert bench.edit_count(short, SQUARE) == 1
    out = bench.annotate([SQUARE], [short], SHAPE)
    assert dict(out.tally.actions) == {"delete": 0, "drag": 1}
    assert out.tally.seconds == 1.0
    monkeypatch.setattr(bench, "EDIT_RULE", "exact")
    assert bench.edit_count(short, SQUARE) == 2
    assert bench.annotate([SQUARE], [short], SHAPE).tally.seconds == 2.0


def test_fix_redraws_what_cannot_be_edited(bench):
    # An empty polygon has no vertex to drag: delete (1.5) + draw the square (4 clicks).
    tally = bench.fix(shapely.Polygon(), SQUARE)
    assert dict(tally.actions) == {"delete": 1, "vertex": 4}
    assert tally.seconds == 5.5


def test_half_an_object_is_rebuilt_by_two_inserts(bench):
    # The proposal is the top half of a 40 x 40 square (IoU 800 / 1600 = 0.5); its vertices
    # lie on the true outline. Inserting a far corner, (50, 50) or (10, 50), into the
    # proposal's bottom edge adds a 20 x 40 / 2 = 400 px triangle (IoU 0.75), the other one
    # completes the square (IoU 1): 2 drags, 2 s, against a redraw of 1.5 + 4 = 5.5 s.
    big = shapely.box(10, 10, 50, 50)
    sliver = shapely.box(10, 10, 50, 30)  # half the square: IoU 0.5
    assert bench.edit_count(sliver, big) == 2
    assert bench.fix(sliver, big).seconds == 2.0


def test_low_overlap_proposal_is_a_false_positive_and_a_miss(bench):
    # IoU below 0.5: no match, so the proposal is deleted and the object drawn.
    corner = shapely.box(10, 10, 20, 20)  # 100 / 400 = 0.25
    out = bench.annotate([SQUARE], [corner], SHAPE)
    assert out.tally.seconds == 1.5 + 4
    assert out.missed == 1 and out.accepted_unchanged == 0


def test_hungarian_matching_is_one_to_one(bench):
    # Two proposals on one object: the better is accepted, the duplicate deleted.
    out = bench.annotate([SQUARE], [shapely.box(10, 10, 30, 28), SQUARE], SHAPE)
    assert out.tally.seconds == 0.5 + 1.5
    assert out.accepted_unchanged == 1


def test_workflow_c_refines_then_prompts(bench):
    short = shapely.box(10, 10, 30, 27)  # 0.85: refine all (2 s) fixes it -> accept (0.5 s)
    missed_good = OTHER  # the box prompt returns it exactly: box 7 s + accept 0.5 s
    missed_bad = shapely.box(2, 40, 22, 60)  # prompt returns nothing: box 7 s + draw 4 s

    def refine(j):
        assert j == 0
        return SQUARE

    def box_prompt(missed, annotated):
        assert missed == [1, 2]
        assert annotated == [SQUARE]  # the refined proposal, accepted before the prompts
        return [OTHER, shapely.Polygon()]

    out = bench.annotate(
        [SQUARE, missed_good, missed_bad],
        [short],
        SHAPE,
        refine=refine,
        box_prompt=box_prompt,
        refine_prompted=lambda missed, polygons: polygons,
    )
    assert out.tally.seconds == (2 + 0.5) + (7 + 0.5) + (7 + 4)
    assert out.missed == 2 and out.box_ok == 1
    # the missed objects' share of the seconds, and no proposal left to fix by hand
    assert out.missed_tally.seconds == (7 + 0.5) + (7 + 4)
    assert out.fixed == 0


def test_workflow_c_undoes_a_refinement_that_made_the_fix_dearer(bench, monkeypatch):
    # The proposal needs one drag (IoU 0.85); "refinement" turns it into an octagon inside
    # the square that costs more than an undo plus that drag: (c) refines all (2 s), undoes
    # (1 s), then drags one vertex (1 s).
    short = shapely.box(10, 10, 30, 27)
    worse = shapely.Point(20, 20).buffer(9, quad_segs=2)
    assert bench.fix(short, SQUARE).seconds == 1
    assert bench.fix(worse, SQUARE).seconds > 1 + 1

    def run():
        return _one_proposal(bench, short, worse)

    out = run()
    assert dict(out.tally.actions) == {"delete": 0, "refine": 2, "undo": 1, "drag": 1}
    monkeypatch.setattr(bench, "UNDO", False)  # --no-undo: the refined outline is fixed
    out = run()
    assert out.tally.actions["undo"] == 0
    assert out.tally.seconds == 2 + bench.fix(worse, SQUARE).seconds


def test_workflow_c_keeps_a_refinement_that_made_the_fix_cheaper(bench):
    far = shapely.box(10, 10, 30, 24)  # two drags; refined to 0.85, one drag
    out = _one_proposal(bench, far, shapely.box(10, 10, 30, 27))
    assert dict(out.tally.actions) == {"delete": 0, "refine": 2, "drag": 1}


def test_workflow_b_counts_missed_objects_and_hand_fixes(bench):
    short = shapely.box(10, 10, 30, 26)  # 0.8: fixed by hand in (b)
    out = bench.annotate([SQUARE, OTHER], [short], SHAPE)
    assert out.missed == 1 and out.fixed == 1
    assert out.missed_tally.seconds == 4  # OTHER drawn: 4 vertices
    assert out.tally.seconds > out.missed_tally.seconds


def test_workflow_c_box_prompt_partly_right_is_refined_then_fixed(bench):
    # The prompt returns the 0.85 polygon; refinement leaves it; one insert fixes it.
    short = shapely.box(10, 10, 30, 27)
    out = bench.annotate(
        [SQUARE],
        [],
        SHAPE,
        refine=lambda j: pytest.fail("no proposal to refine"),
        box_prompt=lambda missed, annotated: [short],
        refine_prompted=lambda missed, polygons: polygons,
    )
    assert dict(out.tally.actions) == {"delete": 0, "box": 1, "refine": 1, "drag": 1}
    assert out.tally.seconds == 7 + 1 + 1
    assert out.box_ok == 1  # 0.85 >= 0.8


def test_economical_draw_rule_drops_pixel_steps(bench, monkeypatch):
    # A 20 x 20 square with a 4 x 1 px notch in its top edge: 8 vertices, kept at the default
    # tolerance (the notch is 1 px > 0.49 deep). The economical rule simplifies at 2 px to
    # the plain square (IoU 396 / 400 = 0.99 >= 0.95): 4 clicks.
    notched = shapely.Polygon(
        [(10, 10), (18, 10), (18, 11), (22, 11), (22, 10), (30, 10), (30, 30), (10, 30)]
    )
    assert bench.vertex_count(notched) == 8
    monkeypatch.setattr(bench, "DRAW_RULE", "economical")
    assert bench.vertex_count(notched) == 4
    assert bench.manual([notched]).seconds == 4.0


def _one_proposal(bench, proposal, refined):
    return bench.annotate(
        [SQUARE],
        [proposal],
        SHAPE,
        refine=lambda j: refined,
        box_prompt=lambda missed, annotated: [],
        refine_prompted=lambda missed, polygons: polygons,
    )


def test_workflow_c_shrinks_an_outline_a_pixel_too_large(bench, monkeypatch):
    # 22 x 22 around the 20 x 20 square: IoU 400 / 484 = 0.83. GrabCut leaves it; one
    # "Shrink" press (1 px) makes it exact: refine all 2 s + nudge 1 s + accept 0.5 s.
    large = shapely.box(9, 9, 31, 31)
    out = _one_proposal(bench, large, large)
    assert dict(out.tally.actions) == {"delete": 0, "refine": 2, "nudge": 1, "accept": 1}
    assert out.tally.seconds == 3.5
    monkeypatch.setattr(bench, "NUDGE_STEP", 0.0)  # --nudge-step 0: dragged instead
    out = _one_proposal(bench, large, large)
    assert out.tally.actions["nudge"] == 0 and out.tally.actions["drag"] >= 2


def test_workflow_c_grows_in_steps_while_it_helps(bench, monkeypatch):
    # 16 x 16 inside the 20 x 20 square (IoU 0.64): two "Grow" presses of 1 px make it exact,
    # a third would overshoot (the annotator stops), after undoing a refinement that
    # made it worse (a smaller square).
    small = shapely.box(12, 12, 28, 28)
    worse = shapely.box(14, 14, 26, 26)
    outline, presses = bench.nudge(small, SQUARE, SHAPE)
    assert presses == 2 and outline.equals(SQUARE)
    out = _one_proposal(bench, small, worse)
    assert dict(out.tally.actions) == {
        "delete": 0, "refine": 2, "undo": 1, "nudge": 2, "accept": 1,
    }  # fmt: skip
    monkeypatch.setattr(bench, "NUDGE_STEP", 0.5)
    outline, presses = bench.nudge(small, SQUARE, SHAPE)
    assert presses == 4 and outline.equals(SQUARE)


def test_nudge_leaves_an_outline_no_press_improves(bench):
    shifted = shapely.box(13, 10, 33, 30)  # right size, 3 px to the right
    outline, presses = bench.nudge(shifted, SQUARE, SHAPE)
    assert presses == 0 and outline.equals(shifted)


def test_workflow_c_refines_all_at_once_and_undoes_a_spoilt_good_one(bench, monkeypatch):
    # A good proposal (exact) that GrabCut spoils, and one at 0.8 that GrabCut makes exact:
    # select all + refine (2 s), undo the spoilt one (1 s) and accept both (0.5 s each).
    short = shapely.box(40, 40, 50, 48)  # mask IoU 0.8 with OTHER
    spoilt = shapely.box(10, 10, 30, 25)  # IoU 0.75 with SQUARE
    results = {0: spoilt, 1: OTHER}

    def run():
        return bench.annotate(
            [SQUARE, OTHER],
            [SQUARE, short],
            SHAPE,
            refine=results.__getitem__,
            box_prompt=lambda missed, annotated: [],
            refine_prompted=lambda missed, polygons: polygons,
        )

    out = run()
    assert dict(out.tally.actions) == {"delete": 0, "refine": 2, "undo": 1, "accept": 2}
    assert out.tally.seconds == 2 + 1 + 2 * 0.5
    assert out.accepted_unchanged == 1
    monkeypatch.setattr(bench, "REFINE_ALL", False)  # --refine-each: only the one to fix
    out = run()
    assert dict(out.tally.actions) == {"delete": 0, "accept": 2, "refine": 1}
    assert out.tally.seconds == 0.5 + 1 + 0.5


def test_real_orientations_are_the_sample_turned_and_mirrored_with_their_labels(bench):
    """``--real-orientations``: eight images, the sample turned by k quarters (k = 0-3), then
    the same mirrored left-right; each truth is the turned label image's objects."""
    import numpy as np

    from labelassist import polygons_to_masks
    from labelassist.samples import real_nuclei

    image, labels = real_nuclei(labels=True)
    data = bench._real(8)
    assert len(data) == 8 and len(bench._real()) == 1
    for k, (turned, truth) in enumerate(data):
        want = np.rot90(image, k % 4)
        want_labels = np.rot90(labels, k % 4)
        if k >= 4:
            want, want_labels = want[:, ::-1], want_labels[:, ::-1]
        np.testing.assert_array_equal(turned, want)
        masks = polygons_to_masks(truth, want_labels.shape)
        ids = [i for i in np.unique(want_labels) if i]
        assert len(truth) == len(ids) == 125
        np.testing.assert_array_equal(masks.any(axis=0), want_labels > 0)
        sizes = sorted(int(m.sum()) for m in masks)
        assert sizes == sorted(int((want_labels == i).sum()) for i in ids)
    assert not np.array_equal(data[1][0], data[4][0])


def test_first_seed_picks_the_synthetic_images(bench):
    import numpy as np

    from labelassist.synthetic import synthetic_nuclei

    [(image, truth)] = bench._synthetic(1, 64, first_seed=9700)
    want, inst = synthetic_nuclei((64, 64), seed=9700, dtype=np.uint8)[:2]
    np.testing.assert_array_equal(image, want)
    assert [p.equals(q) for p, q in zip(truth, inst.polygons, strict=True)] == [True] * len(truth)
