"""Cell Tracking Challenge tracking measures of a tracked stack against the truth: AOGM, TRA, DET.

The Acyclic Oriented Graph Measure (Matula et al. 2015, "Cell Tracking Accuracy
Measurement Based on Comparison of Acyclic Oriented Graphs", PLoS ONE 10(12): e0144959)
counts the weighted graph operations that turn the computed tracking graph into the true
one. Both stacks become graphs: a **node** per object and frame (a 2-D region for
``"TYX"``, the 3-D region of the frame for ``"TZYX"``), an **edge** from each appearance of
an object to its next appearance (a *track link*), and from a mother's last appearance to
each daughter's first (a *parent link*, ``StackInstances.parents``).

Matching, as in the challenge: a computed node matches a true node of the same frame when
it covers more than half of the true node's pixels (so each true node has at most one
match; a computed node can match several true ones). Operations and the challenge's TRA
weights (`TRA_WEIGHTS`):

======  =====================================================================  ======
``NS``  node splits: a computed node matching k > 1 true nodes counts k - 1        5
``FN``  false negatives: true nodes no computed node matches                      10
``FP``  false positives: computed nodes matching no true node                      1
``ED``  redundant edges: computed edges between nodes that each match one true       1
        node, with no true edge between those two
``EA``  missing edges: true edges not present between their matched nodes          1.5
``EC``  edges present in both with another semantic (track link vs parent link)    1
======  =====================================================================  ======

``AOGM = 5 NS + 10 FN + 1 FP + 1 ED + 1.5 EA + 1 EC``; ``AOGM_0 = 10 |V| + 1.5 |E|`` (build
the true graph from nothing); ``TRA = 1 - min(AOGM, AOGM_0) / AOGM_0`` in [0, 1], 1 is
perfect. ``DET`` is the same with the node operations alone (``AOGM-D = 5 NS + 10 FN +
1 FP``, ``AOGM-D_0 = 10 |V|``). Gap closing: an object missing for some frames has one
track-link edge over the gap in our graphs (CTC result files write it as a parent link:
`labelassist.stacks.write_ctc`), in the true and computed graph alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from .stack_instances import StackInstances

__all__ = ["DET_WEIGHTS", "TRA_WEIGHTS", "TrackingScores", "tracking_scores"]

#: The Cell Tracking Challenge's TRA weights of the AOGM operations.
TRA_WEIGHTS: Mapping[str, float] = {"NS": 5, "FN": 10, "FP": 1, "ED": 1, "EA": 1.5, "EC": 1}
#: The weights of DET (node operations only).
DET_WEIGHTS: Mapping[str, float] = {"NS": 5, "FN": 10, "FP": 1, "ED": 0, "EA": 0, "EC": 0}


@dataclass(frozen=True)
class TrackingScores:
    """AOGM operation counts, their weighted sums and TRA / DET (module notes)."""

    NS: int
    FN: int
    FP: int
    ED: int
    EA: int
    EC: int
    nodes: int  # of the true graph
    edges: int  # of the true graph
    aogm: float
    aogm_0: float
    tra: float
    det: float

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for tables and JSON)."""
        return asdict(self)


def tracking_scores(computed: StackInstances, truth: StackInstances) -> TrackingScores:
    """Compare a tracked stack with the true tracks: AOGM counts, TRA and DET (CTC weights).

    Parameters
    ----------
    computed, truth : StackInstances
        Axes ``"TYX"`` or ``"TZYX"``, the same ``shape``; object ids are track ids and
        ``parents`` the divisions.

    Returns
    -------
    TrackingScores

    Examples
    --------
    >>> import numpy as np
    >>> volume = np.zeros((3, 8, 8), np.uint32)
    >>> volume[:, 1:4, 1:4] = 1
    >>> volume[2, 5:8, 5:8] = 2
    >>> truth = StackInstances.from_labels(volume, "TYX")
    >>> tracking_scores(truth, truth).tra
    1.0
    >>> broken = volume.copy()
    >>> broken[2][broken[2] == 1] = 3  # the track of object 1 switches id in frame 2
    >>> s = tracking_scores(StackInstances.from_labels(broken, "TYX"), truth)
    >>> s.EA, s.ED, s.FN, round(s.tra, 3)  # TRA = 1 - 1.5 / (10 * 4 + 1.5 * 2)
    (1, 0, 0, 0.965)
    """
    for name, stack in (("computed", computed), ("truth", truth)):
        if not isinstance(stack, StackInstances):
            raise TypeError(f"{name} must be a StackInstances, got {type(stack).__name__}")
        if stack.axes not in ("TYX", "TZYX"):
            raise ValueError(
                f"{name} has axes {stack.axes!r}; tracking measures need a time-lapse "
                "('TYX' or 'TZYX')"
            )
    if computed.shape != truth.shape or computed.axes != truth.axes:
        raise ValueError(
            f"computed ({computed.axes} {computed.shape}) and truth ({truth.axes} "
            f"{truth.shape}) must have the same axes and shape"
        )
    pred_labels, true_labels = computed.to_labels(), truth.to_labels()
    # per frame: true id -> computed id (the > 50 % rule), computed ids present
    matches: list[dict[int, int]] = []
    ns = fn = fp = 0
    for p, t in zip(pred_labels, true_labels, strict=True):
        frame_match, n_s, f_n, f_p = _match_frame(p, t)
        matches.append(frame_match)
        ns, fn, fp = ns + n_s, fn + f_n, fp + f_p
    true_edges = _edges(true_labels, truth.parents)
    pred_edges = _edges(pred_labels, computed.parents)
    # nodes matching exactly one true node: the induced graph's nodes
    single: list[dict[int, int]] = []  # per frame: computed id -> its one true id
    for frame_match in matches:
        hits: dict[int, list[int]] = {}
        for true_id, pred_id in frame_match.items():
            hits.setdefault(pred_id, []).append(true_id)
        single.append({p: ts[0] for p, ts in hits.items() if len(ts) == 1})
    ed = ec = 0
    for (t1, p1, t2, p2), parent_link in pred_edges.items():
        g1, g2 = single[t1].get(p1), single[t2].get(p2)
        if g1 is None or g2 is None:
            continue  # edges of FP or split nodes go with those nodes
        true_kind = true_edges.get((t1, g1, t2, g2))
        if true_kind is None:
            ed += 1
        elif true_kind != parent_link:
            ec += 1
    ea = 0
    for t1, g1, t2, g2 in true_edges:
        c1, c2 = matches[t1].get(g1), matches[t2].get(g2)
        ok = (
            c1 is not None
            and c2 is not None
            and single[t1].get(c1) == g1
            and single[t2].get(c2) == g2
            and (t1, c1, t2, c2) in pred_edges
        )
        ea += not ok
    counts = {"NS": ns, "FN": fn, "FP": fp, "ED": ed, "EA": ea, "EC": ec}
    n_nodes = sum(len(np.unique(t)) - int((t == 0).any()) for t in true_labels)
    n_edges = len(true_edges)
    aogm = sum(TRA_WEIGHTS[k] * v for k, v in counts.items())
    aogm_0 = TRA_WEIGHTS["FN"] * n_nodes + TRA_WEIGHTS["EA"] * n_edges
    det_0 = DET_WEIGHTS["FN"] * n_nodes
    aogm_d = sum(DET_WEIGHTS[k] * v for k, v in counts.items())
    return TrackingScores(
        **counts,
        nodes=n_nodes,
        edges=n_edges,
        aogm=float(aogm),
        aogm_0=float(aogm_0),
        tra=_score(aogm, aogm_0),
        det=_score(aogm_d, det_0),
    )


def _score(cost: float, empty: float) -> float:
    return 1.0 if empty == 0 else round(1.0 - min(cost, empty) / empty, 12)


def _match_frame(pred: np.ndarray, true: np.ndarray) -> tuple[dict[int, int], int, int, int]:
    """True id -> computed id covering > 50 % of it; and the NS, FN, FP counts of the frame."""
    p, t = pred.astype(np.int64).ravel(), true.astype(np.int64).ravel()
    t_ids, t_inv = np.unique(t, return_inverse=True)
    p_ids, p_inv = np.unique(p, return_inverse=True)
    pairs = np.bincount(p_inv * len(t_ids) + t_inv, minlength=len(p_ids) * len(t_ids))
    pairs = pairs.reshape(len(p_ids), len(t_ids))
    true_size = pairs.sum(0)
    pi, ti = np.nonzero(2 * pairs > true_size[None, :])
    keep = (p_ids[pi] > 0) & (t_ids[ti] > 0)
    match = {int(t_ids[b]): int(p_ids[a]) for a, b in zip(pi[keep], ti[keep], strict=True)}
    n_true = int((t_ids > 0).sum())
    n_pred = int((p_ids > 0).sum())
    per_pred = np.bincount(list(match.values()), minlength=int(p_ids.max()) + 1)
    ns = int(np.maximum(per_pred - 1, 0).sum())
    fn = n_true - len(match)
    fp = n_pred - len(set(match.values()))
    return match, ns, fn, fp


def _edges(labels: np.ndarray, parents: Mapping[int, int]) -> dict[tuple[int, int, int, int], bool]:
    """(frame, id, frame, id) -> is a parent link, of the tracking graph of a label volume."""
    appear: dict[int, list[int]] = {}
    for t, frame in enumerate(labels):
        for oid in np.unique(frame).tolist():
            if oid:
                appear.setdefault(oid, []).append(t)
    edges: dict[tuple[int, int, int, int], bool] = {}
    for oid, frames in appear.items():
        for a, b in zip(frames[:-1], frames[1:], strict=True):
            edges[(a, oid, b, oid)] = False
    for child, mother in parents.items():
        if child in appear and mother in appear:
            edges[(appear[mother][-1], mother, appear[child][0], child)] = True
    return edges
