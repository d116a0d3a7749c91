"""sim.sweep.events and sim.sweep.energy: counted events, and energy from a replaceable table."""

import json
import math

import pytest

from hdl.config import AccelConfig
from sim.perf import program_estimate
from sim.schedule import gemm_layout
from sim.sweep.energy import DEFAULT_TABLE, energy_pj, load_table, sram_byte_pj
from sim.sweep.events import Events, count_events


def _events(m, n, k, config, requant=True):
    program = gemm_layout(m, n, k, config, requant=requant).schedule()
    return count_events(program, config, program_estimate(program, config))


def test_events_of_a_one_tile_gemm():
    config = AccelConfig(rows=4, cols=4, bus_bytes=4)
    events = _events(5, 4, 4, config)  # one 4x4 weight tile, 5 activation rows, int8 out
    assert events.mac_slots == 5 * 16
    assert events.spad_read_bytes == 16 + 5 * 4
    assert events.spad_write_bytes == 16 + 20 + 4 * 16  # B, A, 4 parameter records
    assert events.acc_write_bytes == 5 * 4 * 4
    assert events.acc_read_bytes == 5 * 4 * 4  # the store reads what the MATMUL wrote
    assert events.requant_ops == 20
    assert events.dram_write_bytes == 20
    assert events.dram_read_bytes >= 16 + 20 + 64


def test_output_stationary_streams_both_operands():
    config = AccelConfig(rows=4, cols=4, dataflow="os")
    events = _events(4, 4, 6, config, requant=False)  # one 4x4 output tile, K = 6
    assert events.spad_read_bytes == 6 * (4 + 4)
    assert events.acc_write_bytes == 4 * 4 * 4
    assert events.requant_ops == 0


def test_sram_energy_passes_through_the_table_and_grows_with_size():
    table = load_table(None)
    for size, pj in DEFAULT_TABLE["sram_64bit_read_pj"]:
        assert sram_byte_pj(table, size) == pytest.approx(pj / 8)
    assert sram_byte_pj(table, 1024) < sram_byte_pj(table, 8192)  # extrapolated below
    # 64 KB: on the log-log line from (32 KB, 20 pJ) to (1 MB, 100 pJ)
    assert sram_byte_pj(table, 1 << 16) == pytest.approx(20 / 8 * 2 ** (math.log(5) / math.log(32)))


def test_energy_is_events_times_the_table():
    config = AccelConfig(rows=4, cols=4, spad_bytes=16384, acc_rows=512)  # 8 KB SRAMs
    events = Events(
        mac_slots=10,
        spad_read_bytes=8,
        acc_write_bytes=16,
        requant_ops=2,
        dram_read_bytes=4,
        dram_write_bytes=4,
    )
    energy = energy_pj(events, config, load_table(None))
    assert energy["mac"] == pytest.approx(10 * 0.3)
    assert energy["spad"] == pytest.approx(8 * 10 / 8)
    assert energy["acc"] == pytest.approx(16 * 10 / 8)
    assert energy["requant"] == pytest.approx(2 * 3.2)
    assert energy["dram"] == pytest.approx(2 * 640)
    assert energy["total"] == pytest.approx(sum(v for k, v in energy.items() if k != "total"))


def test_a_user_table_replaces_the_default(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({**DEFAULT_TABLE, "dram_32bit_pj": 0.0}))
    events = Events(dram_read_bytes=100)
    assert energy_pj(events, AccelConfig(), load_table(path))["total"] == 0.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({**DEFAULT_TABLE, "int8_mult_pj": -1}, r"int8_mult_pj must be a number >= 0, not -1$"),
        ({k: v for k, v in DEFAULT_TABLE.items() if k != "dram_32bit_pj"}, r"dram_32bit_pj"),
        (
            {**DEFAULT_TABLE, "sram_64bit_read_pj": [[8192, 10.0], [4096, 20.0]]},
            r"sram_64bit_read_pj must be two or more \[bytes, pJ\] pairs, sizes increasing",
        ),
    ],
)
def test_bad_tables_are_refused(tmp_path, table, message):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError, match=message):
        load_table(path)
    with pytest.raises(ValueError, match=r"^energy table '.*nope.json': "):
        load_table(tmp_path / "nope.json")
