"""The LOAD_PARAMS records of a layer in main memory, from its bias and requantization.

The record format (docs/isa.md, `hdl.isa.PARAM_RECORD_BYTES` bytes a channel) is what the
requantizer lanes load; the numbers in it come from the numeric spec (`sim.golden.requant`).
"""

import numpy as np

from hdl.isa import PARAM_RECORD_BYTES
from sim.golden.checks import require_array
from sim.golden.requant import RequantParams, decompose_multiplier


def pack_param_records(bias: np.ndarray, params: RequantParams) -> np.ndarray:
    """The LOAD_PARAMS records of N channels (docs/isa.md) as uint8 [N * 16].

    Each record: int32 bias (bytes 0-3), m24 (bytes 4-6) and shift (byte 7) from
    `sim.golden.requant.decompose_multiplier`, the int8 zero point (byte 8), the ReLU flag
    (byte 9), zeros.
    """
    bias = require_array("bias", bias, np.int32, 1)
    if not isinstance(params, RequantParams):
        raise TypeError(f"params must be a RequantParams, not {type(params)!r}")
    if bias.shape[0] != params.channels:
        raise ValueError(f"bias has {bias.shape[0]} channels, params {params.channels}")
    m24, shift = decompose_multiplier(params.multiplier)
    records = np.zeros((bias.shape[0], PARAM_RECORD_BYTES), np.uint8)
    records[:, 0:4] = bias.astype("<i4").view(np.uint8).reshape(-1, 4)
    records[:, 4:8] = (m24 | (shift << 24)).astype("<u4").view(np.uint8).reshape(-1, 4)
    records[:, 8] = np.int8(params.out_zero_point).view(np.uint8)
    records[:, 9] = int(params.relu)
    return records.reshape(-1)
