"""The hardware units Tessera can emit and simulate on their own, by name.

Each `Unit` names a top-level `wiring.Component`, its Verilog module name and its input streams
in a fixed order (simulation drivers seed each stream's flow control by that order). Every unit
has one output stream, ``out``. `hdl.gen`, the simulation drivers (`sim.drivers`) and the cocotb
tests look units up here instead of knowing each class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from hdl.config import AccelConfig, Dataflow


def _systolic_array(config: AccelConfig) -> wiring.Component:
    from hdl.systolic import SystolicArray

    return SystolicArray(config)


def _requantizer(config: AccelConfig) -> wiring.Component:
    from hdl.requant import Requantizer

    return Requantizer(config)


def _sparse_engine(config: AccelConfig) -> wiring.Component:
    from hdl.sparse import SparseEngine

    return SparseEngine(config)


def _array_streams(config: AccelConfig) -> tuple[str, ...]:
    return ("weights", "acts") if config.dataflow is Dataflow.WS else ("operands",)


@dataclass(frozen=True)
class Unit:
    """One emittable hardware unit.

    Attributes
    ----------
    name: the name users pass (``python -m hdl.gen --unit NAME``).
    top: the Verilog top module's name.
    make: builds the component for a config.
    streams: the input stream names for a config, in driver order.
    summary: one line for ``--help``.
    """

    name: str
    top: str
    make: Callable[[AccelConfig], wiring.Component]
    streams: Callable[[AccelConfig], tuple[str, ...]]
    summary: str

    def component(self, config: AccelConfig) -> wiring.Component:
        """A fresh instance for `config`."""
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {type(config)!r}")
        return self.make(config)

    def verilog(self, config: AccelConfig) -> str:
        """Verilog of the unit for `config` (no source paths, so it is reproducible)."""
        return verilog.convert(self.component(config), name=self.top, emit_src=False)


UNITS: dict[str, Unit] = {
    unit.name: unit
    for unit in (
        Unit(
            "array",
            "systolic_array",
            _systolic_array,
            _array_streams,
            "R x C systolic int8 array (hdl.systolic)",
        ),
        Unit(
            "requant",
            "requantizer",
            _requantizer,
            lambda config: ("params", "acc"),
            "int32 -> int8 requantizer, one lane per array column (hdl.requant)",
        ),
        Unit(
            "sparse",
            "sparse_engine",
            _sparse_engine,
            lambda config: ("acts", "nonzeros"),
            "sparse int8 engine that multiplies only nonzeros (hdl.sparse)",
        ),
    )
}


def get_unit(name: str) -> Unit:
    """The unit called `name`; `ValueError` naming the choices otherwise."""
    try:
        return UNITS[name]
    except (KeyError, TypeError):
        choices = ", ".join(repr(n) for n in UNITS)
        raise ValueError(f"unit must be one of {choices}, not {name!r}") from None


def payload_bits(unit: Unit, config: AccelConfig) -> dict[str, int]:
    """Payload width in bits of every stream of `unit` for `config`: its inputs and ``out``."""
    component = unit.component(config)
    # Only the ports are read: tell Amaranth the unelaborated instance is not a forgotten one
    # (it would warn with UnusedElaboratable when the object is collected).
    component._MustUse__silence = True
    names = (*unit.streams(config), "out")
    return {name: Shape.cast(getattr(component, name).payload.shape()).width for name in names}


def payload_words(bits: int) -> int:
    """uint32 words that hold a payload of `bits` bits (how drivers pack beats)."""
    return math.ceil(bits / 32)
