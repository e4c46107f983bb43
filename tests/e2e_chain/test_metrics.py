"""Prometheus metrics of the three services against a known workload, several workers each.

The logic runs under gunicorn with 3 workers and the API under uvicorn with 2: each worker counts
in its own files (PROMETHEUS_MULTIPROC_DIR) and ``/metrics`` must sum them, whichever worker
answers the scrape.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from ports import free_port
from prometheus_text import scrape, value

from glitchflow_core.metrics import gps_now
from glitchflow_stack import Layout, Stack, service_processes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

N = 24
MAX_SIZE = 64 * 1024 * 1024


def total(samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, sample_labels), v in samples.items()
        if n == name and set(labels.items()) <= set(sample_labels)
    )


WRITER = {
    "Authorization": "Bearer metrics-writer-token-0123456789",
    "Content-Type": "application/json",
}
ADMIN = {"Authorization": "Bearer metrics-admin-token-0123456789"}
TOKENS_ENV = {
    "GLITCHFLOW_WRITER_TOKENS": WRITER["Authorization"][7:],
    "GLITCHFLOW_ADMIN_TOKENS": ADMIN["Authorization"][7:],
    "GLITCHFLOW_SERVICE_TOKEN": "metrics-service-token-0123456789",
    "GLITCHFLOW_LOG_LEVEL": "WARNING",
}


def chunk(t0: float, seed: int, n: int = 200) -> bytes:
    h = np.random.default_rng(seed).normal(scale=1e-21, size=n)
    doc = {"h": h, "t": [t0, 1 / 4096], "channel": "H1:TEST"}
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """A stack with several workers, ``N`` new chunks, two duplicates and one bad chunk sent."""
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    stack = Stack(
        service_processes(
            layout,
            tmp_path_factory.mktemp("metrics"),
            MAX_SIZE,
            logic_workers=3,
            api_workers=2,
            env=TOKENS_ENV,
        )
    )
    stack.start()
    try:
        yield send_workload(layout)
    finally:
        stack.stop()


def send_workload(layout: Layout) -> tuple[Layout, float]:
    t_start = gps_now() - 500.0
    last_end = 0.0
    for i in range(N):
        # A new connection each time, so that the requests spread over the workers.
        t0 = t_start + i * 200 / 4096
        answer = httpx.post(
            f"{layout.api_url}/streamdata",
            content=chunk(t0, seed=i),
            headers=WRITER,
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        last_end = t0 + 200 / 4096
    for i in range(2):
        again = httpx.post(
            f"{layout.api_url}/streamdata",
            content=chunk(t_start + i * 200 / 4096, seed=i),
            headers=WRITER,
        )
        assert again.status_code == 200, again.text
    bad = httpx.post(f"{layout.api_url}/streamdata", content=b'{"h": []}', headers=WRITER)
    assert bad.status_code == 422
    return layout, last_end


def test_counters_equal_the_workload_in_every_service(workload) -> None:
    layout, _ = workload
    for url in (layout.api_url, layout.logic_url, layout.buffer_url):
        # Several scrapes on new connections: whichever worker answers, it sums every worker.
        for _ in range(4):
            samples = scrape(url)
            assert value(samples, "glitchflow_ingested_chunks_total") == N, url
            assert value(samples, "glitchflow_duplicate_chunks_total") == 2, url
    api = scrape(layout.api_url)
    assert total(api, "glitchflow_requests_total", route="/streamdata", status="201") == N
    assert total(api, "glitchflow_requests_total", route="/streamdata", status="422") == 1
    logic = scrape(layout.logic_url)
    assert total(logic, "glitchflow_requests_total", route="/stream", status="201") == N


def test_every_worker_is_counted(workload) -> None:
    layout, _ = workload
    assert value(scrape(layout.api_url), "glitchflow_workers") == 2
    assert value(scrape(layout.logic_url), "glitchflow_workers") == 3
    assert value(scrape(layout.buffer_url), "glitchflow_workers") == 1


def test_buffer_state_gauges(workload) -> None:
    layout, last_end = workload
    samples = scrape(layout.buffer_url)
    newest = value(samples, "glitchflow_newest_gps_seconds", channel="H1:TEST")
    assert newest == pytest.approx(last_end)
    lag = value(samples, "glitchflow_ingest_lag_seconds", channel="H1:TEST")
    assert 400 < lag < gps_now() - last_end + 1
    assert value(samples, "glitchflow_stored_chunks") == N
    assert value(samples, "glitchflow_stored_bytes") == total(
        scrape(layout.buffer_url), "glitchflow_ingested_bytes_total"
    )
    assert value(samples, "glitchflow_frozen") == 0
    assert value(samples, "glitchflow_frozen_seconds") == 0
    assert value(samples, "glitchflow_archived_batches") == 0
    assert value(samples, "glitchflow_batch") == 1


def test_freeze_and_flush_gauges(stack_factory) -> None:
    # Held frozen until the flush: the frozen gauges are about FREEZE_MODE=hold.
    _stack, layout = stack_factory(
        max_size=4000, env={**TOKENS_ENV, "GLITCHFLOW_FREEZE_MODE": "hold"}
    )
    t0 = gps_now() - 1000.0
    answer = httpx.post(f"{layout.api_url}/streamdata", content=chunk(t0, 0), headers=WRITER)
    assert answer.json()["body"]["frozen"] is True
    frozen = scrape(layout.buffer_url)
    assert value(frozen, "glitchflow_frozen") == 1
    assert value(frozen, "glitchflow_frozen_seconds") >= 0
    assert value(scrape(layout.logic_url), "glitchflow_freezes_total") == 1
    assert value(scrape(layout.logic_url), "glitchflow_fill_ratio") >= 1.0
    assert value(scrape(layout.buffer_url), "glitchflow_frozen_seconds") >= value(
        frozen, "glitchflow_frozen_seconds"
    )
    newest = value(frozen, "glitchflow_newest_gps_seconds", channel="H1:TEST")

    clean = httpx.post(
        f"{layout.api_url}/cleanbuf", json={"msg": "m", "force": True}, headers=ADMIN
    )
    assert clean.status_code == 200, clean.text
    after = scrape(layout.buffer_url)
    assert value(after, "glitchflow_archived_batches") == 1
    assert value(after, "glitchflow_batch") == 2
    assert value(after, "glitchflow_frozen") == 0
    assert value(after, "glitchflow_frozen_seconds") == 0
    assert value(after, "glitchflow_stored_chunks") == 0
    # The channel's newest sample is remembered after its batch left: its lag keeps growing.
    assert value(after, "glitchflow_newest_gps_seconds", channel="H1:TEST") == newest
    assert value(after, "glitchflow_ingest_lag_seconds", channel="H1:TEST") > 900
    for url in (layout.api_url, layout.logic_url, layout.buffer_url):
        assert value(scrape(url), "glitchflow_flushes_total") == 1, url


DASHBOARD = Path(__file__).parents[2] / "k8s" / "grafana" / "glitchflow.json"


def dashboard_queries() -> list[str]:
    """Every Prometheus query of the Grafana dashboard: panel targets and template variables."""
    doc = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    queries += [v["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    return queries


def test_dashboard_uses_only_metrics_the_services_export(workload) -> None:
    layout, _ = workload
    exported = {
        name
        for url in (layout.api_url, layout.logic_url, layout.buffer_url)
        for name, _labels in scrape(url)
    }
    queries = dashboard_queries()
    used = {name for query in queries for name in re.findall(r"\bglitchflow_[a-z0-9_]+", query)}
    assert len(queries) >= 10
    # The new gauges of issue 12 are on the dashboard.
    assert {
        "glitchflow_ingest_lag_seconds",
        "glitchflow_fill_ratio",
        "glitchflow_frozen_seconds",
        "glitchflow_archived_batches",
    } <= used
    assert used - exported == set()
