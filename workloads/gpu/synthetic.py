"""Synthetic data that a model can learn quickly, generated on the device from a seed."""

from __future__ import annotations

import torch

# Each token steps forward by 1, 2 or 3: the next token is one of three, known from the current.
_LARGEST_STEP = 3


def random_walk_tokens(
    generator: torch.Generator, batch: int, length: int, vocabulary: int, device: torch.device
) -> torch.Tensor:
    """Sequences that walk forward by 1-3 tokens at a time (modulo the vocabulary) from a random
    start: a model that learns the rule predicts the next token with loss ln 3 instead of the
    ln(vocabulary) of a guess, and a masked token from its neighbours almost exactly."""
    start = torch.randint(vocabulary, (batch, 1), generator=generator, device=device)
    steps = torch.randint(
        1, _LARGEST_STEP + 1, (batch, length - 1), generator=generator, device=device
    )
    return torch.cat([start, start + steps.cumsum(dim=1)], dim=1) % vocabulary
