"""Fast chunk validation shared by the services."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glitchflow_core.chunk import (
    DEFAULT_CHANNEL,
    ChunkError,
    _decode_fast,
    _decode_precise,
    parse_chunk,
)


def body(**doc: object) -> bytes:
    return orjson.dumps(doc)


def test_valid_chunk_parses_to_float64_samples() -> None:
    chunk = parse_chunk(body(h=[1, 2.5, -3e-21], t=[968654552, 1 / 16384]))
    assert chunk.h.dtype == np.float64
    assert chunk.h.tolist() == [1.0, 2.5, -3e-21]
    assert chunk.t0 == 968654552.0
    assert chunk.dt == 1 / 16384
    assert chunk.channel == DEFAULT_CHANNEL
    assert chunk.end == 968654552 + 3 / 16384


def test_channel_is_kept() -> None:
    chunk = parse_chunk(body(h=[0.0], t=[1, 1], channel="L1:GWOSC-4KHZ_R1_STRAIN"))
    assert chunk.channel == "L1:GWOSC-4KHZ_R1_STRAIN"
    assert chunk.identity == ("L1:GWOSC-4KHZ_R1_STRAIN", 1.0, 1, 1.0)


def test_canonical_bytes_round_trip_every_bit() -> None:
    rng = np.random.default_rng(1)
    h = rng.normal(scale=1e-21, size=4096)
    chunk = parse_chunk(
        orjson.dumps({"h": h, "t": [10.0, 1 / 4096]}, option=orjson.OPT_SERIALIZE_NUMPY)
    )
    again = parse_chunk(chunk.canonical_bytes())
    assert again.h.tobytes() == h.tobytes()
    assert orjson.loads(chunk.canonical_bytes()).keys() == {"h", "t"}


def test_canonical_bytes_name_a_non_default_channel() -> None:
    chunk = parse_chunk(body(h=[1.0], t=[1, 1], channel="H1:X"))
    assert orjson.loads(chunk.canonical_bytes())["channel"] == "H1:X"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (body(t=[0, 1]), "h"),
        (body(h=[1.0]), "t"),
        (body(h=[], t=[0, 1]), "h"),
        (body(h="1,2", t=[0, 1]), "h"),
        (body(h=["1.5"], t=[0, 1]), "h"),
        (body(h=[True], t=[0, 1]), "h"),
        (body(h=[1.0, None], t=[0, 1]), "h"),
        (body(h=[[1.0]], t=[0, 1]), "h"),
        (b'{"h": [1e999], "t": [0, 1]}', "body"),
        (body(h=[1.0], t=[0]), "t"),
        (body(h=[1.0], t=[0, 1, 2]), "t"),
        (body(h=[1.0], t=[0, 0]), "t"),
        (body(h=[1.0], t=[0, -1]), "t"),
        (body(h=[1.0], t=["0", 1]), "t"),
        (body(h=[1.0], t=[-5, 1]), "t"),
        (body(h=[1.0], t=[1e11, 1]), "t"),
        (body(h=[1.0, 2.0], t=[1, 1e308]), "t"),
        (body(h=[1.0, 2.0], t=[99_999_999_999, 1]), "t"),
        (body(h=[1.0], t=[0, 1], channel="L1 STRAIN"), "channel"),
        (body(h=[1.0], t=[0, 1], channel="../etc/passwd"), "channel"),
        (body(h=[1.0], t=[0, 1], channel=5), "channel"),
        (body(h=[1.0], t=[0, 1], chanel="L1:X"), "chanel"),
    ],
)
def test_bad_chunk_names_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(ChunkError) as info:
        parse_chunk(raw)
    assert info.value.field == field
    assert info.value.as_dict()["field"] == field


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_refused_with_a_clear_reason(token: bytes) -> None:
    with pytest.raises(ChunkError) as info:
        parse_chunk(b'{"h": [1.0, ' + token + b'], "t": [0, 1]}')
    assert "NaN or Infinity" in info.value.reason


def test_overflowing_number_is_refused() -> None:
    with pytest.raises(ChunkError):
        parse_chunk(b'{"h": [1.0, 1e999], "t": [0, 1]}')


def test_too_many_samples_is_refused() -> None:
    with pytest.raises(ChunkError) as info:
        parse_chunk(body(h=[0.0] * 11, t=[0, 1]), max_samples=10)
    assert info.value.field == "h"
    assert "limit of 10" in info.value.reason


def test_negative_zero_t0_is_the_same_chunk_as_zero() -> None:
    negative = parse_chunk(b'{"h": [1.0], "t": [-0.0, 1]}')
    positive = parse_chunk(b'{"h": [1.0], "t": [0.0, 1]}')
    assert negative.identity == positive.identity
    assert negative.canonical_bytes() == positive.canonical_bytes()


samples = st.lists(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**53), max_value=2**53),
    ),
    min_size=1,
    max_size=64,
)


@settings(max_examples=300, deadline=None)
@given(
    h=samples,
    t0=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    dt=st.floats(min_value=1e-6, max_value=10, allow_nan=False),
    channel=st.sampled_from([None, "default", "H1:GWOSC-16KHZ_R1_STRAIN"]),
)
def test_fast_and_precise_paths_read_the_same_chunk(
    h: list[float], t0: float, dt: float, channel: str | None
) -> None:
    doc: dict[str, object] = {"h": h, "t": [t0, dt]}
    if channel is not None:
        doc["channel"] = channel
    body = orjson.dumps(doc)
    fast = _decode_fast(body)
    precise = _decode_precise(body)
    if fast is not None:
        assert (
            np.asarray(fast["h"]).tobytes() == np.asarray(precise["h"], dtype=np.float64).tobytes()
        )
        assert fast["t"] == precise["t"]
        assert fast["channel"] == precise.get("channel")
    chunk = parse_chunk(body)
    assert chunk.h.tobytes() == np.asarray(h, dtype=np.float64).tobytes()


def test_common_float_body_takes_the_fast_path() -> None:
    body = orjson.dumps(
        {"h": np.linspace(-1, 1, 4096), "t": [1e9, 1 / 4096]}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    assert _decode_fast(body) is not None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"h": [[1.0]], "t": [0, 1]}',
        b'{"h": [1.0], "t": [0, 1], "h": [2.0]}',
        b'{"h": [1.0, true], "t": [0, 1]}',
        b'{"h": [1.0, "2"], "t": [0, 1]}',
        b'{"h": [1.0], "t": [0, 1], "extra": 1}',
        b'{"h": [1.0], "t": 5}',
        b"[1.0, 2.0]",
        b"not json",
    ],
)
def test_unusual_bodies_leave_the_fast_path(raw: bytes) -> None:
    assert _decode_fast(raw) is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"h": [1.0], "t": [0, 1], "h": [2.0]}', "h"),
        (b'{"h": [1.0], "t": [0, 1], "t": [0, 2]}', "t"),
        (b'{"h": [1, 2], "t": [0, 1], "channel": "H1:X", "channel": "L1:X"}', "channel"),
        (b'{"h": [1.0], "t": [0, 1], "h": [2.0], "x": 100000000000000000000000}', "h"),
    ],
)
def test_repeated_key_is_refused_naming_it(raw: bytes, field: str) -> None:
    with pytest.raises(ChunkError) as info:
        parse_chunk(raw)
    assert (info.value.field, info.value.reason) == (field, "is repeated in the body")
    assert info.value.status == 422


GPS = 1_370_000_000.0


def test_one_time_per_sample_is_the_chunk_t0_and_spacing() -> None:
    # The original's sample payload: 4 samples, 4 times 1/4096 s apart.
    times = [GPS + i / 4096 for i in range(4)]
    chunk = parse_chunk(body(h=[1e-21, 2e-21, 3e-21, 4e-21], t=times))
    same = parse_chunk(body(h=[1e-21, 2e-21, 3e-21, 4e-21], t=[GPS, 1 / 4096]))
    assert (chunk.t0, chunk.dt) == (GPS, 1 / 4096)
    assert chunk.identity == same.identity
    assert chunk.canonical_bytes() == same.canonical_bytes()


def test_one_time_per_sample_at_an_odd_rate_keeps_its_mean_spacing() -> None:
    times = [GPS + i * 0.3 for i in range(5)]
    chunk = parse_chunk(body(h=[0.0] * 5, t=times))
    assert chunk.dt == pytest.approx(0.3, rel=1e-6)


def test_two_samples_with_two_gps_times_are_one_time_per_sample() -> None:
    chunk = parse_chunk(body(h=[1.0, 2.0], t=[GPS, GPS + 1 / 4096]))
    assert (chunk.t0, chunk.dt) == (GPS, 1 / 4096)


@pytest.mark.parametrize(
    ("h", "t", "reason"),
    [
        ([0.0] * 4, [GPS, GPS + 1 / 4096, GPS + 3 / 4096, GPS + 4 / 4096], "uniformly spaced"),
        ([0.0] * 4, [GPS, GPS + 1], "one GPS time per sample"),
        ([0.0] * 4, [GPS, 1e-320], "one GPS time per sample"),
        ([0.0] * 4, [GPS, 1e-10], "dt is 1e-10"),
        ([0.0] * 4, [GPS, 86_401], "dt is 86401"),
        ([0.0] * 3, [GPS, GPS + 1, GPS + 2, GPS + 3], "one GPS time per sample"),
        ([0.0] * 3, [GPS, GPS, GPS], "one GPS time per sample"),
        ([0.0] * 3, [GPS, "x", GPS], "list of numbers"),
    ],
)
def test_bad_times_are_refused_saying_what_t_must_be(
    h: list[float], t: list[object], reason: str
) -> None:
    with pytest.raises(ChunkError) as info:
        parse_chunk(body(h=h, t=t))
    assert info.value.field == "t"
    assert reason in info.value.reason


def test_spacing_bounds_are_settings() -> None:
    raw = body(h=[0.0] * 4, t=[GPS, 2 * 86_400])
    assert parse_chunk(raw, max_dt=3 * 86_400).dt == 2 * 86_400
    with pytest.raises(ChunkError):
        parse_chunk(body(h=[0.0] * 4, t=[GPS, 1e-3]), min_dt=1e-2)


keys = st.sampled_from(["h", "t", "channel"])


@settings(max_examples=200, deadline=None)
@given(
    order=st.lists(keys, min_size=1, max_size=5),
    h=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8),
)
def test_fast_and_precise_paths_agree_on_repeated_keys(order: list[str], h: list[float]) -> None:
    values = {"h": orjson.dumps(h), "t": b"[10.0, 0.5]", "channel": b'"H1:X"'}
    raw = b"{" + b",".join(b'"%s": %s' % (k.encode(), values[k]) for k in order) + b"}"
    fast = _decode_fast(raw)
    try:
        precise: object = _decode_precise(raw)
    except ChunkError as exc:
        precise = exc.field
    if len(set(order)) != len(order):
        assert fast is None
        assert precise in order
    else:
        assert isinstance(precise, dict)
        if fast is not None:
            assert {k for k, v in fast.items() if v is not None} == set(precise)


def test_integer_beyond_64_bits_in_h_is_read_as_a_float() -> None:
    raw = b'{"h": [1.0, -9223372036854775809], "t": [10, 1]}'
    assert _decode_fast(raw) is None
    assert parse_chunk(raw).h.tolist() == [1.0, -9223372036854775809.0]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"h": [1.0, 2.0], "t": [100000000000000000000000, 1]}', "t"),
        (b'{"h": [1.0, 2.0], "t": [10, 1], "x": 100000000000000000000000}', "x"),
    ],
)
def test_integer_beyond_64_bits_elsewhere_names_the_field(raw: bytes, field: str) -> None:
    assert _decode_fast(raw) is None
    with pytest.raises(ChunkError) as info:
        parse_chunk(raw)
    assert info.value.field == field


def test_byte_order_mark_is_refused_by_both_paths() -> None:
    raw = b'\xef\xbb\xbf{"h": [1.0, 2.0], "t": [20, 1]}'
    assert _decode_fast(raw) is None
    with pytest.raises(ChunkError) as info:
        parse_chunk(raw)
    assert info.value.field == "body"


@pytest.mark.parametrize("sample", [b"true", b"false"])
def test_boolean_among_floats_is_refused(sample: bytes) -> None:
    with pytest.raises(ChunkError) as info:
        parse_chunk(b'{"h": [1.0, ' + sample + b', 2.0], "t": [0, 1]}')
    assert info.value.field == "h"


def test_padded_body_is_refused() -> None:
    raw = b'{"h": [1.0, 2.0], "t": [0, 1]' + b" " * 5000 + b"}"
    with pytest.raises(ChunkError) as info:
        parse_chunk(raw)
    assert info.value.field == "body"
    assert "padding" in info.value.reason


def test_pretty_printed_body_is_accepted() -> None:
    import json

    h = np.random.default_rng(3).standard_normal(4096).tolist()
    raw = json.dumps({"h": h, "t": [1e9, 1 / 4096]}, indent=4).encode()
    assert parse_chunk(raw).h.tolist() == h


# --------------------------------------------------------------------------- binary and several


@given(
    h=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=50),
    t0=st.floats(min_value=0, max_value=2e9),
    dt=st.sampled_from([1 / 4096, 1 / 16384, 0.1, 1.0]),
)
@settings(max_examples=60, deadline=None)
def test_binary_chunk_is_the_same_chunk_as_its_json_form(
    h: list[float], t0: float, dt: float
) -> None:
    from glitchflow_core.chunk import binary_params, parse_binary_chunk

    as_json = parse_chunk(orjson.dumps({"h": h, "t": [t0, dt], "channel": "H1:X"}))
    raw = np.array(h, dtype="<f8").tobytes()
    params = binary_params(as_json)
    as_binary = parse_binary_chunk(raw, params.get("channel"), params["t0"], params["dt"])
    assert as_binary.identity == as_json.identity
    assert as_binary.canonical_bytes() == as_json.canonical_bytes()
    # What a client writes by hand, repr of its floats, is read the same.
    again = parse_binary_chunk(raw, "H1:X", repr(t0 + 0.0), repr(dt))
    assert again.identity == as_json.identity


def test_chunk_bodies_keep_order_and_mark_non_objects() -> None:
    from glitchflow_core.chunk import chunk_bodies

    parts = chunk_bodies(b'[{"h":[1],"t":[1,1]}, 2, {"h":[2],"t":[2,1]}]', "application/json", 5)
    assert parts[0] == b'{"h":[1],"t":[1,1]}'
    assert isinstance(parts[1], ChunkError)
    assert parse_chunk(parts[2]).t0 == 2.0
    lines = chunk_bodies(b'{"h":[1],"t":[1,1]}\n\n{"h":[2],"t":[2,1]}\n', "application/x-ndjson", 2)
    assert [parse_chunk(p).t0 for p in lines] == [1.0, 2.0]  # type: ignore[arg-type]
