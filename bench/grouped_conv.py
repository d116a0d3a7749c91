"""Depthwise convolutions on the array: one GEMM per channel vs chunks of groups.

For the depthwise 3x3 layers of a MobileNetV2 at 3x64x64 (batch 1; channels, input size and
stride of each), the modeled cycles (`sim.perf.gemm_estimate`, int8 output, the default
16x16 configuration) of the two lowerings `host.offload` could use:

- per channel: C GEMMs of M = OH*OW patches x K = 9 by N = 1;
- chunked (`sim.golden.grouped_conv`, what `host.offload` does): ceil(C / 16) GEMMs of
  K = 16 * 9 by N = 16 with a block-diagonal weight.

Utilization is the layer's useful MACs (OH*OW * C * 9) over cycles x R x C MAC slots.

Run: ``python bench/grouped_conv.py`` (the cycle model only: seconds).
"""

import argparse
import math

from rich.console import Console
from rich.table import Table

from hdl.config import AccelConfig
from sim.golden.conv import conv_output_size
from sim.perf import gemm_estimate

#: (channels, input height = width, stride) of MobileNetV2's depthwise layers at 64x64 input.
LAYERS = [
    (32, 32, 1),
    (96, 32, 2),
    (144, 16, 1),
    (192, 8, 2),
    (384, 4, 1),
    (576, 4, 2),
    (960, 2, 1),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    config = AccelConfig(16, 16)
    table = Table(title=f"depthwise 3x3 on a {config.rows}x{config.cols} array (sim.perf)")
    for column in ("C", "in", "stride", "M", "per-channel cycles", "chunked cycles", "ratio"):
        table.add_column(column, justify="right")
    table.add_column("chunked utilization", justify="right")
    totals = [0, 0, 0]
    for channels, size, stride in LAYERS:
        oh, ow = conv_output_size((size, size), (3, 3), stride, 1)
        m = oh * ow
        per_channel = channels * gemm_estimate(m, 1, 9, config, requant=True).cycles
        per_chunk = min(channels, config.cols)
        chunks = math.ceil(channels / per_chunk)
        chunked = chunks * gemm_estimate(m, per_chunk, 9 * per_chunk, config, requant=True).cycles
        useful = m * channels * 9
        totals = [totals[0] + per_channel, totals[1] + chunked, totals[2] + useful]
        table.add_row(
            str(channels),
            f"{size}x{size}",
            str(stride),
            str(m),
            f"{per_channel:,}",
            f"{chunked:,}",
            f"{per_channel / chunked:.1f}x",
            f"{useful / (chunked * config.macs):.1%}",
        )
    table.add_row(
        "all",
        "",
        "",
        "",
        f"{totals[0]:,}",
        f"{totals[1]:,}",
        f"{totals[0] / totals[1]:.1f}x",
        f"{totals[2] / (totals[1] * config.macs):.1%}",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
