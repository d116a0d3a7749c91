"""torchvision's ResNet-18, MobileNetV2 and ShuffleNetV2 x0.5 offloaded, each flow, 3x64x64.

For every model of `models.torchvision_zoo` (random init, seeded) and every quantization flow
(torch's eager and FX; PT2E with torchao's XNNPACK and X86Inductor quantizers), calibrated on 8
random images: one batch of 2 random images through `host.offload` on each backend given, the
output compared with torch's execution of the quantized model (the count of equal outputs and
the largest difference in output steps), and the offload summary: MACs on the accelerator and
on the CPU, the accelerator's share, cycles, utilization (the layers' own MACs over cycles x
R x C) and host<->device bytes.

Run: ``python bench/offload_zoo.py [--backend golden verilator] [--size 64] [--markdown]``
(the default 16x16 configuration; golden about a minute, verilator a few minutes more, and a
cold 16x16 Verilator build once). Exits 1 if an eager or FX output differs from torch's (those
flows are bit-exact; PT2E runs in float in torch, host/pt2e.py) or an eager, FX or XNNPACK
model keeps less than 95 % of its MACs off the CPU.
"""

import argparse
import sys
import time
import warnings

import torch
import torch.ao.nn.quantized as nnq
from rich.console import Console
from rich.table import Table

from hdl.config import AccelConfig
from host.device import Device
from host.offload import OffloadWarning, offload
from models.torchvision_zoo import FLOWS, ZOO, import_torchvision, quantized_model, random_images

TARGET_SHARE = 0.95
EXACT_FLOWS = ("eager", "fx")
COLUMNS = (
    "model",
    "flow",
    "backend",
    "outputs equal to torch",
    "max diff (steps)",
    "accelerator MACs",
    "CPU MACs",
    "share",
    "cycles",
    "utilization",
    "host->device B",
    "device->host B",
    "wall s",
)


def run(name: str, flow: str, backend: str, size: int, config: AccelConfig) -> dict:
    """One model, flow and backend: the row of the table."""
    qmodel = quantized_model(name, flow, random_images(8, size, seed=1))
    x = random_images(2, size, seed=2)
    started = time.perf_counter()
    with Device(backend, config) as device:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffloadWarning)
            offloaded = offload(qmodel, device)
        with torch.no_grad():
            ours, theirs = offloaded(x), qmodel(x)
        summary = offloaded.summary()
    step = _output_step(qmodel)
    largest = float((ours - theirs).abs().max()) / step if step else float("nan")
    return {
        "model": name,
        "flow": flow,
        "backend": backend,
        "equal": int((ours == theirs).sum()),
        "outputs": ours.numel(),
        "max_steps": largest,
        "summary": summary,
        "utilization": summary.accelerator_macs / (summary.accelerator_cycles * config.macs),
        "wall_s": time.perf_counter() - started,
    }


def _output_step(qmodel) -> float:
    """The quantization step of the model's float output: the scale of its last dequantize."""
    nodes = getattr(getattr(qmodel, "graph", None), "nodes", None)
    if nodes is not None:
        scales = [n.args[1] for n in nodes if "dequantize_per_tensor" in str(n.target)]
        if scales:
            return float(scales[-1])
    quantized = [m for m in qmodel.modules() if isinstance(m, nnq.Linear | nnq.Conv2d)]
    return float(quantized[-1].scale) if quantized else 0.0


def cells(row: dict) -> list[str]:
    summary = row["summary"]
    return [
        row["model"],
        row["flow"],
        row["backend"],
        f"{row['equal']:,} of {row['outputs']:,}",
        f"{row['max_steps']:.0f}",
        f"{summary.accelerator_macs:,}",
        f"{summary.cpu_macs:,}",
        f"{100 * summary.accelerator_share:.1f} %",
        f"{summary.accelerator_cycles:,}",
        f"{100 * row['utilization']:.1f} %",
        f"{summary.bytes_to_device:,}",
        f"{summary.bytes_from_device:,}",
        f"{row['wall_s']:.1f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", nargs="+", default=["golden"], choices=("golden", "verilator"))
    parser.add_argument("--size", type=int, default=64, help="image height = width (>= 32)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    import_torchvision()
    config = AccelConfig()
    rows = [
        run(name, flow, backend, args.size, config)
        for name in ZOO
        for flow in FLOWS
        for backend in args.backend
    ]
    if args.markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(cells(row)) + " |")
    else:
        table = Table(title=f"torchvision models, 2 images 3x{args.size}x{args.size}, 16x16")
        for column in COLUMNS:
            table.add_column(column, justify="left" if column in COLUMNS[:3] else "right")
        for row in rows:
            table.add_row(*cells(row))
        Console(width=200).print(table)
    failed = [
        f"{row['model']} {row['flow']} {row['backend']}"
        for row in rows
        if (row["flow"] in EXACT_FLOWS and row["equal"] != row["outputs"])
        or (row["flow"] != "pt2e-x86" and row["summary"].accelerator_share < TARGET_SHARE)
    ]
    if failed:
        print(f"FAILED (output differs or share < {TARGET_SHARE:.0%}): {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
