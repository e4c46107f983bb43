"""The three services as real processes: the freeze/flush cycle and failures, end to end."""

from __future__ import annotations

import signal

import httpx
import orjson
import pytest
from ports import free_port

from glitchflow_stack import Layout, Stack, service_processes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MAX_SIZE = 20_000  # about five 200-sample chunks


def stream_until_frozen(api: httpx.Client, headers: dict[str, str], chunk, limit: int = 50) -> list:
    """Post new chunks until one freezes the batch; the CREATED answers' bodies."""
    created = []
    for i in range(limit):
        answer = api.post("/streamdata", content=chunk(1e9 + i, seed=i), headers=headers)
        assert answer.status_code == 201, answer.text
        created.append(answer.json()["body"])
        if answer.json()["body"]["frozen"]:
            return created
    raise AssertionError(f"not frozen after {limit} chunks")


def test_freeze_train_flush_cycle(stack_factory, tmp_path, tokens_env, auth, chunk, disk) -> None:
    # Hold mode, the original's: the full batch refuses writes until it is flushed.
    _stack, layout = stack_factory(
        max_size=MAX_SIZE,
        env={**tokens_env, "GLITCHFLOW_FREEZE_MODE": "hold"},
        data_dir=tmp_path / "buf",
        logic_workers=3,
    )
    buf = disk(tmp_path / "buf")
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        assert (
            api.post("/train", json={"user": "airflow"}, headers=auth.admin).json()["resp"]
            == "WAITING"
        )
        created = stream_until_frozen(api, auth.writer, chunk)
        names = {c["file"] for c in created}
        assert sum(c["bytes"] for c in created) >= MAX_SIZE
        assert sum(c["bytes"] for c in created[:-1]) < MAX_SIZE

        refused = api.post("/streamdata", content=chunk(2e9), headers=auth.writer)
        assert refused.status_code == 503
        assert refused.json()["resp"] == "FROZEN"
        assert int(refused.headers["Retry-After"]) >= 1

        on_disk = buf.files()
        train = api.post(
            "/train", json={"user": "airflow", "token": auth.admin["Authorization"][7:]}
        )
        assert train.status_code == 200
        assert train.json()["resp"] == "FROZEN"
        assert train.json()["n_f"] == len(on_disk) == len(created)
        assert train.json()["bt_wrt"] == sum(on_disk.values())
        assert set(on_disk) == names
        batch = train.json()["batch"]
        assert api.get("/desc").json()["resp"] == "FROZEN"

        clean = api.post("/cleanbuf", json={"msg": "trained"}, headers=auth.admin)
        assert clean.status_code == 200
        assert clean.json()["resp"] == "CLEANED"
        assert clean.json()["batch"] == batch
        archive = clean.json()["archive"]
        assert buf.archived_files(archive) == names
        assert buf.archives()[archive]["n_f"] == len(names)
        assert buf.files() == {}

        assert api.get("/desc").json()["resp"] == "OPERATIONAL"
        again = api.post("/streamdata", content=chunk(3e9), headers=auth.writer)
        assert again.status_code == 201
        assert again.json()["body"]["batch"] != batch
        assert api.get("/stats").json()["n_itm"] == 1


def test_rotate_cycle_ingest_goes_on_while_the_sealed_batch_waits(
    stack_factory, tmp_path, tokens_env, auth, chunk, disk
) -> None:
    """The default mode: the filling write seals the batch, the next chunk goes into the next
    batch at once, /train and /cleanbuf hand the sealed batch over to its reserved archive."""
    _stack, layout = stack_factory(max_size=MAX_SIZE, env=tokens_env, data_dir=tmp_path / "buf")
    buf = disk(tmp_path / "buf")
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        created = stream_until_frozen(api, auth.writer, chunk)
        names = {c["file"] for c in created}
        assert created[-1]["sealed"] is True
        batch = created[-1]["batch"]
        after = api.post("/streamdata", content=chunk(2e9), headers=auth.writer)
        assert after.status_code == 201, after.text
        assert after.json()["body"]["batch"] == batch + 1
        assert api.get("/desc").json() | {"batch_started": None} == {
            "resp": "OPERATIONAL",
            "batch": batch + 1,
            "batch_started": None,
            "frozen_at": None,
            "frozen_reason": None,
            "sealed": 1,
        }
        assert api.get("/stats").json()["n_itm"] == 1
        assert set(buf.files()) == {after.json()["body"]["file"]}

        train = api.post("/train", json={"user": "airflow"}, headers=auth.admin).json()
        assert (train["resp"], train["batch"], train["n_f"], train["sealed"]) == (
            "FROZEN",
            batch,
            len(created),
            1,
        )
        clean = api.post("/cleanbuf", json={"msg": "trained"}, headers=auth.admin).json()
        assert (clean["batch"], clean["archive"]) == (batch, train["archive"])
        assert buf.archived_files(train["archive"]) == names
        waiting = api.post("/train", json={"user": "airflow"}, headers=auth.admin).json()
        assert (waiting["resp"], waiting["batch"]) == ("WAITING", batch + 1)


def test_duplicates_are_not_counted(stack_factory, tmp_path, tokens_env, auth, chunk, disk) -> None:
    _stack, layout = stack_factory(max_size=MAX_SIZE, env=tokens_env, data_dir=tmp_path / "buf")
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        body = chunk(1e9)
        first = api.post("/streamdata", content=body, headers=auth.writer)
        second = api.post("/streamdata", content=body, headers=auth.writer)
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.json()["resp"] == "DUPLICATE"
        stats = api.get("/stats").json()
        assert stats["n_itm"] == 1
        assert stats["buff_size"] == first.json()["body"]["bytes"]
        assert disk(tmp_path / "buf").files() == {first.json()["body"]["file"]: stats["buff_size"]}


def test_conflicting_chunk_is_409(stack_factory, tokens_env, auth, chunk, disk) -> None:
    _stack, layout = stack_factory(max_size=MAX_SIZE, env=tokens_env)
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        assert (
            api.post("/streamdata", content=chunk(1e9, seed=1), headers=auth.writer).status_code
            == 201
        )
        other = api.post("/streamdata", content=chunk(1e9, seed=2), headers=auth.writer)
        assert (other.status_code, other.json()["resp"]) == (409, "CONFLICT")
        assert api.get("/stats").json()["n_itm"] == 1


def test_tokens_are_enforced_and_never_shown(
    stack_factory, tmp_path, tokens_env, auth, chunk, disk
) -> None:
    env = {
        **tokens_env,
        # Everything the services log, and a log rotated many times over, are searched too.
        "GLITCHFLOW_LOG_LEVEL": "DEBUG",
        "GLITCHFLOW_LOG_MAX_BYTES": "512",
    }
    stack, layout = stack_factory(max_size=MAX_SIZE, env=env, data_dir=tmp_path / "buf")
    kinds = ("WRITER_TOKENS", "ADMIN_TOKENS", "SERVICE_TOKEN")
    secrets = [tokens_env[f"GLITCHFLOW_{kind}"] for kind in kinds]
    admin_token = tokens_env["GLITCHFLOW_ADMIN_TOKENS"]
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        json = {"Content-Type": "application/json"}
        assert api.post("/streamdata", content=chunk(1e9), headers=json).status_code == 401
        assert api.post("/train", json={"user": "x", "token": "nope"}).status_code == 401
        assert api.post("/cleanbuf", json={"msg": "x"}, headers=auth.writer).status_code == 403
        waiting = api.post("/train", json={"user": "x"}, headers=auth.admin)
        assert (waiting.status_code, waiting.json()["resp"]) == (200, "WAITING")
        created = stream_until_frozen(api, auth.writer, chunk)
        # The admin token in the body, as Airflow sends it: it authorises, and goes no further.
        train = api.post("/train", json={"user": "airflow", "token": admin_token})
        assert train.status_code == 200, train.text
        assert train.json()["resp"] == "FROZEN"
        assert train.json()["n_f"] == len(created)
        shown = [
            waiting.text,
            train.text,
            *(api.get(path).text for path in ("/stats", "/desc", "/dspage")),
            api.get("/dumpbuf", headers=auth.admin).text,
            httpx.get(
                layout.logic_url + "/dumpflog",
                headers={"Authorization": f"Bearer {tokens_env['GLITCHFLOW_SERVICE_TOKEN']}"},
            ).text,
        ]
        clean = api.post("/cleanbuf", json={"msg": "trained"}, headers=auth.admin)
        assert clean.status_code == 200, clean.text
        shown += [clean.text, api.get("/metrics").text]
    # The logic refuses callers without the service token: the buffer is reached only through it.
    refused = httpx.post(
        layout.logic_url + "/stream",
        content=chunk(1e9),
        headers={"Content-Type": "application/json"},
    )
    assert refused.status_code == 401

    root = tmp_path / "buf"
    for name in ("adm/Dsstat.json", "adm/StatDesc.json", "log/LogStream.json"):
        assert (root / name).is_file(), f"{name} is not where the test looks"
    assert (root / "log/LogStream.json.1").is_file(), "the event log never rotated"
    assert len(disk(root).archives()) == 1
    stored = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    outputs = {proc.name: proc.output() for proc in stack.processes}
    assert all(outputs.values()), "a service printed nothing: its output was not captured"
    for secret in secrets:
        for text in shown:
            assert secret not in text
        for path, content in stored.items():
            assert secret.encode() not in content, f"a token is stored in {path}"
        for name, output in outputs.items():
            assert secret not in output, f"a token is in the output of {name}"


def test_bad_chunk_writes_nothing(stack_factory, tmp_path, auth, chunk, disk) -> None:
    _stack, layout = stack_factory(
        max_size=MAX_SIZE,
        env={"GLITCHFLOW_WRITER_TOKENS": auth.writer["Authorization"][7:]},
        data_dir=tmp_path / "buf",
    )
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        answer = api.post("/streamdata", content=b'{"h":[],"t":[1,1]}', headers=auth.writer)
        assert (answer.status_code, answer.json()["detail"]["field"]) == (422, "h")
        assert api.get("/stats").json()["n_itm"] == 0
    assert disk(tmp_path / "buf").files() == {}


def page_data(html: str) -> dict:
    """The data the status page is drawn from, embedded in it."""
    start = html.index('<script type="application/json" id="initial">') + 45
    return orjson.loads(html[start : html.index("</script>", start)])


def test_status_page_served_by_api(stack_factory, tokens_env, auth, chunk, disk) -> None:
    _stack, layout = stack_factory(max_size=MAX_SIZE, env=tokens_env)
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        empty = api.get("/dspage")
        assert empty.status_code == 200
        assert page_data(empty.text)["n_itm"] == 0
        assert api.post("/streamdata", content=chunk(1e9), headers=auth.writer).status_code == 201
        page = api.get("/dspage")
        # The page's first data, as /status answers it: the chunk by its identity.
        (stored,) = page_data(page.text)["chunks"]["items"]
        assert (stored["channel"], stored["t0"], stored["n"]) == ("default", 1e9, 200)
        assert "<title>Glitchflow datastore: OPERATIONAL</title>" in page.text


def test_buffer_down_is_an_error_never_frozen_or_waiting(
    stack_factory, tokens_env, auth, chunk, disk
) -> None:
    stack, layout = stack_factory(
        max_size=MAX_SIZE, env={**tokens_env, "GLITCHFLOW_UPSTREAM_TIMEOUT": "3"}
    )
    buffer = next(p for p in stack.processes if p.name == "databuffer")
    with httpx.Client(base_url=layout.api_url, timeout=15) as api:
        assert api.post("/streamdata", content=chunk(1e9), headers=auth.writer).status_code == 201
        buffer.kill()
        answers = [
            api.post("/streamdata", content=chunk(2e9), headers=auth.writer),
            api.post("/train", json={"user": "airflow"}, headers=auth.admin),
            api.post("/cleanbuf", json={"msg": "x"}, headers=auth.admin),
            api.get("/stats"),
            api.get("/desc"),
            api.get("/dumpbuf", headers=auth.admin),
            api.get("/dspage"),
        ]
        for answer in answers:
            assert answer.status_code in (502, 504), answer.text
            assert answer.json()["resp"] in ("UPSTREAM_UNREACHABLE", "UPSTREAM_TIMEOUT")
            assert answer.json()["upstream"] == "databuffer"
        assert api.get("/healthz").status_code == 200
        assert httpx.get(layout.logic_url + "/readyz").status_code == 503


def test_logic_down_is_502_from_api(stack_factory, tokens_env, auth, chunk, disk) -> None:
    stack, layout = stack_factory(max_size=MAX_SIZE, env=tokens_env)
    logic = next(p for p in stack.processes if p.name == "logic")
    logic.kill()
    with httpx.Client(base_url=layout.api_url, timeout=15) as api:
        answer = api.post("/train", json={"user": "airflow"}, headers=auth.admin)
        assert (answer.status_code, answer.json()["resp"]) == (502, "UPSTREAM_UNREACHABLE")
        assert answer.json()["upstream"] == "datastore_logic"
        assert api.get("/readyz").status_code == 503


def test_hung_buffer_is_reported_as_its_timeout(tmp_path, tokens_env, auth) -> None:
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    buffer, logic, api_proc = service_processes(layout, tmp_path / "buf", MAX_SIZE, env=tokens_env)
    # As by default (10 s and 15 s), the API waits longer than the logic, only quicker.
    logic.env = {**logic.env, "GLITCHFLOW_UPSTREAM_TIMEOUT": "1"}
    api_proc.env = {**api_proc.env, "GLITCHFLOW_UPSTREAM_TIMEOUT": "2"}
    stack = Stack([buffer, logic, api_proc])
    stack.start()
    try:
        with httpx.Client(base_url=layout.api_url, timeout=15) as api:
            buffer.signal(signal.SIGSTOP)  # it still accepts connections, but never answers
            try:
                answers = [
                    api.get("/stats"),
                    api.get("/desc"),
                    api.get("/dumpbuf", headers=auth.admin),
                    api.get("/dspage"),
                    api.post("/train", json={"user": "airflow"}, headers=auth.admin),
                ]
            finally:
                buffer.signal(signal.SIGCONT)
            for answer in answers:
                assert answer.status_code == 504, answer.text
                assert answer.json()["resp"] == "UPSTREAM_TIMEOUT"
                assert answer.json()["upstream"] == "databuffer"
            assert api.get("/stats").status_code == 200
    finally:
        stack.stop()


def test_api_outwaits_logic_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from datastore_logic.settings import Settings as LogicSettings
    from glitchflow_api.settings import Settings as ApiSettings

    monkeypatch.delenv("GLITCHFLOW_UPSTREAM_TIMEOUT", raising=False)
    # Otherwise both give up at the same moment and the API blames datastore_logic for the buffer.
    assert ApiSettings().upstream_timeout > LogicSettings().upstream_timeout
