"""glitchflow_api: the public, validated API in front of datastore_logic.

uvicorn runs ``glitchflow_api:create_app`` as a factory; nothing is built at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from glitchflow_api.settings import Settings

SERVICE = "glitchflow_api"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app from ``settings`` (read from the environment when not given)."""
    from glitchflow_api.app import build_app
    from glitchflow_api.settings import Settings

    return build_app(settings if settings is not None else Settings())
