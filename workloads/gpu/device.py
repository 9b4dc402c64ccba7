"""What every GPU workload shares (imported by GPU workloads only): choosing and preparing the
torch device, the sizes and memory layout that suit it, bf16 autocast, the device-memory bound,
the size schedule that rises and falls and backs off on out-of-memory errors, peak memory and
FLOP/s figures, and the run itself: a workload's ``run(ctx)`` is
``run_on_device(ctx, Work, rates=...)``, where ``Work`` is a ``DeviceWork`` (usually a
``ScheduledWork``: one step per iteration at the size its schedule gives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Generic, TypeVar

import torch
from torch import nn

from workloads.gpu.checks import report_training_loss
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.nvml import nvml_probe
from workloads.runtime.rates import Rate, timed
from workloads.runtime.record import Totals

T = TypeVar("T")
Model = TypeVar("Model", bound=nn.Module)

# Share of the free device memory a run may take, and what the CUDA context, cuBLAS and cuDNN
# hold outside the caching allocator (the envelope's gpu_memory covers both).
FREE_MEMORY_SHARE = 0.9
CONTEXT_RESERVE = 768 * 2**20

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, matched as
# substrings of torch's lower-cased device name, the most specific first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("gh200", 989.4),
    ("h200", 989.4),
    ("h100 pcie", 756.5),
    ("h100 nvl", 835.5),
    ("h100", 989.4),
    ("b200", 2250.0),
    ("a100", 312.0),
    ("l40s", 362.1),
    ("l4", 121.0),
    ("a10", 125.0),
)


class CudaUnavailable(RuntimeError):
    pass


def select_device(ctx: Context) -> torch.device:
    """CUDA when requested or available; the CPU otherwise, recorded as a fallback."""
    requested = ctx.params.device
    torch.manual_seed(ctx.params.seed)
    torch.set_num_threads(ctx.params.workers)
    if requested != "cpu" and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
        properties = torch.cuda.get_device_properties(device)
        # TF32 for float32 matmuls, convolutions and RNNs: the tensor cores' fast path.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        ctx.use_device("cuda", name=properties.name)
        ctx.note("gpu_memory_cap_bytes", _cap_allocator(ctx, device, properties.total_memory))
        probe = nvml_probe(f"GPU-{properties.uuid}")
        if probe is not None:
            ctx.add_probe(probe)
        return device
    if requested == "cuda":
        raise CudaUnavailable("--device cuda was requested but torch finds no CUDA device")
    fallback = None
    if requested == "auto":
        fallback = "no CUDA device: running on the CPU at reduced sizes"
    ctx.use_device("cpu", name="cpu", fallback=fallback)
    return torch.device("cpu")


def _cap_allocator(ctx: Context, device: torch.device, total: int) -> int:
    """Make the declared bound hard: beyond it the caching allocator raises out-of-memory
    (which the size schedule backs off from) instead of growing past the envelope."""
    cap = free_device_memory(device, ctx.workload.envelope.gpu_memory)
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
    return cap


def usable_device_memory(free: int, envelope: int) -> int:
    """Bytes the caching allocator may hold, given the device's free bytes and the envelope's
    gpu_memory (0: none declared)."""
    usable = free * FREE_MEMORY_SHARE
    if envelope:
        usable = min(usable, envelope - CONTEXT_RESERVE)
    return max(0, int(usable))


def free_device_memory(device: torch.device, envelope_bytes: int) -> int:
    """Bytes this run may allocate on ``device``: free memory, capped by the envelope."""
    if device.type != "cuda":
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    return usable_device_memory(free, envelope_bytes)


def device_geometry(
    ctx: Context,
    device: torch.device,
    cuda: Callable[[float, float], T],
    cpu: Callable[[float, float], T],
) -> T:
    """A workload's sizes for ``device``: ``cuda(room, scale)`` from the device memory this run
    may use on CUDA, ``cpu(memory budget, scale)`` on the CPU."""
    if device.type == "cuda":
        room = free_device_memory(device, ctx.workload.envelope.gpu_memory)
        return cuda(room, ctx.params.scale)
    return cpu(ctx.memory_budget, ctx.params.scale)


def place_model(model: Model, device: torch.device) -> Model:
    """``model`` on ``device``, channels-last on CUDA, where convolutions run fastest in it."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def image_layout(images: torch.Tensor) -> torch.Tensor:
    """Images in the layout ``place_model`` gives the model: channels-last on CUDA."""
    if images.device.type == "cuda":
        return images.contiguous(memory_format=torch.channels_last)
    return images


def batch_range(
    room: float, sample_bytes: float, cap: int, scale: float, *, minimum: int = 4
) -> tuple[int, int]:
    """The smallest and largest batch: the largest fits ``room`` at ``sample_bytes`` a sample,
    up to ``cap``, shrunk by the scale; the smallest is a quarter of it, so memory rises and
    falls fourfold over a cycle."""
    largest = max(minimum, int(min(cap, room / sample_bytes) * min(scale, 1.0)))
    return max(1, largest // 4), largest


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA (tensor cores); disabled on the CPU, where float32 is faster."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed_on(device: torch.device, result: IterationResult, operation: str) -> Iterator[None]:
    """``timed`` for work queued on ``device``: synchronised before the clock starts and before
    it stops, so the seconds are the work's own."""
    synchronize(device)
    with timed(result, operation):
        yield
        synchronize(device)


class SizeSchedule:
    """A problem size (batch, sequence length, matrix side) that grows over a cycle of
    iterations from ``low`` to ``high`` and falls back, so device memory rises and falls.

    At each fall the caching allocator is emptied, so reserved memory falls too. A CUDA
    out-of-memory error halves the ceiling and retries the step (recorded, never a crash); at
    the smallest size it ends the run as out-of-memory.
    """

    def __init__(
        self,
        ctx: Context,
        device: torch.device,
        low: int,
        high: int,
        *,
        multiple: int = 1,
        what: str = "batch",
    ) -> None:
        self.ctx, self.device, self.what = ctx, device, what
        self.multiple = multiple
        self.low, self.high = low, max(low, high)
        self.ceiling = self.high
        self.backoffs: list[int] = []  # the sizes that ran out of memory
        self._previous = 0

    def size(self, iteration: Iteration) -> int:
        wanted = min(self.ceiling, int(iteration.grow(self.low, self.high)))
        return max(self.low, wanted // self.multiple * self.multiple)

    def run(self, iteration: Iteration, step: Callable[[int], T]) -> T:
        """``step(size)`` at this iteration's size, backing off on out-of-memory errors."""
        while True:
            size = self.size(iteration)
            if size < self._previous:
                release_cached_memory(self.device)
            self._previous = size
            try:
                return step(size)
            except torch.OutOfMemoryError as error:
                reason = str(error).splitlines()[0] if str(error) else "out of memory"
            # Out of the except block, the failed step's frames and tensors are freed.
            self._back_off(size, reason)

    def _back_off(self, size: int, reason: str) -> None:
        release_cached_memory(self.device)
        if size <= self.low:
            raise MemoryError(f"out of GPU memory at the smallest {self.what} {size}: {reason}")
        self.backoffs.append(size)
        halved = max(self.low, size // 2 // self.multiple * self.multiple)
        self.ceiling = min(self.ceiling, halved)
        self.ctx.warn(f"out of GPU memory at {self.what} {size}: backing off to {self.ceiling}")

    def describe(self) -> dict[str, object]:
        return {
            "range": [self.low, self.high],
            "ceiling": self.ceiling,
            "oom_backoffs": len(self.backoffs),
        }


class DeviceWork:
    """A GPU workload's iteration function, run inline on the device by ``run_on_device`` and
    kept across iterations (a model, its optimizer). Its ``schedules`` are reported at the end
    with ``compute_dtype()`` (by default ``observed_dtype``, set by the steps); when it
    ``trains``, its ``losses`` are judged ("training loss decreased")."""

    trains = False

    def __init__(self, ctx: Context, device: torch.device) -> None:
        self.ctx, self.device = ctx, device
        self.losses: list[float] = []
        self.observed_dtype = ""  # of the results, e.g. bfloat16 under autocast on CUDA

    def __call__(self, iteration: Iteration) -> IterationResult:
        raise NotImplementedError

    @property
    def schedules(self) -> dict[str, SizeSchedule]:
        return {}

    def details(self) -> dict[str, object]:
        """Facts for the document's ``details``, noted before the first iteration."""
        return {}

    def report(self, totals: Totals) -> None:
        """End-of-run metrics and checks: the training loss when the work trains."""
        if self.trains:
            report_training_loss(self.ctx, self.losses)

    def compute_dtype(self) -> object:
        return self.observed_dtype


class ScheduledWork(DeviceWork, Generic[T]):
    """Device work with a ``geometry`` sized for the device (``device_geometry``): each
    iteration is one ``_step`` at the size the ``schedule`` the subclass sets gives (backing off
    on out-of-memory errors), reported under ``schedule_name``."""

    schedule: SizeSchedule
    schedule_name = "batch"

    def __init__(
        self,
        ctx: Context,
        device: torch.device,
        cuda_geometry: Callable[[float, float], T],
        cpu_geometry: Callable[[float, float], T],
    ) -> None:
        super().__init__(ctx, device)
        self.geometry = device_geometry(ctx, device, cuda_geometry, cpu_geometry)

    @property
    def schedules(self) -> dict[str, SizeSchedule]:
        return {self.schedule_name: self.schedule}

    def __call__(self, iteration: Iteration) -> IterationResult:
        return self.schedule.run(iteration, lambda size: self._step(iteration, size))

    def _step(self, iteration: Iteration, size: int) -> IterationResult:
        raise NotImplementedError


def run_on_device(
    ctx: Context,
    work: Callable[[Context, torch.device], DeviceWork],
    *,
    rates: Mapping[str, Rate],
) -> DeviceWork:
    """A GPU workload's ``run(ctx)``: select the device, build the ``work`` on it and note its
    details, run the iterations inline (one model on one device), then report: the work's
    figures (the training loss when it trains), and the device's use (the dtype it computed
    in, the size schedules, peak memory)."""
    device = select_device(ctx)
    built = work(ctx, device)
    for key, value in built.details().items():
        ctx.note(key, value)
    totals = ctx.run_iterations(built, processes=False, rates=rates)
    built.report(totals)
    record_device_use(ctx, device, built.compute_dtype(), built.schedules)
    return built


def release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def record_schedules(ctx: Context, schedules: dict[str, SizeSchedule]) -> None:
    """Note each schedule's range and back-offs, and their total as ``oom_backoffs``."""
    ctx.note("sizes", {name: schedule.describe() for name, schedule in schedules.items()})
    ctx.note("oom_backoffs", sum(len(schedule.backoffs) for schedule in schedules.values()))


def record_device_use(
    ctx: Context, device: torch.device, compute_dtype: object, schedules: dict[str, SizeSchedule]
) -> None:
    """At the end of a run: the dtype the device computed in, the size schedules and the peak
    device memory."""
    ctx.note("compute_dtype", compute_dtype)
    record_schedules(ctx, schedules)
    record_peak_memory(ctx, device)


def record_peak_memory(ctx: Context, device: torch.device) -> None:
    if device.type == "cuda":
        ctx.record_gpu_memory_peak(torch.cuda.max_memory_allocated(device))
        ctx.metric(
            "gpu_memory_allocated_peak", torch.cuda.max_memory_allocated(device) / 2**30, "GiB"
        )
        ctx.metric(
            "gpu_memory_reserved_peak", torch.cuda.max_memory_reserved(device) / 2**30, "GiB"
        )


def peak_bf16_flops(device_name: str) -> float | None:
    """The device's dense bf16 peak in FLOP/s, or None for a device not in the table."""
    name = device_name.lower()
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def record_mfu(ctx: Context, device: torch.device, model_flops_per_s: float | None) -> None:
    """Model FLOPs utilisation: model FLOP/s over the device's dense bf16 peak, on CUDA; on
    the CPU or an unknown device the metric is absent and ``details.mfu`` says why."""
    if device.type != "cuda":
        ctx.note("mfu", "not measured on the CPU")
        return
    name = torch.cuda.get_device_properties(device).name
    peak = peak_bf16_flops(name)
    if peak is None:
        ctx.note("mfu", f"no dense bf16 peak known for {name!r}")
        return
    ctx.note("mfu", f"model FLOP/s over the {peak / 1e12:g} TFLOP/s bf16 peak of {name}")
    utilisation = None if model_flops_per_s is None else model_flops_per_s / peak
    ctx.metric("model_flops_utilisation", utilisation, "fraction")


def iteration_generator(
    iteration: Iteration, device: torch.device, stream: int = 0
) -> torch.Generator:
    """A generator on ``device`` seeded by (seed, iteration, stream): the same data for the
    same seed and device, whichever order the iterations ran in."""
    seed = (iteration.seed * 1_000_003 + iteration.index) * 31 + stream
    return torch.Generator(device=device).manual_seed(seed % 2**63)
