"""`glitchflow_core.retry` against real servers on 127.0.0.1 that fail, recover and say when.

Arrival times are the server's: gaps between requests are asserted as lower bounds (a wait that
was honoured) or loose upper bounds (a wait that was cut), never as performance figures.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
import urllib3
from fake_upstream import Delay, FakeUpstream, Hangup, Reply, serve
from ports import free_port
from urllib3.exceptions import HTTPError, NewConnectionError

from glitchflow_core.retry import RetryPolicy, hop_policy, parse_retry_after
from glitchflow_core.upstream import Answer

TIMEOUT = 0.5
QUICK = RetryPolicy(max_attempts=4, max_elapsed=20.0, base_delay=0.02, max_delay=0.2)
OK = Reply(200, json={"resp": "OK"})


def busy(retry_after: str) -> Reply:
    return Reply(503, json={"resp": "FROZEN"}, headers={"Retry-After": retry_after})


@pytest.fixture
def server() -> Iterator[FakeUpstream]:
    yield from serve()


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    manager = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(TIMEOUT))
    yield manager
    manager.clear()


def sender(pool: urllib3.PoolManager, method: str, url: str) -> Callable[[], Answer]:
    def send() -> Answer:
        answer = pool.request(method, url)
        return Answer(answer.status, answer.data, answer.headers)

    return send


def call(
    policy: RetryPolicy,
    pool: urllib3.PoolManager,
    method: str,
    url: str,
    *,
    idempotent: bool,
    sleep: Callable[[float], object] | None = None,
) -> Answer:
    """One call through ``policy``: urllib3 with its own retries off."""
    extra = {"sleep": sleep} if sleep else {}
    return policy.call(
        sender(pool, method, url),
        idempotent=idempotent,
        not_sent=(NewConnectionError,),
        no_answer=(HTTPError,),
        **extra,
    )


def gaps(route_calls: list) -> list[float]:
    return [b.received - a.received for a, b in itertools.pairwise(route_calls)]


def test_server_that_fails_then_recovers_gives_its_answer(server, pool):
    route = server.get("/stat").reply(Reply(502), Reply(500), Reply(429), OK)
    answer = call(QUICK, pool, "GET", server.url + "/stat", idempotent=True)
    assert (answer.status_code, answer.content) == (200, b'{"resp":"OK"}')
    assert route.call_count == 4
    for attempt, gap in enumerate(gaps(route.calls), start=1):
        # At least half of the exponential step: the other half is the jitter.
        assert gap >= QUICK.base_delay / 2 * 2 ** (attempt - 1), gaps(route.calls)


def test_backoff_is_exponential_jittered_and_capped(server, pool):
    server.get("/stat").respond(500)
    pauses: list[float] = []
    policy = RetryPolicy(max_attempts=7, base_delay=0.004, max_delay=0.032)
    answer = call(policy, pool, "GET", server.url + "/stat", idempotent=True, sleep=pauses.append)
    assert answer.status_code == 500
    assert len(pauses) == policy.max_attempts - 1
    for attempt, pause in enumerate(pauses, start=1):
        step = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
        assert step / 2 <= pause <= step, pauses


def test_retry_after_is_waited_before_the_next_request(server, pool):
    route = server.get("/stat").reply(busy("1"), OK)
    answer = call(QUICK, pool, "GET", server.url + "/stat", idempotent=True)
    assert answer.status_code == 200
    assert route.call_count == 2
    (gap,) = gaps(route.calls)
    assert gap >= 1.0, "Retry-After: 1 honoured, not the 10 ms backoff"


async def test_retry_after_is_waited_by_the_async_call_too(server):
    route = server.get("/stat").reply(Reply(502), busy("1"), OK)
    async with aiohttp.ClientSession() as session:

        async def send() -> Answer:
            async with session.get(server.url + "/stat") as answer:
                return Answer(answer.status, await answer.read(), answer.headers)

        answer = await QUICK.acall(
            send,
            idempotent=True,
            not_sent=(aiohttp.ClientConnectorError,),
            no_answer=(aiohttp.ClientError, TimeoutError),
        )
    assert answer.status_code == 200
    assert route.call_count == 3
    assert gaps(route.calls)[1] >= 1.0


def test_retry_after_answers_do_not_use_up_the_attempts(server, pool):
    route = server.get("/stat").reply(busy("0"), busy("0"), busy("0"), Reply(500), OK)
    policy = RetryPolicy(max_attempts=2, base_delay=0.01)
    answer = call(policy, pool, "GET", server.url + "/stat", idempotent=True)
    assert answer.status_code == 200
    assert route.call_count == 5


def test_attempts_are_capped(server, pool):
    route = server.get("/stat").respond(500, json={"resp": "ERROR"})
    answer = call(QUICK, pool, "GET", server.url + "/stat", idempotent=True)
    assert answer.status_code == 500, "out of tries: the last answer as it was"
    assert route.call_count == QUICK.max_attempts


def test_retry_after_is_cut_to_the_deadline(server, pool):
    route = server.get("/stat").respond(503, headers={"Retry-After": "30"})
    policy = RetryPolicy(max_attempts=100, max_elapsed=1.0)
    answer = call(policy, pool, "GET", server.url + "/stat", idempotent=True)
    assert answer.status_code == 503
    assert route.call_count == 2, "one last try at the deadline, then no more"
    (gap,) = gaps(route.calls)
    assert 0.9 <= gap < 30, "waited until the deadline, not the 30 s asked"


def test_the_deadline_ends_retries(server, pool):
    route = server.get("/stat").respond(503, headers={"Retry-After": "0"})
    pauses: list[float] = []
    policy = RetryPolicy(max_attempts=10_000, max_elapsed=0.3)

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    answer = call(policy, pool, "GET", server.url + "/stat", idempotent=True, sleep=sleep)
    assert answer.status_code == 503
    assert 1 < route.call_count < 10_000
    assert sum(pauses) <= policy.max_elapsed, "no pause runs past the deadline"


@pytest.mark.parametrize(
    "failure",
    [busy("0"), Reply(502), Hangup(), Delay(4 * TIMEOUT, OK)],
    ids=["503-retry-after", "502", "broken-connection", "timeout"],
)
def test_a_sent_non_idempotent_call_is_not_repeated(server, pool, failure):
    # /cleanbuf without a batch id archives whatever is there: a repeat would archive again.
    route = server.post("/cleanbuf").reply(failure, OK)
    try:
        answer = call(QUICK, pool, "POST", server.url + "/cleanbuf", idempotent=False)
    except HTTPError:
        pass
    else:
        assert answer.status_code == failure.status
    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure", [Hangup(), Delay(4 * TIMEOUT, OK)], ids=["broken-connection", "timeout"]
)
def test_a_sent_idempotent_call_is_repeated(server, pool, failure):
    route = server.post("/streamdata").reply(failure, OK)
    answer = call(QUICK, pool, "POST", server.url + "/streamdata", idempotent=True)
    assert answer.status_code == 200
    assert route.call_count == 2


def test_a_refused_connection_is_retried_for_any_call(pool):
    late = FakeUpstream(port=free_port())
    route = late.post("/cleanbuf").respond(200, json={"resp": "CLEANED"})
    pauses: list[float] = []

    def start_then_pause(seconds: float) -> None:  # nothing listened before the first pause
        pauses.append(seconds)
        if not late.running:
            late.start()

    try:
        answer = call(
            QUICK, pool, "POST", late.url + "/cleanbuf", idempotent=False, sleep=start_then_pause
        )
    finally:
        late.stop()
    assert answer.status_code == 200
    assert (route.call_count, len(pauses)) == (1, 1)


def test_a_hop_passes_answers_back_and_retries_only_refusals(server, pool):
    route = server.get("/stat").reply(busy("1"), OK)
    answer = call(hop_policy(2.0), pool, "GET", server.url + "/stat", idempotent=True)
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
    assert route.call_count == 1


def test_a_hop_gives_up_on_refusals_after_its_attempts(pool):
    pauses: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/stat"
    with pytest.raises(NewConnectionError):
        call(hop_policy(2.0), pool, "GET", url, idempotent=True, sleep=pauses.append)
    assert len(pauses) == hop_policy(2.0).max_attempts - 1


def test_retry_after_header_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    # An hour ahead: the date is whole seconds, and only a stall of minutes could shrink it more.
    future = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    assert 3000 < parse_retry_after(future) <= 3600
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past) == 0.0
