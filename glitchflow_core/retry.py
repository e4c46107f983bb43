"""The one retry policy of every HTTP client in the project, on tenacity.

API → logic, logic → buffer and gwclient → API all retry through `RetryPolicy`: jittered
exponential backoff, a cap on attempts and a total deadline, ``Retry-After`` honoured. What may be
repeated depends on whether the request left:

- a refused connection (nothing was sent) is retried for any call;
- a timeout, a connection broken before the answer, a 429 or a 5xx answer only for an idempotent
  call (a GET; ``/streamdata``, whose chunk identity makes a repeat a ``DUPLICATE``; never a
  ``/cleanbuf`` without a batch id), and only by a policy with ``after_sent``.

The services' hops use `hop_policy`: refused connections only, a few quick tries within the
request's timeout, every answer (503 and its ``Retry-After`` included) passed back to their client
at once. gwclient is where long waits on a frozen buffer happen.

tenacity rather than stamina: the policy needs a wait that reads ``Retry-After`` from the failed
answer (a result, not an exception) and caps it by the remaining deadline, and a per-call hook
before each pause (gwclient shows its wait on a frozen buffer); tenacity takes both as arguments,
for sync and async callers alike, where stamina retries on exceptions only and its hooks are
process-wide.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

import tenacity

CONNECT_ATTEMPTS = 3
"""Tries of a service hop when the connection is refused: nothing was sent."""
BACKOFF_BASE = 0.05
"""First pause, in seconds, of a service hop retrying a refused connection."""
RETRY_AFTER_JITTER = 0.1
"""Up to this fraction of ``Retry-After`` (and at least 50 ms) is added, so waiters spread out."""

Exceptions = tuple[type[BaseException], ...]
WaitHook = Callable[[tenacity.RetryCallState], Any]


class Answered(Protocol):
    """What a client's send returns: `glitchflow_core.upstream.Answer` or alike."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retryable_status(status: int) -> bool:
    """True for the answers an idempotent call may repeat: 429 and 5xx."""
    return status == 429 or status >= 500


def retry_after_of(state: tenacity.RetryCallState) -> float | None:
    """The ``Retry-After`` seconds of the attempt that just failed, None when it had none."""
    outcome = state.outcome
    if outcome is None or outcome.failed:
        return None
    return parse_retry_after(outcome.result().headers.get("Retry-After"))


@dataclass(frozen=True)
class RetryPolicy:
    """When to repeat a request and how long to wait in between.

    ``max_attempts`` bounds the failed sends (an answer carrying ``Retry-After`` does not count:
    the server is there and said when to come back); ``max_elapsed`` is the total deadline from the
    first send, waits included: no pause runs past it. Pauses grow exponentially with the
    attempts from ``base_delay`` up to ``max_delay``, half of each jittered; after
    ``Retry-After`` the pause is that plus up to 10 %. ``after_sent`` allows repeating an
    idempotent call that was sent.
    """

    max_attempts: int = 8
    max_elapsed: float = 600.0
    base_delay: float = 0.25
    max_delay: float = 30.0
    after_sent: bool = True

    @cached_property
    def backoff(self) -> tenacity.wait.wait_base:
        """The pause after a failure without ``Retry-After``: exponential, half of it jittered."""
        half = {"multiplier": self.base_delay / 2, "max": self.max_delay / 2}
        return tenacity.wait_exponential(**half) + tenacity.wait_random_exponential(**half)

    def call(
        self,
        send: Callable[[], Answered],
        *,
        idempotent: bool,
        not_sent: Exceptions,
        no_answer: Exceptions = (),
        sleep: Callable[[float], Any] = time.sleep,
        before_sleep: WaitHook | None = None,
    ) -> Any:
        """``send()`` until it answers, retrying what this policy allows.

        Returns the last answer (a 503 when the retries ran out on 503s); raises the last
        exception when the last try raised. ``not_sent`` are the exceptions of a request that never
        left (a refused connection), ``no_answer`` those of one that left without an answer.
        """
        attempts = _Attempts(self, idempotent, not_sent, no_answer)
        try:
            answer = send()
        except Exception as error:  # tenacity decides, and raises it again when it is final
            first = _raiser(error)
        else:
            if not attempts.repeats(answer):
                return answer  # the common case, without tenacity's bookkeeping
            first = _returner(answer)
        pending = [first]

        def first_then_send() -> Answered:
            return pending.pop()() if pending else send()

        return tenacity.Retrying(sleep=sleep, **attempts.arguments(before_sleep))(first_then_send)

    async def acall(
        self,
        send: Callable[[], Awaitable[Answered]],
        *,
        idempotent: bool,
        not_sent: Exceptions,
        no_answer: Exceptions = (),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        before_sleep: WaitHook | None = None,
    ) -> Any:
        """`call` for a coroutine function; the pauses are ``asyncio.sleep``."""
        attempts = _Attempts(self, idempotent, not_sent, no_answer)
        try:
            answer = await send()
        except Exception as error:  # tenacity decides, and raises it again when it is final
            first = _raiser(error)
        else:
            if not attempts.repeats(answer):
                return answer
            first = _returner(answer)

        pending = [first]

        async def first_then_send() -> Answered:
            return pending.pop()() if pending else await send()

        return await tenacity.AsyncRetrying(sleep=sleep, **attempts.arguments(before_sleep))(
            first_then_send
        )


class _Attempts:
    """One call's retries: when it started, how many sends failed, and the decisions on them.

    The first send runs before tenacity is involved (most calls end there); tenacity then replays
    its outcome as attempt 1, and the deadline counts from that first send.
    """

    def __init__(
        self, policy: RetryPolicy, idempotent: bool, not_sent: Exceptions, no_answer: Exceptions
    ) -> None:
        self.policy = policy
        self.repeat_sent = idempotent and policy.after_sent
        self.not_sent = not_sent
        self.no_answer = no_answer
        self.started = time.monotonic()
        self.failures = 0

    def repeats(self, answer: Answered) -> bool:
        """True when ``answer`` is one to try again for."""
        return self.repeat_sent and retryable_status(answer.status_code)

    def arguments(self, before_sleep: WaitHook | None) -> dict[str, Any]:
        """The arguments of a tenacity ``Retrying`` that follows these rules."""
        return {
            "retry": self.retry,
            "wait": self.wait,
            "stop": self.stop,
            "before_sleep": before_sleep,
            # Out of tries: the last answer as it is, or the last exception as it was raised.
            "retry_error_callback": lambda state: state.outcome.result(),
        }

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def retry(self, state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        assert outcome is not None
        if outcome.failed:
            error = outcome.exception()
            again = isinstance(error, self.not_sent) or (
                self.repeat_sent and isinstance(error, self.no_answer)
            )
        else:
            again = self.repeats(outcome.result())
        if again and retry_after_of(state) is None:
            self.failures += 1
        return again

    def wait(self, state: tenacity.RetryCallState) -> float:
        retry_after = retry_after_of(state)
        if retry_after is None:
            pause = self.policy.backoff(state)
        else:
            jitter = max(0.05, RETRY_AFTER_JITTER * retry_after)
            pause = retry_after + random.uniform(0, jitter)  # noqa: S311 - jitter, not secrets
        return max(0.0, min(pause, self.policy.max_elapsed - self.elapsed()))

    def stop(self, state: tenacity.RetryCallState) -> bool:
        out_of_time = self.elapsed() >= self.policy.max_elapsed
        return out_of_time or self.failures >= self.policy.max_attempts


def _raiser(error: Exception) -> Callable[[], Any]:
    def replay() -> Any:
        raise error

    return replay


def _returner(answer: Answered) -> Callable[[], Answered]:
    return lambda: answer


def hop_policy(timeout: float) -> RetryPolicy:
    """The policy of a service's hop to the next service: refused connections, within ``timeout``.

    A service answers its client fast: it repeats only what never left, a few times, and passes
    every answer (503 with ``Retry-After`` included) back for the client to wait on.
    """
    return RetryPolicy(
        max_attempts=CONNECT_ATTEMPTS,
        max_elapsed=timeout,
        base_delay=BACKOFF_BASE,
        max_delay=BACKOFF_BASE * 2**CONNECT_ATTEMPTS,
        after_sent=False,
    )
