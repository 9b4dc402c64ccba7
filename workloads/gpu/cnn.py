"""gpu-1: neural network training with dynamic batch sizes (CNN), then inference batches.

A small CNN learns a synthetic task that is learnable by design: each class has a fixed random
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

from workloads.gpu.checks import check_decreased
from workloads.gpu.device import (
    SizeSchedule,
    autocast,
    free_device_memory,
    record_peak_memory,
    record_schedules,
    select_device,
    synchronize,
)
from workloads.runtime.context import Context
from workloads.runtime.tasks import Task, TaskResult

_CLASSES = 10
_CYCLE, _TRAINING_STEPS = 10, 8
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


def _geometry(ctx: Context, device: torch.device) -> Geometry:
    scale = ctx.params.scale
    if device.type == "cuda":
        geometry = Geometry(64, (64, 128, 256), (32, 32))
        room = free_device_memory(device, ctx.workload.envelope.gpu_memory) * _DEVICE_MEMORY_SHARE
        largest = int(min(4096, room / geometry.activation_bytes()) * min(scale, 1.0))
    else:
        side = 32 if scale >= 1 else max(8, round(32 * math.sqrt(scale) / 4) * 4)
        geometry = Geometry(side, (16, 32, 64), (8, 8))
        room = ctx.memory_budget * _DEVICE_MEMORY_SHARE
        largest = int(min(128 * math.sqrt(min(scale, 1.0)), room / geometry.activation_bytes()))
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


class Trainer:
    """The task function: keeps the model and optimizer across iterations (runs inline)."""

    def __init__(self, ctx: Context, device: torch.device) -> None:
        self.ctx, self.device = ctx, device
        self.geometry = _geometry(ctx, device)
        self.schedule = SizeSchedule(ctx, device, *self.geometry.batch)
        self.model = _model(self.geometry).to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=_LEARNING_RATE)
        generator = torch.Generator().manual_seed(ctx.params.seed)
        side = self.geometry.image
        self.templates = torch.randn(_CLASSES, 3, side, side, generator=generator).to(device)
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self.observed_dtype = ""  # of the logits: bfloat16 under autocast on CUDA

    def _batch(self, task: Task, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(
            _CLASSES,
            (size,),
            generator=torch.Generator().manual_seed(task.seed * 1_000_003 + task.index),
        )
        noise = torch.Generator(device=self.device).manual_seed(task.seed + task.index)
        side = self.geometry.image
        images = torch.randn(size, 3, side, side, generator=noise, device=self.device)
        labels = labels.to(self.device)
        images = images + 0.8 * self.templates[labels]
        if self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels

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

    def __call__(self, task: Task) -> TaskResult:
        training = task.index % _CYCLE < _TRAINING_STEPS
        return self.schedule.run(task, lambda size: self._step(task, size, training))

    def _step(self, task: Task, size: int, training: bool) -> TaskResult:
        images, labels = self._batch(task, size)
        result = TaskResult(size=size)
        result.fingerprint_with("train" if training else "infer", size, int(labels.sum()))
        if training:
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


def run(ctx: Context) -> None:
    device = select_device(ctx)
    trainer = Trainer(ctx, device)
    ctx.note(
        "geometry",
        {
            "image": trainer.geometry.image,
            "widths": trainer.geometry.widths,
            "batch_range": trainer.geometry.batch,
        },
    )
    totals = ctx.run_tasks(trainer, processes=False)
    ctx.metric("samples_per_s", totals.rate("samples"), "samples/s", primary=True)
    ctx.metric("estimated_tflops", totals.rate("flops", 1e12), "TFLOP/s")
    check_decreased(ctx, "training loss decreased", trainer.losses)
    if trainer.losses:
        ctx.metric("final_loss", trainer.losses[-1], "nats")
    if trainer.accuracies:
        ctx.metric("inference_accuracy", trainer.accuracies[-1], "fraction")
    ctx.note("compute_dtype", trainer.observed_dtype)
    record_schedules(ctx, {"batch": trainer.schedule})
    record_peak_memory(ctx, device)
