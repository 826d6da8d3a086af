"""Benchmark: 5,000 predicted instances -> an editable napari Shapes layer, and one edit.

Run under a display (Xvfb here)::

    xvfb-run -a .venv/bin/python bench/bench_napari.py [--n 5000] [--repeats 3]

Prints a table of medians over ``--repeats`` runs:

* ``instances -> layer``: `shapes_layer_kwargs` + ``viewer.add_shapes`` with the viewer
  shown and one frame drawn, for the compiled triangulation backend (bermuda) and
  napari's pure Python one (the baseline), in the same run;
* one edit of one polygon in the 5,000-polygon layer as napari's vertex tools do it
  (data events around ``_data_view.edit``; the plugin's `EditTracker` then updates that
  one row of ``features``; its share is printed separately) against rewriting the whole
  layer (``layer.data = ...``, what a plugin that rebuilds the layer would do);
* relabelling one shape (`EditTracker.set_class`) against recolouring the whole layer;
* `layer_to_instances` of the whole layer (what one autosave converts).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import shapely


def _instances(n: int, seed: int = 0):
    """``n`` nucleus-like polygons (20-gons, radius 4-9 px) scattered over a big image."""
    import labelassist as la

    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n) * 25)
    centres = rng.uniform(10, side - 10, (n, 2))
    radii = rng.uniform(4, 9, (n, 2))
    angle = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    polys = [
        shapely.Polygon(np.c_[c[0] + r[0] * np.cos(angle), c[1] + r[1] * np.sin(angle)])
        for c, r in zip(centres, radii, strict=True)
    ]
    return la.Instances(polys, np.zeros(n, int), rng.uniform(0.3, 1.0, n), (side, side))


def _median(times: list[float]) -> float:
    return statistics.median(times)


def _set_backend(backend: str) -> None:
    from napari.settings import get_settings

    get_settings().experimental.triangulation_backend = backend


def _construct(instances) -> tuple[float, float]:
    """Seconds for the conversion, and for conversion + ``Shapes(...)`` (no viewer)."""
    from labelassist_napari._style import shapes_layer_kwargs
    from napari.layers import Shapes

    t0 = time.perf_counter()
    kwargs = shapes_layer_kwargs(instances, classes=["nucleus"], low_score=0.5)
    t1 = time.perf_counter()
    Shapes(**kwargs)
    return t1 - t0, time.perf_counter() - t0


def _add_layer(viewer, instances) -> tuple[float, object]:
    """Seconds for conversion + ``viewer.add_shapes`` + one drawn frame."""
    from labelassist_napari._style import shapes_layer_kwargs
    from labelassist_napari._tracker import tracker_for
    from qtpy.QtWidgets import QApplication

    t0 = time.perf_counter()
    layer = viewer.add_shapes(**shapes_layer_kwargs(instances, classes=["nucleus"], low_score=0.5))
    tracker_for(layer)
    viewer.window._qt_viewer.canvas.native.repaint()
    QApplication.processEvents()
    return time.perf_counter() - t0, layer


def _edit_one(layer, index: int) -> float:
    from napari.layers.base._base_constants import ActionType

    vertices = layer.data[index] + np.array([0.5, 0.0])
    kwargs = {"data_indices": (index,), "vertex_indices": ((),)}
    t0 = time.perf_counter()
    layer.events.data(value=layer.data, action=ActionType.CHANGING, **kwargs)
    layer._data_view.edit(index, vertices)  # what napari's vertex tools call
    layer.events.data(value=layer.data, action=ActionType.CHANGED, **kwargs)
    return time.perf_counter() - t0


def _rewrite_all(layer, index: int) -> float:
    data = list(layer.data)
    data[index] = data[index] + np.array([0.5, 0.0])
    t0 = time.perf_counter()
    layer.data = data
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="instances (default 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per figure (median)")
    args = parser.parse_args()

    import napari
    from labelassist_napari._convert import layer_to_instances
    from labelassist_napari._tracker import tracker_for
    from napari.settings import get_settings

    original_backend = get_settings().experimental.triangulation_backend
    instances = _instances(args.n)
    viewer = napari.Viewer(show=True)
    viewer.add_image(np.zeros(instances.image_shape, np.uint8), name="image")
    backends = ("bermuda", "Pure python")
    # warm-up: napari's first Shapes layer initialises units (pint) and Qt controls
    for backend in backends:
        _set_backend(backend)
        _construct(instances[:50])
        viewer.layers.remove(_add_layer(viewer, instances[:50])[1])
    construct: dict[str, list[float]] = {b: [] for b in backends}
    convert: list[float] = []
    added: dict[str, list[float]] = {b: [] for b in backends}
    layer = None
    for repeat in range(args.repeats):
        for backend in backends:  # alternate: the machine is shared and noisy
            _set_backend(backend)
            t_convert, t_construct = _construct(instances)
            convert.append(t_convert)
            construct[backend].append(t_construct)
            t_add, new = _add_layer(viewer, instances)
            added[backend].append(t_add)
            if backend == "bermuda" and repeat == args.repeats - 1:
                layer = new
            else:
                viewer.layers.remove(new)
    _set_backend("bermuda")
    tracker = tracker_for(layer)
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(layer.data), args.repeats)
    edit = [_edit_one(layer, int(i)) for i in picks]
    rewrite = [_rewrite_all(layer, int(i)) for i in picks]
    from types import SimpleNamespace

    handler = []
    for i in picks:
        event = SimpleNamespace(action="changed", data_indices=(int(i),))
        t0 = time.perf_counter()
        tracker._on_data(event)  # the plugin's own work per edit
        handler.append(time.perf_counter() - t0)
    relabel = []
    for i in picks:
        t0 = time.perf_counter()
        tracker.set_class([int(i)], "nucleus")
        relabel.append(time.perf_counter() - t0)
    recolour = []
    for _ in picks:
        t0 = time.perf_counter()
        layer.edge_color = layer.edge_color
        recolour.append(time.perf_counter() - t0)
    convert_back = []
    for _ in picks:
        t0 = time.perf_counter()
        layer_to_instances(layer)
        convert_back.append(time.perf_counter() - t0)
    viewer.close()
    get_settings().experimental.triangulation_backend = original_backend  # it is persisted

    print(f"napari plugin benchmark: {args.n} instances, median of {args.repeats} runs")
    print(f"{'operation':52s} {'median s':>9s}  note")
    print(f"{'Instances -> layer data (shapes_layer_kwargs)':52s} {_median(convert):9.3f}")
    for what, table in (("Shapes(...), no viewer", construct), ("add_shapes + first frame", added)):
        for backend in backends:
            note = "baseline" if backend == "Pure python" else ""
            print(f"{what + ', ' + backend:52s} {_median(table[backend]):9.3f}  {note}")
        ratio = _median(table["Pure python"]) / _median(table["bermuda"])
        print(f"{'  speed-up bermuda vs pure python':52s} {ratio:8.2f}x")
    print(f"{'edit 1 polygon (plugin: 1 row updated)':52s} {_median(edit):9.4f}")
    print(f"{'  of which the plugin handler (EditTracker)':52s} {_median(handler):9.5f}")
    print(f"{'edit 1 polygon by rewriting layer.data':52s} {_median(rewrite):9.4f}  baseline")
    print(f"{'  ratio rewrite / plugin edit':52s} {_median(rewrite) / _median(edit):8.1f}x")
    print(f"{'relabel 1 shape (set_class)':52s} {_median(relabel):9.4f}")
    print(f"{'recolour whole layer (edge_color = ...)':52s} {_median(recolour):9.4f}  baseline")
    print(f"{'layer -> Instances (one autosave)':52s} {_median(convert_back):9.3f}")


if __name__ == "__main__":
    main()
