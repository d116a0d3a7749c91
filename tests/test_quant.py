"""host.quantize runs torch's eager flow; extracted layers reproduce the torch model exactly."""

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq
from torch import nn

import host
from host.quant import extract_layer, layer_params
from sim.golden.layers import conv2d_forward, linear_forward
from sim.golden.zeropoint import dequantize_bias, quantize_bias, quint8_to_int8


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2, dilation=2),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 24),
        nn.ReLU(),
        nn.Linear(24, 10),
    )


def run_with_layer_io(qmodel, x, names):
    """Inputs and outputs (int8 domain) of each named quantized layer during one forward."""
    seen = {}
    modules = dict(qmodel.named_modules())
    handles = [
        modules[name].register_forward_hook(
            lambda _m, i, o, name=name: seen.__setitem__(
                name,
                (quint8_to_int8(i[0].int_repr().numpy()), quint8_to_int8(o.int_repr().numpy())),
            )
        )
        for name in names
    ]
    output = qmodel(x)
    for handle in handles:
        handle.remove()
    return output, seen


@pytest.mark.parametrize("engine", ["qnnpack", "x86"])
def test_quantized_cnn_layers_equal_golden(engine):
    torch.manual_seed(0)
    x = torch.randn(12, 1, 13, 13)
    qmodel = host.quantize(small_cnn(), [x[:6], x[6:]], engine=engine)
    assert torch.backends.quantized.engine == engine
    params = layer_params(qmodel, x)
    assert [p.kind for p in params.values()] == ["conv2d", "conv2d", "linear", "linear"]
    assert [p.requant.relu for p in params.values()] == [True, False, True, False]
    _, seen = run_with_layer_io(qmodel, x, params)
    for name, layer in params.items():
        layer_in, layer_out = seen[name]
        forward = conv2d_forward if layer.conv else linear_forward
        np.testing.assert_array_equal(forward(layer_in, layer), layer_out, err_msg=name)


@pytest.mark.parametrize("engine", ["qnnpack", "x86"])
def test_golden_chain_reproduces_the_whole_mlp(engine):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.randn(40, 64)
    qmodel = host.quantize(model, x, engine=engine)
    params = list(layer_params(qmodel, x).values())
    quant_stub = qmodel.quant
    activation = quint8_to_int8(quant_stub(x).int_repr().numpy())
    for layer in params:
        activation = linear_forward(activation, layer)
    torch_out = qmodel.module(quant_stub(x))
    np.testing.assert_array_equal(activation, quint8_to_int8(torch_out.int_repr().numpy()))


def test_biases_are_prerounded():
    torch.manual_seed(2)
    x = torch.randn(8, 16)
    qmodel = host.quantize(nn.Sequential(nn.Linear(16, 8)), x)
    layer = qmodel.module[0]
    in_scale = qmodel.quant(x).q_scale()
    scales = layer.weight().q_per_channel_scales().numpy()
    bias = layer.bias().detach().numpy()
    assert np.array_equal(
        dequantize_bias(quantize_bias(bias, in_scale, scales), in_scale, scales), bias
    )


def test_input_model_is_not_modified():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    host.quantize(model, torch.randn(3, 4))
    assert isinstance(model[0], nn.Linear) and isinstance(model[1], nn.ReLU)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (
            (nn.Linear(2, 2), torch.randn(1, 2)),
            {"engine": "onednn"},
            ValueError,
            r"^engine must be one of 'qnnpack', 'x86', not 'onednn'$",
        ),
        (
            ("model", torch.randn(1, 2)),
            {},
            TypeError,
            r"^model must be a torch\.nn\.Module, not <class 'str'>$",
        ),
        (
            (nn.Linear(2, 2), []),
            {},
            ValueError,
            r"^calibration_inputs is empty: give at least one batch$",
        ),
        (
            (nn.Linear(2, 2), torch.ones(1, 2, dtype=torch.int64)),
            {},
            TypeError,
            r"^calibration batch 0 must be a float torch\.Tensor, not torch\.int64$",
        ),
    ],
)
def test_quantize_refuses_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        host.quantize(*args, **kwargs)


def test_layer_params_refuses_a_float_model():
    with pytest.raises(ValueError, match=r"^the model holds no quantized Linear or Conv2d layer"):
        layer_params(nn.Sequential(nn.Linear(2, 2)), torch.randn(1, 2))


def test_extract_layer_refuses_unsupported_modules():
    with pytest.raises(
        TypeError,
        match=r"^expected a quantized Linear, Conv1d, Conv2d or ConvTranspose2d module, not "
        r"Linear$",
    ):
        extract_layer(nn.Linear(2, 2), host.quant.InputQParams(0.1, 0))


def test_extract_layer_keeps_groups_and_refuses_other_padding_modes():
    layer = extract_layer(nnq.Conv2d(4, 6, 3, groups=2), host.quant.InputQParams(0.1, 0))
    assert layer.conv.groups == 2 and layer.weight.shape == (6, 2 * 3 * 3)
    module = nnq.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
    with pytest.raises(
        ValueError, match=r"^only padding_mode='zeros' is supported, not 'reflect'$"
    ):
        extract_layer(module, host.quant.InputQParams(0.1, 0))
