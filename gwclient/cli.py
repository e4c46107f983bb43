"""The ``gwclient`` command: stream strain from GWOSC, a local file or the synthetic source.

Exit status: 0 when every chunk was delivered (created or acknowledged as a duplicate), 1 when any
was not, 2 for a usage error, 3 when the source could give no data (e.g. GWOSC unreachable), 130
when stopped by Ctrl-C (after the summary of what was sent).

A frozen buffer (its batch full, waiting for training) holds the stream: gwclient says so once,
with what frees it, shows how long it has waited, and keeps each chunk waiting up to ``--max-wait``.

The original GWclient's environment variables are honoured: ``GWID`` (event name), ``DTCID``
(detectors, comma-separated), ``INF`` and ``SUP`` (seconds before and after the event; the sign of
``INF`` is ignored, so ``-13`` and ``13`` both mean 13 s before) and ``SRV`` (the API URL, with or
without ``/streamdata``). ``GLITCHFLOW_URL`` and ``GLITCHFLOW_TOKEN`` take precedence.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_OK, EXIT_UNDELIVERED, EXIT_USAGE, EXIT_SOURCE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """\
examples:
  gwclient --file HLV-HW100916-968654552-1.hdf
  gwclient --synthetic --detector H1 --detector L1 --duration 60 --glitches 3 --realtime
  gwclient --event GW150914 --detector L1 --before 13 --after 16
  gwclient --gps 1126259446 1126259478 --detector H1
  gwclient fetch H1:LDAS-STRAIN 968654552 968654553 --out h1.h5   (read back: gwclient fetch -h)

environment: GLITCHFLOW_URL, GLITCHFLOW_TOKEN; the original GWID, DTCID, INF, SUP, SRV.
exit status: 0 all delivered, 1 some chunk not delivered, 2 usage error, 3 no data from the source,
  130 stopped by Ctrl-C (the summary is printed first).
a frozen buffer holds the stream until its batch is flushed (the Airflow DAG, or
  client_scripts/cleanbuf.sh); gwclient says so and waits up to --max-wait per chunk.
"""


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return abs(float(value))
    except ValueError:
        raise SystemExit(f"gwclient: {name}={value!r} is not a number of seconds") from None


def _split(values: Sequence[str] | None) -> list[str]:
    """``["H1,L1", "V1"]`` -> ``["H1", "L1", "V1"]``."""
    out: list[str] = []
    for value in values or ():
        out.extend(part for part in value.replace(",", " ").split() if part)
    return out


def _url_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("GLITCHFLOW_URL") or os.environ.get("SRV") or DEFAULT_URL,
        help="API base URL (default: $GLITCHFLOW_URL, $SRV, or %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults read from the environment)."""
    parser = argparse.ArgumentParser(
        prog="gwclient",
        description="Stream gravitational-wave strain to the Glitchflow datastore (/streamdata).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _url_argument(parser)
    source = parser.add_argument_group("source (one of)").add_mutually_exclusive_group()
    source.add_argument("--event", metavar="NAME", help="GWOSC event, e.g. GW150914 (env GWID)")
    source.add_argument(
        "--gps", nargs=2, type=float, metavar=("START", "END"), help="GWOSC open data GPS span"
    )
    source.add_argument("--file", metavar="PATH", help="local file: HDF5, GWF, text")
    source.add_argument(
        "--synthetic", action="store_true", help="coloured Gaussian noise with glitches"
    )

    what = parser.add_argument_group("data")
    what.add_argument(
        "--detector",
        action="append",
        metavar="IFO",
        help="H1, L1, V1 ... (repeat or comma-separate; env DTCID)",
    )
    what.add_argument(
        "--channel",
        action="append",
        metavar="NAME",
        help="channel(s) to read from --file (names the series of a text file)",
    )
    what.add_argument("--format", help="gwpy format of --file (hdf5, hdf5.gwosc, gwf, txt)")
    what.add_argument(
        "--before", type=float, default=None, metavar="S", help="seconds before the event (INF, 16)"
    )
    what.add_argument(
        "--after", type=float, default=None, metavar="S", help="seconds after the event (SUP, 16)"
    )
    what.add_argument(
        "--sample-rate",
        type=float,
        default=4096.0,
        metavar="HZ",
        help="GWOSC (4096 or 16384) or synthetic rate (default %(default)g)",
    )
    what.add_argument("--duration", type=float, default=16.0, metavar="S", help="synthetic length")
    what.add_argument("--start", type=float, default=None, metavar="GPS", help="synthetic start")
    what.add_argument("--glitches", type=int, default=0, metavar="N", help="synthetic glitches")
    what.add_argument("--seed", type=int, default=0, metavar="N", help="synthetic seed")

    send = parser.add_argument_group("sending")
    send.add_argument("--chunk-seconds", type=float, default=1.0, metavar="S")
    send.add_argument("--concurrency", type=int, default=4, metavar="N")
    send.add_argument("--realtime", action="store_true", help="pace chunks at the data rate")
    send.add_argument("--speed", type=float, default=1.0, help="--realtime speed-up factor")
    send.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="chunks per request (NDJSON; each still answered on its own): for many small "
        "chunks (default %(default)s: one chunk a request)",
    )
    send.add_argument(
        "--wire",
        choices=("auto", "binary", "json"),
        default="auto",
        help="chunk encoding: auto sends float64 samples once the server offers it, binary "
        "from the start (JSON on 415), json always (default %(default)s)",
    )
    send.add_argument("--token", help="bearer token (default: $GLITCHFLOW_TOKEN)")
    send.add_argument(
        "--max-attempts",
        type=int,
        default=8,
        metavar="N",
        help="failed sends of one chunk before giving up; FROZEN waits do not count "
        "(default %(default)s)",
    )
    send.add_argument(
        "--max-wait",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds to keep retrying one chunk, frozen buffer included (default %(default)g)",
    )
    send.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per request")
    send.add_argument(
        "--quiet", "-q", action="store_true", help="only the summary line (no frozen notices)"
    )
    return parser


def load_source(args: argparse.Namespace) -> Any:
    """The `TimeSeriesDict` the arguments ask for; raises `gwclient.sources.SourceError`."""
    from gwclient import sources

    detectors = _split(args.detector) or _split([os.environ.get("DTCID", "")])
    before = args.before if args.before is not None else _env_float("INF", 16.0)
    after = args.after if args.after is not None else _env_float("SUP", 16.0)
    if args.file:
        return sources.read_file(args.file, _split(args.channel), format=args.format)
    if args.synthetic:
        data, glitches = sources.synthetic(
            detectors or ["H1"],
            duration=args.duration,
            sample_rate=args.sample_rate,
            start=args.start if args.start is not None else sources.DEFAULT_START,
            seed=args.seed,
            glitches=args.glitches,
        )
        if glitches and not args.quiet:
            for glitch in glitches:
                print(
                    f"gwclient: glitch {glitch.detector} at GPS {glitch.time:.4f}, "
                    f"{glitch.frequency:.0f} Hz, Q {glitch.q:.1f}, "
                    f"amplitude {glitch.amplitude:.2e}",
                    file=sys.stderr,
                )
        return data
    if args.gps:
        start, end = args.gps
        return sources.fetch_gwosc(
            start=start, end=end, detectors=detectors, sample_rate=int(args.sample_rate)
        )
    return sources.fetch_gwosc(
        event=args.event,
        detectors=detectors,
        before=before,
        after=after,
        sample_rate=int(args.sample_rate),
        timeout=args.timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status.

    ``gwclient fetch ...`` reads data back (`fetch_main`); anything else streams, as always.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fetch"]:
        return fetch_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.file or args.synthetic or args.gps or args.event):
        args.event = os.environ.get("GWID") or None
        if not args.event:
            parser.error(
                "choose a source: --event NAME, --gps START END, --file PATH or --synthetic"
            )
    if args.chunk_seconds <= 0 or args.concurrency < 1 or args.sample_rate <= 0 or args.batch < 1:
        parser.error(
            "--chunk-seconds and --sample-rate must be > 0, --concurrency and --batch >= 1"
        )

    from gwclient.chunks import plan_chunks
    from gwclient.sender import TOKEN_ENV, RetryPolicy, Summary, send_chunks, stream_url
    from gwclient.sources import SourceError

    try:
        data = load_source(args)
        chunks = plan_chunks(data, args.chunk_seconds)
    except SourceError as exc:
        print(f"gwclient: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    except ValueError as exc:  # a channel name or time the API would refuse
        print(f"gwclient: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    except KeyboardInterrupt:
        print("gwclient: interrupted before anything was sent", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not chunks:
        print("gwclient: the source gave no samples", file=sys.stderr)
        return EXIT_SOURCE
    if not args.quiet:
        print(
            f"gwclient: {len(chunks)} chunks of {args.chunk_seconds:g} s from "
            f"{', '.join(str(k) for k in data)} to {stream_url(args.url)}",
            file=sys.stderr,
        )
    token = args.token or os.environ.get(TOKEN_ENV) or None
    retry = RetryPolicy(max_attempts=args.max_attempts, max_elapsed=args.max_wait)
    summary = Summary()
    try:
        asyncio.run(
            send_chunks(
                chunks,
                args.url,
                token=token,
                concurrency=args.concurrency,
                realtime=args.realtime,
                speed=args.speed,
                retry=retry,
                timeout=args.timeout,
                progress=None if not args.quiet else False,
                summary=summary,
                notify=None if args.quiet else _notice,
                batch=args.batch,
                binary={"auto": None, "binary": True, "json": False}[args.wire],
            )
        )
    except KeyboardInterrupt:  # asyncio.run cancelled the stream first: the summary is complete
        print("gwclient: interrupted", file=sys.stderr)
        print(f"gwclient: {summary.line()}", flush=True)
        return EXIT_INTERRUPTED
    print(f"gwclient: {summary.line()}")
    return EXIT_OK if summary.ok else EXIT_UNDELIVERED


FETCH_EPILOG = """\
examples:
  gwclient fetch H1:LDAS-STRAIN 968654552 968654553 --out h1.h5
  gwclient fetch H1:LDAS-STRAIN L1:LDAS-STRAIN 968654552 968654553 --pad 0 --out hl.h5

The file holds one TimeSeries per channel, named after it: TimeSeriesDict.read(FILE) reads it.
exit status: 0 written, 1 the API refused (unknown channel, no data, gaps without --pad),
  2 usage error.
"""


def build_fetch_parser() -> argparse.ArgumentParser:
    """The parser of ``gwclient fetch``."""
    parser = argparse.ArgumentParser(
        prog="gwclient fetch",
        description="Read channels back from the Glitchflow datastore (GET /data) into HDF5.",
        epilog=FETCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Positionals first: CHANNEL... START END (argparse gives the last two to START and END).
    parser.add_argument("channel", nargs="+", metavar="CHANNEL", help="e.g. H1:LDAS-STRAIN")
    parser.add_argument("start", type=float, metavar="START", help="GPS start (inclusive)")
    parser.add_argument("end", type=float, metavar="END", help="GPS end (exclusive)")
    _url_argument(parser)
    parser.add_argument("--out", required=True, metavar="FILE.h5", help="HDF5 file to write")
    parser.add_argument(
        "--pad", type=float, default=None, metavar="VALUE", help="fill gaps with VALUE"
    )
    parser.add_argument(
        "--token",
        help="a reader or admin token (default: $GLITCHFLOW_READER_TOKEN, else $GLITCHFLOW_TOKEN)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per request")
    return parser


def fetch_main(argv: Sequence[str]) -> int:
    """``gwclient fetch CHANNEL... START END --out FILE.h5``; returns the exit status."""
    args = build_fetch_parser().parse_args(argv)
    import httpx

    from gwclient.fetch import DataGap, FetchError, fetch

    try:
        data = fetch(
            args.channel,
            args.start,
            args.end,
            url=args.url,
            pad=args.pad,
            token=args.token,
            timeout=args.timeout,
        )
    except (DataGap, FetchError, httpx.HTTPError) as exc:
        print(f"gwclient: {exc}", file=sys.stderr)
        return EXIT_UNDELIVERED
    data.write(args.out, format="hdf5", overwrite=True)
    for name, series in data.items():
        print(f"gwclient: {name} {series.span[0]} .. {series.span[1]}, {len(series)} samples")
    print(f"gwclient: wrote {args.out}")
    return EXIT_OK


def _notice(text: str) -> None:
    """One line on stderr, above the progress bar if there is one."""
    from tqdm import tqdm

    tqdm.write(f"gwclient: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
