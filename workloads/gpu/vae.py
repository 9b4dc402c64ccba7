"""gpu-6: generative models: a variational autoencoder.

A convolutional VAE learns synthetic images built from a few smooth templates: each image is
the sigmoid of a random mix of eight fixed templates, so the data has eight true latent factors
and the VAE's reconstruction error falls as it learns them. The loss is the negative
log-likelihood of a Gaussian decoder (squared error summed over pixels, over twice its variance)
plus the KL divergence to the standard normal prior.
Of every ten iterations, eight are training steps, one samples images from the prior and
decodes interpolations between pairs of encodings, and one tests reconstructions of fresh
images. The batch rises and falls over a cycle within a bound derived from the free device
memory and the envelope. On CUDA: bf16 autocast and channels-last; on the CPU: smaller images
and widths, float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workloads.gpu.checks import check_decreased, sample_bytes
from workloads.gpu.device import (
    ScheduledWork,
    SizeSchedule,
    autocast,
    batch_range,
    image_layout,
    iteration_generator,
    place_model,
    run_on_device,
    synchronize,
)
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate
from workloads.runtime.record import Totals

_CYCLE, _SAMPLING, _RECONSTRUCTION = 10, 8, 9  # positions of the two inference iterations
_TEMPLATES = 8
_INTERPOLATION_STEPS = 8
_LEARNING_RATE = 3e-3
# The decoder's Gaussian variance: the reconstruction term is squared error / (2 x 0.05).
_DECODER_VARIANCE = 0.05
# Contrast of the template mix: pixels spread over most of (0, 1).
_CONTRAST = 4.0
# Share of the usable device memory (or host budget) the largest batch's activations may take.
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Geometry:
    image: int  # side of the square images, a multiple of 8
    widths: tuple[int, int, int]
    latent: int
    batch: tuple[int, int]  # smallest and largest batch

    @property
    def bottleneck(self) -> int:
        """Features of the encoder's last map (the widest channels at an eighth of the side)."""
        return self.widths[2] * (self.image // 8) ** 2

    def sample_bytes(self) -> float:
        """Training bytes of one image: every map of the encoder and decoder, 8 bytes an
        element (bf16 outputs and activations and their gradients; about twice the peak
        measured under autocast)."""
        w1, w2, w3 = self.widths
        side = self.image
        maps = 3 * 3 * side**2 + 2 * (w1 * (side / 2) ** 2 + w2 * (side / 4) ** 2)
        maps += 2 * w3 * (side / 8) ** 2
        return 8.0 * maps

    def forward_flops(self) -> float:
        """Multiply-adds x2 of the encoder's convolutions, the two linear layers and the
        decoder's transposed convolutions, for one image."""
        w1, w2, w3 = self.widths
        side = self.image
        convolutions = 3 * w1 * (side / 2) ** 2 + w1 * w2 * (side / 4) ** 2
        convolutions += w2 * w3 * (side / 8) ** 2
        macs = 2 * 16 * convolutions  # encoder and decoder mirror each other, 4x4 kernels
        macs += 3 * self.latent * self.bottleneck  # mean and log-variance, then the decoder's
        return 2.0 * macs


def cuda_geometry(room: float, scale: float) -> Geometry:
    """64-pixel images, widths 64-128-256, 128 latent factors, the batch from ``room``."""
    geometry = Geometry(64, (64, 128, 256), 128, (1, 1))
    batch = batch_range(room * MEMORY_SHARE, geometry.sample_bytes(), 2048, scale, minimum=16)
    return Geometry(geometry.image, geometry.widths, geometry.latent, batch)


def cpu_geometry(budget: float, scale: float) -> Geometry:
    """32-pixel images at scale 1 (16 at tiny scales), widths 16-32-64, 16 latent factors."""
    side = max(16, round(32 * math.sqrt(min(scale, 1.0)) / 8) * 8)
    geometry = Geometry(side, (16, 32, 64), 16, (1, 1))
    cap = max(16, int(64 * math.sqrt(min(scale, 1.0))))
    batch = batch_range(budget * MEMORY_SHARE, geometry.sample_bytes(), cap, 1.0, minimum=8)
    return Geometry(side, geometry.widths, geometry.latent, batch)


class VariationalAutoencoder(nn.Module):
    def __init__(self, geometry: Geometry) -> None:
        super().__init__()
        w1, w2, w3 = geometry.widths
        eighth = geometry.image // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w1, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1),
            nn.BatchNorm2d(w2),
            nn.SiLU(),
            nn.Conv2d(w2, w3, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(geometry.bottleneck, 2 * geometry.latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(geometry.latent, geometry.bottleneck),
            nn.Unflatten(1, (w3, eighth, eighth)),
            nn.SiLU(),
            nn.ConvTranspose2d(w3, w2, 4, stride=2, padding=1),
            nn.BatchNorm2d(w2),
            nn.SiLU(),
            nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.ConvTranspose2d(w1, 3, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.encoder(images).float().chunk(2, dim=1)
        return mean, log_variance.clamp(-10.0, 10.0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean, log_variance = self.encode(images)
        latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        return self.decoder(latent), mean, log_variance


def losses(
    images: torch.Tensor,
    reconstructed: torch.Tensor,
    mean: torch.Tensor,
    log_variance: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(squared error summed over pixels, KL divergence to N(0, I)), averaged over images."""
    squared = (reconstructed.float() - images.float()).square().flatten(1).sum(dim=1)
    kl = -0.5 * (1 + log_variance - mean.square() - log_variance.exp()).sum(dim=1)
    return squared.mean(), kl.mean()


class Trainer(ScheduledWork[Geometry]):
    """The iteration function: keeps the model and optimizer across iterations (runs inline)."""

    def __init__(self, ctx: Context, device: torch.device) -> None:
        super().__init__(ctx, device, cuda_geometry, cpu_geometry)
        self.schedule = SizeSchedule(ctx, device, *self.geometry.batch)
        self.model = place_model(VariationalAutoencoder(self.geometry), device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=_LEARNING_RATE, fused=device.type == "cuda"
        )
        self.templates = self._templates(ctx.params.seed)
        self.reconstruction_errors: list[float] = []  # per pixel, training steps
        self.kl: list[float] = []
        self.heldout_errors: list[float] = []

    def _templates(self, seed: int) -> torch.Tensor:
        """Smooth random fields, fixed by the seed: coarse noise upsampled."""
        side = self.geometry.image
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.randn(_TEMPLATES, 3, side // 8, side // 8, generator=generator)
        fields = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
        return fields.to(self.device)

    def _images(self, generator: torch.Generator, count: int) -> torch.Tensor:
        mix = torch.randn(count, _TEMPLATES, generator=generator, device=self.device)
        scale = _CONTRAST / math.sqrt(_TEMPLATES)
        mixed = torch.einsum("bk,kchw->bchw", mix, self.templates) * scale
        return image_layout(torch.sigmoid(mixed))

    def _step(self, iteration: Iteration, size: int) -> IterationResult:
        generator = iteration_generator(iteration, self.device)
        images = self._images(generator, size)
        result = IterationResult(size=size)
        position = iteration.rotate(range(_CYCLE))
        flops = self.geometry.forward_flops()
        if position == _SAMPLING:
            self._sample_and_interpolate(images, generator, result)
        elif position == _RECONSTRUCTION:
            self._test_reconstruction(images, result)
            result.add("flops", size * flops)
        else:
            self._train(images)
            result.add("train_samples", size)
            result.add("flops", 3 * size * flops)
        synchronize(self.device)
        result.add("samples", size)
        result.fingerprint_with(position, size, sample_bytes(images))
        return result

    def _train(self, images: torch.Tensor) -> None:
        with autocast(self.device):
            reconstructed, mean, log_variance = self.model(images)
        self.observed_dtype = str(reconstructed.dtype).removeprefix("torch.")
        squared, kl = losses(images, reconstructed, mean, log_variance)
        self.optimizer.zero_grad(set_to_none=True)
        (squared / (2 * _DECODER_VARIANCE) + kl).backward()
        self.optimizer.step()
        pixels = images[0].numel()
        self.reconstruction_errors.append(float(squared.item()) / pixels)
        self.kl.append(float(kl.item()))

    def _sample_and_interpolate(
        self, images: torch.Tensor, generator: torch.Generator, result: IterationResult
    ) -> None:
        """Decode draws from the prior, and straight paths between pairs of encodings."""
        size = images.shape[0]
        self.model.eval()
        try:
            with torch.inference_mode(), autocast(self.device):
                prior = torch.randn(
                    size, self.geometry.latent, generator=generator, device=self.device
                )
                samples = self.model.decoder(prior)
                pairs = max(1, size // (2 * _INTERPOLATION_STEPS))
                mean, _ = self.model.encode(images[: 2 * pairs])
                start, end = mean[:pairs], mean[pairs : 2 * pairs]
                weights = torch.linspace(0, 1, _INTERPOLATION_STEPS, device=self.device)
                path = torch.lerp(start[:, None], end[:, None], weights[None, :, None])
                frames = self.model.decoder(path.flatten(0, 1))
        finally:
            self.model.train()
        valid = bool(torch.isfinite(samples).all() and torch.isfinite(frames).all())
        result.check("decoded samples and interpolations are finite", valid)
        decoded = samples.shape[0] + frames.shape[0]
        result.add("decoded_images", decoded)
        result.add("flops", decoded * self.geometry.forward_flops() / 2)

    def _test_reconstruction(self, images: torch.Tensor, result: IterationResult) -> None:
        """Reconstruct fresh images from their mean encodings; record the error per pixel."""
        self.model.eval()
        try:
            with torch.inference_mode(), autocast(self.device):
                mean, _ = self.model.encode(images)
                reconstructed = self.model.decoder(mean)
        finally:
            self.model.train()
        error = float((reconstructed.float() - images).square().mean())
        self.heldout_errors.append(error)
        result.check("held-out reconstructions are finite", math.isfinite(error), f"{error:.4g}")

    def details(self) -> dict[str, object]:
        g = self.geometry
        images = {"image": g.image, "widths": g.widths, "latent": g.latent}
        return {"geometry": images | {"batch_range": g.batch}}

    def report(self, totals: Totals) -> None:
        errors, ctx = self.reconstruction_errors, self.ctx
        check_decreased(ctx, "reconstruction error decreased", errors)
        if errors:
            ctx.metric("final_reconstruction_mse", errors[-1], "per pixel")
            ctx.metric("final_kl", self.kl[-1], "nats")
        if self.heldout_errors:
            ctx.metric("heldout_reconstruction_mse", self.heldout_errors[-1], "per pixel")


RATES = {
    "samples_per_s": Rate("samples", (), "samples/s"),
    "estimated_tflops": Rate("flops", (), "TFLOP/s", 1e12),
}


def run(ctx: Context) -> None:
    run_on_device(ctx, Trainer, rates=RATES)
