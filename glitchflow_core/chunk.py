"""The strain chunk: fast validation of the wire format shared by every service.

A chunk is ``{"h": [float, ...], "t": [t0, dt]}`` plus an optional ``channel``; the original's
sample payload sends ``t`` as one GPS time per sample instead, which is read as ``[t[0], spacing]``
when the times are uniformly spaced. The common case (a well-formed body whose samples are all
JSON floats) is parsed by simdjson straight into a float64 array (figures in
docs/PERFORMANCE.md). Anything else takes the orjson path, which accepts integer samples too and
names the offending field. Both paths accept exactly the same bodies; a repeated key is refused by
both. Callers that forward a chunk send the original bytes on, and the buffer stores them as sent:
a chunk's identity comes from its validated form, so every reader of a stored file parses it with
`parse_chunk`.

A binary chunk (`parse_binary_chunk`: float64 samples, ``channel``/``t0``/``dt`` from the query)
follows the same rules and is stored in its JSON form (`Chunk.canonical_bytes`). Several chunks
in one request (a JSON array, or NDJSON) are split by `chunk_bodies` into chunk bodies, each
validated on its own.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

import numpy as np
import orjson
import simdjson

from glitchflow_core.edge import NDJSON_MEDIA, InvalidInput

DEFAULT_CHANNEL = "default"
"""Channel of payloads that carry no ``channel`` field (the original wire format)."""

DEFAULT_MAX_SAMPLES = 1_048_576
"""Default upper bound on samples per chunk (64 s at 16 kHz)."""

DEFAULT_MIN_DT = 1e-9
"""Smallest accepted sample spacing in seconds (1 GHz): below it, ``dt`` is nonsense."""

DEFAULT_MAX_DT = 86_400.0
"""Largest accepted sample spacing in seconds (a day): a GPS time read as ``dt`` is refused."""

MAX_GPS = 1e11
"""Every sample's GPS time is below this (about 3,000 years): chunk file names hold ``t0`` in
nanoseconds in 20 digits, and a chunk claiming an absurd span would block its channel."""

# A LIGO/Virgo channel name: an interferometer prefix, a colon, then letters, digits, "_" and "-",
# e.g. "L1:GWOSC-4KHZ_R1_STRAIN". The default channel is the one name without a prefix.
CHANNEL_RE = re.compile(r"^[A-Z][A-Z0-9]{1,2}:[A-Za-z0-9][A-Za-z0-9_\-.]{0,127}$")

ALLOWED_FIELDS = frozenset({"h", "t", "channel"})

FAST_PATH_MAX_BYTES = 4 * 1024 * 1024
"""Bodies up to this size try simdjson first; a parser keeps buffers as large as the largest
document it parsed, and there is one parser per thread, so the bound keeps that memory small."""
_parsers = threading.local()
_NUMBER_TYPES = frozenset({float, int})

MAX_BYTES_PER_SAMPLE = 64
"""A float in JSON takes at most 24 bytes, 30 pretty-printed; a body much larger than its samples
need is padding, which would count towards MAX_SIZE and could freeze a batch of nothing."""
BODY_SLACK = 1024
_NON_FINITE_RE = re.compile(rb"-?(NaN|Infinity|inf|nan)")

BINARY_DTYPE = np.dtype("<f8")
SAMPLE_BYTES = BINARY_DTYPE.itemsize


class ChunkError(InvalidInput):
    """Raised when a body is not a valid chunk; ``field`` names the offending field (422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A validated chunk: ``h`` is float64, ``t0``/``dt`` are finite and ``dt > 0``."""

    channel: str
    t0: float
    dt: float
    h: np.ndarray

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.h.shape[0])

    @property
    def end(self) -> float:
        """GPS time just after the last sample."""
        return self.t0 + self.n * self.dt

    @property
    def identity(self) -> tuple[str, float, int, float]:
        """``(channel, t0, len(h), dt)``: the same identity means the same chunk."""
        return (self.channel, self.t0, self.n, self.dt)

    def canonical_bytes(self) -> bytes:
        """The stored form: ``{"h": [...], "t": [t0, dt]}`` plus ``channel`` unless default."""
        doc: dict[str, object] = {"h": self.h, "t": [self.t0, self.dt]}
        if self.channel != DEFAULT_CHANNEL:
            doc["channel"] = self.channel
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def validate_channel(value: object) -> str:
    """Return the channel name, or raise `ChunkError` naming ``channel``."""
    if value is None:
        return DEFAULT_CHANNEL
    if not isinstance(value, str):
        raise ChunkError("channel", "must be a string")
    if value != DEFAULT_CHANNEL and not CHANNEL_RE.match(value):
        raise ChunkError("channel", "must look like 'L1:GWOSC-4KHZ_R1_STRAIN'")
    return value


def _number(value: object, field: str) -> float:
    # bool is an int subclass in Python; a JSON true is not a time.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChunkError(field, "must be a number")
    result = float(value)
    if not np.isfinite(result):
        raise ChunkError(field, "must be finite")
    return result


def _samples(value: object, max_samples: int) -> np.ndarray:
    if isinstance(value, np.ndarray):  # from the simdjson path: float64 already
        arr = value
    elif not isinstance(value, list):
        raise ChunkError("h", "must be a list of numbers")
    else:
        arr = _list_samples(value, max_samples)
    if not arr.shape[0]:
        raise ChunkError("h", "must hold at least one sample")
    if arr.shape[0] > max_samples:
        raise ChunkError("h", f"holds {arr.shape[0]} samples, more than the limit of {max_samples}")
    if not np.isfinite(arr).all():
        raise ChunkError("h", "contains NaN or infinity")
    return arr


def _list_samples(value: list[object], max_samples: int) -> np.ndarray:
    if not value:
        raise ChunkError("h", "must hold at least one sample")
    if len(value) > max_samples:
        raise ChunkError("h", f"holds {len(value)} samples, more than the limit of {max_samples}")
    # Checked by type, in C: numpy would turn "1.5" or true into a float without a word.
    if not _NUMBER_TYPES.issuperset(map(type, value)):
        raise ChunkError("h", "must be a flat list of numbers")
    try:
        return np.array(value, dtype=np.float64)
    except OverflowError as exc:
        raise ChunkError("h", "holds a number too large for a float") from exc


def _two_brackets(body: bytes) -> bool:
    """True when ``[`` occurs exactly twice: simdjson flattens nested arrays into the buffer, and
    a flat chunk has two arrays, h and t. Three ``find`` calls (memchr), not ``count``, which
    walks the bytes one by one (docs/PERFORMANCE.md)."""
    first = body.find(b"[")
    second = body.find(b"[", first + 1) if first >= 0 else -1
    return second >= 0 and body.find(b"[", second + 1) < 0


def _decode_fast(body: bytes) -> dict[str, object] | None:
    """``{"h": float64 array, "t": ..., "channel": ...}`` by simdjson, or None for the precise path.

    None is returned for anything unusual (invalid JSON, integer or non-numeric samples, repeated
    or unknown keys, a large body), never an error: the orjson path then decides and explains.
    """
    if len(body) > FAST_PATH_MAX_BYTES or not _two_brackets(body):
        return None
    parser = _thread_parser()
    # simdjson skips a byte-order mark that orjson (and every reader of the stored file) refuses.
    if body.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        doc = parser.parse(body)
    except (ValueError, RuntimeError):  # RuntimeError: an integer beyond 64 bits (BIGINT_ERROR)
        return None
    try:
        if not isinstance(doc, simdjson.Object):
            return None
        keys = list(doc.keys())
        # A repeated key is refused: the precise path finds it and names it.
        if len(keys) != len(set(keys)) or not ALLOWED_FIELDS.issuperset(keys):
            return None
        h, t, channel = doc.get("h"), doc.get("t"), doc.get("channel")
        if not isinstance(h, simdjson.Array) or not isinstance(t, simdjson.Array):
            return None
        if channel is not None and not isinstance(channel, str):
            return None
        try:
            samples = np.frombuffer(h.as_buffer(of_type="d"), dtype=np.float64)
        except TypeError:  # an integer, string, boolean, null or nested sample
            return None
        return {"h": samples, "t": t.as_list(), "channel": channel}
    finally:
        # The parser refuses to parse again while views into its last document are alive.
        del doc
        h = t = channel = None


def _thread_parser() -> simdjson.Parser:
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    return parser


def _repeated_key(body: bytes) -> str | None:
    """A key the body's top-level object holds more than once, or None."""
    # A parser keeps buffers as large as its largest document: large bodies get their own.
    parser = _thread_parser() if len(body) <= FAST_PATH_MAX_BYTES else simdjson.Parser()
    try:
        doc = parser.parse(body)
    except (ValueError, RuntimeError):  # an integer beyond 64 bits: the slow, exact reader
        repeats: list[str] = []

        def note_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
            seen = [key for key, _ in pairs]
            repeats.extend(key for key in seen if seen.count(key) > 1)
            return dict(pairs)

        json.loads(body, object_pairs_hook=note_repeats)
        return repeats[0] if repeats else None
    try:
        keys = list(doc.keys()) if isinstance(doc, simdjson.Object) else []
    finally:
        del doc
    return next((key for key in keys if keys.count(key) > 1), None)


def _decode_precise(body: bytes) -> dict[str, object]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Python's json.dumps writes NaN and Infinity by default: say so rather than "invalid".
        if _NON_FINITE_RE.search(body[max(exc.pos - 1, 0) : exc.pos + 9]):
            raise ChunkError("body", "contains NaN or Infinity, which JSON does not allow") from exc
        raise ChunkError("body", "is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise ChunkError("body", "must be a JSON object")
    repeated = _repeated_key(body)
    if repeated is not None:
        raise ChunkError(repeated, "is repeated in the body")
    extra = doc.keys() - ALLOWED_FIELDS
    if extra:
        raise ChunkError(sorted(extra)[0], "is not a chunk field (expected h, t, channel)")
    return doc


def parse_chunk(
    body: bytes,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    *,
    min_dt: float = DEFAULT_MIN_DT,
    max_dt: float = DEFAULT_MAX_DT,
) -> Chunk:
    """Parse and validate a chunk body.

    Parameters
    ----------
    body : bytes
        The request body, JSON.
    max_samples : int
        Largest accepted ``len(h)``.
    min_dt, max_dt : float
        Accepted range of the sample spacing in seconds.

    Returns
    -------
    Chunk
        The validated chunk.

    Raises
    ------
    ChunkError
        With ``field`` set to ``body``, ``h``, ``t`` or ``channel`` (or the unknown field).
    """
    doc = _decode_fast(body)
    if doc is None:
        doc = _decode_precise(body)
    if "h" not in doc:
        raise ChunkError("h", "is required")
    if "t" not in doc:
        raise ChunkError("t", "is required")
    t = doc["t"]
    shape = _t_shape(min_dt, max_dt)
    if not isinstance(t, list) or len(t) < 2:
        raise ChunkError("t", shape)
    t0 = _start(_number(t[0], "t"), "t")
    channel = validate_channel(doc.get("channel"))
    h = _samples(doc["h"], max_samples)
    n = int(h.shape[0])
    if len(t) == 2 and (n != 2 or min_dt <= _number(t[1], "t") <= max_dt):
        dt = _number(t[1], "t")
    elif len(t) == n:
        dt = _uniform_spacing(t)
    else:
        raise ChunkError("t", shape)
    _check_span(t0, dt, n, min_dt, max_dt, "t", shape)
    if len(body) > MAX_BYTES_PER_SAMPLE * n + BODY_SLACK:
        raise ChunkError(
            "body",
            f"is {len(body)} bytes for {n} samples: at most "
            f"{MAX_BYTES_PER_SAMPLE} bytes a sample (no padding)",
        )
    return Chunk(channel=channel, t0=t0, dt=dt, h=h)


def _t_shape(min_dt: float, max_dt: float) -> str:
    return (
        f"must be [t0, dt] with dt from {min_dt:g} to {max_dt:g} s, or one GPS time per sample of h"
    )


def _start(t0: float, field: str) -> float:
    """``t0`` checked as a GPS time; "+ 0.0" turns -0.0 into 0.0: both name the same instant
    and must be the same chunk."""
    t0 += 0.0
    if not 0 <= t0 < MAX_GPS:
        raise ChunkError(field, f"t0 must be a GPS time from 0 to {MAX_GPS:.0e}")
    return t0


def _check_span(
    t0: float, dt: float, n: int, min_dt: float, max_dt: float, field: str, shape: str
) -> None:
    if not min_dt <= dt <= max_dt:
        raise ChunkError(field, f"{shape}; dt is {dt:g}")
    if not t0 + n * dt < MAX_GPS:
        raise ChunkError(field, f"the chunk must end before GPS {MAX_GPS:.0e} (t0 + len(h) * dt)")


# A JSON number, as the JSON form spells t0 and dt: no "nan", "inf", "1_0" nor spaces, which
# Python's float() would take.
_QUERY_NUMBER_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")


def _query_number(raw: str | None, field: str) -> float:
    if raw is None or raw == "":
        raise ChunkError(field, "is required (a query parameter)")
    if not _QUERY_NUMBER_RE.match(raw):
        raise ChunkError(field, "must be a number")
    value = float(raw)
    if not np.isfinite(value):
        raise ChunkError(field, "must be finite")
    return value


def parse_binary_chunk(
    body: bytes,
    channel: str | None,
    t0: str | None,
    dt: str | None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    *,
    min_dt: float = DEFAULT_MIN_DT,
    max_dt: float = DEFAULT_MAX_DT,
) -> Chunk:
    """Validate a binary chunk: little-endian float64 samples, the rest from query parameters.

    The same rules as `parse_chunk` (and the same identity: ``t0`` and ``dt`` are read as the
    JSON form reads them, correctly rounded), for a body that needs no parsing.

    Parameters
    ----------
    body : bytes
        ``len(body) / 8`` samples, IEEE 754 binary64, little-endian.
    channel, t0, dt : str or None
        The query parameters as sent (``channel`` optional).
    max_samples, min_dt, max_dt
        As for `parse_chunk`.

    Raises
    ------
    ChunkError
        Naming ``body``, ``h``, ``t0``, ``dt`` or ``channel``.
    """
    start = _start(_query_number(t0, "t0"), "t0")
    spacing = _query_number(dt, "dt")
    name = validate_channel(channel)
    if len(body) % SAMPLE_BYTES:
        raise ChunkError(
            "body", f"is {len(body)} bytes, not a multiple of {SAMPLE_BYTES} (float64 samples)"
        )
    n = len(body) // SAMPLE_BYTES
    if not n:
        raise ChunkError("h", "must hold at least one sample")
    if n > max_samples:
        raise ChunkError("h", f"holds {n} samples, more than the limit of {max_samples}")
    h = np.frombuffer(body, dtype=BINARY_DTYPE)
    if not np.isfinite(h).all():
        raise ChunkError("h", "contains NaN or infinity")
    _check_span(start, spacing, n, min_dt, max_dt, "dt", f"must be from {min_dt:g} to {max_dt:g} s")
    return Chunk(channel=name, t0=start, dt=spacing, h=h)


def binary_params(chunk: Chunk) -> dict[str, str]:
    """The query parameters that send ``chunk`` in binary form (``repr``: every digit)."""
    params = {"t0": repr(chunk.t0), "dt": repr(chunk.dt)}
    if chunk.channel != DEFAULT_CHANNEL:
        params["channel"] = chunk.channel
    return params


def _uniform_spacing(t: list[object]) -> float:
    """The spacing of one GPS time per sample, or `ChunkError` unless they are uniformly spaced.

    Uniform means: every time is within 4 units in the last place (of the largest time) of
    ``t[0] + i * dt``, the rounding float64 GPS times carry. ``dt`` is ``1 / rate`` for a whole
    sample rate when that fits (1/4096 exactly, as the same chunk sent as ``[t0, dt]`` has),
    else the mean spacing.
    """
    if not _NUMBER_TYPES.issuperset(map(type, t)):
        raise ChunkError("t", "must be a list of numbers")
    times = np.array(t, dtype=np.float64)
    if not np.isfinite(times).all():
        raise ChunkError("t", "must be finite")
    n = times.shape[0]
    mean = (times[-1] - times[0]) / (n - 1)
    tolerance = 4 * np.spacing(np.abs(times).max())
    offsets = np.arange(n, dtype=np.float64)
    candidates = [mean]
    if mean > 0 and round(1 / mean) >= 1:
        candidates.insert(0, 1 / round(1 / mean))
    for dt in candidates:
        if np.abs(times - (times[0] + offsets * dt)).max() <= tolerance:
            return float(dt)
    raise ChunkError("t", "one GPS time per sample must be uniformly spaced")


DEFAULT_MAX_CHUNKS = 1000
"""Default upper bound on chunks in one request (a JSON array or NDJSON)."""


class TooManyChunks(ChunkError):
    """Raised when a request holds more chunks than the limit (413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__("body", f"holds {count} chunks, more than the limit of {limit}")
        self.status = 413


def is_chunk_list(body: bytes, media: str) -> bool:
    """True when a ``/streamdata`` body holds several chunks: NDJSON, or a JSON array."""
    if media == NDJSON_MEDIA:
        return True
    return body.lstrip(b" \t\r\n")[:1] == b"["


def chunk_bodies(body: bytes, media: str, max_chunks: int) -> list[bytes | ChunkError]:
    """The chunks of a multi-chunk body, each as the JSON bytes of one chunk, in order.

    NDJSON: one chunk a line (blank lines skipped), each line as sent. A JSON array: each
    element as simdjson writes it back (its keys as sent, repeated ones included, so that
    `parse_chunk` refuses them as it does in a single chunk); an element that is not a JSON
    object is a `ChunkError` in its place. Each body still has to pass `parse_chunk`.

    Raises
    ------
    ChunkError
        The whole request is refused: not valid JSON, not an array, no chunk at all.
    TooManyChunks
        More than ``max_chunks`` chunks (413).
    """
    if media == NDJSON_MEDIA:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > max_chunks:
            raise TooManyChunks(len(lines), max_chunks)
        parts: list[bytes | ChunkError] = list(lines)
    else:
        parts = _array_elements(body, max_chunks)
    if not parts:
        raise ChunkError("body", "holds no chunk")
    return parts


def _array_elements(body: bytes, max_chunks: int) -> list[bytes | ChunkError]:
    # A parser keeps buffers as large as its largest document: large bodies get their own.
    parser = _thread_parser() if len(body) <= FAST_PATH_MAX_BYTES else simdjson.Parser()
    try:
        doc = parser.parse(body)
    except (ValueError, RuntimeError) as exc:
        if _NON_FINITE_RE.search(body):
            raise ChunkError("body", "contains NaN or Infinity, which JSON does not allow") from exc
        raise ChunkError("body", "is not valid JSON") from exc
    try:
        if not isinstance(doc, simdjson.Array):
            raise ChunkError("body", "must be a JSON object or an array of them")
        if len(doc) > max_chunks:
            raise TooManyChunks(len(doc), max_chunks)
        parts: list[bytes | ChunkError] = []
        for element in doc:
            if isinstance(element, simdjson.Object):
                parts.append(element.mini)
            else:
                parts.append(ChunkError("body", "each element must be a JSON object (a chunk)"))
            del element
        return parts
    finally:
        del doc
