"""Tessera host driver: quantize torch models, offload their layers to an accelerator, time them.

- `quantize`, `layer_params` (``host.quant``): torch.ao eager post-training quantization and the
  integer parameters of each layer;
- `Device` (``host.device``): an accelerator behind a transport (golden model or Verilator);
- `offload` (``host.offload``): a quantized model with its layers on a device, bit-exact, each
  GEMM on the dense array or the sparse engine by predicted cycles (``host.engine_choice``);
- `prune`, `weight_sparsity` (``host.prune``): a float model pruned (unstructured or 2:4) for the
  sparse engine, optionally fine-tuned;
- `baselines`, `time_model`, `Timing` (``host.baseline``): torch on the CPU and CUDA, timed.
"""

from host.baseline import Timing, baselines, time_model
from host.device import Device
from host.offload import offload
from host.prune import prune, weight_sparsity
from host.quant import layer_params, quantize

__all__ = [
    "Device",
    "Timing",
    "baselines",
    "layer_params",
    "offload",
    "prune",
    "quantize",
    "time_model",
    "weight_sparsity",
]
