"""Tests for labelassist.checks: the shared input rules (ints, numbers, shapes, choices,
class lists). Every raise has a row in a table; hypothesis checks what is accepted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelassist.checks import (
    BACKGROUND_NAMES,
    check_choice,
    check_classes,
    check_int,
    check_number,
    check_shape,
)


# -- check_int ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kwargs", "match"),
    [
        (2.0, {}, r"^workers must be an integer, got 2\.0$"),
        ("3", {}, r"^workers must be an integer, got '3'$"),
        (True, {}, r"^workers must be an integer, got True$"),
        (None, {}, r"^workers must be an integer, got None$"),
        (
            np.float32(1),
            {"minimum": 1},
            r"^workers must be an integer >= 1, got np\.float32\(1\.0\)$",
        ),
        (0, {"minimum": 1}, r"^workers must be an integer >= 1, got 0$"),
        (9, {"maximum": 8}, r"^workers must be an integer <= 8, got 9$"),
        (-1, {"minimum": 0, "maximum": 8}, r"^workers must be an integer in \[0, 8\], got -1$"),
        (
            0,
            {"minimum": 1, "allow_none": True},
            r"^workers must be an integer >= 1 or None, got 0$",
        ),
    ],
)
def test_check_int_rejects(value, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_int(value, "workers", **kwargs)


@given(st.integers(-(10**6), 10**6), st.integers(-100, 100), st.integers(0, 200))
def test_check_int_accepts_ints_in_range(value, low, span):
    high = low + span
    inside = low <= value <= high
    if inside:
        out = check_int(value, "n", minimum=low, maximum=high)
        assert out == value and type(out) is int
        assert check_int(np.int64(value), "n", minimum=low, maximum=high) == value
    else:
        with pytest.raises(ValueError, match=rf"in \[{low}, {high}\]"):
            check_int(value, "n", minimum=low, maximum=high)


def test_check_int_none_only_when_allowed():
    assert check_int(None, "tile_size", allow_none=True) is None
    with pytest.raises(ValueError, match="tile_size must be an integer, got None"):
        check_int(None, "tile_size")


# -- check_number ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kwargs", "match"),
    [
        ("0.5", {}, r"^score must be a finite number, got '0\.5'$"),
        (True, {}, r"^score must be a finite number, got True$"),
        (None, {}, r"^score must be a finite number, got None$"),
        (1 + 2j, {}, r"^score must be a finite number, got \(1\+2j\)$"),
        (float("nan"), {}, r"^score must be a finite number, got nan$"),
        (float("inf"), {}, r"^score must be a finite number, got inf$"),
        (-float("inf"), {"minimum": 0}, r"^score must be a finite number >= 0, got -inf$"),
        (-0.1, {"minimum": 0}, r"^score must be a finite number >= 0, got -0\.1$"),
        (1.5, {"maximum": 1}, r"^score must be a finite number <= 1, got 1\.5$"),
        (2, {"minimum": 0, "maximum": 1}, r"^score must be a finite number in \[0, 1\], got 2$"),
        (
            -1,
            {"minimum": 0, "allow_none": True},
            r"^score must be a finite number >= 0 or None, got -1$",
        ),
    ],
)
def test_check_number_rejects(value, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_number(value, "score", **kwargs)


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**9), 10**9))
def test_check_number_accepts_finite_reals(value):
    out = check_number(value, "x")
    assert out == value and type(out) is float
    assert check_number(np.float64(value), "x") == float(value)


def test_check_number_none_only_when_allowed():
    assert check_number(None, "lr", allow_none=True) is None


# -- check_shape -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "minimum", "match"),
    [
        ("ab", 0, r"^shape must be \(height, width\) with two integers >= 0, got 'ab'$"),
        (b"ab", 0, r"with two integers >= 0, got b'ab'$"),
        (5, 0, r"with two integers >= 0, got 5$"),
        (None, 0, r"got None$"),
        ((4.0, 5), 0, r"got \(4\.0, 5\)$"),
        ((4, 5, 3), 0, r"got \(4, 5, 3\)$"),
        ((4,), 0, r"got \(4,\)$"),
        ((-1, 5), 0, r"got \(-1, 5\)$"),
        ((0, 5), 1, r"^shape must be \(height, width\) with two integers >= 1, got \(0, 5\)$"),
        ([True, 3.5], 0, r"got \[True, 3\.5\]$"),
    ],
)
def test_check_shape_rejects(value, minimum, match):
    with pytest.raises(ValueError, match=match):
        check_shape(value, minimum=minimum)


def test_check_shape_names_the_parameter():
    with pytest.raises(ValueError, match=r"^image_shape must be \(height, width\)"):
        check_shape((0, 0), "image_shape", minimum=1)


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_check_shape_accepts_pairs_of_ints(h, w):
    for value in ((h, w), [h, w], np.array([h, w]), (np.int32(h), np.uint64(w))):
        out = check_shape(value)
        assert out == (h, w) and all(type(v) is int for v in out)


# -- check_choice ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "choices", "match"),
    [
        ("mask", ("polygon", "rle"), r"^mode must be one of \['polygon', 'rle'\], got 'mask'$"),
        ("RLE", ("polygon", "rle"), r"got 'RLE'$"),
        (None, ("polygon", "rle"), r"got None$"),
        (["rle"], frozenset({"rle"}), r"^mode must be one of \['rle'\], got \['rle'\]$"),
    ],
)
def test_check_choice_rejects(value, choices, match):
    with pytest.raises(ValueError, match=match):
        check_choice(value, "mode", choices)


@given(st.sampled_from(["polygon", "rle", 1, 2.5]))
def test_check_choice_returns_the_value(value):
    assert check_choice(value, "mode", ("polygon", "rle", 1, 2.5)) is value


# -- check_classes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kwargs", "exc", "match"),
    [
        ("nucleus", {}, TypeError, r"for one class write \['nucleus'\]$"),
        (b"nucleus", {}, TypeError, r"^classes must be a list of class names, got b'nucleus'"),
        (3, {}, TypeError, r"^classes must be a list of class names, got 3"),
        ([], {}, ValueError, r"^classes must name at least one class"),
        ([""], {}, ValueError, r"^classes\[0\] must be a non-empty str, got ''$"),
        (["cell", "  "], {}, ValueError, r"^classes\[1\] must be a non-empty str, got '  '$"),
        (["cell", 2], {}, ValueError, r"^classes\[1\] must be a non-empty str, got 2$"),
        (["cell", None], {}, ValueError, r"^classes\[1\] must be a non-empty str, got None$"),
        (["Background"], {}, ValueError, r"classes\[0\] is 'Background': background is not"),
        ([" _background_ "], {}, ValueError, r"is ' _background_ ': background is not a class"),
        (["a", "b", "a", "b", "c"], {}, ValueError, r"must be unique, got duplicates \['a', 'b'\]"),
    ],
)
def test_check_classes_rejects(value, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        check_classes(value, **kwargs)


def test_check_classes_names_the_parameter_and_allows_empty_when_asked():
    with pytest.raises(ValueError, match=r"^categories\[0\] is '__background__'"):
        check_classes(["__background__"], "categories")
    assert check_classes([], allow_empty=True) == []
    assert check_classes(iter(("a", "b"))) == ["a", "b"]


@given(
    st.lists(
        st.text(min_size=1, max_size=12).filter(
            lambda s: s.strip() and s.strip().lower() not in BACKGROUND_NAMES
        ),
        min_size=1,
        max_size=6,
        unique=True,
    )
)
def test_check_classes_keeps_valid_lists(names):
    assert check_classes(tuple(names)) == names
