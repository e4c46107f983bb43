"""The demo stream of ``glitchflow up --demo``: real strain, then synthetic data until the freeze.

First the second of H1, L1 and V1 strain that gwpy ships is sent, then blocks of synthetic H1/L1
data with glitches, starting at the current GPS time, until the buffer reports ``FROZEN`` (or
``--max-blocks`` runs out). ``python -m gwclient.demo --url http://127.0.0.1:8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

GPS_EPOCH_UNIX = 315_964_800
LEAP_SECONDS = 18  # GPS - UTC since 2017


def gps_now() -> int:
    """The current GPS time, whole seconds."""
    return int(time.time()) - GPS_EPOCH_UNIX + LEAP_SECONDS


def _say(text: str) -> None:
    print(f"gwclient demo: {text}", flush=True)


async def _get(session: Any, url: str) -> dict[str, Any]:
    import aiohttp

    try:
        async with session.get(url) as answer:
            if answer.status != 200:
                return {}
            doc = await answer.json(content_type=None)
            return doc if isinstance(doc, dict) else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}


async def run_demo(
    url: str,
    *,
    token: str | None = None,
    block_seconds: float = 16.0,
    sample_rate: float = 4096.0,
    max_blocks: int = 200,
    realtime: bool = False,
    concurrency: int = 4,
) -> int:
    """Stream until the buffer freezes; returns 0 when it froze, 1 when something failed."""
    import aiohttp

    from gwclient.chunks import plan_chunks
    from gwclient.sender import RetryPolicy, send_chunks
    from gwclient.sources import read_file, shipped_sample_path, synthetic

    base = url.rstrip("/")
    retry = RetryPolicy(max_elapsed=60.0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def frozen() -> bool:
            # Rotate mode never stops ingest: a sealed batch waiting is where the demo stops.
            desc = await _get(session, base + "/desc")
            return desc.get("resp") == "FROZEN" or bool(desc.get("sealed"))

        async def send(data: Any, what: str) -> bool:
            summary = await send_chunks(
                plan_chunks(data, 1.0),
                base,
                token=token,
                concurrency=concurrency,
                realtime=realtime,
                retry=retry,
                session=session,
                wait_frozen=False,  # the demo stops where the buffer froze
            )
            _say(f"{what}: {summary.line()}")
            held_back = all("FROZEN" in e for e in summary.errors)
            return summary.ok or held_back

        if await frozen():
            _say("the buffer is already FROZEN; flush it (client_scripts/cleanbuf.sh) and retry")
            return 0
        real = read_file(shipped_sample_path())
        if not await send(real, "real strain H1/L1/V1 (gwpy's HLV-HW100916-968654552-1.hdf)"):
            return 1
        start = float(gps_now())
        for block in range(max_blocks):
            if await frozen():
                break
            data, glitches = synthetic(
                ["H1", "L1"],
                duration=block_seconds,
                sample_rate=sample_rate,
                start=start,
                seed=int(start),
                glitches=2,
            )
            when = ", ".join(f"{g.detector}@{g.time:.2f}" for g in glitches)
            if not await send(data, f"synthetic block {block + 1} from GPS {start:.0f} ({when})"):
                return 1
            start += block_seconds
        stats = await _get(session, base + "/stats")
        if (await _get(session, base + "/desc")).get("sealed"):
            _say(
                "a full batch is sealed (ingest goes on in the next one): "
                "ready for /train and /cleanbuf"
            )
            return 0
        if await frozen():
            _say(
                f"the buffer is FROZEN with {stats.get('n_itm')} files, "
                f"{stats.get('buff_size')} bytes: ready for /train and /cleanbuf"
            )
            return 0
        _say(f"stopped after {max_blocks} blocks without a freeze ({stats})")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gwclient.demo``."""
    parser = argparse.ArgumentParser(prog="python -m gwclient.demo", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("GLITCHFLOW_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("GLITCHFLOW_TOKEN"))
    parser.add_argument("--block-seconds", type=float, default=16.0)
    parser.add_argument("--sample-rate", type=float, default=4096.0)
    parser.add_argument("--max-blocks", type=int, default=200)
    parser.add_argument("--realtime", action="store_true")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(
            run_demo(
                args.url,
                token=args.token,
                block_seconds=args.block_seconds,
                sample_rate=args.sample_rate,
                max_blocks=args.max_blocks,
                realtime=args.realtime,
            )
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
