"""The GPU workloads gpu-1 ... gpu-6.

On any machine: tiny runs on the CPU (verified, schema-valid, reproducible), the CPU fallback,
the sizing rules against fake device-memory figures, the out-of-memory back-off, and the
references the checks compare with. On a CUDA machine (marked ``gpu``): the memory bound, bf16,
the NVML time series, MFU and a real out-of-memory back-off.
"""

from __future__ import annotations

import itertools
import math
import threading
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import TINY, assert_valid, only_document, run_cli, run_inline

torch = pytest.importorskip("torch")
F = torch.nn.functional

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

from workloads.gpu import convolution, lstm, matrix, transformer, vae  # noqa: E402
from workloads.gpu import device as gpu_device  # noqa: E402
from workloads.gpu.checks import (  # noqa: E402
    MIN_STEPS_TO_JUDGE,
    check_decreased,
    product_tolerance,
    relative_error,
)
from workloads.gpu.synthetic import random_walk_tokens  # noqa: E402
from workloads.manifest import get_manifest  # noqa: E402
from workloads.runtime.iterations import Iteration, IterationResult  # noqa: E402

pytestmark = pytest.mark.contract

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device; torch finds none")
GiB = 2**30

# The catalogue's GPU workloads; what every workload promises is tested in test_catalogue.py.
GPU_IDS = [workload.id for workload in get_manifest() if workload.category == "gpu"]
# 25 iterations: at least 20 training steps, what a falling loss needs to be judged.
TINY_RUN = [*TINY, "--iterations", "25", "--duration", "60", "--workers", "1"]


def rises_and_falls(sizes: list[float]) -> bool:
    pairs = list(itertools.pairwise(sizes))
    return any(b > a for a, b in pairs) and any(b < a for a, b in pairs)


# -- tiny runs on the CPU
@pytest.mark.parametrize("workload", GPU_IDS)
def test_on_the_cpu_sizes_rise_and_fall_in_float32_and_the_loss_is_judged(
    workload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [workload, *TINY_RUN, "--device", "cpu"]
    code, document = run_inline(monkeypatch, tmp_path / "a", *args, "--seed", "11")
    assert code == 0
    assert document["verification"]["passed"], document["verification"]
    assert document["verification"]["inconclusive"] == []  # 25 iterations: enough steps
    metrics = document["metrics"]
    reported = [metrics["primary"], *metrics["secondary"].values()]
    assert any(m["unit"] == "TFLOP/s" and m["value"] > 0 for m in reported)
    assert rises_and_falls(metrics["problem_sizes"]), metrics["problem_sizes"]
    assert document["environment"]["device"]["used"] == "cpu"
    assert document["details"]["oom_backoffs"] == 0
    assert "float32" in str(document["details"]["compute_dtype"])  # no autocast on the CPU
    code, other = run_inline(monkeypatch, tmp_path / "c", *args, "--seed", "12")
    assert code == 0
    assert other["verification"]["digest"] != document["verification"]["digest"]


@pytest.mark.skipif(CUDA, reason="a CUDA device is present: auto picks it")
@pytest.mark.parametrize("workload", GPU_IDS)
def test_auto_device_without_cuda_falls_back_to_the_cpu_and_says_so(
    workload: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, document = run_inline(
        monkeypatch, tmp_path / "r", workload, *TINY, "--iterations", "4", "--seed", "2"
    )
    assert code == 0
    assert document["environment"]["device"]["used"] == "cpu"
    assert "no CUDA device" in document["environment"]["device"]["fallback"]
    assert "no CUDA device" in capsys.readouterr().err
    assert "gpu_memory_cap_bytes" not in document["details"]
    assert "model_flops_utilisation" not in document["metrics"]["secondary"]


def test_mfu_is_absent_on_the_cpu_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, document = run_inline(
        monkeypatch, tmp_path / "r", "gpu-5", *TINY, "--iterations", "12", "--device", "cpu"
    )
    assert code == 0
    assert "model_flops_utilisation" not in document["metrics"]["secondary"]
    assert document["details"]["mfu"] == "not measured on the CPU"
    assert document["metrics"]["secondary"]["training_model_tflops"]["value"] > 0


# -- sizing from the device memory (fake free-memory figures)
def test_usable_device_memory_is_free_memory_capped_by_the_envelope() -> None:
    reserve = gpu_device.CONTEXT_RESERVE
    assert gpu_device.usable_device_memory(80 * GiB, 16 * GiB) == 16 * GiB - reserve
    assert gpu_device.usable_device_memory(4 * GiB, 16 * GiB) == int(4 * GiB * 0.9)
    assert gpu_device.usable_device_memory(10 * GiB, 0) == int(10 * GiB * 0.9)
    assert gpu_device.usable_device_memory(0, 8 * GiB) == 0


ROOMS = [2 * GiB, 4 * GiB, 7 * GiB, 15 * GiB, 60 * GiB]


def _sizing_context(budget: int, scale: float, gpu_memory: int = 0) -> Any:
    envelope = SimpleNamespace(gpu_memory=gpu_memory)
    return SimpleNamespace(
        memory_budget=budget,
        params=SimpleNamespace(scale=scale),
        workload=SimpleNamespace(envelope=envelope),
    )


def _sizes(kind: str) -> Any:
    return lambda memory, scale: (kind, memory, scale)


def test_device_geometry_sizes_from_the_memory_budget_on_the_cpu() -> None:
    ctx = _sizing_context(3 * GiB, 0.5)
    sizes = gpu_device.device_geometry(ctx, torch.device("cpu"), _sizes("cuda"), _sizes("cpu"))
    assert sizes == ("cpu", 3 * GiB, 0.5)


def test_device_geometry_sizes_from_the_free_device_memory_on_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gpu_device, "free_device_memory", lambda device, envelope: envelope // 2)
    ctx = _sizing_context(3 * GiB, 0.5, gpu_memory=8 * GiB)
    sizes = gpu_device.device_geometry(ctx, torch.device("cuda"), _sizes("cuda"), _sizes("cpu"))
    assert sizes == ("cuda", 4 * GiB, 0.5)


def test_on_the_cpu_models_and_images_keep_the_default_layout() -> None:
    model = gpu_device.place_model(torch.nn.Conv2d(3, 4, 3), torch.device("cpu"))
    images = gpu_device.image_layout(torch.zeros(2, 3, 8, 8))
    assert model.weight.is_contiguous() and images.is_contiguous()


@pytest.mark.parametrize("room", ROOMS)
def test_matrix_sizes_fit_the_room(room: int) -> None:
    plan = matrix.cuda_plan(room, 1.0)
    assert plan.dtype == torch.bfloat16
    for operation, sizes in plan.ranges.items():
        assert sizes.low < sizes.high, operation
        assert sizes.high % sizes.multiple == 0
        assert plan.peak_bytes(operation, sizes.high) <= matrix.MEMORY_SHARE * room, operation


def test_matrix_sizes_grow_with_the_room_up_to_their_caps() -> None:
    plans = [matrix.cuda_plan(room, 1.0) for room in ROOMS]
    for operation in plans[0].ranges:
        highs = [plan.ranges[operation].high for plan in plans]
        assert highs == sorted(highs), operation
    assert plans[-1].ranges["matmul"].high == 16384
    assert plans[-1].ranges["bmm"].high == 64
    assert plans[0].ranges["elementwise"].high < plans[-1].ranges["elementwise"].high
    small = matrix.cuda_plan(15 * GiB, 0.01)
    assert small.ranges["matmul"].high < plans[-2].ranges["matmul"].high


@pytest.mark.parametrize("room", ROOMS)
def test_batch_geometries_fit_the_room(room: int) -> None:
    for module in (convolution, vae):
        geometry = module.cuda_geometry(room, 1.0)
        low, high = geometry.batch
        assert 1 <= low < high
        assert high * geometry.sample_bytes() <= module.MEMORY_SHARE * room, module.__name__


@pytest.mark.parametrize("room", ROOMS)
def test_sequence_models_fit_the_room_beside_their_state(room: int) -> None:
    for module in (lstm, transformer):
        g = module.cuda_geometry(room, 1.0)
        shortest, longest = g.sequence
        assert shortest < longest and g.batch >= 1
        peak = g.state_bytes() + g.batch * longest * g.token_bytes()
        assert peak <= module.MEMORY_SHARE * room, (module.__name__, g)


class PeakBytes(TorchDispatchMode):
    """The peak bytes of live tensors created under it (a CPU stand-in for the CUDA
    allocator's peak): each new storage counts until it is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.storages:
                    self.storages.add(key)
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key, size)
        return out

    def _free(self, key: int, size: int) -> None:
        self.storages.discard(key)
        self.live -= size


def _bytes_per_unit(make_step: Any, small: int, large: int) -> float:
    """Peak bytes per unit of size (per sample or token), fixed costs cancelled out."""
    peaks = []
    for size in (small, large):
        step = make_step(size)
        step()  # a first pass creates lazily allocated state
        with PeakBytes() as tracker:
            step()
        peaks.append(tracker.peak)
    return (peaks[1] - peaks[0]) / (large - small)


def _bf16() -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _training_step(model: Any, loss: Any) -> Any:
    def step() -> None:
        with _bf16():
            value = loss()
        model.zero_grad(set_to_none=True)
        value.backward()

    return step


def test_activation_estimates_bound_the_measured_peak() -> None:
    """Each sizing estimate at least covers the peak measured on the CPU under bf16 autocast
    (the CUDA geometry's layers, smaller)."""
    torch.manual_seed(0)
    cpu = torch.device("cpu")

    g5 = transformer.Geometry(256, 256, 2, 2, 1, (64, 128), 1e-3, 0)
    encoder = transformer.Encoder(g5)

    def transformer_step(batch: int) -> Any:
        tokens = random_walk_tokens(torch.Generator(), batch, 128, 256, cpu)
        logits = lambda: encoder(tokens).flatten(0, 1).float()  # noqa: E731
        return _training_step(encoder, lambda: F.cross_entropy(logits(), tokens.flatten()))

    assert g5.token_bytes() >= _bytes_per_unit(transformer_step, 1, 3) / 128

    g4 = lstm.Geometry(128, 128, 256, 2, 1, (16, 32), 1e-3)
    language_model = lstm.LanguageModel(g4)

    def lstm_step(batch: int) -> Any:
        tokens = random_walk_tokens(torch.Generator(), batch, 33, 128, cpu)
        logits = lambda: language_model(tokens[:, :-1]).flatten(0, 1).float()  # noqa: E731
        targets = tokens[:, 1:].flatten()
        return _training_step(language_model, lambda: F.cross_entropy(logits(), targets))

    assert g4.token_bytes() >= _bytes_per_unit(lstm_step, 4, 12) / 32

    g6 = vae.Geometry(32, (32, 64, 128), 32, (1, 1))
    autoencoder = vae.VariationalAutoencoder(g6)

    def vae_step(batch: int) -> Any:
        images = torch.rand(batch, 3, 32, 32)

        def loss() -> Any:
            squared, kl = vae.losses(images, *autoencoder(images))
            return squared + kl

        return _training_step(autoencoder, loss)

    assert g6.sample_bytes() >= _bytes_per_unit(vae_step, 8, 24)

    g3 = convolution.Geometry(64, (32, 64, 128), (1, 1), 1)
    pipeline = convolution._pipeline(g3.widths).eval()

    def convolution_step(batch: int) -> Any:
        images = torch.rand(batch, 3, 64, 64)

        def step() -> None:
            with torch.inference_mode(), _bf16():
                pipeline(images)

        return step

    assert g3.sample_bytes() >= _bytes_per_unit(convolution_step, 4, 12)

    def elementwise_step(elements: int) -> Any:
        x = torch.randn(elements)
        return lambda: matrix.elementwise_math(x)

    per_element = _bytes_per_unit(elementwise_step, 2**16, 2**18)
    assert matrix.peak_bytes("elementwise", 1, torch.float32, 0) >= per_element + 4


def test_transformer_is_as_wide_as_the_room_allows() -> None:
    widths = [transformer.cuda_geometry(room, 1.0).width for room in ROOMS]
    assert widths == sorted(widths)
    big = transformer.cuda_geometry(15 * GiB, 1.0)  # the 16g envelope on a large GPU
    assert (big.width, big.heads, big.sequence[1]) == (2048, 16, 2048)
    assert big.batch >= 4
    assert transformer.cuda_geometry(2 * GiB, 1.0).width < 2048


def test_model_flops_follow_the_usual_count() -> None:
    g = transformer.cuda_geometry(15 * GiB, 1.0)
    dense = 6 * (g.layers * 12 * g.width**2 + g.width * g.vocabulary)
    assert g.training_flops(2048) == dense + 12 * g.layers * 2048 * g.width
    assert g.matmul_parameters() < g.parameters() < 1.1 * g.matmul_parameters()


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.1),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ],
)
def test_peak_bf16_table(name: str, tflops: float | None) -> None:
    peak = gpu_device.peak_bf16_flops(name)
    assert (peak / 1e12 if peak else None) == tflops


# -- the size schedule and its out-of-memory back-off
class FakeContext:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _task(index: int, seed: int = 5) -> Iteration:
    return Iteration(index, seed, 1.0, GiB, 0, 1, threading.Event(), math.inf)


def _schedule(low: int, high: int, multiple: int = 1) -> tuple[Any, FakeContext]:
    ctx = FakeContext()
    schedule = gpu_device.SizeSchedule(
        ctx,  # type: ignore[arg-type]
        torch.device("cpu"),
        low,
        high,
        multiple=multiple,
    )
    return schedule, ctx


def test_schedule_rises_and_falls_and_empties_the_cache_at_each_fall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    releases: list[int] = []
    monkeypatch.setattr(gpu_device, "release_cached_memory", lambda device: releases.append(1))
    schedule, _ = _schedule(16, 256, multiple=8)
    sizes = [schedule.run(_task(index), lambda size: size) for index in range(24)]
    assert all(16 <= size <= 256 and size % 8 == 0 for size in sizes)
    assert max(sizes) > 4 * min(sizes)
    falls = sum(b < a for a, b in itertools.pairwise(sizes))
    assert falls >= 2 and len(releases) == falls


def test_scheduled_work_steps_at_the_schedule_size() -> None:
    class Work(gpu_device.ScheduledWork[Any]):
        def _step(self, iteration: Iteration, size: int) -> IterationResult:
            return IterationResult(size=size)

    ctx = _sizing_context(GiB, 0.5)
    work = Work(ctx, torch.device("cpu"), _sizes("cuda"), _sizes("cpu"))
    assert work.geometry == ("cpu", GiB, 0.5)
    work.schedule, _ = _schedule(16, 256, multiple=8)
    reference, _ = _schedule(16, 256, multiple=8)
    for index in range(12):
        assert work(_task(index)).size == reference.size(_task(index))


def test_out_of_memory_halves_the_ceiling_and_retries() -> None:
    schedule, ctx = _schedule(8, 400)
    attempts: list[int] = []

    def step(size: int) -> int:
        attempts.append(size)
        if size > 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return size

    done = [schedule.run(_task(index), step) for index in range(16)]
    assert max(done) <= 100 and schedule.backoffs
    assert schedule.ceiling <= 100
    assert schedule.describe()["oom_backoffs"] == len(schedule.backoffs)
    assert all("out of GPU memory" in warning for warning in ctx.warnings)
    assert len(attempts) == len(done) + len(schedule.backoffs)


def test_out_of_memory_at_the_smallest_size_ends_the_run_as_out_of_memory() -> None:
    schedule, _ = _schedule(8, 64)

    def step(size: int) -> int:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(MemoryError, match="smallest batch 8"):
        schedule.run(_task(0), step)


def test_a_workload_backs_off_from_out_of_memory_and_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mm = torch.mm

    def limited_mm(a: Any, b: Any, **kwargs: Any) -> Any:
        if a.shape[0] > 64:  # as if products above 64 x 64 did not fit the device
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_mm(a, b, **kwargs)

    monkeypatch.setattr(torch, "mm", limited_mm)
    code, document = run_inline(
        monkeypatch, tmp_path / "r", "gpu-2", *TINY, "--iterations", "16", "--device", "cpu"
    )
    assert code == 0, document["error"]
    assert document["verification"]["passed"]
    assert document["details"]["oom_backoffs"] > 0
    assert document["details"]["sizes"]["matmul"]["ceiling"] <= 64


def test_out_of_memory_at_every_size_fails_as_out_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(torch, "mm", no_memory)
    code, document = run_inline(
        monkeypatch, tmp_path / "r", "gpu-2", *TINY, "--iterations", "4", "--device", "cpu"
    )
    assert code == 1
    assert_valid(document)
    assert (document["status"], document["stop_reason"]) == ("failed", "out-of-memory")


# -- the references the checks compare with
@pytest.mark.parametrize(
    ("kernel", "stride", "groups"), [(1, 1, 1), (3, 2, 1), (5, 1, 3), (7, 2, 1)]
)
def test_reference_convolution_equals_torch_in_float64(
    kernel: int, stride: int, groups: int
) -> None:
    generator = torch.Generator().manual_seed(kernel)
    x = torch.randn(2, 6, 11, 11, generator=generator, dtype=torch.float64)
    weight = torch.randn(6, 6 // groups, kernel, kernel, generator=generator, dtype=torch.float64)
    bias = torch.randn(6, generator=generator, dtype=torch.float64)
    padding = kernel // 2
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding, groups=groups)
    got = convolution.reference_conv2d(x, weight, bias, stride, padding)
    assert relative_error(got, expected) < 1e-12
    if kernel > 1:  # a flipped kernel (a convolution, not a correlation) is told apart
        flipped = convolution.reference_conv2d(x, weight.flip(-1, -2), bias, stride, padding)
        assert relative_error(flipped, expected) > 0.1


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(4, 2, 1), (3, 1, 1), (2, 2, 0)])
def test_reference_transposed_convolution_equals_torch_in_float64(
    kernel: int, stride: int, padding: int
) -> None:
    generator = torch.Generator().manual_seed(kernel)
    x = torch.randn(2, 6, 7, 7, generator=generator, dtype=torch.float64)
    weight = torch.randn(6, 4, kernel, kernel, generator=generator, dtype=torch.float64)
    bias = torch.randn(4, generator=generator, dtype=torch.float64)
    expected = F.conv_transpose2d(x, weight, bias, stride=stride, padding=padding)
    got = convolution.reference_conv_transpose2d(x, weight, bias, stride, padding)
    assert got.shape == expected.shape
    assert relative_error(got, expected) < 1e-12


def test_bf16_convolution_is_within_tolerance_and_a_wrong_one_is_not() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 64, 12, 12, generator=generator).bfloat16().float()
    weight = torch.randn(128, 64, 3, 3, generator=generator).bfloat16()
    reference = convolution.reference_conv2d(x, weight, None, 1, 1)
    tolerance = product_tolerance(torch.device("cpu"), torch.bfloat16, 64 * 9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        good = F.conv2d(x, weight.float(), padding=1)
        wrong = F.conv2d(x, weight.float().flip(-1), padding=1)
    assert good.dtype == torch.bfloat16
    assert relative_error(good, reference) < tolerance / 4
    assert relative_error(wrong, reference) > tolerance


def test_naive_attention_equals_torch_and_catches_a_missing_scale() -> None:
    generator = torch.Generator().manual_seed(4)
    query, key, value = (
        torch.randn(2, 3, n, 16, generator=generator, dtype=torch.float64) for n in (5, 7, 7)
    )
    for causal in (False, True):
        expected = F.scaled_dot_product_attention(query, key, value, is_causal=causal)
        got = transformer.naive_attention(query, key, value, causal)
        assert relative_error(got, expected) < 1e-12
    unscaled = F.scaled_dot_product_attention(query, key, value, scale=1.0)
    assert relative_error(unscaled, transformer.naive_attention(query, key, value, False)) > 0.05


def test_bf16_fused_attention_is_within_tolerance() -> None:
    cpu = torch.device("cpu")
    errors = transformer.attention_errors(torch.Generator().manual_seed(5), cpu, torch.bfloat16)
    tolerance = product_tolerance(cpu, torch.bfloat16, 40)
    assert set(errors) == {"self", "causal", "cross"}
    assert all(0 < error < tolerance / 4 for error in errors.values()), errors


def test_bf16_product_is_within_tolerance_and_a_wrong_one_is_not() -> None:
    generator = torch.Generator().manual_seed(6)
    a, b = (torch.randn(512, 512, generator=generator, dtype=torch.bfloat16) for _ in range(2))
    reference = a[:16].double() @ b[:, :16].double()
    tolerance = product_tolerance(torch.device("cpu"), torch.bfloat16, 512)
    assert relative_error((a @ b)[:16, :16], reference) < tolerance / 4
    assert relative_error((a @ b.T)[:16, :16], reference) > tolerance


def test_elementwise_math_matches_float64() -> None:
    x = torch.randn(4096, generator=torch.Generator().manual_seed(7))
    error = relative_error(matrix.elementwise_math(x), matrix.elementwise_math(x.double()))
    assert error < 1e-6


# -- on a CUDA device
def _envelope_gpu_memory(workload: str) -> int:
    return get_manifest().get(workload).envelope.gpu_memory


def _nvml_available() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    return True


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("workload", GPU_IDS)
def test_cuda_run_stays_in_bounds_uses_bf16_and_records_nvml(workload: str, tmp_path: Path) -> None:
    completed = run_cli(
        "run",
        workload,
        "--device",
        "cuda",
        "--duration",
        "40",
        "--seed",
        "3",
        "--results-dir",
        str(tmp_path),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    document = only_document(tmp_path)
    assert_valid(document)
    assert document["verification"]["passed"], document["verification"]
    assert document["environment"]["device"]["used"] == "cuda"
    secondary, details = document["metrics"]["secondary"], document["details"]
    envelope = _envelope_gpu_memory(workload)
    assert details["gpu_memory_cap_bytes"] <= envelope
    reserved = secondary["gpu_memory_reserved_peak"]["value"] * GiB  # rounded to 1e-6 GiB
    assert reserved <= details["gpu_memory_cap_bytes"] + 2**20
    assert secondary["gpu_memory_allocated_peak"]["value"] > 0
    assert document["resources"]["gpu_memory_peak_bytes"] > 0
    assert "bfloat16" in str(details["compute_dtype"])
    assert rises_and_falls(document["metrics"]["problem_sizes"])
    if _nvml_available():
        samples = document["timeseries"]["samples"]
        utilisation = [s["gpu_util_pct"] for s in samples if s["gpu_util_pct"] is not None]
        memory = [s["gpu_memory_bytes"] for s in samples if s["gpu_memory_bytes"] is not None]
        assert len(utilisation) >= len(samples) // 2 and max(utilisation) > 50
        assert max(memory) > min(memory)


@pytest.mark.gpu
@needs_cuda
def test_cuda_transformer_reports_mfu(tmp_path: Path) -> None:
    completed = run_cli(
        "run", "gpu-5", "--device", "cuda", "--duration", "40", "--results-dir", str(tmp_path)
    )
    assert completed.returncode == 0, completed.stderr
    document = only_document(tmp_path)
    name = torch.cuda.get_device_properties(0).name
    secondary = document["metrics"]["secondary"]
    if gpu_device.peak_bf16_flops(name) is None:
        assert "model_flops_utilisation" not in secondary
        assert name in document["details"]["mfu"]
    else:
        assert 0 < secondary["model_flops_utilisation"]["value"] < 1


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("workload", ["gpu-3", "gpu-6"])
def test_cuda_out_of_memory_backs_off_under_the_allocator_cap(
    workload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The allocator capped at an eighth of the memory the sizes are planned for: the largest
    # batches meet real out-of-memory errors, the smallest (a quarter of the largest) fit.
    def small_cap(ctx: Any, device: Any, total: int) -> int:
        cap = gpu_device.free_device_memory(device, ctx.workload.envelope.gpu_memory) // 8
        torch.cuda.set_per_process_memory_fraction(cap / total, device)
        return cap

    monkeypatch.setattr(gpu_device, "_cap_allocator", small_cap)
    try:
        code, document = run_inline(
            monkeypatch, tmp_path / "r", workload, "--device", "cuda", "--duration", "30"
        )
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert code == 0, document["error"]
    assert document["details"]["oom_backoffs"] > 0
    reserved = document["metrics"]["secondary"]["gpu_memory_reserved_peak"]["value"] * GiB
    assert reserved <= document["details"]["gpu_memory_cap_bytes"] + 2**20


# -- a falling loss needs enough steps to be judged
def _loss_check(values: list[float]) -> SimpleNamespace:
    recorded = SimpleNamespace(checks={}, inconclusive={})
    ctx = SimpleNamespace(
        check=lambda name, passed, detail="": recorded.checks.__setitem__(name, passed),
        inconclusive=recorded.inconclusive.__setitem__,
    )
    check_decreased(ctx, "loss decreased", values)
    return recorded


def test_too_few_steps_make_the_loss_check_inconclusive_not_failed() -> None:
    starved = _loss_check([3.0, 4.0, 5.0])  # rising, but three steps judge nothing
    assert starved.checks == {}
    assert starved.inconclusive == {"loss decreased": "3 steps; at least 20 needed"}
    assert _loss_check([1.0] * (MIN_STEPS_TO_JUDGE - 1)).inconclusive


def test_with_enough_steps_a_loss_that_does_not_fall_fails() -> None:
    rising = [float(step) for step in range(MIN_STEPS_TO_JUDGE)]
    assert _loss_check(rising).checks == {"loss decreased": False}
    assert _loss_check(rising[::-1]).checks == {"loss decreased": True}
