"""Byte sizes as people write them (``2000``, ``1e11``, ``8MiB``, ``1GB``): pydantic ByteSize."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge
from pydantic import BeforeValidator, ByteSize, TypeAdapter


def _scientific(value: object) -> object:
    """``"1e11"`` as a number: `ByteSize` would read ``1`` with the unknown unit ``e11``."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes, not a boolean")
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if number.is_integer():
            return int(number)
    return value


Size = Annotated[ByteSize, BeforeValidator(_scientific)]
"""A settings or query field holding bytes."""

PositiveSize = Annotated[Size, Ge(1)]
"""A size of at least one byte."""

_SIZE: TypeAdapter[ByteSize] = TypeAdapter(Size)


def parse_size(value: int | float | str) -> int:
    """Bytes from ``2000``, ``"1e11"``, ``"64MiB"`` or ``"1.5GB"``.

    Raises
    ------
    ValueError
        (pydantic's ``ValidationError``) when the value is negative or not a size.
    """
    return int(_SIZE.validate_python(value))


def format_size(nbytes: int) -> str:
    """A short human form of a byte count, e.g. ``64.0 MiB``."""
    return ByteSize(nbytes).human_readable(separator=" ")
