"""sim.sweep.space: the points of a sweep, and the errors of a bad space."""

import pytest

from hdl.config import AccelConfig
from sim.sweep.space import grid_points, parse_field, point_key, random_points


def test_parse_field_lists_and_ranges():
    assert parse_field("rows=4,8, 16") == ("rows", [4, 8, 16])
    assert parse_field("cols=3..6") == ("cols", [3, 4, 5, 6])
    assert parse_field("spad_bytes=1000..5000") == ("spad_bytes", [1024, 2048, 4096])
    assert parse_field("dataflow=ws,os") == ("dataflow", ["ws", "os"])
    assert parse_field("clock_mhz=50,100") == ("clock_mhz", [50.0, 100.0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rows", r"^expected FIELD=V1,V2,\.\.\. or FIELD=LOW\.\.HIGH, not 'rows'$"),
        ("banks=2", r"^AccelConfig has no field 'banks'; the fields: rows, cols, dataflow"),
        ("rows=", r"^'rows=' gives rows no values$"),
        ("rows=4,eight", r"^rows='eight': expected an integer$"),
        ("rows=8..4", r"LOW\.\.HIGH needs an integer field and LOW <= HIGH$"),
        ("dataflow=ws..os", r"LOW\.\.HIGH needs an integer field"),
        ("spad_bytes=300..500", r"^'spad_bytes=300\.\.500' holds 0 values"),
    ],
)
def test_parse_field_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_field(spec)


def test_grid_is_the_cross_product_with_derived_fields_per_point():
    points = grid_points({"rows": [2, 4], "cols": [4, 8]}, base={"bus_bytes": 8})
    assert [(p.rows, p.cols) for p in points] == [(2, 4), (2, 8), (4, 4), (4, 8)]
    assert all(p.bus_bytes == 8 for p in points)
    # sparse_lanes and requant_lanes follow each point's array, not the defaults' 16x16
    assert [p.sparse_lanes for p in points] == [8, 16, 16, 32]
    assert points[0] == AccelConfig(rows=2, cols=4, bus_bytes=8)


def test_random_points_are_distinct_seeded_and_from_the_grid():
    space = {"rows": [2, 4, 8, 16], "cols": [2, 4, 8, 16], "bus_bytes": [4, 8, 16]}
    grid = grid_points(space)
    first = random_points(space, 10, seed=3)
    assert first == random_points(space, 10, seed=3)
    assert first != random_points(space, 10, seed=4)
    assert len(set(first)) == 10 and set(first) <= set(grid)
    assert set(random_points(space, 1000)) == set(grid)  # more than the grid holds: all of it


@pytest.mark.parametrize(
    ("space", "error", "message"),
    [
        ({}, ValueError, r"^the sweep space is empty"),
        ({"rows": []}, ValueError, r"^the sweep space gives rows no values$"),
        ({"lanes": [1]}, ValueError, r"^AccelConfig has no field 'lanes'"),
        (
            {"rows": [4], "bus_bytes": [12]},
            ValueError,
            r"^sweep point \{'rows': 4, 'bus_bytes': 12\}: AccelConfig.bus_bytes must be a "
            r"power of two, not 12$",
        ),
        (
            {"rows": [4.5]},
            TypeError,
            r"^sweep point \{'rows': 4.5\}: AccelConfig.rows must be an int, not 4.5$",
        ),
        (
            {"dataflow": ["rs"]},
            ValueError,
            r"AccelConfig.dataflow must be one of 'ws', 'os', not 'rs'$",
        ),
    ],
)
def test_bad_spaces_fail_before_any_work(space, error, message):
    with pytest.raises(error, match=message):
        grid_points(space)
    with pytest.raises(error, match=message):
        random_points(space, 2)


def test_random_count_must_be_positive():
    with pytest.raises(ValueError, match=r"^count must be an int >= 1, not 0$"):
        random_points({"rows": [2]}, 0)


def test_point_key_names_config_and_workload():
    a, b = AccelConfig(rows=4), AccelConfig(rows=8)
    assert point_key(a, "cnn") == point_key(AccelConfig(rows=4), "cnn")
    assert len({point_key(a, "cnn"), point_key(b, "cnn"), point_key(a, "mlp")}) == 3
