"""Seeded programs for the fuzzer: valid programs from the schedulers, and mutations of them.

`base_programs` makes a pool of valid programs with the memory images they run on (small
GEMMs, int32 and requantized, and, with a sparse engine, sparse products), each image padded to
``config.mem_bytes`` with seeded random bytes so that any load reads data and any store leaves a
mark. `mutate` turns a base program's words into one program of a `KINDS` kind:

- ``valid``: unchanged (the control group);
- ``random_words``: 1-8 words of random bits (almost always stray bits or a bad opcode);
- ``random_fields``: 1-8 words of a random opcode (0-15) with random values in its fields and
  random token flags, no stray bits (range errors, tokens that never come);
- ``opcode``: one word's opcode replaced (its fields read through another layout);
- ``field``: one field of one word set to an edge value (0, 1, its checked limit and the
  values around it, its largest value) or a random one: addresses, lengths, rows, widths;
- ``flags``: one or two token flags of one word toggled (missing or extra tokens, flags toward
  queues that do not exist);
- ``stray_bits``: one bit above the opcode's layout set;
- ``bit_flip``: one random bit of one word flipped;
- ``truncate``: the program cut short (the final STORE or FENCE missing, pops left waiting);
- ``duplicate``: one word repeated (a second push or pop, a double load);
- ``reorder``: two words swapped, or one moved (a pop before its push, a STORE before its data);
- ``drop``: one word deleted.

Words are 128-bit ints here (`words_array` encodes them for the command stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.checked_bits import field_limits
from hdl.config import AccelConfig
from hdl.isa import DEP_FLAGS, LAYOUTS, WORD_BITS, Op, encode_program, words_as_ints
from sim.golden.requant import RequantParams
from sim.golden.sparse import random_sparse
from sim.schedule import gemm_memory
from sim.spmm_schedule import spmm_memory, spmm_schedule

KINDS = (
    "valid",
    "random_words",
    "random_fields",
    "opcode",
    "field",
    "flags",
    "stray_bits",
    "bit_flip",
    "truncate",
    "duplicate",
    "reorder",
    "drop",
)

_MASK32 = 0xFFFF_FFFF
_DEPS_OFFSET = 4  # bits [4, 8): the token flags, in `DEP_FLAGS` order


@dataclass(frozen=True)
class BaseProgram:
    """A valid program (128-bit words) and the memory image it runs on (``mem_bytes`` bytes)."""

    name: str
    words: tuple[int, ...]
    memory: np.ndarray


def words_array(words: list[int]) -> np.ndarray:
    """uint32 [n, 4] command stream of 128-bit words (least significant 32 bits first)."""
    rows = [[(word >> (32 * i)) & _MASK32 for i in range(WORD_BITS // 32)] for word in words]
    return np.array(rows, np.uint32).reshape(-1, WORD_BITS // 32)


def base_programs(config: AccelConfig, count: int, rng: np.random.Generator) -> list[BaseProgram]:
    """`count` valid programs with their images: GEMMs of up to 2 x 2 tiles (a third of them
    requantized) and, with a sparse engine, a sparse product every fourth program."""
    pool = []
    for i in range(count):
        if config.has_sparse_engine and i % 4 == 3:
            n, k, m = (int(rng.integers(1, high)) for high in (7, 2 * config.cols + 1, 7))
            w = random_sparse(rng, n, k, float(rng.uniform(0.3, 0.9)))
            x = rng.integers(-128, 128, (k, m), dtype=np.int8)
            memory, layout = spmm_memory(w, x, config)
            program, name = spmm_schedule(layout), f"spmm {n}x{k}x{m}"
        else:
            m, k, n = (int(rng.integers(1, 2 * side + 1)) for side in (4, config.rows, config.cols))
            a = rng.integers(-128, 128, (m, k), dtype=np.int8)
            b = rng.integers(-128, 128, (k, n), dtype=np.int8)
            params = bias = None
            if i % 3 == 2:
                scales = np.exp2(rng.uniform(-14, -8, n)).astype(np.float32)
                params = RequantParams(scales, int(rng.integers(-20, 20)), bool(i % 2))
                bias = rng.integers(-20000, 20000, n).astype(np.int32)
            memory, layout = gemm_memory(a, b, config, bias=bias, params=params)
            program = layout.schedule()
            name = f"gemm {m}x{k}x{n}" + (" int8" if params else "")
        image = rng.integers(0, 256, config.mem_bytes, dtype=np.uint8)
        image[: memory.size] = memory
        words = tuple(words_as_ints(encode_program(program)))
        pool.append(BaseProgram(name, words, image))
    return pool


def mutate(kind: str, words: tuple[int, ...], config: AccelConfig, rng) -> list[int]:
    """One program of `kind` (see the module doc) made from the valid `words`."""
    words = list(words)
    if kind == "valid":
        return words
    if kind == "random_words":
        count = int(rng.integers(1, 9))
        return [int(v) for v in _random_ints(rng, count, WORD_BITS)]
    if kind == "random_fields":
        return [_random_field_word(rng) for _ in range(int(rng.integers(1, 9)))]
    if kind in ("truncate", "duplicate", "reorder", "drop"):
        return _rearrange(kind, words, rng)
    i = int(rng.integers(len(words)))
    words[i] = _mutate_word(kind, words[i], config, rng)
    return words


def _random_ints(rng, count: int, bits: int) -> list[int]:
    """`count` uniformly random ints of `bits` bits."""
    chunks = rng.integers(0, 1 << 32, (count, (bits + 31) // 32), dtype=np.uint64)
    values = [sum(int(c) << (32 * j) for j, c in enumerate(row)) for row in chunks]
    return [value & ((1 << bits) - 1) for value in values]


def _random_field_word(rng) -> int:
    """A random opcode, random token flags and random values in its layout's fields."""
    op = int(rng.integers(16))
    word = op | int(rng.integers(16)) << _DEPS_OFFSET
    if op in {o.value for o in Op}:
        for name, part in LAYOUTS[Op(op)]:
            if name not in ("op", "deps"):
                value = _random_ints(rng, 1, part.width)[0] >> int(rng.integers(part.width))
                word |= value << part.offset
    else:
        word |= _random_ints(rng, 1, 56)[0] << 8
    return word


def _mutate_word(kind: str, word: int, config: AccelConfig, rng) -> int:
    """`word` with one opcode, field, token-flag or bit mutation."""
    if kind == "opcode":
        return (word & ~0xF) | int(rng.choice([v for v in range(16) if v != word & 0xF]))
    if kind == "bit_flip":
        return word ^ (1 << int(rng.integers(WORD_BITS)))
    if kind == "flags":
        for flag in rng.choice(len(DEP_FLAGS), int(rng.integers(1, 3)), replace=False):
            word ^= 1 << (_DEPS_OFFSET + int(flag))
        return word
    op = Op(word & 0xF)
    layout = LAYOUTS[op]
    if kind == "stray_bits":
        return word | 1 << int(rng.integers(layout.size, WORD_BITS))
    if kind == "field":
        fields = [name for name, _ in layout if name not in ("op", "deps")]
        if not fields:  # FENCE: a stray bit instead
            return word | 1 << int(rng.integers(layout.size, WORD_BITS))
        name = str(rng.choice(fields))
        part = layout[name]
        value = _edge_value(field_limits(config).get(op, {}).get(name, 1), part.width, rng)
        mask = ((1 << part.width) - 1) << part.offset
        return (word & ~mask) | value << part.offset
    raise ValueError(f"no word mutation {kind!r}")


def _edge_value(limit: int, width: int, rng) -> int:
    """0, 1, 2, the limit and its neighbours, the largest value, or a random value."""
    top = (1 << width) - 1
    choices = [0, 1, 2, limit - 1, limit, limit + 1, top, int(rng.integers(0, min(top, limit) + 1))]
    return int(rng.choice([v for v in choices if 0 <= v <= top]))


def _rearrange(kind: str, words: list[int], rng) -> list[int]:
    """`words` cut short, with one word repeated, two swapped or one moved, or one deleted."""
    n = len(words)
    if kind == "truncate":
        return words[: int(rng.integers(0, n))] if n > 1 else []
    i = int(rng.integers(n))
    if kind == "duplicate":
        return [*words[: i + 1], words[i], *words[i + 1 :]]
    if kind == "drop":
        return words[:i] + words[i + 1 :]
    j = int(rng.integers(n))
    if rng.random() < 0.5:
        words[i], words[j] = words[j], words[i]
    else:
        words.insert(j, words.pop(i))
    return words
