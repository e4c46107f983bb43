"""Byte sizes written the way people write them: ``2000``, ``64MiB``, ``1GB``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: int | float | str) -> int:
    """Return a size in bytes from ``2000``, ``"64MiB"``, ``"1.5GB"``; refuse negatives and junk.

    Parameters
    ----------
    value : int, float or str
        A number of bytes, or a number followed by a decimal (kB, MB, GB, TB) or binary
        (KiB, MiB, GiB, TiB) unit, case-insensitive.

    Raises
    ------
    ValueError
        When the value is negative, not a number or has an unknown unit.
    """
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes, not a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value}")
        return int(value)
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (examples: 2000, 64MiB, 1GB)")
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(
            f"unknown size unit {unit!r} in {value!r} (use B, kB, MB, GB, KiB, MiB, GiB)"
        )
    return int(float(number) * factor)


def format_size(nbytes: int) -> str:
    """A short human form of a byte count, e.g. ``64.0 MiB``."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
