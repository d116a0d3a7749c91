"""A seeded program fuzzer: malformed programs on the accelerator against the ISA model.

- `sim.fuzz.programs`: valid base programs with their memory images, and the mutation kinds
  (`KINDS`) that break them;
- `sim.fuzz.expected`: what the accelerator must do with a command stream (`expected_outcome`),
  from `sim.isa_model` and the dispatch replay of `hdl.isa`;
- `sim.fuzz.campaign`: `Campaign` runs programs in the native Verilator harness and compares
  each with its prediction (`Report`); `native_config`, the 4x4 build it and the tests share.

docs/isa.md ("Fuzzing") describes what is compared and the measured figures;
``python bench/fuzz_programs.py`` runs a campaign.
"""

from sim.fuzz.campaign import Campaign, Disagreement, Report, native_config
from sim.fuzz.expected import ERROR, HANG, OK, Expected, dma_bytes_read, expected_outcome
from sim.fuzz.programs import KINDS, BaseProgram, base_programs, mutate, words_array

__all__ = [
    "ERROR",
    "HANG",
    "KINDS",
    "OK",
    "BaseProgram",
    "Campaign",
    "Disagreement",
    "Expected",
    "Report",
    "base_programs",
    "dma_bytes_read",
    "expected_outcome",
    "mutate",
    "native_config",
    "words_array",
]
