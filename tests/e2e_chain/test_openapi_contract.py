"""Contract fuzzing: schemathesis over every operation of the API's OpenAPI document, with the
real three services behind it (processes on 127.0.0.1, tokens configured and sent).

Every answer must match what the document says: no 5xx, a documented status, a body matching the
documented schema, the documented content type and headers.
"""

from __future__ import annotations

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from ports import free_port

from databuffer.settings import Settings as BufferSettings
from glitchflow_core.chunk import MAX_GPS
from glitchflow_stack import Layout, Stack, service_processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

ADMIN_TOKEN = "contract-admin-token-0123456789"
TOKENS_ENV = {
    "GLITCHFLOW_WRITER_TOKENS": "contract-writer-token-0123456789",
    "GLITCHFLOW_ADMIN_TOKENS": ADMIN_TOKEN,
    "GLITCHFLOW_SERVICE_TOKEN": "contract-service-token-0123456789",
    "GLITCHFLOW_LOG_LEVEL": "WARNING",
}
# Small enough that generated chunks freeze the buffer now and then: FROZEN answers are fuzzed too.
MAX_SIZE = 200_000
BINARY = "application/octet-stream"
MAX_EXAMPLES = 60
"""Cases per operation: the whole run stays around a minute on two cores."""


def api_document() -> dict:
    """The API's OpenAPI document, built in-process to list the operations at collection."""
    from glitchflow_api import create_app
    from glitchflow_api.settings import Settings

    return create_app(Settings(ds_burl="http://127.0.0.1:9")).openapi()


DOCUMENT = api_document()
OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in item]


@pytest.fixture(scope="module")
def api_url(tmp_path_factory):
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    stack = Stack(
        service_processes(layout, tmp_path_factory.mktemp("contract"), MAX_SIZE, env=TOKENS_ENV)
    )
    stack.start()
    try:
        yield layout.api_url
    finally:
        stack.stop()


def test_the_document_is_served_as_built(api_url) -> None:
    import httpx

    assert httpx.get(f"{api_url}/openapi.json").json() == DOCUMENT


DEFAULT_MAX_READ_SECONDS = BufferSettings.model_fields["max_read_seconds"].default


def ends_before_max_gps(case) -> bool:
    """The documented rules JSON Schema cannot state: a chunk ends before GPS 1e11, a read's
    ``end`` lies after its ``start`` and at most MAX_READ_SECONDS after it; a binary chunk is
    whole float64 samples, finite, with ``t0`` and ``dt``.

    ``t0 + len(h) * dt < 1e11`` is in the text of ``t``; cases that break it are left out here
    (their 422 is tested in tests/core/test_chunk.py, the binary ones in
    tests/databuffer/test_fast_paths.py).
    """
    query = case.query or {}
    if "start" in query and "end" in query:  # /data: end after start, the range bounded
        span = float(query["end"]) - float(query["start"])
        return 0 < span <= DEFAULT_MAX_READ_SECONDS
    if case.media_type == BINARY:
        t0, dt = float(query["t0"]), float(query["dt"])
        return t0 + len(case.body) // 8 * dt < MAX_GPS
    if isinstance(case.body, list):
        return all(chunk_ends_in_time(element) for element in case.body)
    return chunk_ends_in_time(case.body)


def chunk_ends_in_time(body: object) -> bool:
    body = body if isinstance(body, dict) else {}
    h, t = body.get("h"), body.get("t")
    if not (isinstance(h, list) and isinstance(t, list) and len(t) == 2):
        return True
    return t[0] + len(h) * t[1] < MAX_GPS


def whole_samples(case):
    """A binary case made a chunk: whole finite float64 samples (at least one), ``t0`` and
    ``dt`` given. What the schema cannot state; the refusals of the rest are tested in
    tests/databuffer/test_fast_paths.py."""
    if case.media_type != BINARY:
        return case
    raw = bytes(getattr(case.body, "data", case.body) or b"")
    samples = np.frombuffer(raw[: len(raw) // 8 * 8] or bytes(8), "<f8")
    case.body = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0).tobytes()
    case.query = {"t0": 1e9, "dt": 0.5, **(case.query or {})}
    return case


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_operation_keeps_its_contract(api_url, path: str, method: str) -> None:
    operation = schemathesis.openapi.from_dict(DOCUMENT)[path][method]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @given(case=operation.as_strategy().map(whole_samples).filter(ends_before_max_gps))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def keeps_contract(case) -> None:
        case.call_and_validate(base_url=api_url, headers=headers, timeout=30)

    keeps_contract()
