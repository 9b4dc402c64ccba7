"""gpu-4: recurrent networks with LSTMs.

A multi-layer LSTM language model learns next-token prediction on synthetic sequences that walk
forward by 1-3 tokens (modulo the vocabulary): learnable by design, its loss falls from
ln(vocabulary) towards ln 3. The sequence length grows over a cycle of iterations and falls back
(the batch stays fixed), so device memory rises and falls within a bound derived from the free
device memory and the envelope. Of every ten iterations, eight train the LSTM, one runs a
bidirectional LSTM encoder and one a GRU, in inference.

On CUDA the recurrent layers run on cuDNN in float32 with TF32 tensor cores, kept out of
autocast (whose cuDNN RNN path casts to float16, which would need loss scaling); the output
layer runs under bf16 autocast. On the CPU: a small model, float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from workloads.gpu.checks import sample_bytes
from workloads.gpu.device import (
    ScheduledWork,
    SizeSchedule,
    autocast,
    iteration_generator,
    run_on_device,
    synchronize,
)
from workloads.gpu.synthetic import random_walk_tokens
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate

_CYCLE = 10
_BIDIRECTIONAL, _GRU = 8, 9  # positions in the cycle of the two inference iterations
# Share of the usable device memory (or host budget) the longest training step may take.
MEMORY_SHARE = 0.6


@dataclass(frozen=True)
class Geometry:
    vocabulary: int
    embedding: int
    hidden: int
    layers: int
    batch: int
    sequence: tuple[int, int]  # shortest and longest sequence
    learning_rate: float

    def token_bytes(self) -> float:
        """Training bytes per token: each layer's saved gates, states and output and their
        gradients (float32; 1.5 times the peak measured without cuDNN), the logits with their
        softmax and gradient, and the embedding."""
        recurrent = self.layers * 24 * self.hidden * 4
        return recurrent + 12.0 * self.vocabulary + 8.0 * self.embedding

    def state_bytes(self) -> float:
        """Parameters, gradients and Adam's two moments, float32."""
        return 16.0 * self.parameters()

    def parameters(self) -> int:
        recurrent = sum(
            4 * self.hidden * (self._input(layer) + self.hidden + 2) for layer in range(self.layers)
        )
        return recurrent + self.vocabulary * (2 * self.embedding + self.hidden + 1)

    def _input(self, layer: int) -> int:
        return self.embedding if layer == 0 else self.hidden

    def training_flops(self) -> float:
        """FLOPs per token of a training step: forward (the gates' products and the output
        layer) and a backward pass of twice that."""
        gates = sum(
            8 * self.hidden * (self._input(layer) + self.hidden) for layer in range(self.layers)
        )
        return 3.0 * (gates + 2 * self.hidden * self.vocabulary)


def _fit(geometry: Geometry, room: float, batch_cap: int, multiple: int) -> Geometry:
    """The batch the longest training step fits in ``room`` with the model's state, up to
    ``batch_cap``, in multiples of ``multiple``."""
    longest = geometry.sequence[1]
    free = max(0.0, room * MEMORY_SHARE - geometry.state_bytes())
    batch = int(min(batch_cap, free / (geometry.token_bytes() * longest)))
    batch = max(multiple, batch // multiple * multiple)
    return replace(geometry, batch=batch)


def cuda_geometry(room: float, scale: float) -> Geometry:
    """A 3-layer LSTM of 1024 units over sequences of 32-128 tokens, the batch (up to 256)
    from ``room``: cuDNN runs a kernel per layer and time step, so a wide batch keeps the GPU
    busy, and short sequences leave memory for it."""
    longest = max(32, round(128 * math.sqrt(min(scale, 1.0)) / 8) * 8)
    geometry = Geometry(512, 512, 1024, 3, 0, (longest // 4, longest), 2e-3)
    return _fit(geometry, room, batch_cap=256, multiple=8)


def cpu_geometry(budget: float, scale: float) -> Geometry:
    """A 2-layer LSTM of 64 units over sequences of up to 64 tokens (16 at tiny scales)."""
    longest = max(16, round(64 * math.sqrt(min(scale, 1.0)) / 8) * 8)
    geometry = Geometry(32, 32, 64, 2, 0, (longest // 4, longest), 1e-2)
    return _fit(geometry, budget, batch_cap=32, multiple=4)


class LanguageModel(nn.Module):
    def __init__(self, geometry: Geometry) -> None:
        super().__init__()
        self.embedding = nn.Embedding(geometry.vocabulary, geometry.embedding)
        self.lstm = nn.LSTM(geometry.embedding, geometry.hidden, geometry.layers, batch_first=True)
        self.head = nn.Linear(geometry.hidden, geometry.vocabulary)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        states = recurrent(self.lstm, self.embedding(tokens))
        return self.head(states)  # under autocast: bf16 on CUDA


def recurrent(layer: nn.RNNBase, inputs: torch.Tensor) -> torch.Tensor:
    """Run a recurrent layer in float32 outside autocast (TF32 on cuDNN)."""
    with torch.autocast(inputs.device.type, enabled=False):
        output, _state = layer(inputs.float())
    return output


class Trainer(ScheduledWork[Geometry]):
    """Trains the language model, and runs the two inference layers, at a sequence length
    that rises and falls; keeps them and the optimizer across iterations."""

    trains = True
    schedule_name = "sequence"

    def __init__(self, ctx: Context, device: torch.device) -> None:
        super().__init__(ctx, device, cuda_geometry, cpu_geometry)
        g = self.geometry
        self.schedule = SizeSchedule(ctx, device, *g.sequence, multiple=8, what="sequence length")
        self.model = LanguageModel(g).to(device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=g.learning_rate, fused=device.type == "cuda"
        )
        self.bidirectional = (
            nn.LSTM(g.embedding, g.hidden // 2, 2, batch_first=True, bidirectional=True)
            .to(device)
            .eval()
        )
        self.gru = nn.GRU(g.embedding, g.hidden, 2, batch_first=True).to(device).eval()

    def _step(self, iteration: Iteration, length: int) -> IterationResult:
        g = self.geometry
        generator = iteration_generator(iteration, self.device)
        tokens = random_walk_tokens(generator, g.batch, length + 1, g.vocabulary, self.device)
        result = IterationResult(size=length)
        position = iteration.rotate(range(_CYCLE))
        if position == _BIDIRECTIONAL:
            self._infer(self.bidirectional, tokens[:, :-1], result)
        elif position == _GRU:
            self._infer(self.gru, tokens[:, :-1], result)
        else:
            self.losses.append(self._train(tokens))
            result.add("train_tokens", g.batch * length)
            result.add("flops", g.batch * length * g.training_flops())
        synchronize(self.device)
        result.add("tokens", g.batch * length)
        result.fingerprint_with(position, length, sample_bytes(tokens))
        return result

    def _train(self, tokens: torch.Tensor) -> float:
        with autocast(self.device):
            logits = self.model(tokens[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
        self.observed_dtype = str(logits.dtype).removeprefix("torch.")  # of the head
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def _infer(self, layer: nn.RNNBase, tokens: torch.Tensor, result: IterationResult) -> None:
        with torch.inference_mode():
            output = recurrent(layer, self.model.embedding(tokens))
        name = "GRU" if isinstance(layer, nn.GRU) else "bidirectional LSTM"
        # Hidden states are gated tanh values (LSTM) or mixes of them (GRU): within [-1, 1],
        # give or take a rounding.
        largest = float(output.abs().max())
        result.check(
            "inference outputs are finite and within [-1, 1]",
            largest <= 1.0 + 1e-6,
            f"{name}: largest |h| {largest:.4f}",
        )
        result.add("flops", tokens.numel() * _inference_flops(layer))
        result.add("inference_tokens", tokens.numel())

    def details(self) -> dict[str, object]:
        g = self.geometry
        sizes = {"vocabulary": g.vocabulary, "embedding": g.embedding, "hidden": g.hidden}
        shape = {"layers": g.layers, "batch": g.batch, "sequence_range": g.sequence}
        return {"geometry": sizes | shape | {"parameters": g.parameters()}}

    def compute_dtype(self) -> object:
        recurrent = "float32 (TF32)" if self.device.type == "cuda" else "float32"
        return {"recurrent": recurrent, "head": self.observed_dtype}


def _inference_flops(layer: nn.RNNBase) -> float:
    """Forward FLOPs per token: every layer's and direction's gate products."""
    gates = 4 if isinstance(layer, nn.LSTM) else 3
    directions = 2 if layer.bidirectional else 1
    hidden, inputs = layer.hidden_size, layer.input_size
    flops = 0.0
    for index in range(layer.num_layers):
        width = inputs if index == 0 else hidden * directions
        flops += directions * 2 * gates * hidden * (width + hidden)
    return flops


RATES = {
    "tokens_per_s": Rate("tokens", (), "tokens/s"),
    "estimated_tflops": Rate("flops", (), "TFLOP/s", 1e12),
}


def run(ctx: Context) -> None:
    run_on_device(ctx, Trainer, rates=RATES)
