"""The numeric spec as numpy golden models (see docs/numeric-spec.md).

- `gemm`: int8 x int8 -> int32 GEMM with two's-complement wrap, and the overflow-checked variant;
- `zeropoint`: quint8 <-> int8 mapping, bias quantization, zero-point folding;
- `requant`: torch's float32 requantization and the integer-only hardware form;
- `conv`: im2col lowering of Conv2d;
- `layers`: quantized Linear / Conv2d end to end;
- `sparse`: CSR and 2:4 compressed weights with sparse GEMM.
"""

from sim.golden.gemm import MAX_K_NO_OVERFLOW, gemm, gemm_checked
from sim.golden.requant import RequantParams, requantize_float, requantize_int

__all__ = [
    "MAX_K_NO_OVERFLOW",
    "RequantParams",
    "gemm",
    "gemm_checked",
    "requantize_float",
    "requantize_int",
]
