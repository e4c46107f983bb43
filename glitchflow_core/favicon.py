"""The icon every service serves at ``/favicon.ico`` and ``/favicon.svg`` (no 404 in a browser)."""

from __future__ import annotations

from functools import cache
from importlib import resources

FAVICONS = {"favicon.ico": "image/x-icon", "favicon.svg": "image/svg+xml"}
"""File name -> media type."""
CACHE_CONTROL = "public, max-age=86400"


@cache
def favicon(name: str) -> tuple[bytes, str]:
    """The bytes and media type of the icon file ``name`` (a key of `FAVICONS`)."""
    return (resources.files("glitchflow_core") / "static" / name).read_bytes(), FAVICONS[name]
