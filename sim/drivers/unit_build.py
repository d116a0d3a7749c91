"""Build the native Verilator harness library of one hardware unit (`hdl.units`).

`build_native` Verilates the unit's Verilog (`native_verilog`, by default the Yosys-optimised
netlist of `sim.drivers.native_netlist`) with ``sim/native/harness.cpp`` through the shared,
cached build machinery of `sim.drivers.native_build`; `sim.drivers.native.NativeSim` loads and
runs the library. Cold builds on 2 cores: 2x2 about 4 s, 16x16 about 15-30 s, then cached.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hdl.config import AccelConfig
from hdl.units import Unit, get_unit
from sim.drivers.native_build import _build_library, _native_source
from sim.drivers.native_netlist import NETLISTS, _optimized_verilog

__all__ = ["NativeBuild", "build_native", "native_verilog"]

_PREFIX = "Varray"  # C++ class of the model (--prefix); harness.cpp includes "Varray.h"


def native_verilog(config: AccelConfig, netlist: str = "optimized", unit: str = "array") -> str:
    """Verilog of `unit` for `config` as the native harness builds it.

    ``netlist="gen"`` is exactly `hdl.units.Unit.verilog`; ``"optimized"`` (the default) is the
    same RTLIL flattened and optimised by Yosys (`sim.drivers.native_netlist`), with the same ports.
    """
    if netlist not in NETLISTS:
        raise ValueError(f"netlist must be one of {NETLISTS}, not {netlist!r}")
    spec = get_unit(unit)
    if netlist == "gen":
        return spec.verilog(config)
    from amaranth.back import rtlil

    text = rtlil.convert(spec.component(config), name=spec.top, emit_src=False)
    return _optimized_verilog(text, spec.top)


def _stream_macros(unit: Unit, config: AccelConfig) -> list[str]:
    """The harness's -D flags naming the unit's input streams (see harness.cpp)."""
    streams = unit.streams(config)
    names = [f"-DTESSERA_IN{i}={name}" for i, name in enumerate(streams)]
    return [f"-DTESSERA_STREAMS={len(streams)}", *names]


@dataclasses.dataclass(frozen=True)
class NativeBuild:
    """A built native harness library, as returned by `build_native`.

    Attributes
    ----------
    key : str
        Content hash naming the cache folder.
    directory : pathlib.Path
        ``cache_dir()/native/<key>``: ``<top>.v``, ``harness.cpp``, ``build.log``, the marker
        file and Verilator's ``obj/`` folder.
    library, log_file, verilog_path : pathlib.Path
        The shared library, the build log and the Verilog that was built.
    config : AccelConfig
        The configuration it simulates.
    unit : str
        The `hdl.units` name of the unit it simulates.
    trace : bool
        Built with VCD tracing (``--trace``).
    netlist : str
        ``"optimized"`` or ``"gen"``.
    cached : bool
        ``True`` when an earlier build was reused.
    build_seconds : float
        Wall time of the (original) Verilator build.
    """

    key: str
    directory: Path
    library: Path
    log_file: Path
    verilog_path: Path
    config: AccelConfig
    unit: str
    trace: bool
    netlist: str
    cached: bool
    build_seconds: float


def build_native(
    config: AccelConfig, *, unit: str = "array", trace: bool = False, netlist: str = "optimized"
) -> NativeBuild:
    """Build (or reuse) the native harness library of `unit` for `config`.

    Raises
    ------
    ToolchainError
        Verilator, perl, make or a C++ compiler is missing.
    BuildError
        Verilator or the C++ compiler failed; the message ends with the tail of the build log.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    spec = get_unit(unit)
    built = _build_library(
        native_verilog(config, netlist, unit),
        spec.top,
        _native_source("harness.cpp"),
        prefix=_PREFIX,
        macros=_stream_macros(spec, config),
        trace=trace,
        record={"unit": unit, "config": config.to_dict(), "netlist": netlist},
    )
    return NativeBuild(
        key=built.key,
        directory=built.directory,
        library=built.library,
        log_file=built.log_file,
        verilog_path=built.verilog_path,
        config=config,
        unit=unit,
        trace=trace,
        netlist=netlist,
        cached=built.cached,
        build_seconds=built.build_seconds,
    )
