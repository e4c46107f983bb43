"""Binary chunks and multi-chunk requests through the three services as real processes."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest
from ports import free_port

from glitchflow_core.chunk import parse_chunk
from glitchflow_stack import Layout, Stack, service_processes
from tests.e2e_chain.conftest import TOKENS_ENV, Disk

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DT = 1 / 4096
CHANNEL = "H1:GWOSC-4KHZ_R1_STRAIN"


def samples(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=1e-21, size=n)


def binary_post(api: httpx.Client, headers: dict, h: np.ndarray, t0: float) -> httpx.Response:
    params = {"channel": CHANNEL, "t0": repr(t0), "dt": repr(DT)}
    headers = {**headers, "Content-Type": "application/octet-stream"}
    return api.post(
        "/streamdata", params=params, content=h.astype("<f8").tobytes(), headers=headers
    )


def json_chunk(h: np.ndarray, t0: float) -> dict:
    return {"h": h.tolist(), "t": [t0, DT], "channel": CHANNEL}


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Layout, Disk]:
    """One stack for the tests that never freeze it (each writes its own GPS range)."""
    folder = tmp_path_factory.mktemp("fast") / "buf"
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    stack = Stack(service_processes(layout, folder, 64 * 1024 * 1024, env=TOKENS_ENV))
    stack.start()
    try:
        yield layout, Disk(folder)
    finally:
        stack.stop()


def test_binary_chunk_through_the_chain_is_the_json_chunk(shared, auth) -> None:
    layout, buf = shared
    h = samples(4096, 1)
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        created = binary_post(api, auth.writer, h, 1e9)
        assert created.status_code == 201, created.text
        assert created.json()["resp"] == "CREATED"
        name = created.json()["body"]["file"]

        # The same chunk as JSON, and as binary again: duplicates, counted once.
        body = orjson.dumps(json_chunk(h, 1e9))
        again = api.post("/streamdata", content=body, headers=auth.writer)
        assert (again.status_code, again.json()["resp"]) == (200, "DUPLICATE")
        assert again.json()["body"]["file"] == name
        repeat = binary_post(api, auth.writer, h, 1e9)
        assert (repeat.status_code, repeat.json()["resp"]) == (200, "DUPLICATE")
        assert name in buf.files()

        stored = parse_chunk(buf.stored(name).read_bytes())
        assert stored.h.tobytes() == h.tobytes()
        assert stored.identity == (CHANNEL, 1e9, 4096, DT)

        # Other samples under the same identity: a conflict, as for JSON.
        conflict = binary_post(api, auth.writer, samples(4096, 2), 1e9)
        assert (conflict.status_code, conflict.json()["resp"]) == (409, "CONFLICT")

        odd = api.post(
            "/streamdata",
            params={"t0": "1e9", "dt": "1"},
            content=b"\0" * 12,
            headers={**auth.writer, "Content-Type": "application/octet-stream"},
        )
        assert odd.status_code == 422
        assert odd.json()["detail"]["field"] == "body"
        wrong = api.post(
            "/streamdata", content=b"1 2 3", headers={**auth.writer, "Content-Type": "text/csv"}
        )
        assert (wrong.status_code, wrong.json()["detail"]["field"]) == (415, "content-type")
        assert not [f for f in buf.files() if f != name and "__010000000" in f]


def test_ndjson_and_array_through_the_chain_answer_each_chunk(shared, auth) -> None:
    layout, buf = shared
    docs = [json_chunk(samples(16, i), 2e9 + i) for i in range(50)]
    lines = [orjson.dumps(doc) for doc in docs]
    lines[10] = b'{"h": [NaN], "t": [1e9, 1]}'
    headers = {**auth.writer, "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        answer = api.post("/streamdata", content=b"\n".join(lines), headers=headers)
        assert answer.status_code == 207, answer.text
        multi = answer.json()
        assert multi["resp"] == "MULTI"
        assert multi["counts"] == {"CREATED": 49, "INVALID": 1}
        statuses = [r["status"] for r in multi["results"]]
        assert statuses == [201] * 10 + [422] + [201] * 39
        assert multi["results"][10]["detail"]["field"] == "body"
        names = {r["body"]["file"] for r in multi["results"] if r["status"] == 201}
        assert len(names) == 49
        assert names <= set(buf.files())

        # The same chunks as a JSON array: the stored ones are duplicates, the refused one
        # goes in now.
        array = orjson.dumps(docs[:12])
        again = api.post("/streamdata", content=array, headers=auth.writer).json()
        assert [r["resp"] for r in again["results"]] == ["DUPLICATE"] * 10 + [
            "CREATED",
            "DUPLICATE",
        ]
        assert again["results"][0]["body"]["file"] == multi["results"][0]["body"]["file"]
        assert len({f for f in buf.files() if "__020000000" in f}) == 50


def three_chunk_stack(stack_factory, tokens_env, tmp_path, mode: str) -> Layout:
    """A stack whose batch is full with three of the 16-sample chunks of these tests."""
    size = len(orjson.dumps(json_chunk(samples(16, 0), 1e9)))
    _stack, layout = stack_factory(
        max_size=size * 5 // 2,
        env={**tokens_env, "GLITCHFLOW_FREEZE_MODE": mode},
        data_dir=tmp_path / "buf",
    )
    return layout


def test_hold_freeze_in_the_middle_of_a_request(
    stack_factory, tmp_path, tokens_env, auth, disk
) -> None:
    layout = three_chunk_stack(stack_factory, tokens_env, tmp_path, "hold")
    buf = disk(tmp_path / "buf")
    docs = [json_chunk(samples(16, i), 1e9 + i) for i in range(6)]
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        answer = api.post("/streamdata", content=orjson.dumps(docs), headers=auth.writer)
        results = answer.json()["results"]
        assert [r["resp"] for r in results] == ["CREATED"] * 3 + ["FROZEN"] * 3
        assert [r["body"]["frozen"] for r in results[:3]] == [False, False, True]
        assert all(r["status"] == 503 and r["retry_after"] >= 1 for r in results[3:])
        assert len(buf.files()) == 3
        assert api.get("/desc").json()["resp"] == "FROZEN"


def test_rotate_seal_in_the_middle_of_a_request_goes_on(
    stack_factory, tmp_path, tokens_env, auth
) -> None:
    layout = three_chunk_stack(stack_factory, tokens_env, tmp_path, "rotate")
    docs = [json_chunk(samples(16, i), 1e9 + i) for i in range(7)]
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        answer = api.post("/streamdata", content=orjson.dumps(docs), headers=auth.writer)
        results = answer.json()["results"]
        assert [r["resp"] for r in results] == ["CREATED"] * 7
        assert [r["body"]["batch"] for r in results] == [1, 1, 1, 2, 2, 2, 3]
        train = api.post("/train", json={"user": "airflow"}, headers=auth.admin).json()
        assert (train["resp"], train["batch"], train["n_f"]) == ("FROZEN", 1, 3)
