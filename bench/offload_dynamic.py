"""Dynamic-quantized models offloaded: the trained digits MLP and an LSTM tagger.

``torch.ao.quantization.quantize_dynamic`` of (a) `models.MLP` (784-128-10, trained on the
digits) and (b) a random-init 2-layer bidirectional LSTM (32 in, 64 hidden) with a Linear head on
random sequences, each packed for fbgemm (the x86 engine) and for qnnpack. Every model runs
through `host.offload` on each backend given; the table has the outputs equal to torch's (all,
`host.dynamic`), the digits accuracy on the accelerator beside torch's, MACs on the accelerator
and the CPU, cycles, utilization (MACs / (cycles x R x C)) and host<->device bytes.

Run: ``python bench/offload_dynamic.py [--backend golden verilator] [--markdown]`` (default
16x16 configuration). Exits 1 if any output differs from torch's.
"""

import argparse
import sys
import time
import warnings

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import models
from hdl.config import AccelConfig
from host.device import Device
from host.dynamic import quantized_engine
from host.offload import OffloadWarning, offload

PACKING_ENGINE = {"fbgemm": "x86", "qnnpack": "qnnpack"}
COLUMNS = (
    "model",
    "kernel",
    "backend",
    "outputs equal to torch",
    "accuracy (torch / accelerator)",
    "accelerator MACs",
    "CPU MACs",
    "cycles",
    "utilization",
    "host->device B",
    "device->host B",
    "wall s",
)


class Tagger(nn.Module):
    """A sequence tagger: a 2-layer bidirectional LSTM (batch first) and a Linear head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 64, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(128, 8)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def workloads():
    """(name, float model, input, labels or None) of the bench."""
    trained = models.load("mlp")
    data = trained.data
    yield "digits MLP", trained.model.eval(), data.test_x, data.test_y
    torch.manual_seed(0)
    yield "LSTM tagger", Tagger().eval(), torch.randn(4, 16, 32), None


def run(name, model, x, y, kernel: str, backend: str, config: AccelConfig) -> dict:
    with quantized_engine(PACKING_ENGINE[kernel]), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations of torch.ao, the offload warning
        qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear, nn.LSTM})
        started = time.perf_counter()
        with Device(backend, config) as device, torch.no_grad():
            offloaded = offload(qmodel, device)
            ours, theirs = offloaded(x), qmodel(x)
            summary = offloaded.summary()
        wall = time.perf_counter() - started
    accuracy = "-"
    if y is not None:
        torch_acc = float((theirs.argmax(1) == y).float().mean())
        ours_acc = float((ours.argmax(1) == y).float().mean())
        accuracy = f"{100 * torch_acc:.2f} % / {100 * ours_acc:.2f} %"
    return {
        "cells": [
            name,
            kernel,
            backend,
            f"{int((ours == theirs).sum()):,} of {ours.numel():,}",
            accuracy,
            f"{summary.accelerator_macs:,}",
            f"{summary.cpu_macs:,}",
            f"{summary.accelerator_cycles:,}",
            f"{100 * summary.accelerator_macs / (summary.accelerator_cycles * config.macs):.1f} %",
            f"{summary.bytes_to_device:,}",
            f"{summary.bytes_from_device:,}",
            f"{wall:.1f}",
        ],
        "exact": torch.equal(ours, theirs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", nargs="+", default=["golden"], choices=("golden", "verilator"))
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=OffloadWarning)
    config = AccelConfig()
    rows = [
        run(name, model, x, y, kernel, backend, config)
        for name, model, x, y in workloads()
        for kernel in PACKING_ENGINE
        for backend in args.backend
    ]
    if args.markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(row["cells"]) + " |")
    else:
        table = Table(title="dynamic-quantized models, 16x16")
        for column in COLUMNS:
            table.add_column(column, justify="left" if column in COLUMNS[:3] else "right")
        for row in rows:
            table.add_row(*row["cells"])
        Console(width=200).print(table)
    failed = [" ".join(row["cells"][:3]) for row in rows if not row["exact"]]
    if failed:
        print(f"outputs differ from torch's: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
