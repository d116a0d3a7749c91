"""models: the digits split, the reference models, seeded training, the weight cache, and int8
accuracy after host.quantize within 1 percentage point of float."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
from torch import nn

import host
import models
import models.training as training
from models import (
    CNN,
    MLP,
    NAMES,
    DigitTransformer,
    MobileNet,
    ModelCacheWarning,
    ModelSpec,
    digits,
)

#: Float accuracy every trained model must reach on the test split.
FLOAT_ACCURACY = {"mlp": 0.90, "cnn": 0.90, "transformer": 0.85, "mobilenet": 0.90}


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """A private cache folder for this module's trainings ($TESSERA_CACHE)."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("tessera-cache")
        patch.setenv("TESSERA_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def trained(model_cache):
    """Each reference model trained once (into the private cache), with its int8 form."""
    result = {}
    for name in models.NAMES:
        model, data, info = models.load(name)
        qmodel = host.quantize(model, data.calibration_x, engine="qnnpack")
        result[name] = (model, data, info, qmodel)
    return result


def tiny_spec(**changes):
    """A spec that trains in a fraction of a second, for the cache and seeding tests."""
    spec = ModelSpec("tiny", MLP, {"in_features": 64, "hidden": 8}, epochs=1, batch_size=128)
    return dataclasses.replace(spec, **changes)


# ---- data -------------------------------------------------------------------------------------


def test_split_is_deterministic_stratified_and_disjoint():
    first, second = digits(), digits()
    for field in ("train_index", "test_index", "calibration_index"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)
    assert len(first.train_index) + len(first.test_index) == 1797
    assert set(first.train_index).isdisjoint(first.test_index)
    assert set(first.calibration_index) <= set(first.train_index)
    labels = first.train_y.new_tensor(np.concatenate([first.train_y, first.test_y]))
    totals = torch.bincount(labels, minlength=10)
    expected_test = torch.tensor([round(0.2 * int(n)) for n in totals])
    assert torch.equal(torch.bincount(first.test_y, minlength=10), expected_test)
    assert torch.equal(torch.bincount(first.calibration_y, minlength=10), torch.full((10,), 20))
    other = digits(seed=1)
    assert not np.array_equal(other.test_index, first.test_index)


def test_images_are_scaled_and_upscaled_deterministically():
    native, large = digits(), digits(28)
    assert native.train_x.shape == (1438, 1, 8, 8) and native.test_x.shape == (359, 1, 8, 8)
    assert large.train_x.shape == (1438, 1, 28, 28) and large.train_x.dtype == torch.float32
    for data in (native, large):
        assert float(data.train_x.min()) == 0.0 and float(data.train_x.max()) == 1.0
    np.testing.assert_array_equal(native.test_index, large.test_index)
    assert torch.equal(large.test_x, digits(28).test_x)
    upscaled = nn.functional.interpolate(native.test_x, size=28, mode="bilinear")
    assert torch.equal(large.test_x, upscaled)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"image_size": 4}, r"^image_size must be an integer >= 8, not 4$"),
        ({"test_fraction": 1.0}, r"^test_fraction must be in \(0, 1\), not 1\.0$"),
        ({"calibration_per_class": 0}, r"^calibration_per_class must be a positive integer"),
        ({"calibration_per_class": 1000}, r"^calibration_per_class must be at most \d+ "),
    ],
)
def test_digits_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        digits(**arguments)


# ---- models -----------------------------------------------------------------------------------


def test_forward_shapes():
    torch.manual_seed(0)
    mlp = MLP()
    assert mlp(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert mlp(torch.rand(3, 784)).shape == (3, 10)
    assert list(dict(mlp.named_children())) == ["flatten", "fc1", "relu", "fc2"]
    assert CNN()(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert CNN(28)(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert MobileNet()(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert MobileNet((4, 4, 8, 8), 3)(torch.rand(3, 1, 28, 28)).shape == (3, 3)
    transformer = DigitTransformer()
    assert transformer(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert DigitTransformer(tokens=16, token_features=4)(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(RuntimeError, match=r"^shape '\[3, 8, 8\]' is invalid for input of size"):
        transformer(torch.rand(3, 1, 28, 28))


def test_parameter_counts_match_the_docs():
    counts = {name: sum(p.numel() for p in models.build(name).parameters()) for name in NAMES}
    assert counts == {"mlp": 101_770, "cnn": 3_818, "transformer": 9_482, "mobilenet": 8_746}


@pytest.mark.parametrize(
    ("factory", "arguments", "message"),
    [
        (MLP, {"hidden": 0}, r"^hidden must be a positive integer, not 0$"),
        (CNN, {"channels": (8,)}, r"^channels must be two positive integers, not \(8,\)$"),
        (MobileNet, {"channels": (8, 0, 8, 8)}, r"^channels must be four positive integers, not"),
        (DigitTransformer, {"heads": 3}, r"^d_model must be a multiple of heads \(3\), not 32$"),
        (DigitTransformer, {"ffn": -1}, r"^ffn must be a positive integer, not -1$"),
    ],
)
def test_models_reject_bad_arguments(factory, arguments, message):
    with pytest.raises(ValueError, match=message):
        factory(**arguments)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "../x"}, r"^name must be letters, digits, '_', '\.' or '-', not '\.\./x'$"),
        ({"epochs": 0}, r"^epochs must be a positive integer, not 0$"),
        ({"lr": 0.0}, r"^lr must be > 0 and weight_decay >= 0, not 0\.0 and 0\.0$"),
        ({"threads": 0}, r"^threads must be None or a positive integer, not 0$"),
    ],
)
def test_spec_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_spec(**changes)


def test_load_rejects_an_unknown_name():
    with pytest.raises(ValueError, match=r"^model must be one of 'mlp', 'cnn', 'transformer', "):
        models.load("resnet")


# ---- training and cache -----------------------------------------------------------------------


def test_training_is_seeded_and_leaves_the_global_generator_alone():
    spec = tiny_spec()
    data = spec.data()
    state = torch.random.get_rng_state()
    first = models.train(models.build(spec), data, spec).state_dict()
    second = models.train(models.build(spec), data, spec).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    reseeded = models.train(models.build(tiny_spec(seed=1)), data, spec).state_dict()
    assert not torch.equal(first["fc1.weight"], reseeded["fc1.weight"])


def test_training_on_set_threads_restores_the_thread_count():
    spec = tiny_spec(threads=1)
    model, seen = models.build(spec), []
    model.register_forward_pre_hook(lambda _module, _inputs: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    models.train(model, spec.data(), spec)
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_cache_key_covers_the_hyper_parameters():
    keys = {
        tiny_spec().cache_key(),
        tiny_spec(epochs=2).cache_key(),
        tiny_spec(lr=1e-2).cache_key(),
        tiny_spec(seed=3).cache_key(),
        tiny_spec(threads=1).cache_key(),
        tiny_spec(kwargs={"in_features": 64, "hidden": 9}).cache_key(),
    }
    assert len(keys) == 6
    assert tiny_spec().cache_key() == tiny_spec().cache_key()


def test_second_load_reads_the_cache(model_cache, monkeypatch):
    spec = tiny_spec()
    model, _, info = models.load(spec)
    assert not info.from_cache and info.path.is_file()
    assert info.path.parent == model_cache / "models" and info.path.name.startswith("tiny-")

    def no_training(*_args, **_kwargs):
        raise AssertionError("load trained although a checkpoint exists")

    monkeypatch.setattr(training, "train", no_training)
    again, _, cached = models.load(spec)
    assert cached.from_cache and cached.float_accuracy == info.float_accuracy
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_retrain_overwrites_the_checkpoint(model_cache):
    spec = tiny_spec(seed=5)
    _, _, first = models.load(spec)
    _, _, second = models.load(spec, retrain=True)
    assert not second.from_cache and second.path == first.path


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"not a checkpoint"),
        lambda path: path.write_bytes(path.read_bytes()[:100]),
        lambda path: torch.save({"key": "another", "state_dict": {}}, path),
    ],
    ids=["garbage", "truncated", "other-key"],
)
def test_an_unusable_checkpoint_is_retrained_with_a_warning(model_cache, damage):
    spec = tiny_spec(seed=7)
    _, _, info = models.load(spec)
    damage(info.path)
    with pytest.warns(ModelCacheWarning, match=r"^cached model .* is unusable \(.*\); training"):
        _, _, again = models.load(spec)
    assert not again.from_cache
    _, _, healed = models.load(spec)
    assert healed.from_cache


# ---- int8 accuracy (the acceptance point) -----------------------------------------------------


@pytest.mark.parametrize("name", models.NAMES)
def test_int8_accuracy_within_one_point_of_float(trained, name):
    model, data, info, qmodel = trained[name]
    float_accuracy = models.accuracy(model, data.test_x, data.test_y)
    assert float_accuracy == info.float_accuracy
    assert float_accuracy > FLOAT_ACCURACY[name]
    int8_accuracy = models.accuracy(qmodel, data.test_x, data.test_y)
    assert abs(int8_accuracy - float_accuracy) <= 0.01, (float_accuracy, int8_accuracy)


@pytest.mark.parametrize("name", models.NAMES)
def test_every_linear_and_conv_is_quantized(trained, name):
    model, data, _, qmodel = trained[name]
    float_layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    quantized_layers = [m for m in qmodel.modules() if isinstance(m, nnq.Linear | nnq.Conv2d)]
    assert len(quantized_layers) == len(float_layers)
    assert not [m for m in qmodel.modules() if type(m) in (nn.Linear, nn.Conv2d)]
    fused = [m for m in qmodel.modules() if isinstance(m, nniq.LinearReLU | nniq.ConvReLU2d)]
    assert len(fused) == {"mlp": 1, "cnn": 2, "transformer": 1, "mobilenet": 7}[name]
    # host.layer_params extracts every quantized layer, as the offload path will.
    assert len(host.layer_params(qmodel, data.test_x[:4])) == len(float_layers)


def test_transformer_keeps_its_float_ops_float(trained):
    _, data, _, qmodel = trained["transformer"]
    assert type(qmodel) is DigitTransformer  # its own stubs: host.quantize did not wrap it
    norms = [m for m in qmodel.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 3 and all(type(m) is nn.LayerNorm for m in norms)
    seen = []
    handles = [m.register_forward_pre_hook(lambda _m, i: seen.append(i[0].dtype)) for m in norms]
    output = qmodel(data.test_x[:5])
    for handle in handles:
        handle.remove()
    assert seen == [torch.float32] * 3
    assert output.dtype == torch.float32 and not output.is_quantized


def test_mobilenet_convs_stay_depthwise_and_pointwise_in_int8(trained):
    _, _, _, qmodel = trained["mobilenet"]
    convs = [m for m in qmodel.modules() if isinstance(m, nnq.Conv2d)]
    assert [(m.groups, m.kernel_size[0], m.stride[0]) for m in convs] == [
        (1, 3, 1),  # stem
        (16, 3, 1),  # dw1, pw1
        (1, 1, 1),
        (32, 3, 2),  # dw2 (stride 2), pw2
        (1, 1, 1),
        (64, 3, 1),  # dw3, pw3
        (1, 1, 1),
    ]
