"""gpu-3: image processing and convolutions (inference).

Batches of synthetic images (smooth random fields) pass through an image-processing front end
(Gaussian blur and Sobel gradients as fixed convolutions, unsharp masking) and then a small
convolutional encoder-decoder: 7x7, 5x5, 3x3 and 1x1 convolutions, max and average pooling,
batch and group normalisation, ReLU, GELU and SiLU, and two transposed convolutions. On CUDA it
runs in inference mode with bf16 autocast and channels-last tensors; the batch rises and falls
within a bound derived from the free device memory and the envelope. On the CPU: smaller images
and widths, float32.

Each iteration also checks one of the pipeline's convolutions (cycling through all of them)
against a float64 reference written as explicit sums over the kernel window, on a small crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workloads.gpu.checks import product_tolerance, relative_error, sample_bytes
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

# Share of the usable device memory (or host budget) the largest batch's activations may take.
MEMORY_SHARE = 0.6
_FILTERED_CHANNELS = 6  # sharpened RGB, gradient magnitude, and the two Sobel gradients
_CHECK_SIDE = 12  # side of the crop each convolution is checked on


@dataclass(frozen=True)
class Geometry:
    image: int  # side of the square images, a multiple of 8
    widths: tuple[int, int, int]
    batch: tuple[int, int]  # smallest and largest batch
    passes: int  # batches per iteration

    def stages(self) -> list[tuple[int, int]]:
        """(channels, side) of the input and of every stage's output, in order."""
        w1, w2, w3 = self.widths
        side = self.image
        return [
            (3, side),
            (_FILTERED_CHANNELS, side),
            (w1, side // 2),  # 7x7 stride-2 convolution
            (w1, side // 4),  # max pooling
            (w2, side // 4),  # 5x5 convolution
            (w3, side // 8),  # 3x3 stride-2 convolution, then 1x1
            (w2, side // 4),  # transposed convolution
            (w1, side // 2),  # transposed convolution
            (3, side // 2),  # 3x3 convolution
            (3, side // 4),  # average pooling
        ]

    def sample_bytes(self) -> float:
        """Bytes of one image at the peak of inference, which frees each stage's input once
        its output exists: the input, the filtered images and the two largest stages, all
        counted in float32 (the device holds bf16: about twice the measured peak)."""
        elements = [channels * side**2 for channels, side in self.stages()]
        return 4.0 * (elements[0] + elements[1] + 2 * max(elements[2:]))

    def flops(self) -> float:
        """Multiply-adds x2 of one image's convolutions (filters, network)."""
        w1, w2, w3 = self.widths
        side = self.image
        macs = (3 * 25 + 2 * 9) * side**2  # blur (depthwise 5x5) and Sobel (two 3x3)
        macs += _FILTERED_CHANNELS * w1 * 49 * (side / 2) ** 2
        macs += w1 * w2 * 25 * (side / 4) ** 2
        macs += w2 * w3 * 9 * (side / 8) ** 2 + w3 * w3 * (side / 8) ** 2
        macs += w3 * w2 * 16 * (side / 8) ** 2 + w2 * w1 * 16 * (side / 4) ** 2
        macs += w1 * 3 * 9 * (side / 2) ** 2
        return 2.0 * macs


def cuda_geometry(room: float, scale: float) -> Geometry:
    """224-pixel images, widths 64-128-256, four batches an iteration, the largest batch's
    activations within a share of ``room``."""
    geometry = Geometry(224, (64, 128, 256), (1, 1), passes=4)
    batch = batch_range(room * MEMORY_SHARE, geometry.sample_bytes(), 1024, scale, minimum=8)
    return Geometry(geometry.image, geometry.widths, batch, geometry.passes)


def cpu_geometry(budget: float, scale: float) -> Geometry:
    """32-pixel images at scale 1 (down to 16 at tiny scales), widths 16-32-64, one batch."""
    side = max(16, round(32 * math.sqrt(min(scale, 1.0)) / 8) * 8)
    geometry = Geometry(side, (16, 32, 64), (1, 1), passes=1)
    cap = max(8, int(64 * math.sqrt(min(scale, 1.0))))
    batch = batch_range(budget * MEMORY_SHARE, geometry.sample_bytes(), cap, 1.0, minimum=4)
    return Geometry(side, geometry.widths, batch, geometry.passes)


def _fixed_convolution(weight: torch.Tensor, groups: int = 1) -> nn.Conv2d:
    out_channels, group_channels, kernel, _ = weight.shape
    layer = nn.Conv2d(
        group_channels * groups,
        out_channels,
        kernel,
        padding=kernel // 2,
        groups=groups,
        bias=False,
    )
    layer.weight = nn.Parameter(weight, requires_grad=False)
    return layer


class ImageFilters(nn.Module):
    """Fixed filters: a 5x5 Gaussian blur (depthwise), unsharp masking, and the Sobel
    gradients of the luminance with their magnitude."""

    def __init__(self) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        gaussian = torch.outer(taps, taps) / 256.0
        self.blur = _fixed_convolution(gaussian.expand(3, 1, 5, 5).clone(), groups=3)
        sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.sobel = _fixed_convolution(torch.stack([sobel_x, sobel_x.T]).unsqueeze(1))
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        sharpened = images + 0.5 * (images - self.blur(images))
        gradients = self.sobel((images * self.luma).sum(dim=1, keepdim=True))
        magnitude = gradients.float().square().sum(dim=1, keepdim=True).sqrt()
        parts = (sharpened, magnitude, gradients)
        return torch.cat([part.to(images.dtype) for part in parts], dim=1)


def _pipeline(widths: tuple[int, int, int]) -> nn.Sequential:
    w1, w2, w3 = widths
    return nn.Sequential(
        ImageFilters(),
        nn.Conv2d(_FILTERED_CHANNELS, w1, 7, stride=2, padding=3),
        nn.BatchNorm2d(w1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(w1, w2, 5, padding=2),
        nn.GroupNorm(8, w2),
        nn.GELU(),
        nn.Conv2d(w2, w3, 3, stride=2, padding=1),
        nn.BatchNorm2d(w3),
        nn.SiLU(),
        nn.Conv2d(w3, w3, 1),
        nn.ReLU(),
        nn.ConvTranspose2d(w3, w2, 4, stride=2, padding=1),
        nn.BatchNorm2d(w2),
        nn.ReLU(),
        nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1),
        nn.GELU(),
        nn.Conv2d(w1, 3, 3, padding=1),
        nn.Sigmoid(),
        nn.AvgPool2d(2),
    )


def _taps(offset: int, stride: int, count: int) -> slice:
    """The input positions kernel tap ``offset`` meets over ``count`` outputs."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def reference_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int
) -> torch.Tensor:
    """A grouped 2-D convolution (cross-correlation) in float64, summed explicitly over the
    kernel window: independent of the library's convolution kernels."""
    x, weight = x.double().contiguous(), weight.double().contiguous()  # any memory format
    x = F.pad(x, (padding,) * 4)
    batch, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    groups = channels // group_channels
    out_h, out_w = (height - kh) // stride + 1, (width - kw) // stride + 1
    x = x.view(batch, groups, group_channels, height, width)
    weight = weight.view(groups, out_channels // groups, group_channels, kh, kw)
    out = x.new_zeros(batch, groups, out_channels // groups, out_h, out_w)
    for i in range(kh):
        for j in range(kw):
            window = x[..., _taps(i, stride, out_h), _taps(j, stride, out_w)]
            out += torch.einsum("ngchw,goc->ngohw", window, weight[..., i, j])
    out = out.reshape(batch, out_channels, out_h, out_w)
    return out if bias is None else out + bias.double().view(1, -1, 1, 1)


def reference_conv_transpose2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int
) -> torch.Tensor:
    """A transposed convolution in float64: every input pixel scatters its kernel-weighted
    value over the output, which is then cropped by the padding."""
    x, weight = x.double().contiguous(), weight.double().contiguous()  # any memory format
    batch, _channels, height, width = x.shape
    _in, out_channels, kh, kw = weight.shape
    full = x.new_zeros(batch, out_channels, (height - 1) * stride + kh, (width - 1) * stride + kw)
    for i in range(kh):
        for j in range(kw):
            contribution = torch.einsum("nchw,co->nohw", x, weight[:, :, i, j])
            full[..., _taps(i, stride, height), _taps(j, stride, width)] += contribution
    out_h, out_w = full.shape[2] - 2 * padding, full.shape[3] - 2 * padding
    out = full[..., padding : padding + out_h, padding : padding + out_w]
    return out if bias is None else out + bias.double().view(1, -1, 1, 1)


def _convolutions(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


class ConvolutionWork(ScheduledWork[Geometry]):
    """The iteration function: batches of images through the pipeline, run inline on the device."""

    def __init__(self, ctx: Context, device: torch.device) -> None:
        super().__init__(ctx, device, cuda_geometry, cpu_geometry)
        self.schedule = SizeSchedule(ctx, device, *self.geometry.batch)
        self.model = place_model(_pipeline(self.geometry.widths), device).eval()
        self.convolutions = _convolutions(self.model)
        self.check_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32

    def _images(self, generator: torch.Generator, count: int) -> torch.Tensor:
        """Smooth random fields: low-resolution noise upsampled, plus a little fine noise."""
        side = self.geometry.image
        coarse = torch.randn(
            count, 3, side // 8, side // 8, generator=generator, device=self.device
        )
        images = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
        fine = torch.randn(images.shape, generator=generator, device=self.device)
        return image_layout(torch.sigmoid(images + 0.1 * fine))

    def _step(self, iteration: Iteration, size: int) -> IterationResult:
        result = IterationResult(size=size)
        generator = iteration_generator(iteration, self.device)
        with torch.inference_mode(), autocast(self.device):
            for _ in range(self.geometry.passes):
                images = self._images(generator, size)
                output = self.model(images)
                result.fingerprint_with(sample_bytes(images))
        synchronize(self.device)
        self.observed_dtype = str(output.dtype).removeprefix("torch.")
        images_done = size * self.geometry.passes
        result.add("images", images_done)
        result.add("flops", images_done * self.geometry.flops())
        self._check_convolution(iteration, result)
        result.fingerprint_with(size, self.geometry.passes)
        return result

    def _check_convolution(self, iteration: Iteration, result: IterationResult) -> None:
        """One of the convolutions, by iteration, against the float64 reference on a crop."""
        layer = iteration.rotate(self.convolutions)
        generator = iteration_generator(iteration, self.device, stream=1)
        shape = (2, layer.in_channels, _CHECK_SIDE, _CHECK_SIDE)
        # Inputs and parameters rounded to the compute precision: the reference then sums
        # exactly the products the device summed, and only the summation may differ.
        x = torch.randn(shape, generator=generator, device=self.device)
        x = x.to(self.check_dtype).float()
        weight = layer.weight.detach().to(self.check_dtype)
        bias = None if layer.bias is None else layer.bias.detach().to(self.check_dtype)
        stride, padding = layer.stride[0], layer.padding[0]
        with torch.inference_mode(), autocast(self.device):
            output = layer(x)
        if isinstance(layer, nn.ConvTranspose2d):
            reference = reference_conv_transpose2d(x, weight, bias, stride, padding)
        else:
            reference = reference_conv2d(x, weight, bias, stride, padding)
        terms = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        error = relative_error(output, reference)
        tolerance = product_tolerance(self.device, self.check_dtype, terms)
        kind = type(layer).__name__
        result.check(
            "a convolution equals a float64 reference on a small case",
            error <= tolerance,
            f"{kind} {tuple(layer.weight.shape)}: relative error {error:.2e}, "
            f"tolerance {tolerance:.2e}",
        )

    def details(self) -> dict[str, object]:
        g = self.geometry
        geometry = {"image": g.image, "widths": g.widths, "batch_range": g.batch}
        return {"geometry": geometry | {"batches_per_iteration": g.passes}}


RATES = {
    "images_per_s": Rate("images", (), "images/s"),
    "estimated_tflops": Rate("flops", (), "TFLOP/s", 1e12),
}


def run(ctx: Context) -> None:
    run_on_device(ctx, ConvolutionWork, rates=RATES)
