"""GET /status and the status page over real HTTP, the three services as real processes."""

from __future__ import annotations

import httpx
import pytest
from status.conftest import ADMIN, H1, L1, RATE, ROTATE_ENV, TOKENS, TOKENS_ENV, store_env
from waiting import wait_for

from glitchflow_api.status_models import StatusAnswer

pytestmark = pytest.mark.e2e


def get(url: str, **params: object) -> httpx.Response:
    return httpx.get(url, params=params, timeout=30)


def test_empty_buffer_status_and_page(stack_factory) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    answer = get(f"{layout.api_url}/status")
    assert answer.status_code == 200
    doc = StatusAnswer.model_validate(answer.json())
    assert (doc.state, doc.n_itm, doc.buff_size, doc.channels) == ("OPERATIONAL", 0, 0, [])
    assert (doc.chunks.page, doc.chunks.pages, doc.chunks.items) == (1, 1, [])
    assert doc.max_size == 10_000_000
    page = get(f"{layout.api_url}/dspage")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Glitchflow datastore: OPERATIONAL</title>" in page.text


def test_status_equals_stats_and_is_the_same_at_the_logic(stack_factory, sender) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    send = sender(layout.api_url)
    send.stream(H1, 1_400_000_000.0, 3)
    send.stream(L1, 1_400_000_000.0, 2)
    stats = get(f"{layout.api_url}/stats").json()
    doc = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())
    assert (doc.n_itm, doc.buff_size) == (stats["n_itm"], stats["buff_size"]) == (5, doc.buff_size)
    assert doc.fill == pytest.approx(stats["buff_size"] / 10_000_000)
    logic = get(f"{layout.logic_url}/status").json()
    assert (logic["n_itm"], logic["buff_size"]) == (5, stats["buff_size"])
    assert doc.rate.chunks == 5
    assert doc.rate.realtime == pytest.approx(5 * 1024 / RATE / 60)


def test_channels_show_span_rate_gaps_and_refused_overlaps(stack_factory, sender) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    send = sender(layout.api_url)
    t0 = 1_400_000_000.0
    send.stream(H1, t0, 2)  # [t0, t0 + 0.5)
    send.stream(H1, t0 + 2.0, 1)  # gap [t0 + 0.5, t0 + 2)
    refused = send.send(t0 + 0.125, 1024, H1, seed=99)  # overlaps stored samples
    assert refused.status_code == 409
    doc = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())
    (h1,) = doc.channels
    assert (h1.channel, h1.n_itm, h1.sample_rate) == (H1, 3, RATE)
    assert (h1.start, h1.end) == (t0, t0 + 2.25)
    assert h1.gap_count == 1
    assert h1.gaps == [[t0 + 0.5, t0 + 2.0]]
    assert h1.refused == 1
    assert h1.refused_spans == [[t0 + 0.125, t0 + 0.375]]
    assert h1.recent is not None and h1.recent.t0 == t0 + 2.0 and h1.recent.n == 1024
    assert h1.recent.asd is not None and len(h1.recent.asd.f) > 10


def test_chunks_are_listed_by_identity_and_paged(stack_factory, sender) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    send = sender(layout.api_url)
    send.stream(H1, 1_400_000_000.0, 51, n=64)
    first = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json()).chunks
    assert (first.total, first.pages, len(first.items)) == (51, 2, 50)
    assert first.items[0].model_dump() == {
        "channel": H1,
        "t0": 1_400_000_000.0,
        "n": 64,
        "dt": 1 / RATE,
        "bytes": first.items[0].bytes,
    }
    second = StatusAnswer.model_validate(get(f"{layout.api_url}/status", page=2).json()).chunks
    assert [c.t0 for c in second.items] == [1_400_000_000.0 + 50 * 64 / RATE]


def test_a_page_past_the_end_is_404_naming_the_last(stack_factory) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    for url in (f"{layout.api_url}/status", f"{layout.logic_url}/status"):
        answer = get(url, page=99)
        assert answer.status_code == 404
        assert answer.json()["resp"] == "NOT_FOUND"
        assert answer.json()["pages"] == 1
    for url in (f"{layout.api_url}/dspage", f"{layout.logic_url}/"):
        page = get(url, page=99)
        assert page.status_code == 404
        assert "page 99" in page.text and "page 99 of" not in page.text


def test_no_token_is_ever_shown(stack_factory, sender) -> None:
    _, layout = stack_factory(max_size=40_000, env=TOKENS_ENV)
    sender(layout.api_url).stream(H1, 1_400_000_000.0, 2)
    train = httpx.post(
        f"{layout.api_url}/train", json={"user": "airflow", "token": ADMIN}, timeout=30
    )
    assert train.json()["resp"] == "FROZEN"
    answers = [
        get(f"{layout.api_url}/status"),
        get(f"{layout.api_url}/dspage"),
        get(f"{layout.logic_url}/status"),
        get(f"{layout.logic_url}/"),
    ]
    assert answers[0].json()["frozen"]["by"] == "policy"
    for answer in answers:
        assert answer.status_code == 200
        for token in TOKENS:
            assert token not in answer.text


def test_frozen_status_says_what_frees_it(stack_factory, sender) -> None:
    _, layout = stack_factory(max_size=40_000, env=TOKENS_ENV)
    sender(layout.api_url).stream(H1, 1_400_000_000.0, 2)
    doc = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())
    assert doc.state == "FROZEN"
    assert doc.frozen is not None
    assert "/cleanbuf" in doc.frozen.hint and "DAG" in doc.frozen.hint
    assert doc.frozen.for_s is not None and doc.frozen.for_s >= 0
    assert doc.frozen.reason.startswith("buff_size")


def test_archived_batches_are_listed_with_sizes_and_spans(stack_factory, sender) -> None:
    _, layout = stack_factory(max_size=40_000, env=TOKENS_ENV)
    send = sender(layout.api_url)
    send.stream(H1, 1_400_000_000.0, 2)
    send.flush()
    doc = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())
    assert (doc.state, doc.n_itm, doc.batch) == ("OPERATIONAL", 0, 2)
    (archived,) = doc.archives.items
    assert (archived.batch, archived.n_itm) == (1, 2)
    assert archived.bytes is not None and archived.bytes >= 40_000
    assert archived.channels[H1]["start"] == 1_400_000_000.0
    assert archived.channels[H1]["gaps"] == 0


def test_buffer_down_is_reported_by_status(stack_factory) -> None:
    stack, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    stack.processes[0].stop()  # the databuffer
    for url in (f"{layout.api_url}/status", f"{layout.logic_url}/status"):
        answer = get(url)
        assert answer.status_code == 502
        assert answer.json()["resp"] == "UPSTREAM_UNREACHABLE"
        assert answer.json()["upstream"] == "databuffer"


def test_favicon_and_content_security_policy(stack_factory) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    for base in (layout.api_url, layout.logic_url):
        ico = get(f"{base}/favicon.ico")
        assert ico.status_code == 200
        assert ico.headers["content-type"] == "image/x-icon"
        assert ico.content[:4] == b"\x00\x00\x01\x00"
        svg = get(f"{base}/favicon.svg")
        assert svg.headers["content-type"].startswith("image/svg+xml")
    for url in (f"{layout.api_url}/dspage", f"{layout.logic_url}/"):
        csp = get(url).headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        assert "http" not in csp  # no other origin is allowed


def test_rotate_status_shows_the_sealed_queue_and_the_ingest_pause(stack_factory, sender) -> None:
    _, layout = stack_factory(max_size=40_000, env=ROTATE_ENV)
    send = sender(layout.api_url)
    send.stream(H1, 1_400_000_000.0, 2)  # fills batch 1: sealed, ingest goes on in batch 2
    doc = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())
    assert (doc.state, doc.batch, doc.n_itm) == ("OPERATIONAL", 2, 0)
    queue = doc.sealed
    assert (queue.mode, queue.max_sealed, queue.count, queue.full) == ("rotate", 2, 1, False)
    (sealed,) = queue.items
    assert (sealed.batch, sealed.n_f, sealed.pause_seconds) == (1, 2, 0)
    assert sealed.bt_wrt >= 40_000 and sealed.archive.startswith("000001-")
    assert queue.oldest_waiting_s == sealed.waiting_s >= 0
    assert doc.ingest_pause.paused is False
    assert [(p.batch, p.seconds) for p in doc.ingest_pause.batches] == [(1, 0)]

    send.stream(H1, 1_400_000_000.5, 4)  # batch 2 sealed, the queue full: batch 3 freezes
    doc = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())
    assert (doc.state, doc.batch, doc.sealed.count, doc.sealed.full) == ("FROZEN", 3, 2, True)
    assert [b.batch for b in doc.sealed.items] == [1, 2]
    assert doc.frozen is not None and "MAX_SEALED" in doc.frozen.hint
    assert doc.ingest_pause.paused is True
    assert send.send(1_400_000_001.5).status_code == 503

    send.flush()  # hands batch 1 over: batch 3 is sealed in its place, ingest resumes
    doc = StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())
    assert (doc.state, doc.batch, doc.sealed.count) == ("OPERATIONAL", 4, 2)
    assert [b.batch for b in doc.sealed.items] == [2, 3]
    assert doc.sealed.items[1].pause_seconds > 0
    assert doc.ingest_pause.batches[0].batch == 3 and doc.ingest_pause.batches[0].seconds > 0
    assert doc.archives.total == 1 and doc.archives.items[0].batch == 1
    assert doc.archive_store is None and doc.archives.items[0].upload is None


def test_status_shows_an_unreachable_store_and_then_the_verified_upload(
    stack_factory, sender, s3, bucket
) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=store_env(s3, bucket))
    send = sender(layout.api_url)

    def status() -> StatusAnswer:
        return StatusAnswer.model_validate(get(f"{layout.api_url}/status").json())

    wait_for(lambda: status().archive_store is not None and status().archive_store.reachable)
    s3.kill()
    send.stream(H1, 1_400_000_000.0, 2)
    archive = send.flush()["archive"]
    wait_for(lambda: status().archives.items[0].upload.state == "retrying")
    doc = status()
    store = doc.archive_store
    assert store is not None and store.store == f"s3://{bucket}/"
    assert (store.reachable, store.pending) == (False, 1)
    assert store.error and store.unreachable_since and store.last_error
    (archived,) = doc.archives.items
    assert archived.archive == archive
    assert archived.upload.target == f"s3://{bucket}/{archive}"
    assert archived.upload.error and archived.upload.attempts >= 1

    s3.start()
    wait_for(lambda: status().archives.items[0].upload.state == "uploaded")
    doc = status()
    assert (doc.archive_store.reachable, doc.archive_store.pending) == (True, 0)
    assert doc.archive_store.error is None and doc.archive_store.last_error  # kept, with its time
    upload = doc.archives.items[0].upload
    assert upload.location == f"s3://{bucket}/{archive}"
    assert upload.verified_at and upload.local_copy is False
