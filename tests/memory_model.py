"""A main-memory model for Amaranth-simulator tests of `hdl.memport` masters.

`MemoryModel.step` is called once per cycle by a testbench, before the clock edge: it drives the
memory side of the port (``req.ready``, ``rdata``, ``wdata.ready``) from seeded random
back-pressure and a fixed latency, and `MemoryModel.edge` applies what transferred at the edge
(given the values of the signals `MemoryModel.watch` lists).
"""

from collections import deque

import numpy as np


class MemoryModel:
    """Byte memory behind a burst port: reads answered `latency` cycles after their request.

    Parameters
    ----------
    contents: uint8 array, the memory (modified in place by writes).
    bus_bytes: word size B.
    latency: cycles from accepting a read request to offering its first word.
    stall: probability of withholding ``req.ready`` / ``rdata.valid`` / ``wdata.ready`` per cycle.
    """

    def __init__(self, contents, bus_bytes: int, latency: int, stall: float, seed: int):
        self.memory = contents
        self.bus = bus_bytes
        self.latency = latency
        self.stall = stall
        self.rng = np.random.default_rng(seed)
        self.reads: deque = deque()  # [ready cycle, word address, words left]
        self.writes: deque = deque()  # [word address, words left]
        self.requests: list[tuple[int, int, bool]] = []  # (addr, beats, write) as accepted
        self._drive: dict = {}

    def _stalled(self) -> bool:
        return bool(self.stall) and self.rng.random() < self.stall

    def word(self, address: int) -> int:
        start = address * self.bus
        return int.from_bytes(self.memory[start : start + self.bus].tobytes(), "little")

    def step(self, ctx, port, cycle: int) -> None:
        """Drive the memory side of `port` for this cycle."""
        req_ready = not self._stalled()
        read = self.reads[0] if self.reads and self.reads[0][0] <= cycle else None
        rdata_valid = read is not None and not self._stalled()
        wdata_ready = not self._stalled()
        ctx.set(port.req.ready, req_ready)
        if hasattr(port, "rdata"):
            ctx.set(port.rdata.valid, rdata_valid)
            if rdata_valid:
                ctx.set(port.rdata.payload, self.word(read[1]))
        if hasattr(port, "wdata"):
            # Data is taken for a burst requested earlier or in this very cycle.
            requesting = req_ready and ctx.get(port.req.valid) and ctx.get(port.req.payload.write)
            ctx.set(port.wdata.ready, wdata_ready and (bool(self.writes) or requesting))
        self._drive = {"cycle": cycle}

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
        """Apply the transfers of this cycle's edge; `values` as sampled from `watch(port)`."""
        values = list(values)
        req_valid, req_ready, addr, beats, write = values[:5]
        rest = values[5:]
        has_rdata, has_wdata = self._has
        rdata_valid, rdata_ready = rest[:2] if has_rdata else (0, 0)
        rest = rest[2:] if has_rdata else rest
        wdata_valid, wdata_ready, data, strobe = rest[:4] if has_wdata else (0, 0, 0, 0)
        cycle = self._drive["cycle"]
        if req_valid and req_ready:  # before this edge's data
            assert addr % self.bus == 0, f"unaligned request address {addr}"
            self.requests.append((addr, beats, write))
            if write:
                self.writes.append([addr // self.bus, beats])
            else:
                self.reads.append([cycle + 1 + self.latency, addr // self.bus, beats])
        if rdata_valid and rdata_ready:
            read = self.reads[0]
            read[1] += 1
            read[2] -= 1
            if read[2] == 0:
                self.reads.popleft()
        if wdata_valid and wdata_ready:
            burst = self.writes[0]
            start = burst[0] * self.bus
            for byte in range(self.bus):
                if strobe >> byte & 1:
                    self.memory[start + byte] = (data >> (8 * byte)) & 0xFF
            burst[0] += 1
            burst[1] -= 1
            if burst[1] == 0:
                self.writes.popleft()
