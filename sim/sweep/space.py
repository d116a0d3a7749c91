"""The points of a sweep: `AccelConfig`s from a grid of field values, or a seeded sample of it.

A space maps `AccelConfig` field names to the values to try. `parse_field` reads the command
line's ``FIELD=V1,V2,...`` or ``FIELD=LOW..HIGH`` (every int in the range, or every power of
two in it for a power-of-two field of `hdl.config._INT_FIELDS`). `grid_points` is the cross
product, in order; `random_points` a seeded sample of it without repeats. Every point is built
into an `AccelConfig` here, so a bad value fails before any work starts, with the config's own
message and the point that holds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
from collections.abc import Mapping, Sequence

from hdl.config import _INT_FIELDS, AccelConfig

__all__ = ["FIELDS", "grid_points", "parse_field", "point_key", "random_points"]

#: The fields a sweep may vary, in declaration order.
FIELDS = tuple(field.name for field in dataclasses.fields(AccelConfig))

#: The most points one `LOW..HIGH` range may expand to.
_MAX_RANGE = 4096


def _value(field: str, text: str):
    """One value of `field` from text: an int for integer fields, a float for ``clock_mhz``,
    the string for ``dataflow``."""
    if field == "dataflow":
        return text
    try:
        return float(text) if field == "clock_mhz" else int(text)
    except ValueError:
        kind = "a number" if field == "clock_mhz" else "an integer"
        raise ValueError(f"{field}={text!r}: expected {kind}") from None


def parse_field(spec: str) -> tuple[str, list]:
    """``"rows=4,8,16"`` or ``"rows=4..16"`` as ``("rows", [4, 8, 16])`` (module doc).

    Raises
    ------
    ValueError
        No ``=``, an unknown field (the message lists the fields), an empty list, a value of
        the wrong kind, a range that is empty, reversed or longer than 4096 values.
    """
    field, equals, values = spec.partition("=")
    field = field.strip()
    if not equals:
        raise ValueError(f"expected FIELD=V1,V2,... or FIELD=LOW..HIGH, not {spec!r}")
    _require_field(field)
    if ".." in values:
        low, _, high = values.partition("..")
        low, high = _value(field, low.strip()), _value(field, high.strip())
        if field not in _INT_FIELDS or low > high:
            raise ValueError(f"{spec!r}: a range LOW..HIGH needs an integer field and LOW <= HIGH")
        power_of_two = _INT_FIELDS[field][2]
        choices = [v for v in range(low, high + 1) if not power_of_two or not v & (v - 1)]
        if not choices or len(choices) > _MAX_RANGE:
            raise ValueError(f"{spec!r} holds {len(choices)} values (1..{_MAX_RANGE} allowed)")
        return field, choices
    parts = [part.strip() for part in values.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"{spec!r} gives {field} no values")
    return field, [_value(field, part) for part in parts]


def _require_field(field: str) -> None:
    if field not in FIELDS:
        raise ValueError(f"AccelConfig has no field {field!r}; the fields: {', '.join(FIELDS)}")


def _checked_space(space: Mapping[str, Sequence]) -> dict[str, list]:
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"the sweep space is empty: give at least one field, not {space!r}")
    checked = {}
    for field, values in space.items():
        _require_field(field)
        values = list(dict.fromkeys(values))  # drop repeats, keep the order
        if not values:
            raise ValueError(f"the sweep space gives {field} no values")
        checked[field] = values
    return checked


def _config(base: Mapping | None, point: dict) -> AccelConfig:
    """An `AccelConfig` of `base`'s fields and `point`'s (fields neither gives take their
    defaults, derived ones such as ``sparse_lanes`` from the point's array); AccelConfig's own
    error, naming the point, otherwise."""
    fields = {**(base or {}), **point}
    for field in fields:
        _require_field(field)
    try:
        return AccelConfig(**fields)
    except (TypeError, ValueError) as error:
        raise type(error)(f"sweep point {point}: {error}") from None


def grid_points(space: Mapping[str, Sequence], base: Mapping | None = None) -> list[AccelConfig]:
    """Every combination of `space`'s values (the last field varying fastest), each with the
    fixed fields of `base` (a dict of field values; default none), validated.

    Raises
    ------
    ValueError, TypeError
        An empty space or value list, an unknown field, a value `AccelConfig` refuses.
    """
    space = _checked_space(space)
    fields = list(space)
    return [
        _config(base, dict(zip(fields, values, strict=True)))
        for values in itertools.product(*space.values())
    ]


def random_points(
    space: Mapping[str, Sequence], count: int, *, seed: int = 0, base: Mapping | None = None
) -> list[AccelConfig]:
    """`count` distinct combinations of `space`'s values drawn with `seed` (all of them when
    the grid holds fewer), in the order drawn; raises as `grid_points`, and for a `count`
    below 1."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, not {count!r}")
    space = _checked_space(space)
    sizes = [len(values) for values in space.values()]
    total = 1
    for size in sizes:
        total *= size
    picks = random.Random(seed).sample(range(total), min(count, total))
    points = []
    for pick in picks:
        values = []
        for field, size in zip(reversed(space), reversed(sizes), strict=True):
            pick, index = divmod(pick, size)
            values.append((field, space[field][index]))
        points.append(dict(reversed(values)))
    return [_config(base, point) for point in points]


def point_key(config: AccelConfig, workload: str) -> str:
    """A stable 16-hex-digit name of (`config`, `workload`): the rows of a results file are
    matched to the points of a rerun by it."""
    text = json.dumps([config.to_dict(), workload], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
