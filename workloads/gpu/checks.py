"""Verification shared by the GPU workloads: residuals against float64 references with
tolerances that follow the precision the device computed in, falling losses, and digests."""

from __future__ import annotations

import math

import torch

from workloads.runtime.context import Context

# A fall in loss is judged on the means of the first and last quarter of the steps: with
# fewer than 20 steps a quarter averages under 5 minibatch losses, whose noise at the first
# steps (a fresh model, learning-rate warm-up) can hide or fake the fall.
MIN_STEPS_TO_JUDGE = 20
# Unit roundoff of TF32, which CUDA uses for float32 matmuls and convolutions once allowed.
_TF32_EPS = 2.0**-10


def compute_eps(device: torch.device, dtype: torch.dtype) -> float:
    """Machine epsilon of the arithmetic ``device`` uses for a ``dtype`` product."""
    if dtype == torch.float32 and device.type == "cuda":
        return _TF32_EPS
    return float(torch.finfo(dtype).eps)


def product_tolerance(device: torch.device, dtype: torch.dtype, terms: int) -> float:
    """Bound on the relative Frobenius error of sums of ``terms`` products computed in
    ``dtype`` with float32 accumulation, from inputs exactly representable in ``dtype``:
    the rounding of the result, plus the accumulation error growing with sqrt(terms)."""
    accumulation = float(torch.finfo(torch.float32).eps) * math.sqrt(terms)
    return 4 * compute_eps(device, dtype) + 4 * accumulation


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    """||result - reference|| / ||reference|| (Frobenius), computed in float64 on the CPU."""
    result, reference = result.detach().double().cpu(), reference.detach().double().cpu()
    scale = float(torch.linalg.vector_norm(reference))
    return float(torch.linalg.vector_norm(result - reference)) / max(scale, 1e-300)


def check_decreased(ctx: Context, name: str, values: list[float]) -> None:
    """End-of-run check: the mean of the last quarter of ``values`` is below the first's.

    Inconclusive below ``MIN_STEPS_TO_JUDGE``: a starved run (little CPU, a short duration)
    has not failed, it has not made the progress this check needs."""
    if len(values) < MIN_STEPS_TO_JUDGE:
        steps = f"{len(values)} step" + ("" if len(values) == 1 else "s")
        ctx.inconclusive(name, f"{steps}; at least {MIN_STEPS_TO_JUDGE} needed")
        return
    window = len(values) // 4
    first, last = sum(values[:window]) / window, sum(values[-window:]) / window
    ctx.check(
        name,
        last < first,
        f"mean of the first {window} steps {first:.4f}, of the last {window} {last:.4f}",
    )


def report_training_loss(ctx: Context, losses: list[float]) -> None:
    """End-of-run check that the training loss decreased, and the final loss when there is one."""
    check_decreased(ctx, "training loss decreased", losses)
    if losses:
        ctx.metric("final_loss", losses[-1], "nats")


def sample_bytes(tensor: torch.Tensor, count: int = 64) -> bytes:
    """The first ``count`` values of a tensor as float32 bytes: feeds a digest cheaply, and is
    the same for the same seed and device."""
    return tensor.detach().reshape(-1)[:count].float().cpu().numpy().tobytes()
