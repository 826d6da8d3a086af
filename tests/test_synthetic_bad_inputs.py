"""Bad inputs of the synthetic generators v2: one row per raise, with its one-line message."""

from __future__ import annotations

import numpy as np
import pytest

from labelassist.synthetic import (
    synthetic_brightfield,
    synthetic_cells,
    synthetic_dataset,
    synthetic_epithelium,
    synthetic_histology,
    synthetic_image,
    synthetic_piles,
    synthetic_rods,
)

SHAPE = (32, 32)
CASES = [
    # shared checks, through every generator that takes the parameter
    (synthetic_cells, {"shape": (0, 8)}, ValueError, r"shape must be \(height, width\)"),
    (synthetic_piles, {"shape": "big"}, ValueError, r"shape must be \(height, width\)"),
    (synthetic_cells, {"n": -2}, ValueError, "n must be None, a count >= 0"),
    (synthetic_histology, {"n": (4, 1)}, ValueError, "n must be None, a count >= 0"),
    (synthetic_rods, {"n": 1.5}, ValueError, "n must be None, a count >= 0"),
    (synthetic_cells, {"size": (30, 10)}, ValueError, r"size must be \(low, high\) with low <= high"),
    (synthetic_cells, {"size": 1}, ValueError, r"size must lie within \[2.0, inf\]"),
    (synthetic_epithelium, {"size": 3}, ValueError, r"size must lie within \[4.0, inf\]"),
    (synthetic_piles, {"size": "large"}, ValueError, r"size must be a number or a \(low, high\) pair"),
    (synthetic_rods, {"size": (1, 2, 3)}, ValueError, r"size must be a number or a \(low, high\) pair"),
    (synthetic_brightfield, {"size": np.inf}, ValueError, r"size must be a number or a \(low, high\)"),
    (synthetic_cells, {"irregularity": 2}, ValueError, r"irregularity must lie within \[0.0, 1.0\]"),
    (synthetic_piles, {"elongation": 0.5}, ValueError, r"elongation must lie within \[1.0, inf\]"),
    (synthetic_cells, {"touching": 1.5}, ValueError, r"touching must be a finite number in \[0, 1\]"),
    (synthetic_rods, {"touching": "yes"}, ValueError, r"touching must be a finite number in \[0, 1\]"),
    (synthetic_cells, {"overlap": 1.0}, ValueError, "overlap must be < 1 .a cell must stay visible"),
    (synthetic_brightfield, {"overlap": 1}, ValueError, "overlap must be < 1 .a cell must stay"),
    (synthetic_histology, {"overlap": 1}, ValueError, "overlap must be < 1 .a nucleus must stay"),
    (synthetic_rods, {"overlap": 1}, ValueError, "overlap must be < 1 .an object must stay"),
    (synthetic_histology, {"overlap": -0.1}, ValueError, r"overlap must be a finite number in \[0, 1\]"),
    (synthetic_cells, {"intensity": (0.5, 1.5)}, ValueError, r"intensity must lie within \[0.0, 1.0\]"),
    (synthetic_epithelium, {"texture": -1}, ValueError, r"texture must lie within \[0.0, inf\]"),
    (synthetic_piles, {"blur": -0.5}, ValueError, r"blur must lie within \[0.0, inf\]"),
    (synthetic_histology, {"noise": 2}, ValueError, r"noise must lie within \[0.0, 1.0\]"),
    (synthetic_cells, {"background": "dark"}, ValueError, "background must be one of .'flat', 'gradient', 'uneven'. or a sequence"),
    (synthetic_epithelium, {"background": ()}, ValueError, "background must be one of"),
    (synthetic_rods, {"background": 3}, ValueError, "background must be one of"),
    (synthetic_piles, {"dtype": np.int64}, TypeError, "dtype must be np.uint8, np.uint16 or np.float32"),
    (synthetic_cells, {"dtype": "pixels"}, TypeError, "dtype must be np.uint8, np.uint16 or np.float32"),
    # cells
    (synthetic_cells, {"channels": (1, 1)}, ValueError, r"channels must be \(cytoplasm, nucleus\) with distinct RGB indices"),
    (synthetic_cells, {"channels": (3, 1)}, ValueError, r"channels must be \(cytoplasm, nucleus\)"),
    (synthetic_cells, {"channels": (None, 1)}, ValueError, r"channels must be \(cytoplasm, nucleus\)"),
    (synthetic_cells, {"channels": (1.0, 2)}, ValueError, r"channels must be \(cytoplasm, nucleus\)"),
    (synthetic_cells, {"channels": (True, 2)}, ValueError, r"channels must be \(cytoplasm, nucleus\)"),
    (synthetic_cells, {"channels": (0, 1, 2)}, ValueError, r"channels must be \(cytoplasm, nucleus\)"),
    (synthetic_cells, {"channels": "gb"}, ValueError, r"channels must be \(cytoplasm, nucleus\)"),
    (synthetic_cells, {"channels": 2}, ValueError, r"channels must be \(cytoplasm, nucleus\)"),
    # epithelium
    (synthetic_epithelium, {"coverage": 0}, ValueError, r"coverage must be > 0 \(some tissue\)"),
    (synthetic_epithelium, {"coverage": 1.2}, ValueError, r"coverage must lie within \[0.0, 1.0\]"),
    (synthetic_epithelium, {"regularity": -0.2}, ValueError, r"regularity must lie within \[0.0, 1.0\]"),
    (synthetic_epithelium, {"membrane": 1}, ValueError, r"membrane must lie within \[2.0, 3.0\]"),
    # brightfield
    (synthetic_brightfield, {"mode": "dic"}, ValueError, r"mode must be one of \('brightfield', 'phase'\)"),
    (synthetic_brightfield, {"contrast": 3}, ValueError, r"contrast must lie within \[0.0, 1.0\]"),
    # histology
    (synthetic_histology, {"stain": 2}, ValueError, r"stain must be a finite number in \[0, 1\]"),
    # rods
    (synthetic_rods, {"aspect": 0.5}, ValueError, r"aspect must lie within \[1.0, inf\]"),
    (synthetic_rods, {"bend": -1}, ValueError, r"bend must lie within \[0.0, inf\]"),
    (synthetic_rods, {"taper": 1.5}, ValueError, r"taper must lie within \[0.0, 1.0\]"),
    (synthetic_rods, {"appearance": ["fluorescence", "dic"]}, ValueError, "appearance must be one of"),
    # piles
    (synthetic_piles, {"density": 6}, ValueError, r"density must lie within \[0.0, 5.0\]"),
    (synthetic_piles, {"color": "red"}, TypeError, r"color must be True \(RGB\) or False \(gray\)"),
]  # fmt: skip


@pytest.mark.parametrize(("generator", "kwargs", "error", "match"), CASES)
def test_generator_rejects(generator, kwargs, error, match):
    kwargs = dict(kwargs)
    shape = kwargs.pop("shape", SHAPE)
    with pytest.raises(error, match=match):
        generator(shape, seed=0, **kwargs)


DISPATCH = [
    ({"kind": "cats"}, ValueError, r"kind must be one of \['nuclei', 'cells'"),
    ({"kind": "cells", "shape": (5,)}, ValueError, r"shape must be \(height, width\)"),
    ({"kind": "piles", "n": 5}, TypeError, r"synthetic_image\('piles'\) does not take n; it takes"),
    ({"kind": "epithelium", "radius": 5}, TypeError, r"does not take radius; it takes \['background'"),
    ({"kind": "nuclei", "size": 10, "radius": 5}, TypeError, "takes size or radius, not both"),
    ({"kind": "nuclei", "size": 1}, ValueError, r"size must lie within \[2.0, inf\]"),
    ({"kind": "worms", "channels": (1, 2)}, TypeError, r"synthetic_image\('worms'\) does not take channels"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), DISPATCH)
def test_synthetic_image_rejects(kwargs, error, match):
    kwargs = dict(kwargs)
    kind, shape = kwargs.pop("kind"), kwargs.pop("shape", SHAPE)
    with pytest.raises(error, match=match):
        synthetic_image(kind, shape, seed=0, **kwargs)


DATASET = [
    ({"kinds": "cats"}, ValueError, r"kinds must be one of \('nuclei', 'cells'"),
    ({"kinds": []}, ValueError, "kinds must be one of"),
    ({"kinds": 3}, ValueError, "kinds must be one of"),
    ({"kinds": ["cells"], "category": "background"}, ValueError, "category.0. is 'background'"),
    ({"category": ""}, ValueError, r"category\[0\] must be a non-empty str"),
    # options are checked for every kind of the mix before anything is written
    ({"kinds": ["cells", "epithelium"], "n": 3}, TypeError, r"'epithelium'\) does not take n"),
    ({"kinds": ["cells", "rods"], "size": (8, 1)}, ValueError, "size must be .low, high. with low"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "match"), DATASET)
def test_synthetic_dataset_rejects(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        synthetic_dataset(3, out=tmp_path, shape=SHAPE, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing written
