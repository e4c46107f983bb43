"""Chunking: exact continuity, no sample lost, repeated or shifted."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glitchflow_core.chunk import DEFAULT_CHANNEL, parse_chunk
from gwclient.chunks import PlannedChunk, chunk_array, plan_chunks, sample_time, samples_per_chunk

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
rates = st.sampled_from([1.0, 3.0, 100.0, 1000.0, 4096.0, 16384.0, 44100.0, 0.5])


@settings(max_examples=200, deadline=None)
@given(
    samples=st.lists(finite, min_size=1, max_size=400),
    t0=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    rate=rates,
    chunk_seconds=st.floats(min_value=1e-3, max_value=5.0, allow_nan=False),
)
def test_concatenated_chunks_give_back_the_series(samples, t0, rate, chunk_seconds):
    h = np.array(samples, dtype=np.float64)
    dt = 1.0 / rate
    chunks = list(chunk_array(h, t0, dt, "H1:TEST-STRAIN", chunk_seconds))
    joined = np.concatenate([c.h for c in chunks])
    assert joined.tobytes() == h.tobytes()
    step = samples_per_chunk(chunk_seconds, dt)
    assert all(c.n == step for c in chunks[:-1])
    assert 1 <= chunks[-1].n <= step
    # t0 of each chunk is the exact time of its first sample, rounded once: no drift.
    position = 0
    for chunk in chunks:
        assert chunk.start == position
        assert chunk.t0 == float(Fraction(t0) + position * Fraction(dt))
        assert chunk.dt == dt
        position += chunk.n


@settings(max_examples=100, deadline=None)
@given(
    samples=st.lists(finite, min_size=1, max_size=200),
    t0=st.integers(min_value=0, max_value=2_000_000_000),
    rate_exp=st.integers(min_value=0, max_value=14),
    chunk_samples=st.integers(min_value=1, max_value=64),
)
def test_chunk_t0s_are_continuous_on_binary_rates(samples, t0, rate_exp, chunk_samples):
    """With the power-of-two rates detectors use, each chunk starts exactly where the last ended."""
    dt = 1.0 / 2**rate_exp
    h = np.array(samples)
    chunks = list(chunk_array(h, float(t0), dt, DEFAULT_CHANNEL, chunk_samples * dt))
    for before, after in itertools.pairwise(chunks):
        assert after.t0 == before.t0 + before.n * dt


@settings(max_examples=100, deadline=None)
@given(samples=st.lists(finite, min_size=1, max_size=100), t0=st.floats(0, 2e9))
def test_body_round_trips_bit_for_bit_through_the_shared_parser(samples, t0):
    h = np.array(samples, dtype=np.float64)
    (chunk,) = chunk_array(h, t0, 1 / 4096, "L1:GWOSC-4KHZ_R1_STRAIN", 1.0)
    parsed = parse_chunk(chunk.body())
    assert parsed.h.tobytes() == h.tobytes()
    assert (parsed.channel, parsed.t0, parsed.dt) == ("L1:GWOSC-4KHZ_R1_STRAIN", t0, 1 / 4096)


def test_float32_samples_are_sent_as_their_exact_float64_values():
    h = np.array([0.1, 1e-21, 3.3], dtype=np.float32)
    (chunk,) = chunk_array(h, 10.0, 0.5, DEFAULT_CHANNEL, 10)
    assert parse_chunk(chunk.body()).h.tobytes() == h.astype(np.float64).tobytes()


def test_default_channel_is_sent_without_a_channel_field():
    (chunk,) = chunk_array(np.ones(3), 1.0, 0.5, chunk_seconds=10.0)
    assert orjson.loads(chunk.body()) == {"h": [1.0, 1.0, 1.0], "t": [1.0, 0.5]}


def test_short_last_chunk_is_sent_as_is():
    chunks = list(chunk_array(np.arange(10.0), 100.0, 0.25, DEFAULT_CHANNEL, 1.0))
    assert [c.n for c in chunks] == [4, 4, 2]
    assert [c.t0 for c in chunks] == [100.0, 101.0, 102.0]


def test_non_finite_samples_are_left_out_and_the_rest_keeps_its_times():
    h = np.array([1.0, 2.0, np.nan, np.nan, 5.0, 6.0, np.inf, 8.0])
    chunks = list(chunk_array(h, 10.0, 1.0, DEFAULT_CHANNEL, 4.0))
    assert [(c.t0, c.h.tolist()) for c in chunks] == [
        (10.0, [1.0, 2.0]),
        (14.0, [5.0, 6.0]),
        (17.0, [8.0]),
    ]


@pytest.mark.parametrize(
    ("channel", "t0", "dt"),
    [("strain", 0.0, 1.0), ("H1:OK", -1.0, 1.0), ("H1:OK", float("nan"), 1.0), ("H1:OK", 0.0, 0.0)],
)
def test_values_the_api_would_refuse_are_refused_before_sending(channel, t0, dt):
    with pytest.raises(ValueError, match=r"channel|t0|dt"):
        list(chunk_array(np.ones(2), t0, dt, channel, 1.0))


def test_sample_time_is_rounded_once():
    # Accumulating 0.1 ten times gives 0.9999999999999999; the exact sum rounds to 1.0.
    assert sample_time(0.0, 0.1, 10) == 1.0


def test_several_channels_are_interleaved_in_gps_order():
    a = list(chunk_array(np.zeros(4), 0.0, 1.0, "H1:A-B", 2.0))
    b = list(chunk_array(np.zeros(4), 0.0, 1.0, "L1:A-B", 2.0))
    order = [(c.t0, c.channel) for c in plan_chunks(b + a)]
    assert order == [(0.0, "H1:A-B"), (0.0, "L1:A-B"), (2.0, "H1:A-B"), (2.0, "L1:A-B")]


def test_plan_refuses_what_it_cannot_stream():
    with pytest.raises(TypeError):
        plan_chunks([PlannedChunk("H1:A-B", 0.0, 1.0, np.zeros(1)), "nope"])
