"""AccelConfig: defaults, validation messages, JSON round trip."""

import pytest

from hdl.config import AccelConfig, Dataflow


def test_defaults_are_valid_and_frozen():
    config = AccelConfig()
    assert (config.rows, config.cols, config.dataflow) == (16, 16, Dataflow.WS)
    assert config.macs == 256
    assert (config.sparse_lanes, config.sparse_groups) == (256, 16)
    assert AccelConfig(rows=2, cols=3).sparse_lanes == 6
    with pytest.raises(AttributeError):
        config.rows = 8


def test_zero_sparse_lanes_is_an_accelerator_without_a_sparse_engine():
    assert AccelConfig().has_sparse_engine
    AccelConfig().require_sparse_engine("spmm_program")
    config = AccelConfig(sparse_lanes=0)
    assert (config.has_sparse_engine, config.sparse_groups) == (False, 0)
    with pytest.raises(ValueError, match=r"^spmm_memory needs the sparse engine.*sparse_lanes=0"):
        config.require_sparse_engine("spmm_memory")


@pytest.mark.parametrize(
    ("cols", "lanes"), [(1, 1), (2, 1), (3, 1), (4, 2), (6, 2), (8, 4), (12, 4), (16, 8), (7, 7)]
)
def test_default_requant_lanes_are_the_fewest_taking_a_row_in_3_cycles(cols, lanes):
    config = AccelConfig(rows=2, cols=cols)
    assert (config.requant_lanes, config.requant_chunks) == (lanes, cols // lanes)
    assert AccelConfig(rows=2, cols=cols, requant_lanes=cols).requant_chunks == 1


def test_dataflow_accepts_strings_and_enum():
    assert AccelConfig(dataflow="os").dataflow is Dataflow.OS
    assert AccelConfig(dataflow=Dataflow.WS).dataflow is Dataflow.WS


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rows", 0, r"^AccelConfig\.rows must be in \[1, 256\], not 0$"),
        ("cols", 257, r"^AccelConfig\.cols must be in \[1, 256\], not 257$"),
        ("spad_bytes", 3000, r"^AccelConfig\.spad_bytes must be a power of two, not 3000$"),
        ("acc_rows", 8, r"^AccelConfig\.acc_rows must be in \[16, 1048576\], not 8$"),
        ("bus_bytes", 24, r"^AccelConfig\.bus_bytes must be a power of two, not 24$"),
        ("mem_latency", -1, r"^AccelConfig\.mem_latency must be in \[0, 10000\], not -1$"),
        ("sparse_lanes", -1, r"^AccelConfig\.sparse_lanes must be in \[0, 65536\], not -1$"),
        (
            "sparse_lanes",
            24,
            r"^AccelConfig\.sparse_lanes must be a multiple of cols \(16\), not 24$",
        ),
        ("sparse_depth", 100, r"^AccelConfig\.sparse_depth must be a power of two, not 100$"),
        ("requant_lanes", 0, r"^AccelConfig\.requant_lanes must be in \[1, 256\], not 0$"),
        ("requant_lanes", 5, r"^AccelConfig\.requant_lanes must divide cols \(16\), not 5$"),
        ("counter_bits", 15, r"^AccelConfig\.counter_bits must be in \[16, 48\], not 15$"),
        ("counter_bits", 49, r"^AccelConfig\.counter_bits must be in \[16, 48\], not 49$"),
        ("clock_mhz", 0, r"^AccelConfig\.clock_mhz must be in \(0, 2000\], not 0$"),
        (
            "dataflow",
            "rs",
            r"^AccelConfig\.dataflow must be one of 'ws', 'os', not 'rs'$",
        ),
    ],
)
def test_out_of_range_values_name_field_and_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        AccelConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rows", 4.0, r"^AccelConfig\.rows must be an int, not 4\.0$"),
        ("cols", True, r"^AccelConfig\.cols must be an int, not True$"),
        ("clock_mhz", "100", r"^AccelConfig\.clock_mhz must be a number, not '100'$"),
    ],
)
def test_wrong_types_are_refused(field, value, message):
    with pytest.raises(TypeError, match=message):
        AccelConfig(**{field: value})


def test_json_round_trip():
    config = AccelConfig(rows=4, cols=8, dataflow="os", mem_latency=3, clock_mhz=125)
    text = config.to_json()
    assert '"dataflow": "os"' in text
    assert AccelConfig.from_json(text) == config


def test_from_dict_rejects_unknown_field():
    with pytest.raises(ValueError, match=r"^AccelConfig has no field 'lanes'$"):
        AccelConfig.from_dict({"rows": 4, "lanes": 2})
