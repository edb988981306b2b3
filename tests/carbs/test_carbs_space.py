"""Search spaces: basic coordinates, rounding, bounds, and the Table 2 pruning space."""

import math

import numpy as np
import pytest

from sparsepipe.workers.carbs.space import SearchSpace, space_from_dict
from sparsepipe.workers.carbs.tuner import LinearSpace, LogitSpace, LogSpace, Param


@pytest.mark.parametrize(
    "space, values",
    [
        (LinearSpace(scale=2.0), [-3.0, 0.0, 5.5]),
        (LogSpace(scale=0.5), [1e-5, 3e-3, 2.0]),
        (LogitSpace(scale=0.5), [1e-3, 0.5, 0.999]),
    ],
)
def test_basic_round_trip(space, values):
    """from_basic inverts to_basic for every space type."""
    np.testing.assert_allclose(space.from_basic(space.to_basic(values)), values, rtol=1e-12)


def test_basic_coordinates_follow_scale():
    """Basic coordinates are v/scale, log10(v)/scale and log10-odds/scale."""
    assert LinearSpace(scale=2.0).to_basic(3.0) == pytest.approx(1.5)
    assert LogSpace(scale=0.5).to_basic(1e-4) == pytest.approx(-8.0)
    assert LogitSpace(scale=0.5).to_basic(0.9) == pytest.approx(2 * math.log10(9.0))
    assert LogSpace().to_basic(0.0) == -math.inf


def test_integer_rounding_uses_rounding_factor():
    """Integer spaces round to the nearest multiple of rounding_factor, in user units."""
    space = LogSpace(min=4, max=4096, is_integer=True, rounding_factor=4)
    rounded = space.from_basic(space.to_basic([5.0, 6.1, 1000.0, 1023.0]))
    np.testing.assert_array_equal(rounded, [4.0, 8.0, 1000.0, 1024.0])


def test_integer_bounds_are_widened_so_bounds_stay_reachable():
    """An integer space accepts its own min and max (bounds are strict, but widened by 0.1)."""
    search = SearchSpace((Param("epochs", LogSpace(min=2, max=512, is_integer=True), 10),))
    points = search.round(LogSpace().to_basic(np.array([[2.0], [512.0], [1.0], [600.0]])))
    np.testing.assert_array_equal(search.contains(points), [True, True, False, False])


def test_integer_log_space_from_zero_has_usable_bounds():
    """Widening min=0 by the integer slack would leave the log's domain; the bound stays -inf instead."""
    assert LogSpace(is_integer=True).basic_bounds() == (-math.inf, math.inf)


def test_search_center_outside_bounds_is_rejected():
    """A centre on or beyond a bound would make the random phase reject every sample."""
    with pytest.raises(ValueError, match="outside its bounds"):
        Param("lr", LogSpace(min=1e-3, max=1e-1), 1.0)
    with pytest.raises(ValueError, match="cannot be integer"):
        LogitSpace(is_integer=True)


def test_space_dict_round_trip_keeps_infinite_bounds():
    """Spaces survive to_dict/space_from_dict, with infinite bounds stored as None."""
    for space in (LinearSpace(scale=3.0, is_integer=True), LogSpace(max=10.0, base=2.0), LogitSpace(min=0.1)):
        data = space.to_dict()
        assert all(v is not None for k, v in data.items() if k not in ("min", "max"))
        assert space_from_dict(data) == space
