"""Search spaces for the CARBS tuner (the pruning space of the paper's Table 2 is `prune/space.py`).

CARBS models every hyperparameter in a "basic" coordinate: `LinearSpace` uses v/scale,
`LogSpace` log10(v)/scale, `LogitSpace` log10(v/(1-v))/scale.  The search radius
(`CarbsConfig.initial_search_radius`, 0.3 by default) is measured in basic units, so `scale`
sets how far one search step reaches: a LogSpace with scale 1 moves about 0.3 decades per step.
Bounds never set the reach; they only reject samples (strictly, in basic space).  Integer spaces
round to a multiple of `rounding_factor` in user units and widen their bounds by 0.1 so that the
bound itself stays reachable.
"""

from __future__ import annotations

import abc
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Slack added to integer bounds: rounded values sit exactly on them.
INTEGER_BOUND_SLACK = 0.1


@dataclass(frozen=True, kw_only=True)
class RealSpace(abc.ABC):
    """A real-valued (optionally integer) hyperparameter; subclasses define the basic coordinate."""

    min: float = -math.inf
    max: float = math.inf
    scale: float = 1.0
    is_integer: bool = False
    rounding_factor: int = 1

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"{type(self).__name__}.scale must be > 0, got {self.scale}")
        if not self.min < self.max:
            raise ValueError(f"{type(self).__name__} needs min < max, got min={self.min}, max={self.max}")
        if self.rounding_factor < 1:
            raise ValueError(f"{type(self).__name__}.rounding_factor must be >= 1, got {self.rounding_factor}")

    @abc.abstractmethod
    def _user_to_basic(self, values: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def _basic_to_user(self, basic: np.ndarray) -> np.ndarray: ...

    def to_basic(self, values: Any) -> np.ndarray:
        # log(0) = -inf is the intended image of a zero lower bound; negatives become NaN (out of bounds).
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._user_to_basic(np.asarray(values, dtype=np.float64))

    def from_basic(self, basic: Any) -> np.ndarray:
        """User values for basic coordinates; integer spaces come back rounded."""
        values = self._basic_to_user(np.asarray(basic, dtype=np.float64))
        if self.is_integer:
            values = np.round(values / self.rounding_factor) * self.rounding_factor
        return values

    def round_basic(self, basic: np.ndarray) -> np.ndarray:
        """Snap basic coordinates to the nearest representable (integer) user value."""
        return self.to_basic(self.from_basic(basic)) if self.is_integer else basic

    def basic_bounds(self) -> tuple[float, float]:
        slack = INTEGER_BOUND_SLACK if self.is_integer else 0.0
        widened = self.to_basic([self.min - slack, self.max + slack])
        # Where the slack leaves the domain (an integer LogSpace from 0), the exact bound is already -inf.
        low, high = np.where(np.isnan(widened), self.to_basic([self.min, self.max]), widened)
        return float(low), float(high)

    def to_dict(self) -> dict[str, Any]:
        # JSON has no infinity: unbounded sides are stored as None.
        fields = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}
        return {"type": type(self).__name__, **fields}


@dataclass(frozen=True, kw_only=True)
class LinearSpace(RealSpace):
    def __post_init__(self) -> None:
        super().__post_init__()
        if self.is_integer and self.scale < 3:
            warnings.warn(
                f"integer LinearSpace with scale {self.scale} < 3: neighbouring integers may be out of reach of "
                "one search step"
            )

    def _user_to_basic(self, values: np.ndarray) -> np.ndarray:
        return values / self.scale

    def _basic_to_user(self, basic: np.ndarray) -> np.ndarray:
        return basic * self.scale


@dataclass(frozen=True, kw_only=True)
class LogSpace(RealSpace):
    min: float = 0.0
    base: float = 10.0

    def _user_to_basic(self, values: np.ndarray) -> np.ndarray:
        return np.log(values) / (math.log(self.base) * self.scale)

    def _basic_to_user(self, basic: np.ndarray) -> np.ndarray:
        return np.power(self.base, basic * self.scale)


@dataclass(frozen=True, kw_only=True)
class LogitSpace(RealSpace):
    """Values in (0, 1), modelled as log10-odds; `is_integer` is meaningless here and rejected."""

    min: float = 0.0
    max: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.is_integer:
            raise ValueError("LogitSpace cannot be integer; use LinearSpace or LogSpace")
        if self.min < 0 or self.max > 1:
            raise ValueError(f"LogitSpace bounds must lie in [0, 1], got ({self.min}, {self.max})")

    def _user_to_basic(self, values: np.ndarray) -> np.ndarray:
        return np.log10(values / (1.0 - values)) / self.scale

    def _basic_to_user(self, basic: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.power(10.0, -basic * self.scale))


SPACE_TYPES: dict[str, type[RealSpace]] = {cls.__name__: cls for cls in (LinearSpace, LogSpace, LogitSpace)}


def space_from_dict(data: dict[str, Any]) -> RealSpace:
    fields = dict(data)
    cls = SPACE_TYPES[fields.pop("type")]
    for bound, unbounded in (("min", -math.inf), ("max", math.inf)):
        if fields.get(bound, 0.0) is None:
            fields[bound] = unbounded
    return cls(**fields)


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its space and the user's best guess, which centres the random phase."""

    name: str
    space: RealSpace
    search_center: float

    def __post_init__(self) -> None:
        low, high = self.space.basic_bounds()
        center = float(self.space.to_basic(self.search_center))
        if not low < center < high:
            raise ValueError(
                f"search_center {self.search_center} of {self.name!r} is outside its bounds ({self.space.min}, "
                f"{self.space.max})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space.to_dict(), "search_center": self.search_center}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Param:
        return cls(name=data["name"], space=space_from_dict(data["space"]), search_center=data["search_center"])


@dataclass(frozen=True)
class SearchSpace:
    """Vectorised conversions between user dicts and rows of basic coordinates (one column per param)."""

    params: tuple[Param, ...]
    low: np.ndarray = field(init=False, repr=False)
    high: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if not names:
            raise ValueError("CARBS needs at least one Param")
        if len(set(names)) != len(names):
            raise ValueError(f"Param names must be unique, got {names}")
        bounds = np.array([p.space.basic_bounds() for p in self.params], dtype=np.float64)
        object.__setattr__(self, "low", bounds[:, 0])
        object.__setattr__(self, "high", bounds[:, 1])

    @property
    def dim(self) -> int:
        return len(self.params)

    @property
    def center(self) -> np.ndarray:
        return np.array([float(p.space.to_basic(p.search_center)) for p in self.params])

    def round(self, points: np.ndarray) -> np.ndarray:  # (m, d) -> (m, d)
        rounded = points.copy()
        for j, param in enumerate(self.params):
            rounded[:, j] = param.space.round_basic(points[:, j])
        return rounded

    def contains(self, points: np.ndarray) -> np.ndarray:  # (m, d) -> (m,) bool
        return np.all((points > self.low) & (points < self.high), axis=1)

    def to_user(self, point: np.ndarray) -> dict[str, float | int]:
        user: dict[str, float | int] = {}
        for param, b in zip(self.params, point):
            value = float(param.space.from_basic(b))
            user[param.name] = int(value) if param.space.is_integer else value
        return user
