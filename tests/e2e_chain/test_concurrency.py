"""Many writers, two API processes, several gunicorn workers, tiny MAX_SIZE, repeated cycles.

Every chunk acknowledged CREATED must end up in exactly one archived batch, and no batch may
overshoot MAX_SIZE by a chunk or more: the write that fills it freezes (hold) or seals (rotate)
it atomically.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

MAX_SIZE = 40_000  # about nine 200-sample chunks
WRITERS = 16
CYCLES = 4
DEADLINE_S = 90.0


def test_every_created_chunk_lands_in_exactly_one_batch(
    stack_factory, extra_api, tmp_path, tokens_env, auth, chunk, disk
) -> None:
    # Hold mode: the frozen buffer refuses writers until the flush (rotate: the test below).
    env = {**tokens_env, "GLITCHFLOW_FREEZE_MODE": "hold"}
    _stack, layout = stack_factory(
        max_size=MAX_SIZE, env=env, data_dir=tmp_path / "buf", logic_workers=4
    )
    second = extra_api(layout.logic_url, env)
    apis = [layout.api_url, second.url]
    buf = disk(tmp_path / "buf")

    stop = threading.Event()
    lock = threading.Lock()
    created: dict[str, int] = {}  # file name -> bytes, every CREATED answer
    chunk_bytes: list[int] = []
    refusals: Counter[str] = Counter()
    errors: list[str] = []

    def writer(w: int) -> None:
        with httpx.Client(base_url=apis[w % 2], timeout=20) as api:
            seq = 0
            while not stop.is_set():
                # Disjoint time spans per writer: no two writers ever conflict.
                body = chunk(1e9 + w * 1e6 + seq, seed=w * 100_000 + seq)
                while not stop.is_set():
                    answer = api.post("/streamdata", content=body, headers=auth.writer)
                    resp = answer.json().get("resp")
                    if answer.status_code == 201:
                        with lock:
                            created[answer.json()["body"]["file"]] = answer.json()["body"]["bytes"]
                            chunk_bytes.append(answer.json()["body"]["bytes"])
                        break
                    if answer.status_code == 200 and resp == "DUPLICATE":
                        break
                    if answer.status_code == 503 and resp in ("FROZEN", "BUSY"):
                        with lock:
                            refusals[resp] += 1
                        time.sleep(0.02)
                        continue
                    with lock:
                        errors.append(f"{answer.status_code} {answer.text[:200]}")
                    stop.set()
                    return
                seq += 1

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    for thread in threads:
        thread.start()

    flushed: list[dict] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        with httpx.Client(base_url=layout.api_url, timeout=20) as admin:
            while len(flushed) < CYCLES and time.monotonic() < deadline and not errors:
                train = admin.post("/train", json={"user": "airflow"}, headers=auth.admin)
                assert train.status_code == 200, train.text
                if train.json()["resp"] == "WAITING":
                    time.sleep(0.02)
                    continue
                # Frozen: the counts are what is on disk, and stay so while writers are refused.
                on_disk = buf.files()
                assert train.json()["n_f"] == len(on_disk)
                assert train.json()["bt_wrt"] == sum(on_disk.values())
                clean = admin.post("/cleanbuf", json={"msg": "cycle"}, headers=auth.admin)
                assert clean.status_code == 200, clean.text
                assert clean.json()["batch"] == train.json()["batch"]
                flushed.append(clean.json())
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors[:5]
    assert len(flushed) == CYCLES, f"only {len(flushed)} cycles in {DEADLINE_S:.0f} s"

    # What the writers wrote after the last flush goes to one more, forced, batch.
    with httpx.Client(base_url=layout.api_url, timeout=20) as admin:
        last = admin.post("/cleanbuf", json={"msg": "end", "force": True}, headers=auth.admin)
        assert last.status_code == 200, last.text

    archives = buf.archives()
    assert len(archives) == CYCLES + 1
    seen: Counter[str] = Counter()
    for name, manifest in archives.items():
        files = buf.archived_files(name)
        assert files == {f["name"] for f in manifest["files"]}
        assert manifest["n_f"] == len(files)
        seen.update(files)
    assert set(seen) == set(created), "CREATED chunks missing from the archives, or extra files"
    assert max(seen.values()) == 1, "a chunk is in more than one batch"
    assert buf.files() == {}

    biggest = max(chunk_bytes)
    for clean in flushed:
        size = archives[clean["archive"]]["bt_wrt"]
        assert size >= MAX_SIZE, "a policy batch froze before it was full"
        # The write that fills the batch freezes it atomically, under the buffer's lock: no write
        # in flight can land on top, so a batch overshoots by less than its last chunk.
        assert size - MAX_SIZE < biggest
    assert refusals["FROZEN"] > 0, "writers never met a frozen buffer: the test proved nothing"


def test_rotate_every_created_chunk_in_exactly_one_batch_and_no_refusal(
    stack_factory, extra_api, tmp_path, tokens_env, auth, chunk, disk
) -> None:
    """Rotate mode: the same writers are never refused; sealed batches queue up meanwhile."""
    env = {**tokens_env, "GLITCHFLOW_FREEZE_MODE": "rotate", "GLITCHFLOW_MAX_SEALED": "1000"}
    _stack, layout = stack_factory(
        max_size=MAX_SIZE, env=env, data_dir=tmp_path / "buf", logic_workers=4
    )
    second = extra_api(layout.logic_url, env)
    apis = [layout.api_url, second.url]
    buf = disk(tmp_path / "buf")
    lock = threading.Lock()
    created: dict[str, int] = {}  # file name -> batch it went into
    chunk_bytes: list[int] = []
    errors: list[str] = []

    def writer(w: int) -> None:
        with httpx.Client(base_url=apis[w % 2], timeout=20) as api:
            for seq in range(12):
                body = chunk(1e9 + w * 1e6 + seq, seed=w * 100_000 + seq)
                answer = api.post("/streamdata", content=body, headers=auth.writer)
                if answer.status_code != 201:
                    with lock:
                        errors.append(f"{answer.status_code} {answer.text[:200]}")
                    return
                with lock:
                    created[answer.json()["body"]["file"]] = answer.json()["body"]["batch"]
                    chunk_bytes.append(answer.json()["body"]["bytes"])

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    flushed: list[dict] = []
    with httpx.Client(base_url=layout.api_url, timeout=20) as admin:
        while any(thread.is_alive() for thread in threads):
            train = admin.post("/train", json={"user": "airflow"}, headers=auth.admin)
            assert train.status_code == 200, train.text
            if train.json()["resp"] == "WAITING":
                time.sleep(0.05)
                continue
            # The sealed batch's counts are what its folder holds, and its archive is named.
            sealed = buf.root / "archive" / "sealed" / f"{train.json()['batch']:06d}"
            on_disk = [p for p in sealed.iterdir() if p.name != "sealed.json"]
            assert train.json()["n_f"] == len(on_disk)
            assert train.json()["bt_wrt"] == sum(p.stat().st_size for p in on_disk)
            clean = admin.post("/cleanbuf", json={"msg": "cycle"}, headers=auth.admin)
            assert clean.status_code == 200, clean.text
            assert (clean.json()["batch"], clean.json()["archive"]) == (
                train.json()["batch"],
                train.json()["archive"],
            )
            flushed.append(clean.json())
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors[:5]
        # What is still sealed, then the batch being filled (forced), goes to the archive.
        while admin.post("/train", json={"user": "a"}, headers=auth.admin).json()["resp"] == (
            "FROZEN"
        ):
            flushed.append(admin.post("/cleanbuf", json={"msg": "end"}, headers=auth.admin).json())
        admin.post("/cleanbuf", json={"msg": "end", "force": True}, headers=auth.admin)

    archives = buf.archives()
    seen: dict[str, list[int]] = {}
    for name, manifest in archives.items():
        for file in buf.archived_files(name):
            seen.setdefault(file, []).append(manifest["batch"])
    assert {name: batches for name, batches in seen.items() if len(batches) != 1} == {}
    assert {name: batches[0] for name, batches in seen.items()} == created
    assert buf.files() == {}
    assert len(flushed) >= 4, "too few batches sealed for the test to mean anything"
    biggest = max(chunk_bytes)
    for clean in flushed:
        size = archives[clean["archive"]]["bt_wrt"]
        assert MAX_SIZE <= size < MAX_SIZE + biggest
