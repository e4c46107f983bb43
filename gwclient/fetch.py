"""Read strain back from Glitchflow as gwpy objects, like ``TimeSeries.fetch_open_data`` for GWOSC.

``fetch("H1:GWOSC-16KHZ_R1_STRAIN", 968654552, 968654553, url="http://127.0.0.1:8000")`` asks the
API's ``GET /data`` (JSON) and returns a `gwpy.timeseries.TimeSeries`; a list of channels gives a
`TimeSeriesDict`. The samples come back bit-exact as they were streamed.

Gaps are never filled silently: a range whose samples are not contiguous raises `DataGap` (which
names the gaps), unless ``pad=`` is given, then the gaps *between* segments are filled with that
value (gwpy's ``TimeSeriesList.join(pad=...)``); the answer still starts at the first sample and
ends after the last one. `fetch_segments` returns the segments as a `TimeSeriesList` as they are.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from glitchflow_core.retry import RetryPolicy
from gwclient.cli import DEFAULT_URL
from gwclient.sender import TOKEN_ENV

if TYPE_CHECKING:
    from gwpy.timeseries import TimeSeries, TimeSeriesDict, TimeSeriesList

URL_ENV = "GLITCHFLOW_URL"
READER_TOKEN_ENV = "GLITCHFLOW_READER_TOKEN"  # noqa: S105 - a variable name, not a secret
"""A reader token for reads, when the API has tokens; ``GLITCHFLOW_TOKEN`` when unset."""
UNIT = "strain"
FETCH_RETRY = RetryPolicy(max_attempts=4, max_elapsed=60.0)
"""A GET is idempotent: refused connections, timeouts, 429 and 5xx are tried again, briefly."""


class FetchError(Exception):
    """Raised when the API refuses the read: ``status``, its ``resp`` word and ``detail``."""

    def __init__(self, status: int, resp: str, detail: Any) -> None:
        super().__init__(f"{status} {resp}: {detail}" if detail else f"{status} {resp}")
        self.status = status
        self.resp = resp
        self.detail = detail


class DataGap(ValueError):
    """Raised by `fetch` without ``pad`` when the range holds gaps; ``gaps`` lists them."""

    def __init__(self, channel: str, gaps: list[list[float]]) -> None:
        holes = ", ".join(f"[{a!r}, {b!r})" for a, b in gaps)
        super().__init__(
            f"{channel}: the range has gaps at {holes}; pass pad= to fill them, "
            "or use fetch_segments for the segments as they are"
        )
        self.channel = channel
        self.gaps = gaps


def data_url(url: str | None) -> str:
    """The ``/data`` address of the API at ``url`` (default ``$GLITCHFLOW_URL``)."""
    base = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    return base if base.endswith("/data") else base + "/data"


def get_data(
    channel: str,
    start: float,
    end: float,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The JSON answer of ``GET /data`` as a dict.

    Raises
    ------
    FetchError
        The API answered anything but 200 (unknown channel, no data, range too long...).
    httpx.HTTPError
        No answer, after the retries.
    """
    token = token or os.environ.get(READER_TOKEN_ENV) or os.environ.get(TOKEN_ENV) or None
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # repr keeps every digit of a GPS time: the range is the one asked for, to the bit.
    params = {"channel": channel, "start": repr(float(start)), "end": repr(float(end))}
    with httpx.Client(timeout=timeout, headers=headers) as client:
        answer = FETCH_RETRY.call(
            lambda: client.get(data_url(url), params=params),
            idempotent=True,
            not_sent=(httpx.ConnectError,),
            no_answer=(httpx.TimeoutException, httpx.RemoteProtocolError),
        )
    if answer.status_code != 200:
        try:
            doc = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        raise FetchError(answer.status_code, str(doc.get("resp", "ERROR")), doc.get("detail"))
    return orjson.loads(answer.content)


def segments_of(doc: dict[str, Any]) -> TimeSeriesList:
    """The segments of a ``/data`` answer as gwpy `TimeSeries`, in time order."""
    import numpy as np
    from gwpy.timeseries import TimeSeries, TimeSeriesList

    channel = doc["channel"]
    segments = doc["segments"]
    out = TimeSeriesList()
    for segment in segments:
        samples = doc["h"] if len(segments) == 1 else segment["h"]
        out.append(
            TimeSeries(
                np.asarray(samples, dtype=np.float64),
                t0=segment["t0"],
                dt=segment["dt"],
                unit=UNIT,
                name=channel,
                channel=channel,
            )
        )
    return out


def fetch_segments(
    channel: str,
    start: float,
    end: float,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float = 60.0,
) -> TimeSeriesList:
    """The contiguous segments of ``channel`` in ``[start, end)`` as a `TimeSeriesList`."""
    return segments_of(get_data(channel, start, end, url=url, token=token, timeout=timeout))


def fetch(
    channel: str | Sequence[str],
    start: float,
    end: float,
    *,
    url: str | None = None,
    pad: float | None = None,
    token: str | None = None,
    timeout: float = 60.0,
) -> TimeSeries | TimeSeriesDict:
    """The samples of ``channel`` stored between GPS ``start`` and ``end``, as gwpy objects.

    Parameters
    ----------
    channel : str or list of str
        One channel (a `TimeSeries` is returned) or several (a `TimeSeriesDict`).
    start, end : float
        GPS times; samples at or after ``start`` and before ``end`` are returned.
    url : str, optional
        The API's base URL (default ``$GLITCHFLOW_URL`` or ``http://127.0.0.1:8000``).
    pad : float, optional
        Fill the gaps between segments with this value; without it a gap raises `DataGap`.
    token : str, optional
        A reader or admin token (default ``$GLITCHFLOW_READER_TOKEN``, else ``$GLITCHFLOW_TOKEN``),
        for an API that has tokens.
    timeout : float
        Seconds per request.

    Raises
    ------
    DataGap
        The range holds gaps and ``pad`` is None.
    FetchError
        The API refused: unknown channel or no data (404), bad range (422), too long (413).
    """
    if not isinstance(channel, str):
        from gwpy.timeseries import TimeSeriesDict

        return TimeSeriesDict(
            (name, fetch(name, start, end, url=url, pad=pad, token=token, timeout=timeout))
            for name in channel
        )
    doc = get_data(channel, start, end, url=url, token=token, timeout=timeout)
    segments = segments_of(doc)
    if len(segments) == 1:
        return segments[0]
    if pad is None:
        between = [[a.span[1], b.span[0]] for a, b in itertools.pairwise(segments)]
        raise DataGap(channel, [[float(a), float(b)] for a, b in between])
    return segments.join(pad=pad, gap="pad")
