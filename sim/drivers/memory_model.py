"""Main memory behind an `hdl.memport` burst port, for testbenches in Amaranth's simulator.

`MemoryModel` answers the memory side of a port (``req``, and ``rdata`` / ``wdata`` where the
port has them) from a numpy byte array, one call of `MemoryModel.step` before each clock edge and
one of `MemoryModel.edge` after it::

    model = MemoryModel(memory, config.bus_bytes, latency=config.mem_latency)
    while ...:
        model.step(ctx, port, cycle)               # drive ready / rdata for this cycle
        signals = model.watch(port)
        _, _, *values = await ctx.tick().sample(*signals)
        model.edge(values)                         # apply what transferred at the edge

Timing (B = ``bus_bytes``; the same rules as the native harness's memory at full bandwidth,
docs/accelerator-harness.md, so both count the same cycles):

- ``req.ready`` is high, except in a cycle of random back-pressure (`stall`).
- Reads are answered in request order, one word per cycle at most. A read accepted at the edge
  of cycle *t* offers its first word in cycle *t* + 1 + `latency` at the earliest, and not before
  every write burst requested before it has been fully written; its data is memory as it was
  at that moment (a snapshot), so a later write never changes an earlier read's data. An offered
  word stays offered until it is taken.
- Write words are paired with write bursts in request order; a word is taken when its burst was
  requested at an earlier edge or at this very edge. Byte strobes are honoured.
- With ``stall`` > 0 each of ``req.ready``, ``rdata.valid`` and ``wdata.ready`` is withheld in a
  cycle with that probability (seeded).

A request with an address that is not a multiple of B or with zero beats raises
`PortProtocolError`; one that reaches past the end of the array raises `MemoryRangeError` (the
native harness's exceptions, `sim.drivers.accel_results`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sim.drivers.accel_results import MemoryRangeError, PortProtocolError

__all__ = ["MemoryModel"]


@dataclass
class _ReadBurst:
    ready_cycle: int  # first cycle a word may be offered (latency)
    address: int  # byte address of the next word
    left: int  # words not transferred yet
    writes_before: int  # write words requested before this burst
    data: np.ndarray | None = None  # the burst's bytes, once its earlier writes are done
    base: int = 0  # byte address of data[0]


class MemoryModel:
    """Byte memory behind a burst port (see the module doc for its timing).

    Parameters
    ----------
    contents:
        uint8 array, the memory; writes land in it in place (`memory`).
    bus_bytes:
        The port's word size B.
    latency:
        Cycles from accepting a read request to the earliest cycle after the next one that
        offers its first word (a read accepted in cycle *t* answers in *t* + 1 + `latency`).
    stall:
        Probability of withholding ``req.ready`` / ``rdata.valid`` / ``wdata.ready`` per cycle.
    seed:
        Seed of the back-pressure.

    Attributes
    ----------
    memory : numpy.ndarray
        `contents`.
    requests : list of (int, int, bool)
        (address, beats, write) of every accepted request, in order.
    moved : bool
        A request, read word or write word transferred at the last `edge`.
    holding : bool
        In the last `step` the memory itself held something back: a read word not offered
        yet (latency) or a signal withheld by `stall`. A run whose port is neither `moved` nor
        `holding` for long is waiting on the design, not on the memory.
    """

    def __init__(
        self,
        contents: np.ndarray,
        bus_bytes: int,
        latency: int,
        stall: float = 0.0,
        seed: int = 0,
    ):
        self.memory = contents
        self.bus = bus_bytes
        self.latency = latency
        self.stall = stall
        self.rng = np.random.default_rng(seed)
        self.reads: deque[_ReadBurst] = deque()
        self.writes: deque[list[int]] = deque()  # [byte address of the next word, words left]
        self.requests: list[tuple[int, int, bool]] = []
        self.moved = False
        self.holding = False
        self._write_words_requested = 0
        self._written = 0
        self._cycle = 0
        self._has = (False, False)

    def _stalled(self) -> bool:
        withheld = bool(self.stall) and self.rng.random() < self.stall
        self.holding |= withheld
        return withheld

    def outstanding(self) -> tuple[int, int]:
        """Read and write words requested and not transferred yet."""
        return sum(read.left for read in self.reads), sum(left for _, left in self.writes)

    def step(self, ctx, port, cycle: int) -> None:
        """Drive the memory side of `port` for `cycle` (call before the clock edge)."""
        self.holding = False
        req_ready = not self._stalled()
        head = self.reads[0] if self.reads else None
        answerable = head is not None and head.data is not None
        read = head if answerable and head.ready_cycle <= cycle else None
        rdata_valid = read is not None and not self._stalled()
        self.holding |= answerable and not rdata_valid
        wdata_ready = not self._stalled()
        ctx.set(port.req.ready, req_ready)
        if hasattr(port, "rdata"):
            ctx.set(port.rdata.valid, rdata_valid)
            if rdata_valid:
                offset = read.address - read.base
                word = read.data[offset : offset + self.bus]
                ctx.set(port.rdata.payload, int.from_bytes(word.tobytes(), "little"))
        if hasattr(port, "wdata"):
            # Data is taken for a burst requested earlier or in this very cycle.
            requesting = req_ready and ctx.get(port.req.valid) and ctx.get(port.req.payload.write)
            ctx.set(port.wdata.ready, wdata_ready and (bool(self.writes) or requesting))
        self._cycle = cycle

    def watch(self, port) -> list:
        """The signals of `port` that `edge` needs, sampled at the clock edge in this order."""
        signals = [port.req.valid, port.req.ready, port.req.payload.addr, port.req.payload.beats]
        signals.append(port.req.payload.write)
        if hasattr(port, "rdata"):
            signals += [port.rdata.valid, port.rdata.ready]
        if hasattr(port, "wdata"):
            signals += [port.wdata.valid, port.wdata.ready]
            signals += [port.wdata.payload.data, port.wdata.payload.strobe]
        self._has = (hasattr(port, "rdata"), hasattr(port, "wdata"))
        return signals

    def edge(self, values) -> None:
        """Apply the transfers of this cycle's edge; `values` as sampled from `watch(port)`.

        Raises
        ------
        PortProtocolError
            A request with a misaligned address or zero beats.
        MemoryRangeError
            A request reaching past the end of `memory`.
        """
        values = list(values)
        req_valid, req_ready, addr, beats, write = values[:5]
        rest = values[5:]
        has_rdata, has_wdata = self._has
        rdata_valid, rdata_ready = rest[:2] if has_rdata else (0, 0)
        rest = rest[2:] if has_rdata else rest
        wdata_valid, wdata_ready, data, strobe = rest[:4] if has_wdata else (0, 0, 0, 0)
        cycle = self._cycle
        requested = bool(req_valid and req_ready)
        if requested:  # before this edge's data
            self._check_request(addr, beats, bool(write), cycle)
            self.requests.append((addr, beats, bool(write)))
            if write:
                self.writes.append([addr, beats])
                self._write_words_requested += beats
            else:
                burst = _ReadBurst(
                    cycle + 1 + self.latency, addr, beats, self._write_words_requested
                )
                self.reads.append(burst)
        read_moved = bool(rdata_valid and rdata_ready)
        if read_moved:
            read = self.reads[0]
            read.address += self.bus
            read.left -= 1
            if read.left == 0:
                self.reads.popleft()
        write_moved = bool(wdata_valid and wdata_ready)
        if write_moved:
            burst = self.writes[0]
            start = burst[0]
            for byte in range(self.bus):
                if strobe >> byte & 1:
                    self.memory[start + byte] = (data >> (8 * byte)) & 0xFF
            burst[0] += self.bus
            burst[1] -= 1
            if burst[1] == 0:
                self.writes.popleft()
            self._written += 1
        self._snap_reads()
        self.moved = requested or read_moved or write_moved

    def _check_request(self, addr: int, beats: int, write: bool, cycle: int) -> None:
        what = "write" if write else "read"
        if addr % self.bus or beats == 0:
            why = "has zero beats" if beats == 0 else "is not a multiple of the bus width"
            raise PortProtocolError(
                f"{what} burst at address {addr} ({addr:#x}), {beats} beats, {why} "
                f"(bus width {self.bus} bytes), at cycle {cycle}",
                addr,
                beats,
                write,
                cycle,
            )
        end = addr + beats * self.bus
        if end > self.memory.size:
            raise MemoryRangeError(
                f"{what} burst at address {addr} ({addr:#x}) of {beats} words reaches byte "
                f"{end}, past the end of memory ({self.memory.size} bytes), at cycle {cycle}",
                addr,
                beats,
                write,
                self.memory.size,
                cycle,
            )

    def _snap_reads(self) -> None:
        """Take the snapshot of every read burst whose earlier write bursts are all written."""
        for read in self.reads:
            if read.data is not None:
                continue
            if read.writes_before > self._written:
                break
            read.data = self.memory[read.address : read.address + read.left * self.bus].copy()
            read.base = read.address
