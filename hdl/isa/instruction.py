"""Instruction words: build, encode and decode accelerator instructions.

An `Instruction` is an opcode, its fields (names and widths from `hdl.isa.layout.LAYOUTS`, the
definition the gateware decoder also uses) and its dependency-token flags. `encode_program`
turns a list of them into the uint32 words the command stream carries (four per instruction,
least significant first); `decode_program` reverses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from hdl.isa.layout import DEPS, LAYOUTS, QUEUE_OF, WORD_BITS, Op, Queue

#: The dependency-token flags, in `DEPS` order.
DEP_FLAGS = tuple(name for name, _ in DEPS)
_WORDS = WORD_BITS // 32
#: Each opcode's fields and their widths, read once from its layout (programs hold 10^5 words).
_FIELDS = {
    op: tuple((name, layout[name].width) for name, _ in layout if name not in ("op", "deps"))
    for op, layout in LAYOUTS.items()
}
#: Each opcode's word size and (field, offset, width), for `Instruction.decode` (a fuzzer
#: decodes 10^6 words; reading Amaranth layouts each time costs most of it).
_PARTS = {
    op: (layout.size, tuple((name, layout[name].offset, width) for name, width in _FIELDS[op]))
    for op, layout in LAYOUTS.items()
}
_DEPS_OFFSET = LAYOUTS[Op.FENCE]["deps"].offset


@dataclass(frozen=True, init=False)
class Instruction:
    """One instruction: opcode, fields (all of the opcode's, as ints) and token flags.

    Construct as ``Instruction(Op.STORE, acc_row=0, rows=4, ..., push_prev=True)``; a missing
    or unknown field, or a value that does not fit its width, is a `ValueError` naming it.
    """

    op: Op
    fields: Mapping[str, int] = field(default_factory=dict)
    deps: Mapping[str, bool] = field(default_factory=dict)

    def __init__(self, op: Op, **values: int | bool):
        if not isinstance(op, Op):
            raise TypeError(f"op must be an hdl.isa.Op, not {op!r}")
        widths = _FIELDS[op]
        deps = {flag: bool(values.pop(flag, False)) for flag in DEP_FLAGS}
        names = [name for name, _ in widths]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"{op.name} has no field {unknown[0]!r}; its fields: {names}")
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"{op.name} needs field {missing[0]!r}")
        fields = {}
        for name, width in widths:
            value = values[name]
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, int | np.integer):
                raise TypeError(f"{op.name}.{name} must be an int, not {value!r}")
            if not 0 <= value < 1 << width:
                raise ValueError(f"{op.name}.{name} must be in [0, 2**{width}), not {value!r}")
            fields[name] = int(value)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "fields", MappingProxyType(fields))
        object.__setattr__(self, "deps", MappingProxyType(deps))

    def __getattr__(self, name: str) -> int:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    @property
    def queue(self) -> Queue | None:
        """The queue it runs in (None for FENCE)."""
        return QUEUE_OF[self.op]

    def encode(self) -> int:
        """The 128-bit word as an int."""
        layout = LAYOUTS[self.op]
        word = self.op.value
        deps = layout["deps"].offset
        for bit, flag in enumerate(DEP_FLAGS):
            word |= int(self.deps[flag]) << (deps + bit)
        for name, value in self.fields.items():
            word |= value << layout[name].offset
        return word

    @classmethod
    def decode(cls, word: int) -> Instruction:
        """The instruction of a 128-bit word; `ValueError` for an unknown opcode or stray bits."""
        if not 0 <= word < 1 << WORD_BITS:
            raise ValueError(f"an instruction word has {WORD_BITS} bits, not {word:#x}")
        try:
            op = Op(word & 0xF)
        except ValueError:
            raise ValueError(f"unknown opcode {word & 0xF}") from None
        size, parts = _PARTS[op]
        if word >> size:
            raise ValueError(f"{op.name} word has bits set above bit {size - 1}")
        values = {name: (word >> offset) & ((1 << width) - 1) for name, offset, width in parts}
        flags = {flag: bool(word >> (_DEPS_OFFSET + bit) & 1) for bit, flag in enumerate(DEP_FLAGS)}
        return cls(op, **values, **flags)

    def __repr__(self) -> str:
        parts = [f"{name}={value}" for name, value in self.fields.items()]
        parts += [flag for flag, on in self.deps.items() if on]
        return f"Instruction(Op.{self.op.name}, {', '.join(parts)})"


def encode_program(program: Iterable[Instruction]) -> np.ndarray:
    """uint32 [n, 4]: each instruction's word, least significant 32 bits first."""
    words = []
    for instruction in program:
        word = instruction.encode()
        words.append([(word >> (32 * i)) & 0xFFFF_FFFF for i in range(_WORDS)])
    return np.array(words, np.uint32).reshape(-1, _WORDS)


def decode_program(words: np.ndarray) -> list[Instruction]:
    """Inverse of `encode_program`."""
    words = np.asarray(words, np.uint32).reshape(-1, _WORDS)
    return [Instruction.decode(sum(int(w) << (32 * i) for i, w in enumerate(row))) for row in words]
