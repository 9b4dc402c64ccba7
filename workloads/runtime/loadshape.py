"""Load shapes (steady, ramp, wave, bursty) and the closed-loop duty cycle that follows them.

A shape maps seconds since the start of the run to a target busy fraction in (0, 1]. Every worker
runs its units of work through a DutyCycle, which sleeps after a unit just long enough for the
recent busy fraction to match the target, so intensity holds whatever the size of the units.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from workloads.runtime.choices import PROFILES

# The quiet part of ramp, wave and bursty shapes, as a fraction of the intensity.
_FLOOR = 0.1
# Idle seconds a worker may bank (after a stall) and spend later as extra busy time.
_MAX_CREDIT = 0.5
# The longest a pause goes without re-reading the load shape, and a pause too short to take.
_SLICE = 0.25
_NEGLIGIBLE = 1e-6


@dataclass(frozen=True)
class LoadShape:
    profile: str
    intensity: float  # percent, (0, 100]
    duration: float  # seconds the shape spans
    seed: int
    _bursts: tuple[tuple[float, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown load profile {self.profile!r}")
        object.__setattr__(self, "_bursts", self._plan_bursts() if self.profile == "bursty" else ())

    @property
    def wave_period(self) -> float:
        return min(max(self.duration / 3, 10.0), 120.0)

    def target(self, elapsed: float) -> float:
        """Target busy fraction at ``elapsed`` seconds into the run."""
        peak = self.intensity / 100.0
        if self.profile == "steady":
            return peak
        if self.profile == "ramp":
            progress = min(1.0, max(0.0, elapsed) / max(0.8 * self.duration, 1e-9))
            return peak * (_FLOOR + (1 - _FLOOR) * progress)
        if self.profile == "wave":
            phase = math.sin(2 * math.pi * elapsed / self.wave_period)
            return peak * (_FLOOR + (1 - _FLOOR) * (1 + phase) / 2)
        return peak if self._bursting(elapsed) else peak * _FLOOR

    def mean_target(self, start: float, end: float, steps: int = 64) -> float:
        """Average target over [start, end], by the midpoint rule."""
        if end <= start:
            return self.target(start)
        width = (end - start) / steps
        return sum(self.target(start + (i + 0.5) * width) for i in range(steps)) / steps

    def _plan_bursts(self) -> tuple[tuple[float, bool], ...]:
        # Alternating bursts and lulls with exponential lengths around a tenth of the run.
        rng = np.random.default_rng([self.seed, 0xB0B5])
        mean = min(max(self.duration / 10, 1.0), 30.0)
        segments, clock, busy = [], 0.0, True
        while clock < self.duration * 2 + mean:
            segments.append((clock, busy))
            clock += float(rng.exponential(mean)) + 0.2
            busy = not busy
        return tuple(segments)

    def _bursting(self, elapsed: float) -> bool:
        state = True
        for start, busy in self._bursts:
            if start > elapsed:
                break
            state = busy
        return state


class DutyCycle:
    """Sleeps between units of work so the busy fraction follows the load shape.

    Each iteration that takes b seconds at target fraction u owes b (1 - u) / u seconds of
    idleness. Time already spent idle since the last unit (overheads) pays part of the debt, and a
    sleep that overruns is credited to the next unit: the loop is closed, and exact for any size of
    unit. Credit is capped so a worker never bursts far above the shape after a stall.
    """

    def __init__(
        self,
        shape: LoadShape,
        origin: float,
        wait: Callable[[float], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shape, self._origin, self._wait, self._clock = shape, origin, wait, clock
        self._debt = 0.0
        self._mark = clock()

    def after_iteration(self, busy_seconds: float) -> float:
        """Account an iteration that took ``busy_seconds``; sleep as needed; return the sleep."""
        now = self._clock()
        idle = max(0.0, now - self._mark - busy_seconds)
        self._mark = now
        target = self._target(now)
        if target >= 0.999:
            self._debt = 0.0
            return 0.0
        self._debt = max(self._debt + busy_seconds * _idle_per_busy(target) - idle, -_MAX_CREDIT)
        while self._debt > _NEGLIGIBLE:
            # Pause in slices, re-reading the shape: a burst or a wave's rise starts on time
            # rather than after a pause owed to the quiet phase before it.
            stopped = self._wait(min(self._debt, _SLICE))
            current = self._clock()
            self._debt -= current - self._mark
            self._mark = current
            if stopped:
                break
            rescaled = self._target(current)
            if rescaled >= 0.999:
                self._debt = min(self._debt, 0.0)
            elif rescaled != target and self._debt > 0:
                self._debt *= _idle_per_busy(rescaled) / _idle_per_busy(target)
            target = rescaled
        return self._mark - now

    def _target(self, now: float) -> float:
        return self._shape.target(now - self._origin)


def _idle_per_busy(target: float) -> float:
    """Seconds of idleness each busy second owes at busy fraction ``target``."""
    return (1 - target) / target
