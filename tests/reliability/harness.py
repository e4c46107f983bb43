"""The chain under faults: real processes killed and restarted, a retrying writer, a flusher,
and the audit of what is stored once it is over.

`Chain` runs the three services (`glitchflow_stack`'s supervisor) on free 127.0.0.1 ports and
kills (``kill -9`` of the process group) and restarts any of them. `Writer` sends chunks to the
API's ``/streamdata``, each until it is acknowledged (201 CREATED or 200 DUPLICATE), through the
project's one retry policy (`glitchflow_core.retry.RetryPolicy`, as gwclient does): a chunk's
identity makes a repeat safe. `Flusher` plays Airflow: ``/train``, then ``/cleanbuf`` of the batch
it names, again and again. `audit` then walks the buffer's folders (and the bucket) and asserts
the invariants of docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import orjson
import tenacity
from ports import free_port

from glitchflow_archive import BATCH_NAME_RE, MANIFEST, UPLOADED, S3Archive
from glitchflow_core.retry import RetryPolicy
from glitchflow_stack import Layout, ManagedProcess, service_processes
from gwclient.chunks import PlannedChunk

T0 = 1_126_259_462.0
DT = 1.0 / 4096
CHANNELS = ("H1:GWOSC-4KHZ_R1_STRAIN", "L1:GWOSC-4KHZ_R1_STRAIN")
SEALED = "sealed"
RECORD = "sealed.json"

WRITER_POLICY = RetryPolicy(max_attempts=400, max_elapsed=45.0, base_delay=0.05, max_delay=0.5)
"""Retries long enough to outlast a restart; a 503 with ``Retry-After`` does not count."""


def plan(chunks_per_channel: int, samples: int, channels: Sequence[str] = CHANNELS, seed: int = 0):
    """Contiguous chunks of ``samples`` samples per channel, their samples seeded: a list of
    `PlannedChunk`, channel by channel in GPS order."""
    rng = np.random.default_rng(seed)
    planned = []
    for channel in channels:
        h = rng.standard_normal(chunks_per_channel * samples) * 1e-21
        for k in range(chunks_per_channel):
            t0 = T0 + k * samples * DT  # exact: a whole number of 1/4096 s
            planned.append(PlannedChunk(channel, t0, DT, h[k * samples : (k + 1) * samples]))
    return planned


def lanes(chunks: Sequence[PlannedChunk], count: int | None) -> list[list[int]]:
    """Indexes of ``chunks`` dealt round-robin to ``count`` writers, each in order; None: one
    writer per channel."""
    if count is None:
        by_channel: dict[str, list[int]] = {}
        for index, chunk in enumerate(chunks):
            by_channel.setdefault(chunk.channel, []).append(index)
        return list(by_channel.values())
    return [list(range(i, len(chunks), count)) for i in range(count)]


# --------------------------------------------------------------------------- the chain


class Chain:
    """The buffer, logic and API as processes on free ports; any of them killed and restarted.

    Service names are ``databuffer``, ``logic`` and ``api``.
    """

    def __init__(
        self,
        data_dir: Path,
        max_size: int,
        *,
        freeze_mode: str,
        max_sealed: int | None = None,
        env: Mapping[str, str] | None = None,
        logic_workers: int = 2,
    ) -> None:
        self.data_dir = data_dir
        self.layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
        settings = {
            "GLITCHFLOW_LOG_LEVEL": "WARNING",
            # A read of hundreds of small chunks from the bucket may take more than the
            # default 10 s on a loaded machine; killed services fail fast whatever this is.
            "GLITCHFLOW_UPSTREAM_TIMEOUT": "60",
            **(env or {}),
        }
        processes = service_processes(
            self.layout,
            data_dir,
            max_size,
            logic_workers=logic_workers,
            freeze_mode=freeze_mode,
            max_sealed=max_sealed,
            env=settings,
        )
        self.services: dict[str, ManagedProcess] = {p.name: p for p in processes}
        self.kills: list[str] = []

    @property
    def api_url(self) -> str:
        return self.layout.api_url

    @property
    def buffer_url(self) -> str:
        return self.layout.buffer_url

    def start(self) -> Chain:
        for process in self.services.values():
            process.start()
            process.wait_ready(60)
        return self

    def kill(self, name: str) -> None:
        """``kill -9`` the service's process group (gunicorn's workers too) and reap it."""
        self.services[name].kill()
        self.kills.append(name)

    def restart(self, name: str) -> None:
        """Start the service again, same port and folders, and wait until it is ready."""
        process = self.services[name]
        process.start()
        process.wait_ready(60)

    def stop(self) -> None:
        for process in reversed(list(self.services.values())):
            process.stop()


# --------------------------------------------------------------------------- the writer


@dataclass(frozen=True)
class Ack:
    """The answer that acknowledged a chunk."""

    status: int
    resp: str
    batch: int
    file: str


@dataclass
class Writer:
    """Sends chunks to ``/streamdata`` until each is acknowledged, or its retries run out.

    ``acks`` maps a chunk's index to the answer that acknowledged it; ``retried`` counts the
    answers and errors that were retried (``FROZEN``, ``BUSY``, ``UPSTREAM_UNREACHABLE``,
    ``ServerDisconnectedError``...; ``FROZEN without Retry-After`` should never be counted);
    ``final`` lists the chunks that got a final refusal or ran
    out of retries.
    """

    url: str
    chunks: Sequence[PlannedChunk]
    policy: RetryPolicy = WRITER_POLICY
    acks: dict[int, Ack] = field(default_factory=dict)
    retried: Counter[str] = field(default_factory=Counter)
    final: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def acknowledged(self) -> int:
        return len(self.acks)

    def start(self, writers: int | None) -> threading.Thread:
        """Send every chunk from ``writers`` concurrent writers (None: one per channel), in a
        thread of its own."""
        work = lanes(self.chunks, writers)
        thread = threading.Thread(target=asyncio.run, args=(self.send_all(work),), daemon=True)
        thread.start()
        return thread

    async def send_all(self, work: list[list[int]]) -> None:
        timeout = aiohttp.ClientTimeout(total=30, sock_connect=2)
        connector = aiohttp.TCPConnector(limit=len(work))
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                await asyncio.gather(*(self._send_lane(session, lane) for lane in work))
        finally:
            self.done.set()

    async def _send_lane(self, session: aiohttp.ClientSession, lane: list[int]) -> None:
        for index in lane:
            await self._send(session, index)

    async def _send(self, session: aiohttp.ClientSession, index: int) -> None:
        body = self.chunks[index].body()
        url = self.url + "/streamdata"

        async def post() -> _Answer:
            headers = {"Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as answer:
                return _Answer(answer.status, await answer.read(), answer.headers)

        try:
            answer = await self.policy.acall(
                post,
                idempotent=True,
                not_sent=(aiohttp.ClientConnectorError,),
                no_answer=(aiohttp.ClientError, TimeoutError),
                before_sleep=self._note_retry,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.final.append(f"chunk {index}: {type(exc).__name__} {exc}")
            return
        doc = _json(answer.content)
        if answer.status in (200, 201) and doc.get("resp") in ("CREATED", "DUPLICATE"):
            inner = doc["body"]
            self.acks[index] = Ack(answer.status, doc["resp"], inner["batch"], inner["file"])
        else:
            self.final.append(f"chunk {index}: {answer.status} {answer.content[:300]!r}")

    def _note_retry(self, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            self.retried[type(outcome.exception()).__name__] += 1
        else:
            answer = outcome.result()
            resp = str(_json(answer.content).get("resp", answer.status))
            self.retried[resp] += 1
            if resp in ("FROZEN", "BUSY") and "Retry-After" not in answer.headers:
                self.retried[f"{resp} without Retry-After"] += 1


@dataclass(frozen=True)
class _Answer:
    status: int
    content: bytes
    headers: Any

    @property
    def status_code(self) -> int:
        return self.status


def _json(content: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


# --------------------------------------------------------------------------- the flusher


@dataclass
class Flusher:
    """Airflow's part, in a thread: ``/train`` and, when it answers FROZEN, ``/cleanbuf`` of the
    batch it names; every ``partial_every``-th round a ``/cleanbuf`` without a batch (the
    original's flush of the current batch, even partial). Failures (a service down) are counted
    and the next round tries again.
    """

    url: str
    pause: float = 0.05
    partial_every: int = 0
    flushed: list[int] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        rounds = 0
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self.stop.is_set():
                rounds += 1
                partial = bool(self.partial_every) and rounds % self.partial_every == 0
                try:
                    self.round(client, partial=partial)
                except httpx.HTTPError as exc:
                    self.failures[type(exc).__name__] += 1
                self.stop.wait(self.pause)

    def round(self, client: httpx.Client, *, partial: bool = False) -> None:
        """One /train and, when a batch is frozen (or ``partial``), one /cleanbuf."""
        if partial:
            self._clean(client, {"msg": "reliability: partial"})
            return
        train = client.post("/train", json={"user": "reliability"})
        doc = _json(train.content)
        if train.status_code != 200:
            self.failures[str(doc.get("resp", train.status_code))] += 1
        elif doc.get("resp") == "FROZEN":
            self._clean(client, {"msg": "reliability", "batch": doc["batch"]})

    def _clean(self, client: httpx.Client, body: dict[str, Any]) -> None:
        cleaned = client.post("/cleanbuf", json=body)
        doc = _json(cleaned.content)
        if cleaned.status_code != 200:
            self.failures[str(doc.get("resp", cleaned.status_code))] += 1
        elif doc.get("archive") and not (doc.get("body") or {}).get("already_flushed"):
            self.flushed.append(doc["batch"])


# --------------------------------------------------------------------------- waiting


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not reached within {timeout:g} s: {what}"
        time.sleep(0.05)


def flush_everything(chain: Chain) -> None:
    """Hand over every sealed batch and archive what is left in the live batch."""
    with httpx.Client(base_url=chain.api_url, timeout=30) as client:
        for _ in range(1000):
            cleaned = client.post("/cleanbuf", json={"msg": "reliability: last"})
            assert cleaned.status_code == 200, cleaned.text
            if cleaned.json()["archive"] is None:
                return
    raise AssertionError("the buffer never emptied")


def wait_uploaded(chain: Chain, timeout: float = 60.0) -> None:
    """Until every archived batch is in the bucket, verified."""

    def all_uploaded() -> bool:
        listing = httpx.get(f"{chain.buffer_url}/batches", params={"limit": 1000}, timeout=10)
        states = [b.get("upload", {}).get("state") for b in listing.json()["batches"]]
        return all(state == "uploaded" for state in states)

    wait_for(all_uploaded, timeout, "every archived batch uploaded")


# --------------------------------------------------------------------------- the audit


@dataclass
class Inventory:
    """Where every stored chunk file is: ``places[name]`` lists ``(batch, where)``."""

    places: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    live_batch: int = 0
    sealed: list[int] = field(default_factory=list)
    archived: dict[int, str] = field(default_factory=dict)
    in_bucket: list[str] = field(default_factory=list)

    def add(self, name: str, batch: int, where: str) -> None:
        self.places.setdefault(name, []).append((batch, where))

    @property
    def files(self) -> int:
        return sum(len(places) for places in self.places.values())


def _chunk_files(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Chunk files of a folder and their sizes; asserts it holds no temporary file."""
    found = {}
    for entry in folder.iterdir():
        assert not entry.name.startswith("."), f"temporary or hidden file left: {entry}"
        if entry.name in skip:
            continue
        assert entry.is_file(), f"unexpected folder {entry}"
        found[entry.name] = entry.stat().st_size
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audit(chain: Chain, bucket: S3Archive | None = None) -> Inventory:
    """Assert what the buffer stores is whole and counted right; return where each file is.

    Checked: no temporary or staging file anywhere; ``/stat`` equals the live folder and
    ``/dumpF`` lists exactly its files; every sealed batch's record, counts and folder agree;
    every archived batch's manifest lists exactly its files with their sizes and sha256, read
    locally or, once uploaded, from the bucket (manifest there, every file verified); the bucket
    holds no half-uploaded batch and nothing the buffer does not know.
    """
    root = chain.data_dir
    inventory = Inventory()
    with httpx.Client(base_url=chain.buffer_url, timeout=30) as client:
        stat = client.get("/stat").json()
        dump = client.get("/dumpF", params={"limit": 100_000}).json()
        listing = client.get("/batches", params={"limit": 1000}).json()

    for folder in (root / "adm", root / "data"):
        _chunk_files(folder)  # no temporary file left in either
    live = _chunk_files(root / "data")
    assert (stat["n_itm"], stat["buff_size"]) == (len(live), sum(live.values()))
    assert (sorted(dump["nmlist"]), dump["total"]) == (sorted(live), len(live))
    inventory.live_batch = stat["batch"]
    for name in live:
        inventory.add(name, stat["batch"], "live")

    archive_root = root / "archive"
    sealed_root = archive_root / SEALED
    served_sealed = {entry["batch"]: entry for entry in listing["sealed"]}
    folders = sorted(sealed_root.iterdir()) if sealed_root.exists() else []
    for folder in folders:
        held = _chunk_files(folder, skip=(RECORD,))
        record = orjson.loads((folder / RECORD).read_bytes())
        batch = record["batch"]
        assert folder.name == f"{batch:06d}"
        assert sorted(record["files"]) == sorted(held), f"sealed batch {batch}: record != folder"
        served = served_sealed.pop(batch)
        assert (served["n_f"], served["bt_wrt"]) == (len(held), sum(held.values()))
        inventory.sealed.append(batch)
        for name in held:
            inventory.add(name, batch, "sealed")
    assert served_sealed == {}, f"sealed batches served without a folder: {served_sealed}"

    names = set()
    for entry in archive_root.iterdir():
        assert not entry.name.startswith("."), f"staging or temporary file left: {entry}"
        if entry.name != SEALED:
            assert BATCH_NAME_RE.match(entry.name), f"unexpected entry in the archive: {entry}"
            names.add(entry.name)
    assert listing["total"] == len(names)
    uploaded = {name for name in names if (archive_root / name / UPLOADED).exists()}
    for name in sorted(names):
        folder = archive_root / name
        manifest = orjson.loads((folder / MANIFEST).read_bytes())
        batch = manifest["batch"]
        assert name.startswith(f"{batch:06d}-") and manifest["archive"] == name
        listed = {f["name"]: f for f in manifest["files"]}
        assert len(listed) == len(manifest["files"]) == manifest["n_f"]
        assert sum(f["bytes"] for f in listed.values()) == manifest["bt_wrt"]
        local = _chunk_files(folder, skip=(MANIFEST, UPLOADED))
        if name in uploaded:
            assert bucket is not None, f"{name} marked uploaded without a bucket"
            assert local == {}, f"{name}: chunk files kept after a verified upload"
            verified = bucket.verify(bucket.resolve(name))  # every file: size and sha256
            assert sorted(f.name for f in verified.files) == sorted(listed)
            assert sorted(bucket.list_files(name)) == sorted([*listed, MANIFEST])
            where = "bucket"
        else:
            assert sorted(local) == sorted(listed), f"{name}: folder != manifest"
            for file, size in local.items():
                assert size == listed[file]["bytes"]
                assert _sha256(folder / file) == listed[file]["sha256"], f"{name}/{file}"
            where = "archive"
        inventory.archived[batch] = name
        for file in listed:
            inventory.add(file, batch, where)
    assert len(inventory.archived) == len(names), "two archive folders for one batch"

    if bucket is not None:
        assert bucket.incomplete_names() == [], "a half-uploaded batch is left in the bucket"
        inventory.in_bucket = sorted(bucket.names())
        assert set(inventory.in_bucket) <= names, "the bucket holds a batch the buffer lost"
        assert uploaded <= set(inventory.in_bucket)
    return inventory


def assert_stored_once(inventory: Inventory, writer: Writer) -> None:
    """Every acknowledged chunk is stored exactly once, in the batch that acknowledged it; no
    file is stored twice; nothing stored that was never sent."""
    assert writer.final == [], writer.final[:5]
    assert writer.acknowledged == len(writer.chunks)
    doubled = {name: places for name, places in inventory.places.items() if len(places) != 1}
    assert doubled == {}, f"stored more than once: {list(doubled.items())[:5]}"
    missing = [ack.file for ack in writer.acks.values() if ack.file not in inventory.places]
    assert missing == [], f"acknowledged and missing: {missing[:5]}"
    wrong_batch = {
        ack.file: (ack.batch, inventory.places[ack.file][0][0])
        for ack in writer.acks.values()
        if ack.batch != inventory.places[ack.file][0][0]
    }
    assert wrong_batch == {}, f"acknowledged in one batch, stored in another: {wrong_batch}"
    sent = {ack.file for ack in writer.acks.values()}
    assert set(inventory.places) == sent, "a stored file that no acknowledged chunk names"


def assert_read_back(chain: Chain, chunks: Sequence[PlannedChunk]) -> int:
    """``GET /data`` through the API returns every sent sample of every channel, bit-exact, as
    one segment; the number of samples compared."""
    compared = 0
    with httpx.Client(base_url=chain.api_url, timeout=60) as client:
        for channel in sorted({chunk.channel for chunk in chunks}):
            mine = sorted((c for c in chunks if c.channel == channel), key=lambda c: c.t0)
            start, end = mine[0].t0, mine[-1].t0 + mine[-1].duration
            answer = client.get("/data", params={"channel": channel, "start": start, "end": end})
            assert answer.status_code == 200, answer.text[:500]
            doc = answer.json()
            assert doc["gaps"] == [], f"{channel}: gaps {doc['gaps'][:5]}"
            expected = np.concatenate([c.h for c in mine])
            assert doc["n"] == len(expected) and doc["t0"] == start
            assert np.array_equal(np.asarray(doc["h"], dtype=np.float64), expected)
            compared += len(expected)
    return compared
