"""The original's own payloads, sent as its clients send them, through the three real services.

The stack runs as a cluster would keep it for those clients: no writer token (``/streamdata`` is
open; the NetworkPolicy decides who reaches it), admin tokens for ``/train`` and ``/cleanbuf``.
"""

from __future__ import annotations

import httpx
import orjson
import pytest
from dataset.conftest import GWPY_WARNING, run_cli

from glitchflow_core.chunk import parse_chunk

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ADMIN = "original-admin-token-0123456789"
SERVICE = "original-service-token-0123456789"
OPEN_WRITERS = {
    "GLITCHFLOW_ADMIN_TOKENS": ADMIN,
    "GLITCHFLOW_SERVICE_TOKEN": SERVICE,
    "GLITCHFLOW_LOG_LEVEL": "WARNING",
}
GPS = 1_370_000_000.0
# The original's sample chunk (testgw1.json): 4 samples, one GPS time per sample, 1/4096 s apart.
SAMPLE_CHUNK = orjson.dumps(
    {
        "h": [1.5e-21, -2.25e-21, 3.0e-22, 8.0e-22],
        "t": [GPS, GPS + 1 / 4096, GPS + 2 / 4096, GPS + 3 / 4096],
    }
)
SECOND_CHUNK = orjson.dumps({"h": [1e-21, 2e-21, 3e-21, 4e-21], "t": [GPS + 10, 1 / 4096]})
CLEAN = b'{"msg": "see you space cowboy"}'  # clean.sh
JSON = {"Content-Type": "application/json"}


@pytest.mark.filterwarnings(GWPY_WARNING)
def test_original_payloads_sample_chunk_train_and_clean(stack_factory, tmp_path, disk) -> None:
    # A batch of one sample chunk: the write that stores it fills the batch.
    _stack, layout = stack_factory(max_size=100, env=OPEN_WRITERS, data_dir=tmp_path / "buf")
    buf = disk(tmp_path / "buf")
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        created = api.post("/streamdata", content=SAMPLE_CHUNK, headers=JSON)
        assert created.status_code == 201, created.text
        assert created.json()["resp"] == "CREATED"
        # The write filled the batch: sealed (rotate, the default) or frozen (hold) with it.
        name = created.json()["body"]["file"]
        stored = buf.stored(name).read_bytes()
        size = len(stored)
        # Stored as sent; read back through the core's parser it is [t0, 1/4096].
        assert stored == SAMPLE_CHUNK
        chunk = parse_chunk(stored)
        assert (chunk.t0, chunk.dt, chunk.n) == (GPS, 1 / 4096, 4)

        # The same chunk as [t0, dt] is the same chunk: a duplicate, not a second file.
        again = orjson.dumps({"h": chunk.h.tolist(), "t": [GPS, 1 / 4096]})
        duplicate = api.post("/streamdata", content=again, headers=JSON)
        assert (duplicate.status_code, duplicate.json()["resp"]) == (200, "DUPLICATE")

        # The original's train call: the admin token in the body, no header.
        train = api.post("/train", json={"user": "airflow", "token": ADMIN})
        assert train.status_code == 200, train.text
        assert (train.json()["resp"], train.json()["n_f"], train.json()["bt_wrt"]) == (
            "FROZEN",
            1,
            size,
        )

        clean = api.post(
            "/cleanbuf", content=CLEAN, headers={**JSON, "Authorization": f"Bearer {ADMIN}"}
        )
        assert clean.status_code == 200, clean.text
        assert clean.json()["resp"] == "CLEANED"
        assert clean.json()["batch"] == train.json()["batch"]
        archive = clean.json()["archive"]
        assert buf.archived_files(archive) == {name}
        assert buf.files() == {}

    # The exporter reads the stored file (one time per sample) with the same parser.
    out = tmp_path / "batch.h5"
    done = run_cli("export", str(buf.archive / archive), "--out", str(out))
    assert done.returncode == 0, done.stderr
    from gwpy.timeseries import TimeSeries

    series = TimeSeries.read(out, path="default/0000")
    assert (series.t0.value, series.dt.value) == (GPS, 1 / 4096)
    assert series.value.tolist() == chunk.h.tolist()


def test_original_clean_archives_a_partial_batch(stack_factory, tmp_path, disk) -> None:
    _stack, layout = stack_factory(env=OPEN_WRITERS, data_dir=tmp_path / "buf")
    buf = disk(tmp_path / "buf")
    admin = {**JSON, "Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        # An empty buffer: CLEANED with zero files.
        empty = api.post("/cleanbuf", content=CLEAN, headers=admin)
        assert empty.status_code == 200, empty.text
        assert (empty.json()["resp"], empty.json()["body"]["n_f"]) == ("CLEANED", 0)

        assert api.post("/streamdata", content=SAMPLE_CHUNK, headers=JSON).status_code == 201
        assert api.get("/desc").json()["resp"] == "OPERATIONAL"
        (name,) = buf.files()
        # Not frozen: the original answered CLEANED and archived what was there.
        clean = api.post("/cleanbuf", content=CLEAN, headers=admin)
        assert clean.status_code == 200, clean.text
        assert clean.json()["resp"] == "CLEANED"
        assert buf.archived_files(clean.json()["archive"]) == {name}
        assert buf.files() == {}


def test_open_writers_still_need_admin_tokens(stack_factory, tmp_path) -> None:
    _stack, layout = stack_factory(env=OPEN_WRITERS, data_dir=tmp_path / "buf")
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        assert api.post("/streamdata", content=SAMPLE_CHUNK, headers=JSON).status_code == 201
        train = api.post("/train", json={"user": "airflow"})
        assert (train.status_code, train.json()["resp"]) == (401, "UNAUTHORIZED")
        clean = api.post("/cleanbuf", content=CLEAN, headers=JSON)
        assert (clean.status_code, clean.json()["resp"]) == (401, "UNAUTHORIZED")
        wrong = api.post("/cleanbuf", content=CLEAN, headers={**JSON, "Authorization": "Bearer x"})
        assert wrong.status_code == 401
        # Behind the API, the logic and the buffer still want the service token.
        logic = httpx.post(f"{layout.logic_url}/flushbuf", content=CLEAN, headers=JSON)
        assert (logic.status_code, logic.json()["resp"]) == (401, "UNAUTHORIZED")
        buffer = httpx.post(f"{layout.buffer_url}/cleanall", content=CLEAN, headers=JSON)
        assert (buffer.status_code, buffer.json()["resp"]) == (401, "UNAUTHORIZED")


def test_cleanbuf_by_batch_flushes_only_that_batch_and_repeats(stack_factory, tmp_path, disk):
    _stack, layout = stack_factory(max_size=100, env=OPEN_WRITERS, data_dir=tmp_path / "buf")
    buf = disk(tmp_path / "buf")
    admin = {**JSON, "Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=layout.api_url, timeout=10) as api:
        assert api.post("/streamdata", content=SAMPLE_CHUNK, headers=JSON).status_code == 201
        train = api.post("/train", json={"user": "airflow", "token": ADMIN}).json()
        assert train["resp"] == "FROZEN"
        batch = train["batch"]
        body = {"msg": "dag", "batch": batch}
        first = api.post("/cleanbuf", json=body, headers=admin)
        assert first.status_code == 200, first.text
        assert (first.json()["resp"], first.json()["batch"]) == ("CLEANED", batch)
        archive = first.json()["archive"]
        assert len(buf.archived_files(archive)) == 1
        # The DAG repeats its call after a lost answer: CLEANED again, nothing else touched.
        assert api.post("/streamdata", content=SECOND_CHUNK, headers=JSON).status_code == 201
        again = api.post("/cleanbuf", json=body, headers=admin)
        assert again.status_code == 200, again.text
        assert (again.json()["archive"], again.json()["body"]["already_flushed"]) == (
            archive,
            True,
        )
        assert len(buf.files()) == 1
        assert set(buf.archives()) == {archive}
        unknown = api.post("/cleanbuf", json={"msg": "dag", "batch": batch + 99}, headers=admin)
        assert (unknown.status_code, unknown.json()["resp"]) == (404, "UNKNOWN_BATCH")
