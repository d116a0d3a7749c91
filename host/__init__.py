"""Tessera host driver: quantization of torch models (later also lowering and offload)."""

from host.quant import layer_params, quantize

__all__ = ["layer_params", "quantize"]
