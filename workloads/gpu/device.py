"""Choosing and preparing the torch device for a GPU workload (imported by GPU workloads only)."""

from __future__ import annotations

import torch

from workloads.runtime.context import Context
from workloads.runtime.nvml import nvml_probe


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
        # TF32 for float32 matmuls and convolutions: the tensor cores' fast path.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        ctx.use_device("cuda", name=properties.name)
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


def free_device_memory(device: torch.device, envelope_bytes: int) -> int:
    """Bytes this run may allocate on ``device``: free memory, capped by the envelope."""
    if device.type != "cuda":
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    return int(min(free * 0.9, envelope_bytes or free))


def record_peak_memory(ctx: Context, device: torch.device) -> None:
    if device.type == "cuda":
        ctx.resources["gpu_memory_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        ctx.metric(
            "gpu_memory_allocated_peak", torch.cuda.max_memory_allocated(device) / 2**30, "GiB"
        )
        ctx.metric(
            "gpu_memory_reserved_peak", torch.cuda.max_memory_reserved(device) / 2**30, "GiB"
        )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
