"""Fault campaigns on the host link: `host.serial_transport.SerialTransport` against
`sim.bridge_model.BridgeModel` through `sim.link_faults.FaultyPort` (here, not in sim/, because
it drives the host's transport).

Each trial draws a workload (`Plan`: a WRITE of up to 48 bytes, the READ of them back, a PUSH of
1-4 instruction words, sometimes one that stops the stand-in accelerator, STATUS and COUNTERS,
on a bridge that has already taken up to 299 words, so PUSH's seq byte wraps), runs it once
without faults for the expected results and the length of each direction's stream, then again
with faults at random bytes of the streams. A trial ends

- ``clean``: the right results and no exchange sent again (the fault did no harm),
- ``retried``: the right results after exchanges were sent again,
- ``raised``: `SerialProtocolError` (the link gave up, loudly), or
- ``wrong``: any other results, memory contents or accelerator words (a silent wrong result).

Every trial also checks that the accelerator took each pushed word once (``duplicated``). With
``slow``, the stand-in accelerator is busy for 0-40 byte times after each word (`Plan.hold`):
longer than the host's timeout, so the host sends PUSH and STATUS frames again while the bridge
still waits for ``cmd`` or ``idle`` and cannot take their bytes.
`CAMPAIGN_TIMING` is the line timing, in byte times, tests/test_link_faults.py's RTL runs use.
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hdl.config import AccelConfig
from host.serial_transport import SerialProtocolError, SerialTransport
from sim.bridge_model import STOP_BYTE, BridgeModel, ModelPort
from sim.link_faults import DIRECTIONS, FROM_BOARD, KINDS, Fault, FaultyPort

__all__ = ["CAMPAIGN_TIMING", "CONFIG", "MEMORY_BYTES", "Plan", "Tally", "run_plan", "run_trials"]

MEMORY_BYTES = 1024
#: The accelerator SerialTransport is told of (only its counter_bits matter here).
CONFIG = AccelConfig(rows=2, cols=2, bus_bytes=1, mem_bytes=MEMORY_BYTES, counter_bits=32)
#: Byte times: the bridge's quiet-line limit, the host port's timeout, a stalled frame's gap.
CAMPAIGN_TIMING = {"idle_bytes": 4, "timeout": 12, "gap_bytes": 10}


@dataclass(frozen=True)
class Plan:
    """One trial's workload: `data` written at `address` and read back, `words` pushed (bytes
    of 16), on a bridge that took `before` words already, in front of a stand-in accelerator
    busy for `hold` byte times after each word."""

    address: int
    data: bytes
    words: tuple[bytes, ...]
    before: int
    hold: int = 0

    @classmethod
    def draw(cls, rng: np.random.Generator, slow: bool = False) -> "Plan":
        size = int(rng.integers(1, 49))
        address = int(rng.integers(0, MEMORY_BYTES - size + 1))
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        words = [rng.integers(0, 256, 16, dtype=np.uint8) for _ in range(rng.integers(1, 5))]
        for word in words:
            word[0] = word[0] % STOP_BYTE  # never the stop byte, but for the one below
        if rng.random() < 0.2:
            words[int(rng.integers(0, len(words)))][0] = STOP_BYTE
        hold = int(rng.integers(0, 41)) if slow else 0
        words = tuple(w.tobytes() for w in words)
        return cls(address, data, words, int(rng.integers(0, 300)), hold)

    def run(self, transport: SerialTransport) -> tuple:
        """The host's results: data read back, words taken, STATUS, the instructions count."""
        transport.write(self.address, np.frombuffer(self.data, np.uint8))
        back = transport.read(self.address, len(self.data)).tobytes()
        words = np.frombuffer(b"".join(self.words), "<u4").reshape(-1, 4)
        taken = transport.push(words)
        code, index = transport.status()
        return back, taken, code, index, transport.counters()["instructions"]

    def bridge(self, idle_bytes: int) -> BridgeModel:
        bridge = BridgeModel(MEMORY_BYTES, idle_bytes, self.hold)
        bridge.words = [bytes(16)] * self.before
        return bridge


@dataclass
class Tally:
    """Counts of a campaign: faults applied by (direction, kind), trials by outcome (module
    docstring) and by the kinds of their faults, exchanges sent again."""

    faults: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)  # ((direction, kind), outcome)
    retried_exchanges: int = 0
    duplicated: int = 0
    wrong_trials: list = field(default_factory=list)  # (seed, faults) of each wrong trial


def run_plan(plan: Plan, faults: list[Fault], retries: int = 4):
    """Run `plan` on a fresh model through `faults`: (results or the `SerialProtocolError`,
    the bridge, the faulty port, the transport)."""
    timing = CAMPAIGN_TIMING
    bridge = plan.bridge(timing["idle_bytes"])
    port = FaultyPort(ModelPort(bridge, timing["timeout"]), faults, 10 * timing["gap_bytes"])
    transport = SerialTransport(port, CONFIG, MEMORY_BYTES, retries=retries)
    try:
        return plan.run(transport), bridge, port, transport
    except SerialProtocolError as error:
        return error, bridge, port, transport


def run_trials(
    trials: int, faults_per_trial: int, seed: int, tally: Tally | None = None, slow: bool = False
) -> Tally:
    """`trials` seeded trials of `faults_per_trial` faults each (on a `slow` accelerator),
    counted into `tally`."""
    tally = Tally() if tally is None else tally
    for trial in range(trials):
        rng = np.random.default_rng([seed, faults_per_trial, int(slow), trial])
        plan = Plan.draw(rng, slow)
        expected, _, clean_port, _ = run_plan(plan, [])
        lengths = {"to board": clean_port.sent, FROM_BOARD: clean_port.received}
        faults = []
        for _ in range(faults_per_trial):
            direction = DIRECTIONS[int(rng.integers(0, 2))]
            kind = KINDS[int(rng.integers(0, len(KINDS)))]
            at = int(rng.integers(0, lengths[direction]))
            value = int(rng.integers(0, 8 if kind == "flip" else 256))
            faults.append(Fault(direction, kind, at, value))
        outcome, bridge, port, transport = run_plan(plan, faults)
        words = bridge.words[plan.before :]
        if words != list(plan.words[: len(words)]):
            tally.duplicated += 1
        if isinstance(outcome, SerialProtocolError):
            verdict = "raised"
        elif (
            outcome != expected
            or words != list(plan.words[: outcome[1]])
            or (bytes(bridge.memory[plan.address : plan.address + len(plan.data)]) != plan.data)
        ):
            verdict = "wrong"
            tally.wrong_trials.append(([seed, faults_per_trial, int(slow), trial], port.applied))
        else:
            verdict = "retried" if transport.retried else "clean"
        tally.outcomes[verdict] += 1
        tally.retried_exchanges += transport.retried
        for fault in port.applied:
            tally.faults[fault.direction, fault.kind] += 1
            tally.by_kind[(fault.direction, fault.kind), verdict] += 1
    return tally
