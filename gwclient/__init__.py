"""gwclient: stream gravitational-wave strain (GWOSC, local files, synthetic) to Glitchflow.

``gwclient.stream(series_or_dict, "http://127.0.0.1:8000")`` from Python, or the ``gwclient``
command; ``gwclient.fetch(channel, start, end, url=...)`` reads data back as gwpy objects
(``gwclient fetch ... --out FILE.h5`` on the command line). Importing this package is cheap:
gwpy and aiohttp are loaded only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gwclient.chunks import PlannedChunk, chunk_series, plan_chunks
    from gwclient.fetch import DataGap, FetchError, fetch, fetch_segments
    from gwclient.sender import RetryPolicy, Summary, stream, stream_async

__all__ = [
    "DataGap",
    "FetchError",
    "PlannedChunk",
    "RetryPolicy",
    "Summary",
    "chunk_series",
    "fetch",
    "fetch_segments",
    "plan_chunks",
    "stream",
    "stream_async",
]

_WHERE = {
    "PlannedChunk": "gwclient.chunks",
    "DataGap": "gwclient.fetch",
    "FetchError": "gwclient.fetch",
    "fetch": "gwclient.fetch",
    "fetch_segments": "gwclient.fetch",
    "chunk_series": "gwclient.chunks",
    "plan_chunks": "gwclient.chunks",
    "RetryPolicy": "gwclient.sender",
    "Summary": "gwclient.sender",
    "stream": "gwclient.sender",
    "stream_async": "gwclient.sender",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'gwclient' has no attribute {name!r}")
