"""Argument checks shared by the public ops, with messages that say what to change."""

import operator


def check_count(op: str, name: str, value, low: int, high: int, bound: str) -> int:
    """value as an int in [low, high]; bound explains where high comes from."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got a bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}") from None
    if not low <= value <= high:
        raise ValueError(f"{op}: {name}={value} is outside [{low}, {high}] ({bound})")
    return value
