"""gpu-1: neural network training with dynamic batch sizes (CNN), then inference batches.

A small CNN learns a synthetic iteration that is learnable by design: each class has a fixed random
template, and an image is its class's template under heavy noise. The batch size grows over a
cycle of iterations and drops back (the caching allocator is emptied at each drop), so GPU
memory rises and falls within a bound derived from the free device memory and the envelope.
Of every ten iterations, eight are training steps and two are inference batches. On CUDA it
trains with bf16 autocast and channels-last tensors; on the CPU, sizes are reduced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workloads.gpu.device import (
    ScheduledWork,
    SizeSchedule,
    autocast,
    image_layout,
    place_model,
    run_on_device,
    synchronize,
)
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate
from workloads.runtime.record import Totals

_CLASSES = 10
_CYCLE = ("train",) * 8 + ("infer",) * 2  # what iterations do, in turn
_LEARNING_RATE = 2e-3
# Share of the usable device memory the largest batch's activations may take.
_DEVICE_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Geometry:
    image: int  # side of the square images
    widths: tuple[int, int, int]  # channels of the three convolutions
    batch: tuple[int, int]  # smallest and largest batch

    def activation_bytes(self) -> float:
        """Bytes a sample's activations and their gradients take (float32, ~4 copies each)."""
        w1, w2, w3 = self.widths
        side = self.image
        return 16.0 * (w1 * side**2 + w2 * (side / 2) ** 2 + w3 * (side / 4) ** 2)

    def forward_flops(self) -> float:
        """Multiply-adds x2 of the three 3x3 convolutions for one sample."""
        w1, w2, w3 = self.widths
        side = self.image
        return 2 * 9 * (3 * w1 * side**2 + w1 * w2 * (side / 2) ** 2 + w2 * w3 * (side / 4) ** 2)


def cuda_geometry(room: float, scale: float) -> Geometry:
    """64-pixel images, widths 64-128-256, the largest batch (up to 4096) from ``room``."""
    geometry = Geometry(64, (64, 128, 256), (32, 32))
    largest = min(4096, room * _DEVICE_MEMORY_SHARE / geometry.activation_bytes())
    return _with_batches(geometry, int(largest * min(scale, 1.0)))


def cpu_geometry(budget: float, scale: float) -> Geometry:
    """32-pixel images at scale 1 (down to 8 at tiny scales), widths 16-32-64."""
    side = 32 if scale >= 1 else max(8, round(32 * math.sqrt(scale) / 4) * 4)
    geometry = Geometry(side, (16, 32, 64), (8, 8))
    room = budget * _DEVICE_MEMORY_SHARE
    largest = min(128 * math.sqrt(min(scale, 1.0)), room / geometry.activation_bytes())
    return _with_batches(geometry, int(largest))


def _with_batches(geometry: Geometry, largest: int) -> Geometry:
    """``geometry`` with batches from an eighth of ``largest`` (at least 8) up to it."""
    largest = max(8, largest)
    return Geometry(geometry.image, geometry.widths, (max(4, largest // 8), largest))


def _model(geometry: Geometry) -> nn.Module:
    w1, w2, w3 = geometry.widths
    return nn.Sequential(
        nn.Conv2d(3, w1, 3, padding=1),
        nn.BatchNorm2d(w1),
        nn.ReLU(),
        nn.Conv2d(w1, w2, 3, stride=2, padding=1),
        nn.BatchNorm2d(w2),
        nn.ReLU(),
        nn.Conv2d(w2, w3, 3, stride=2, padding=1),
        nn.BatchNorm2d(w3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(w3, _CLASSES),
    )


class Trainer(ScheduledWork[Geometry]):
    """The iteration function: keeps the model and optimizer across iterations (runs inline)."""

    trains = True

    def __init__(self, ctx: Context, device: torch.device) -> None:
        super().__init__(ctx, device, cuda_geometry, cpu_geometry)
        self.schedule = SizeSchedule(ctx, device, *self.geometry.batch)
        self.model = place_model(_model(self.geometry), device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=_LEARNING_RATE)
        generator = torch.Generator().manual_seed(ctx.params.seed)
        side = self.geometry.image
        self.templates = torch.randn(_CLASSES, 3, side, side, generator=generator).to(device)
        self.accuracies: list[float] = []

    def _batch(self, iteration: Iteration, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(
            _CLASSES,
            (size,),
            generator=torch.Generator().manual_seed(iteration.seed * 1_000_003 + iteration.index),
        )
        noise = torch.Generator(device=self.device).manual_seed(iteration.seed + iteration.index)
        side = self.geometry.image
        images = torch.randn(size, 3, side, side, generator=noise, device=self.device)
        labels = labels.to(self.device)
        return image_layout(images + 0.8 * self.templates[labels]), labels

    def _train(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        with autocast(self.device):
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels)
        self.observed_dtype = str(logits.dtype).removeprefix("torch.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def _infer(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.model.eval()
        try:
            with torch.inference_mode(), autocast(self.device):
                predicted = self.model(images).argmax(dim=1)
            return float((predicted == labels).float().mean().item())
        finally:
            self.model.train()

    def _step(self, iteration: Iteration, size: int) -> IterationResult:
        phase = iteration.rotate(_CYCLE)
        images, labels = self._batch(iteration, size)
        result = IterationResult(size=size)
        result.fingerprint_with(phase, size, int(labels.sum()))
        if phase == "train":
            self.losses.append(self._train(images, labels))
            result.add("train_samples", size)
            result.add("flops", 3 * size * self.geometry.forward_flops())
        else:
            self.accuracies.append(self._infer(images, labels))
            result.add("inference_samples", size)
            result.add("flops", size * self.geometry.forward_flops())
        synchronize(self.device)
        result.add("samples", size)
        return result

    def details(self) -> dict[str, object]:
        g = self.geometry
        return {"geometry": {"image": g.image, "widths": g.widths, "batch_range": g.batch}}

    def report(self, totals: Totals) -> None:
        super().report(totals)  # the training loss
        if self.accuracies:
            self.ctx.metric("inference_accuracy", self.accuracies[-1], "fraction")


RATES = {
    "samples_per_s": Rate("samples", (), "samples/s"),
    "estimated_tflops": Rate("flops", (), "TFLOP/s", 1e12),
}


def run(ctx: Context) -> None:
    run_on_device(ctx, Trainer, rates=RATES)
