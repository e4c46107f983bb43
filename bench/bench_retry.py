"""CPU cost of the retry policy on a call that succeeds at once (every chunk crosses two hops).

Times `glitchflow_core.retry.RetryPolicy.call` and ``acall`` around a send that returns an answer
at once, against the bare send and against a tenacity ``Retrying`` built for each call, and prints
microseconds per call.

    .venv/bin/python bench/bench_retry.py [--calls 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import tenacity

from glitchflow_core.retry import hop_policy
from glitchflow_core.upstream import Answer

ANSWER = Answer(201, b'{"resp":"CREATED"}', {})


def send() -> Answer:
    return ANSWER


async def asend() -> Answer:
    return ANSWER


def per_call(seconds: float, calls: int) -> str:
    return f"{seconds / calls * 1e6:7.2f} us/call"


async def time_async(calls: int) -> tuple[float, float]:
    policy = hop_policy(5.0)
    started = time.perf_counter()
    for _ in range(calls):
        await asend()
    bare = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        await policy.acall(asend, idempotent=False, not_sent=(OSError,))
    return bare, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    calls = parser.parse_args().calls
    policy = hop_policy(5.0)

    started = time.perf_counter()
    for _ in range(calls):
        send()
    bare = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        policy.call(send, idempotent=False, not_sent=(OSError,))
    wrapped = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        tenacity.Retrying(stop=tenacity.stop_after_attempt(3))(send)
    every_call = time.perf_counter() - started
    abare, awrapped = asyncio.run(time_async(calls))

    print(f"sync  bare send              {per_call(bare, calls)}")
    print(f"sync  RetryPolicy.call       {per_call(wrapped, calls)}")
    print(f"sync  tenacity per call      {per_call(every_call, calls)}")
    print(f"async bare send              {per_call(abare, calls)}")
    print(f"async RetryPolicy.acall      {per_call(awrapped, calls)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
