"""GPU utilisation, memory and power from NVML (the nvidia-ml-py package), without root."""

from __future__ import annotations

import contextlib
from typing import Any


class NvmlProbe:
    """Reads one GPU; pass the CUDA device's UUID so CUDA_VISIBLE_DEVICES cannot mislead."""

    def __init__(self, uuid: str) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml: Any = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)

    def read(self) -> dict[str, float | None]:
        nvml, handle = self._nvml, self._handle
        power = None
        with contextlib.suppress(nvml.NVMLError):
            power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        return {
            "gpu_util_pct": float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            "gpu_memory_bytes": float(nvml.nvmlDeviceGetMemoryInfo(handle).used),
            "gpu_power_w": power,
        }


def nvml_probe(uuid: str) -> NvmlProbe | None:
    """A probe, or None where NVML or the package is missing (the run goes on without it)."""
    try:
        return NvmlProbe(uuid)
    except Exception:
        return None
