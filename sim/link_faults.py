"""Faults on a serial line: a port wrapper that damages the bytes going each way.

`FaultyPort(port, faults, gap_bits)` passes ``write`` and ``read`` on to `port` (a
`sim.bridge_model.ModelPort` or tests/uart_board.SimulatedSerialPort) and applies each `Fault`
when the byte it names goes through: ``at`` counts the bytes of its direction's stream from 0
(``TO_BOARD``: the bytes the host wrote; ``FROM_BOARD``: the bytes the board sent).

=========  ==========================================  ========================================
kind       to the board                                from the board
=========  ==========================================  ========================================
flip       bit ``value`` of the byte flipped           the same
drop       the byte lost                               the same (the stream closes up)
extra      byte ``value`` inserted before it           the same (the real bytes come after it)
truncate   the byte and the rest of that write lost    the byte and the rest of the answer lost
                                                       (everything until the port falls quiet)
timeout    the line idle for ``gap_bits`` before the   the byte and the rest of that read come
           byte (a frame stalls mid-way)               late: the read returns short, the next
                                                       read gets them first
=========  ==========================================  ========================================

``applied`` lists the faults applied, in order; a fault whose byte never goes through (the
stream ended early) is not.
"""

from dataclasses import dataclass

__all__ = ["DIRECTIONS", "FROM_BOARD", "KINDS", "TO_BOARD", "Fault", "FaultyPort"]

TO_BOARD, FROM_BOARD = "to board", "from board"
DIRECTIONS = (TO_BOARD, FROM_BOARD)
KINDS = ("flip", "drop", "extra", "truncate", "timeout")
#: Bytes asked of each read while losing a truncated answer.
_LOSE_BYTES = 4096


@dataclass(frozen=True)
class Fault:
    """One fault: `kind` (`KINDS`) on byte `at` of `direction`'s stream; `value` is the bit a
    flip flips (0..7) or the byte an extra inserts."""

    direction: str
    kind: str
    at: int
    value: int = 0

    def __post_init__(self):
        if self.direction not in DIRECTIONS or self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.direction!r} / {self.kind!r}")


class FaultyPort:
    """`port` with `faults` applied (module docstring)."""

    def __init__(self, port, faults: list[Fault], gap_bits: int):
        self.port = port
        self.gap_bits = gap_bits
        self.applied: list[Fault] = []
        self.sent = self.received = 0  # bytes of each stream so far
        self._faults: dict[tuple[str, int], list[Fault]] = {}
        for fault in faults:
            self._faults.setdefault((fault.direction, fault.at), []).append(fault)
        self._late = bytearray()

    def _at(self, direction: str, index: int) -> list[Fault]:
        faults = self._faults.pop((direction, index), [])
        self.applied += faults
        return faults

    def write(self, data: bytes) -> int:
        segment, cut = bytearray(), False
        for byte in bytes(data):
            keep = True
            for fault in self._at(TO_BOARD, self.sent):
                if fault.kind == "flip":
                    byte ^= 1 << fault.value
                elif fault.kind == "drop":
                    keep = False
                elif fault.kind == "extra":
                    segment.append(fault.value)
                elif fault.kind == "truncate":
                    cut = True
                else:  # timeout
                    self.port.write(bytes(segment))
                    segment.clear()
                    self.port.pause(self.gap_bits)
            self.sent += 1
            if keep and not cut:
                segment.append(byte)
        self.port.write(bytes(segment))
        return len(data)

    def read(self, count: int) -> bytes:
        out = bytearray()
        while len(out) < count:
            wanted = count - len(out)
            if self._late:
                out += self._late[:wanted]
                del self._late[:wanted]
                continue
            chunk = bytes(self.port.read(wanted))
            if self._damage(chunk, out) or len(chunk) < wanted:
                break
        self._late[:0] = out[count:]
        del out[count:]
        return bytes(out)

    def _damage(self, chunk: bytes, out: bytearray) -> bool:
        """Append `chunk`, faults applied, to `out`; whether the read ends short here."""
        for i, byte in enumerate(chunk):
            keep = True
            for fault in self._at(FROM_BOARD, self.received):
                if fault.kind == "flip":
                    byte ^= 1 << fault.value
                elif fault.kind == "drop":
                    keep = False
                elif fault.kind == "extra":
                    out.append(fault.value)
                elif fault.kind == "truncate":
                    self.received += len(chunk) - i
                    while lost := self.port.read(_LOSE_BYTES):
                        self.received += len(lost)
                    return True
                else:  # timeout
                    self._late += chunk[i:]
                    self.received += len(chunk) - i
                    return True
            self.received += 1
            if keep:
                out.append(byte)
        return False
