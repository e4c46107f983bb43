"""Read-back through the real stack: gwpy's H1/L1/V1 second streamed, archived, read back bit-exact.

The three services run as real processes on loopback; the data is the real second of strain that
ships with gwpy, streamed by gwclient in 1/8 s chunks. The first half is frozen, flushed and
archived to the folder; the second half stays in the batch being filled.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gwpy.timeseries import TimeSeries, TimeSeriesDict
from ports import free_port
from readback.conftest import (
    CHANNELS,
    CHUNK,
    DT,
    GWPY_WARNINGS,
    T0,
    expected,
    read_hdf5,
    same_bits,
)

import gwclient
from glitchflow_stack import Layout, Stack, service_processes
from gwclient.fetch import DataGap, FetchError, fetch, fetch_segments

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    GWPY_WARNINGS,
]

MAX_READ_SECONDS = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory, original) -> Iterator[Layout]:
    """The stack with the first half second archived, the second half live; L1 lacks one chunk.

    One stack for the module: the tests only read.
    """
    tmp_path = tmp_path_factory.mktemp("readback")
    env = {"GLITCHFLOW_MAX_READ_SECONDS": str(MAX_READ_SECONDS), "GLITCHFLOW_LOG_LEVEL": "WARNING"}
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    running = Stack(service_processes(layout, tmp_path / "buf", 64 * 1024 * 1024, env=env))
    running.start()
    try:
        fill(layout, tmp_path, original)
        yield layout
    finally:
        running.stop()


def fill(layout: Layout, tmp_path: Path, original: TimeSeriesDict) -> None:
    from gwclient.chunks import plan_chunks

    first = TimeSeriesDict({k: v.crop(T0, T0 + 0.5) for k, v in original.items()})
    second = TimeSeriesDict({k: v.crop(T0 + 0.5, T0 + 1) for k, v in original.items()})
    assert gwclient.stream(first, layout.api_url, chunk_seconds=CHUNK * DT).ok
    with httpx.Client(base_url=layout.api_url, timeout=30) as api:
        cleaned = api.post("/cleanbuf", json={"msg": "archive the first half"})
        assert cleaned.status_code == 200, cleaned.text
    # L1 loses its chunk [0.75, 0.875): a gap in the live batch.
    live = [
        c
        for c in plan_chunks(second, CHUNK * DT)
        if not (c.channel == "L1:LDAS-STRAIN" and c.t0 == T0 + 0.75)
    ]
    assert gwclient.stream(live, layout.api_url).ok
    assert list((tmp_path / "buf" / "archive").iterdir()), "the first half is archived"


RANGES = [
    (T0 + 10.5 * DT, T0 + 900.5 * DT),  # inside one archived chunk
    (T0 + 2000.5 * DT, T0 + 2100.5 * DT),  # across an archived chunk boundary (2048)
    (T0 + 0.4, T0 + 0.6),  # archived + live
    (T0 + 0.55, T0 + 0.7),  # live only, across a chunk boundary
    (T0, T0 + 1),  # the whole second
]


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("channel", ["H1:LDAS-STRAIN", "V1:h_16384Hz"])
def test_subranges_come_back_bit_exact(stack, original, channel, start, end) -> None:
    answer = httpx.get(
        f"{stack.api_url}/data", params={"channel": channel, "start": start, "end": end}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["channel"] == channel
    assert len(doc["segments"]) == 1 and doc["gaps"] == []
    assert same_bits(doc["h"], expected(original[channel], start, end))
    assert doc["dt"] == DT


def test_gwclient_fetch_returns_the_timeseries(stack, original) -> None:
    start, end = T0 + 0.3, T0 + 0.7
    series = fetch("H1:LDAS-STRAIN", start, end, url=stack.api_url)
    assert isinstance(series, TimeSeries)
    assert same_bits(series.value, expected(original["H1:LDAS-STRAIN"], start, end))
    assert series.t0.value == pytest.approx(start, abs=DT)
    assert series.dt.value == DT
    assert str(series.channel) == "H1:LDAS-STRAIN"


def test_gwclient_fetch_of_several_channels_is_a_dict(stack, original) -> None:
    both = fetch(["H1:LDAS-STRAIN", "V1:h_16384Hz"], T0, T0 + 0.5, url=stack.api_url)
    assert isinstance(both, TimeSeriesDict)
    assert list(both) == ["H1:LDAS-STRAIN", "V1:h_16384Hz"]
    for name, series in both.items():
        assert same_bits(series.value, original[name].value[:8192])


def test_gap_is_listed_and_never_filled(stack, original) -> None:
    start, end = T0 + 0.6, T0 + 0.95
    doc = httpx.get(
        f"{stack.api_url}/data",
        params={"channel": "L1:LDAS-STRAIN", "start": start, "end": end},
        timeout=30,
    ).json()
    assert doc["h"] is None
    assert doc["gaps"] == [[pytest.approx(T0 + 0.75), pytest.approx(T0 + 0.875)]]
    joined = np.concatenate([s["h"] for s in doc["segments"]])
    held = original["L1:LDAS-STRAIN"].value.copy()
    held[int(0.75 * 16384) : int(0.875 * 16384)] = np.nan  # the chunk never sent
    wanted = expected(TimeSeries(held, t0=T0, dt=DT), start, end)
    assert same_bits(joined, wanted[~np.isnan(wanted)])
    # gwclient: an error naming the gap, or the gap padded on request.
    with pytest.raises(DataGap, match="gaps at"):
        fetch("L1:LDAS-STRAIN", start, end, url=stack.api_url)
    padded = fetch("L1:LDAS-STRAIN", start, end, url=stack.api_url, pad=0.0)
    assert len(padded) == round((end - start) / DT)
    assert (padded.crop(T0 + 0.76, T0 + 0.87).value == 0).all()
    assert len(fetch_segments("L1:LDAS-STRAIN", start, end, url=stack.api_url)) == 2


@pytest.mark.parametrize("how", ["format", "accept"])
def test_hdf5_answer_reads_back_with_gwpy(stack, original, tmp_path, how) -> None:
    start, end = T0 + 0.25, T0 + 0.75
    series = read_hdf5(stack.api_url, "V1:h_16384Hz", start, end, how, tmp_path)
    assert same_bits(series.value, expected(original["V1:h_16384Hz"], start, end))
    assert series.t0.value == pytest.approx(start, abs=DT)


def test_channels_lists_spans_and_rates(stack) -> None:
    doc = httpx.get(f"{stack.api_url}/channels", timeout=30).json()
    listed = {c["channel"]: c for c in doc["channels"]}
    assert sorted(listed) == sorted(CHANNELS)
    assert listed["H1:LDAS-STRAIN"]["segments"] == [[T0, pytest.approx(T0 + 1)]]
    assert listed["H1:LDAS-STRAIN"]["sample_rate"] == 16384.0
    assert len(listed["H1:LDAS-STRAIN"]["batches"]) == 2
    assert listed["L1:LDAS-STRAIN"]["gaps"] == [
        [pytest.approx(T0 + 0.75), pytest.approx(T0 + 0.875)]
    ]


BAD = [
    ({"start": T0, "end": T0 + 1}, 422, "INVALID", "channel"),
    ({"channel": "H1:LDAS-STRAIN", "end": T0 + 1}, 422, "INVALID", "start"),
    ({"channel": "H1:LDAS-STRAIN", "start": "soon", "end": T0 + 1}, 422, "INVALID", "start"),
    ({"channel": "H1:LDAS-STRAIN", "start": T0 + 1, "end": T0 + 1}, 422, "INVALID", "after start"),
    ({"channel": "H1:LDAS-STRAIN", "start": T0 + 1, "end": T0}, 422, "INVALID", "after start"),
    ({"channel": "H1:LDAS-STRAIN", "start": T0, "end": T0 + 5}, 413, "INVALID", "limit of 4 s"),
    ({"channel": "H1:LDAS-STRAIN", "start": "nan", "end": T0}, 422, "INVALID", "'start'"),
    ({"channel": "X1:NOTHING", "start": T0, "end": T0 + 1}, 404, "UNKNOWN_CHANNEL", "X1:NOTHING"),
    ({"channel": "H1:LDAS-STRAIN", "start": T0 + 2, "end": T0 + 3}, 404, "NO_DATA", "no samples"),
    (
        {"channel": "H1:LDAS-STRAIN", "start": T0, "end": T0 + 1, "format": "csv"},
        422,
        "INVALID",
        "format",
    ),
]


@pytest.mark.parametrize(("params", "status", "resp", "words"), BAD)
def test_bad_reads_are_refused_with_a_clear_message(stack, params, status, resp, words) -> None:
    answer = httpx.get(f"{stack.api_url}/data", params=params, timeout=30)
    assert answer.status_code == status, answer.text
    doc = answer.json()
    assert doc["resp"] == resp
    assert words in str(doc.get("detail"))


def test_fetch_raises_the_refusal(stack) -> None:
    with pytest.raises(FetchError) as caught:
        fetch("X1:NOTHING", T0, T0 + 1, url=stack.api_url)
    assert caught.value.status == 404 and caught.value.resp == "UNKNOWN_CHANNEL"


def test_gwclient_fetch_command_writes_hdf5(stack, original, tmp_path) -> None:
    out = tmp_path / "fetched.h5"
    start, end = T0 + 0.125, T0 + 0.625
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gwclient",
            "fetch",
            "H1:LDAS-STRAIN",
            "V1:h_16384Hz",
            repr(start),
            repr(end),
            "--url",
            stack.api_url,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    back = TimeSeriesDict.read(out, ["H1:LDAS-STRAIN", "V1:h_16384Hz"])
    for name in back:
        assert same_bits(back[name].value, expected(original[name], start, end))
