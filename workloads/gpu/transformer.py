"""gpu-5: transformer models and attention.

A pre-norm transformer encoder learns to denoise synthetic token sequences: sequences walk
forward by 1-3 tokens (modulo the vocabulary), 15 % of the tokens are masked, and the model
predicts every original token, which it learns quickly (its loss falls well below ln of the
vocabulary). Self-attention is ``scaled_dot_product_attention`` (flash attention on CUDA). Of
every ten iterations, nine are training steps and one runs cross-attention in inference: a
shorter query sequence attends to the encoder's output.

The sequence length grows over a cycle of iterations from half the longest and falls back at
a fixed batch (a span kept narrow so that every step keeps the tensor cores busy), so device
memory rises and falls; the model's width and the batch follow from the free device
memory and the envelope. On CUDA: bf16 autocast, fused AdamW, and model FLOPs utilisation
(MFU) reported against the device's dense bf16 peak. On the CPU: a small model, float32.

The cross-attention iteration also checks the fused attention against a naive float64
softmax(QK^T / sqrt(d)) V on small cases: full, causal, and cross with a longer key sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from workloads.gpu.checks import product_tolerance, relative_error, sample_bytes
from workloads.gpu.device import (
    ScheduledWork,
    SizeSchedule,
    autocast,
    iteration_generator,
    record_mfu,
    run_on_device,
    synchronize,
)
from workloads.gpu.synthetic import random_walk_tokens
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed
from workloads.runtime.record import Totals

_CYCLE, _CROSS_ATTENTION = 10, 9  # the last iteration of every ten runs cross-attention
_MASKED = 0.15
# Share of the usable device memory (or host budget) the longest training step may take,
# model state included.
MEMORY_SHARE = 0.7
# Widths tried on CUDA, the widest first; attention heads are 128 wide (flash attention's best).
_CUDA_WIDTHS = (2048, 1536, 1024, 768, 512, 256)
_HEAD_WIDTH = 128


@dataclass(frozen=True)
class Geometry:
    vocabulary: int
    width: int
    heads: int
    layers: int
    batch: int
    sequence: tuple[int, int]  # shortest and longest sequence
    learning_rate: float
    warmup_steps: int

    def matmul_parameters(self) -> int:
        """Parameters in products: per layer Q, K, V, output (4 d^2) and the MLP (8 d^2),
        plus the output head."""
        return self.layers * 12 * self.width**2 + self.width * self.vocabulary

    def parameters(self) -> int:
        """All parameters: products, biases, norms, token and position embeddings."""
        d = self.width
        per_layer = 12 * d**2 + 13 * d
        embeddings = (self.vocabulary + 1 + self.sequence[1]) * d
        return self.layers * per_layer + embeddings + d * self.vocabulary + self.vocabulary + 2 * d

    def state_bytes(self) -> float:
        """float32 parameters, gradients, AdamW's two moments, and autocast's bf16 copies."""
        return 18.0 * self.parameters()

    def token_bytes(self) -> float:
        """Training activations per token, generous: ~64 bytes per unit of width per layer
        (float32 residual stream and norms, bf16 projections, MLP and attention output; flash
        attention keeps no T x T scores), the logits with their softmax and gradient."""
        return self.layers * 64.0 * self.width + 12.0 * self.vocabulary + 8.0 * self.width

    def training_flops(self, length: int) -> float:
        """Model FLOPs per token of a training step: 6 per product parameter, and attention's
        scores and weighted sum (12 x layers x length x width, non-causal)."""
        return 6.0 * self.matmul_parameters() + 12.0 * self.layers * length * self.width


def _fit(geometry: Geometry, room: float, batch_cap: int) -> Geometry | None:
    """The batch the longest step fits in ``room`` beside the model state, or None."""
    longest = geometry.sequence[1]
    free = room * MEMORY_SHARE - geometry.state_bytes()
    batch = int(min(batch_cap, free / (geometry.token_bytes() * longest)))
    return replace(geometry, batch=batch) if batch >= 1 else None


def cuda_geometry(room: float, scale: float) -> Geometry:
    """The widest model (4 layers, up to 2048 wide) whose state takes at most half the budget
    and whose longest step (up to 2048 tokens) fits beside it; the width shrinks with scale."""
    work = min(scale, 1.0)
    longest = max(256, round(2048 * math.sqrt(work) / 64) * 64)
    widest = max(256, round(2048 * math.sqrt(work) / _HEAD_WIDTH) * _HEAD_WIDTH)
    for width in (w for w in _CUDA_WIDTHS if w <= widest):
        geometry = Geometry(
            1024, width, width // _HEAD_WIDTH, 4, 0, (longest // 2, longest), 3e-4, 10
        )
        fitted = _fit(geometry, room, batch_cap=64)
        if fitted is not None and fitted.state_bytes() <= room * MEMORY_SHARE / 2:
            return fitted
    # Nothing fits: the smallest model; the schedule backs off, or the run ends out of memory.
    return Geometry(1024, 256, 2, 4, 1, (128, 256), 3e-4, 10)


def cpu_geometry(budget: float, scale: float) -> Geometry:
    """A 2-layer model 64 wide over sequences of up to 64 tokens (16 at tiny scales)."""
    longest = max(16, round(64 * math.sqrt(min(scale, 1.0)) / 8) * 8)
    geometry = Geometry(32, 64, 4, 2, 0, (longest // 4, longest), 3e-3, 0)
    return _fit(geometry, budget, batch_cap=16) or replace(geometry, batch=1)


class Attention(nn.Module):
    """Multi-head attention over ``scaled_dot_product_attention``: self-attention, or
    cross-attention when ``memory`` is given."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.output = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        source = x if memory is None else memory
        batch, length, width = x.shape
        head = width // self.heads
        query = self.query(x).view(batch, length, self.heads, head).transpose(1, 2)
        key_value = self.key_value(source).view(batch, source.shape[1], 2, self.heads, head)
        key, value = key_value.permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(query, key, value)
        return self.output(attended.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """A pre-norm block: self-attention, optionally cross-attention, then the MLP."""

    def __init__(self, width: int, heads: int, cross: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attention = Attention(width, heads)
        self.cross_norm = nn.LayerNorm(width) if cross else None
        self.cross = Attention(width, heads) if cross else None
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attention(self.norm(x))
        if self.cross is not None and self.cross_norm is not None:
            x = x + self.cross(self.cross_norm(x), memory)
        return x + self.mlp(self.mlp_norm(x))


class Encoder(nn.Module):
    def __init__(self, geometry: Geometry) -> None:
        super().__init__()
        width = geometry.width
        self.tokens = nn.Embedding(geometry.vocabulary + 1, width)  # the last id is the mask
        self.positions = nn.Embedding(geometry.sequence[1], width)
        self.blocks = nn.ModuleList(Block(width, geometry.heads) for _ in range(geometry.layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, geometry.vocabulary)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens))


def naive_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, causal: bool
) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V in float64, the causal mask aligned top-left as in torch."""
    query, key, value = query.double(), key.double(), value.double()
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if causal:
        allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1) @ value


def attention_errors(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> dict[str, float]:
    """Relative errors of the fused attention against the naive reference on small cases."""
    cases = {"self": (24, 24, False), "causal": (24, 24, True), "cross": (16, 40, False)}
    errors = {}
    for name, (queries, keys, causal) in cases.items():
        shape = (2, 4, queries, 64), (2, 4, keys, 64), (2, 4, keys, 64)
        query, key, value = (
            torch.randn(size, generator=generator, device=device).to(dtype) for size in shape
        )
        fused = F.scaled_dot_product_attention(query, key, value, is_causal=causal)
        errors[name] = relative_error(fused, naive_attention(query, key, value, causal))
    return errors


class Trainer(ScheduledWork[Geometry]):
    """Trains the encoder on masked tokens, and runs cross-attention, at a sequence length that
    rises and falls; keeps the encoder, the block and the optimizer across iterations."""

    trains = True
    schedule_name = "sequence"

    def __init__(self, ctx: Context, device: torch.device) -> None:
        super().__init__(ctx, device, cuda_geometry, cpu_geometry)
        cuda = device.type == "cuda"
        g = self.geometry
        self.schedule = SizeSchedule(ctx, device, *g.sequence, multiple=8, what="sequence length")
        self.model = Encoder(g).to(device)
        self.cross = Block(g.width, g.heads, cross=True).to(device).eval()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=g.learning_rate, weight_decay=0.01, fused=cuda
        )
        self.attention_dtype = torch.bfloat16 if cuda else torch.float32

    def _step(self, iteration: Iteration, length: int) -> IterationResult:
        g = self.geometry
        generator = iteration_generator(iteration, self.device)
        tokens = random_walk_tokens(generator, g.batch, length, g.vocabulary, self.device)
        result = IterationResult(size=length)
        cross = iteration.rotate(range(_CYCLE)) == _CROSS_ATTENTION
        if cross:
            self._cross_attention(tokens, generator, result)
        else:
            with timed(result, "train"):  # the loss's .item() synchronises
                masked = torch.rand(tokens.shape, generator=generator, device=self.device)
                inputs = tokens.masked_fill(masked < _MASKED, g.vocabulary)
                self.losses.append(self._train(inputs, tokens))
            result.add("train_tokens", tokens.numel())
            result.add("train_model_flops", tokens.numel() * g.training_flops(length))
            result.add("flops", tokens.numel() * g.training_flops(length))
        synchronize(self.device)
        result.add("tokens", tokens.numel())
        result.fingerprint_with(cross, length, sample_bytes(tokens))
        return result

    def _learning_rate(self) -> float:
        warmup = self.geometry.warmup_steps
        ramp = min(1.0, (len(self.losses) + 1) / warmup) if warmup else 1.0
        return self.geometry.learning_rate * ramp

    def _train(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self._learning_rate()
        with autocast(self.device):
            logits = self.model(inputs)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        self.observed_dtype = str(logits.dtype).removeprefix("torch.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.item())

    def _cross_attention(
        self, tokens: torch.Tensor, generator: torch.Generator, result: IterationResult
    ) -> None:
        """Queries a quarter as long attend to the encoder's output; then the small cases."""
        g = self.geometry
        queries = tokens[:, : max(1, tokens.shape[1] // 4)]
        with torch.inference_mode(), autocast(self.device):
            memory = self.model.features(tokens)
            self.cross(self.model.features(queries), memory)
        # Forward products only: the encoder over both sequences, the block's self-attention,
        # query, output and MLP (14 d^2) per query, keys and values (2 d^2) per memory token.
        per_token = 12 * g.layers * (tokens.numel() + queries.numel())
        per_token += 14 * queries.numel() + 2 * tokens.numel()
        result.add("flops", 2.0 * g.width**2 * per_token)
        result.add("inference_tokens", tokens.numel() + queries.numel())
        for case, error in attention_errors(generator, self.device, self.attention_dtype).items():
            tolerance = product_tolerance(self.device, self.attention_dtype, 40)
            result.check(
                f"fused attention equals a naive float64 reference ({case})",
                error <= tolerance,
                f"relative error {error:.2e}, tolerance {tolerance:.2e}",
            )

    def details(self) -> dict[str, object]:
        g = self.geometry
        sizes = {"vocabulary": g.vocabulary, "width": g.width, "heads": g.heads}
        shape = {"layers": g.layers, "batch": g.batch, "sequence_range": g.sequence}
        return {"geometry": sizes | shape | {"parameters": g.parameters()}}

    def report(self, totals: Totals) -> None:
        model_flops = Rate("train_model_flops", ["train"], "FLOP/s").value(totals)
        record_mfu(self.ctx, self.device, model_flops)
        super().report(totals)  # the training loss


RATES = {
    "tokens_per_s": Rate("tokens", (), "tokens/s"),
    "training_tokens_per_s": Rate("train_tokens", ["train"], "tokens/s"),
    "training_model_tflops": Rate("train_model_flops", ["train"], "TFLOP/s", 1e12),
    "estimated_tflops": Rate("flops", (), "TFLOP/s", 1e12),
}


def run(ctx: Context) -> None:
    run_on_device(ctx, Trainer, rates=RATES)
