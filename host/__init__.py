"""Tessera host driver: quantize torch models, offload their layers to an accelerator, time them.

- `quantize`, `layer_params` (``host.quant``): torch.ao eager post-training quantization and the
  integer parameters of each layer;
- `Device` (``host.device``): an accelerator behind a transport (golden model or Verilator);
- `offload` (``host.offload``): a quantized model with its layers on a device, bit-exact;
- `baselines`, `time_model`, `Timing` (``host.baseline``): torch on the CPU and CUDA, timed.
"""

from host.baseline import Timing, baselines, time_model
from host.device import Device
from host.offload import offload
from host.quant import layer_params, quantize

__all__ = [
    "Device",
    "Timing",
    "baselines",
    "layer_params",
    "offload",
    "quantize",
    "time_model",
]
