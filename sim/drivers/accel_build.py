"""Build the native Verilator harness library of the whole accelerator.

`build_accel_native` Verilates the accelerator top (``factory(config)``, by default
``hdl.top.Accelerator``; `accel_verilog`, by default the Yosys-optimised netlist of
`sim.drivers.native_netlist`) with ``sim/native/accel_harness.cpp`` through the shared, cached
build machinery of `sim.drivers.native_build` (key: Verilog, harness sources, flags, tool
versions); `sim.drivers.accel_native.NativeAccelerator` loads and runs the library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from hdl.config import AccelConfig
from hdl.top_ports import COUNTER_BITS, COUNTERS, accelerator_signature
from sim.drivers.native_build import _build_library, _native_source
from sim.drivers.native_netlist import NETLISTS, _optimized_verilog

__all__ = ["ACCEL_TOP", "AccelBuild", "accel_verilog", "build_accel_native"]

#: Verilog module name of the accelerator in native builds.
ACCEL_TOP = "tessera_accel"

_PREFIX = "Vaccel"  # C++ class of the model; accel_harness.cpp includes "Vaccel.h"
_HARNESS = "accel_harness.cpp"


@dataclasses.dataclass(frozen=True)
class AccelBuild:
    """A built accelerator harness library, as returned by `build_accel_native`.

    Attributes
    ----------
    key : str
        Content hash naming the cache folder.
    directory : pathlib.Path
        ``cache_dir()/native/<key>``: the Verilog, ``harness.cpp``, ``build.log``, the marker
        file and Verilator's ``obj/`` folder.
    library, log_file, verilog_path : pathlib.Path
        The shared library, the build log and the Verilog that was built.
    config : AccelConfig
        The configuration it simulates.
    trace : bool
        Built with VCD tracing.
    netlist : str
        ``"optimized"`` or ``"gen"`` (see `sim.drivers.native_netlist`).
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
    trace: bool
    netlist: str
    cached: bool
    build_seconds: float


Factory = Callable[[AccelConfig], wiring.Component]


def _accelerator(config: AccelConfig) -> wiring.Component:
    from hdl.top import Accelerator

    return Accelerator(config)


def accel_verilog(
    config: AccelConfig, *, factory: Factory | None = None, netlist: str = "optimized"
) -> str:
    """Verilog (module `ACCEL_TOP`) of ``factory(config)`` as the native harness builds it.

    `factory` defaults to ``hdl.top.Accelerator``; it must return a component whose signature is
    ``accelerator_signature(config)``. ``netlist="gen"`` is Amaranth's Verilog; ``"optimized"``
    (the default) the same RTLIL optimised by Yosys (`sim.drivers.native_netlist`), with the same
    ports.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
    if netlist not in NETLISTS:
        raise ValueError(f"netlist must be one of {NETLISTS}, not {netlist!r}")
    make = _accelerator if factory is None else factory
    component = make(config)
    if not isinstance(component, wiring.Component):
        raise TypeError(f"factory must return a wiring.Component, not {component!r}")
    if component.signature != accelerator_signature(config):
        raise ValueError(
            "factory must return a component with accelerator_signature(config), not "
            f"{component.signature!r}"
        )
    if netlist == "gen":
        return verilog.convert(component, name=ACCEL_TOP, emit_src=False)
    text = rtlil.convert(component, name=ACCEL_TOP, emit_src=False)
    return _optimized_verilog(text, ACCEL_TOP)


def build_accel_native(
    config: AccelConfig,
    *,
    trace: bool = False,
    factory: Factory | None = None,
    netlist: str = "optimized",
) -> AccelBuild:
    """Build (or reuse) the native harness library of ``factory(config)`` (see `accel_verilog`).

    Raises
    ------
    ToolchainError
        Verilator, perl, make or a C++ compiler is missing.
    BuildError
        Verilator or the C++ compiler failed; the message ends with the tail of the build log.
    """
    source = accel_verilog(config, factory=factory, netlist=netlist)
    built = _build_library(
        source,
        ACCEL_TOP,
        _native_source(_HARNESS),
        prefix=_PREFIX,
        macros=[
            f"-DTESSERA_BUS_BYTES={config.bus_bytes}",
            f"-DTESSERA_COUNTERS={len(COUNTERS)}",
            f"-DTESSERA_COUNTER_BITS={COUNTER_BITS}",
        ],
        trace=trace,
        record={"harness": "accelerator", "config": config.to_dict(), "netlist": netlist},
    )
    return AccelBuild(
        key=built.key,
        directory=built.directory,
        library=built.library,
        log_file=built.log_file,
        verilog_path=built.verilog_path,
        config=config,
        trace=trace,
        netlist=netlist,
        cached=built.cached,
        build_seconds=built.build_seconds,
    )
