"""qnnpack and fbgemm form the requantization multiplier differently; the golden model follows.

fbgemm (the x86 engine) computes M = fp32(fp32(sx * sw) / sy), qnnpack fp32(fp32(sx * sw) *
fp32(1 / sy)). They differ by an ulp for some scales, which changes an output only where
acc * M lies that close to a .5: one output in 32,768 of a ResNet-18 layer on random data
(found by bench/offload_zoo.py). Here, seeded scales where the two forms disagree on some
accumulator, and a 2-input quantized Linear / 1x1 Conv2d fed exactly that accumulator: the
golden layer (`host.quant.extract_layer` under the running engine) must equal torch on each.
"""

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq

from host.quant import InputQParams, extract_layer
from sim.golden.layers import conv2d_forward, linear_forward
from sim.golden.requant import float_multiplier

ENGINES = {"qnnpack": "qnnpack", "fbgemm": "x86"}
ACCUMULATORS = np.arange(1, 127 * 255 + 255, dtype=np.int64)  # 127 * a + b, a and b in [0, 255]


def disagreeing_cases(seed: int, count: int):
    """(sx, sw, sy, acc): scales where the two forms round some acc differently, and that acc."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        sx, sy = (float(v) for v in rng.uniform(1e-3, 5e-2, 2))
        sw = float(np.float32(rng.uniform(1e-4, 1e-2)))
        rounded = [
            np.rint(ACCUMULATORS.astype(np.float32) * float_multiplier(sx, [sw], sy, form)[0])
            for form in ("x86", "qnnpack")
        ]
        differ = np.nonzero((rounded[0] != rounded[1]) & (rounded[0] <= 255))[0]
        if differ.size:
            cases.append((sx, sw, sy, int(ACCUMULATORS[differ[0]])))
    return cases


@pytest.fixture(params=sorted(ENGINES))
def engine(request):
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = request.param
    yield request.param
    torch.backends.quantized.engine = previous


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_golden_follows_each_engines_multiplier_where_the_forms_disagree(engine, kind):
    weights = torch.tensor([[127.0, 1.0]])
    for sx, sw, sy, acc in disagreeing_cases(seed=3, count=40):
        module = nnq.Linear(2, 1) if kind == "linear" else nnq.Conv2d(2, 1, 1)
        weight = weights if kind == "linear" else weights.reshape(1, 2, 1, 1)
        module.set_weight_bias(torch.quantize_per_tensor(weight * sw, sw, 0, torch.qint8), None)
        module.scale, module.zero_point = sy, 0
        a, b = divmod(acc, 127)
        values = torch.tensor([[a, b]], dtype=torch.uint8)
        if kind == "conv":
            values = values.reshape(1, 2, 1, 1)
        qx = torch._make_per_tensor_quantized_tensor(values, sx, 0)
        expected = module(qx).int_repr().numpy().astype(np.int16) - 128
        layer = extract_layer(module, InputQParams(sx, 0))
        x = (values.numpy().astype(np.int16) - 128).astype(np.int8)
        forward = linear_forward if kind == "linear" else conv2d_forward
        np.testing.assert_array_equal(forward(x, layer), expected, err_msg=f"{(sx, sw, sy, acc)}")


def test_the_two_forms_do_disagree_and_unknown_engines_are_refused():
    sx, sw, sy, acc = disagreeing_cases(seed=3, count=1)[0]
    x86, qnnpack = (float_multiplier(sx, [sw], sy, form)[0] for form in ("x86", "qnnpack"))
    assert np.rint(np.float32(acc) * x86) != np.rint(np.float32(acc) * qnnpack)
    with pytest.raises(
        ValueError, match=r"engine must be one of \('x86', 'qnnpack'\), not 'onednn'"
    ):
        float_multiplier(0.1, [0.2], 0.3, "onednn")
