"""Byte sizes in Docker's notation: ``512m`` and ``2g`` are binary units, like ``docker run -m``."""

from __future__ import annotations

import re

MIB, GIB = 1 << 20, 1 << 30  # the one place these are spelled
_BINARY = {"": 1, "b": 1, "k": 1 << 10, "m": MIB, "g": GIB, "t": 1 << 40}
_DECIMAL = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS = {
    **_BINARY,
    **{f"{unit}ib": factor for unit, factor in _BINARY.items() if unit not in ("", "b")},
    **_DECIMAL,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value: str | int) -> int:
    """Parse ``1g``, ``512MiB``, ``1.5GB`` or ``1048576`` into bytes; raise ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: negative")
        return value
    match = _SIZE.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"invalid size {value!r} (use e.g. 512m, 2g, 1.5GiB or plain bytes)")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: float) -> str:
    """Human-readable binary size: ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
