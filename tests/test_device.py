"""host.device: the Device over its transports (golden ISA model, native Verilator harness)."""

import numpy as np
import pytest
from accel_checks import native_config, random_layer

from hdl.config import AccelConfig
from hdl.isa import ErrorCode, Instruction, Op
from host.device import Device, DeviceError, GoldenTransport, ProgramRun, Transport
from sim.golden.layers import linear_forward


@pytest.fixture(scope="module")
def devices():
    made = {}

    def get(backend, dataflow="ws"):
        if (backend, dataflow) not in made:
            made[backend, dataflow] = Device(backend, native_config(dataflow))
        return made[backend, dataflow]

    yield get
    for device in made.values():
        device.close()


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("backend", ["golden", "verilator"])
def test_chained_layers_equal_the_golden_layers(devices, backend, dataflow):
    """Two layers back to back, the first's output handed over in device memory."""
    device = devices(backend, dataflow)
    rng = np.random.default_rng(1)
    first, second = random_layer(rng, 23, 37, relu=True), random_layer(rng, 9, 23)
    x = rng.integers(-128, 128, (13, 37), dtype=np.int8)
    x[0, 0], x[-1, -1] = -128, 127
    runs = len(device.runs)
    hidden = device.linear(device.upload(x), first, name="fc1")
    out = device.linear(hidden, second, name="fc2")
    expected = linear_forward(linear_forward(x, first), second)
    np.testing.assert_array_equal(device.download(out), expected)
    fc1, fc2 = device.runs[runs:]
    assert (fc1.name, fc1.m, fc1.n, fc1.k) == ("fc1", 13, 23, 37)
    assert (fc2.name, fc2.m, fc2.n, fc2.k) == ("fc2", 13, 9, 23)
    assert fc1.cycles > 0 and fc1.counters["macs"] > 0
    assert fc1.cycle_model == ("rtl" if backend == "verilator" else "perf")


def test_golden_cycles_are_the_rtl_cycles_within_5_percent(devices):
    rng = np.random.default_rng(2)
    layer = random_layer(rng, 40, 50)
    x = rng.integers(-128, 128, (30, 50), dtype=np.int8)
    cycles = {}
    for backend in ("golden", "verilator"):
        device = devices(backend)
        device.linear(device.upload(x), layer)
        cycles[backend] = device.runs[-1].cycles
    assert abs(cycles["golden"] - cycles["verilator"]) <= 0.05 * cycles["verilator"]


def test_memory_is_reused_and_checked():
    device = Device("golden", AccelConfig(mem_bytes=4096))
    first = device.allocate(100)
    device.free(first)
    assert device.allocate(64) == first  # first fit reuses the freed region
    buffer = device.upload(np.arange(-8, 8, dtype=np.int8).reshape(4, 4))
    np.testing.assert_array_equal(device.download(buffer), np.arange(-8, 8).reshape(4, 4))
    with pytest.raises(ValueError, match=r"^bytes \[4090, 4106\) are outside main memory"):
        device.transport.write(4090, np.zeros(16, np.uint8))
    with pytest.raises(ValueError, match=r"main memory"):
        device.allocate(8192)
    with pytest.raises(ValueError, match=r"^nbytes must be a positive int, not 0$"):
        device.allocate(0)


@pytest.mark.parametrize("backend", ["golden", "verilator"])
def test_a_bad_program_raises_device_error_with_code_and_index(devices, backend):
    device = devices(backend)
    memory = device.transport.memory_bytes
    program = [
        Instruction(Op.LOAD_ACT, dram_addr=0, dram_stride=4, rows=2, spad_row=0, width=4),
        Instruction(Op.LOAD_WGT, dram_addr=memory - 4, dram_stride=4, rows=2, spad_row=0, width=4),
    ]
    with pytest.raises(DeviceError) as info:
        device.transport.execute(program)
    assert (info.value.code, info.value.index) == (ErrorCode.DRAM_RANGE, 1)


def test_shape_mismatch_and_bad_arguments_are_named():
    device = Device("golden", AccelConfig(rows=4, cols=4))
    layer = random_layer(np.random.default_rng(3), 5, 8)
    x = device.upload(np.zeros((2, 7), np.int8))
    with pytest.raises(ValueError, match=r"^fc: the input has 7 features, the layer expects 8$"):
        device.linear(x, layer, name="fc")
    with pytest.raises(TypeError, match=r"^x must be a DeviceBuffer"):
        device.linear(np.zeros((2, 8), np.int8), layer)
    with pytest.raises(ValueError, match=r"^unknown backend 'fpga'; available: 'golden', "):
        Device("fpga")
    with pytest.raises(TypeError, match=r"^config must be an AccelConfig, not <class 'dict'>$"):
        Device("golden", {"rows": 4})
    with pytest.raises(TypeError, match=r"^transport must be a host.device.Transport"):
        Device(transport=object())


def test_the_driver_runs_unchanged_over_any_transport():
    """A transport that only forwards (as a board's would) serves the same driver code."""

    class Forwarding(Transport):
        def __init__(self, config):
            self.config = config
            self.inner = GoldenTransport(config)
            self.programs = 0

        @property
        def memory_bytes(self):
            return self.inner.memory_bytes

        def write(self, address, data):
            self.inner.write(address, data)

        def read(self, address, count):
            return self.inner.read(address, count)

        def execute(self, program) -> ProgramRun:
            self.programs += 1
            return self.inner.execute(program)

    config = AccelConfig(rows=4, cols=4, mem_bytes=1 << 16)
    transport = Forwarding(config)
    device = Device(config=config, transport=transport)
    rng = np.random.default_rng(4)
    layer = random_layer(rng, 6, 10)
    x = rng.integers(-128, 128, (3, 10), dtype=np.int8)
    out = device.linear(device.upload(x), layer)
    np.testing.assert_array_equal(device.download(out), linear_forward(x, layer))
    assert transport.programs == 1
