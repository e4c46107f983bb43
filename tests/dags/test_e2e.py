"""The whole cycle with ``dag.test()`` against the three services as real processes.

The real H1/L1/V1 second that ships with gwpy is streamed (1/16-s chunks, interleaved in GPS
order) into a buffer in rotate mode (the default) whose ``MAX_SIZE`` the last chunk reaches: that
write seals batch 1 and ingest goes on in batch 2, before and while the DAG runs. The DAG takes the
sealed batch, exports it with ``glitchflow export``, trains ``glitchflow train-ref`` on it (1-s
segments) and records the results through the API. The batch must be archived, the HDF5 must read
back bit-exact, the results must be in ``/batches``, and ingest must never have been refused.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from airflow_harness import Airflow, connection_uri

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    # The run's own bound is the driver's 400 s; a loaded machine needs more than the default 300.
    pytest.mark.timeout(600),
    # gwpy 4.1 still reads astropy's COPY_IF_NEEDED, which astropy 8 deprecates; nothing of ours.
    pytest.mark.filterwarnings(
        "ignore:COPY_IF_NEEDED is no longer needed"
        ":astropy.utils.exceptions.AstropyPendingDeprecationWarning"
    ),
]

WRITER = "dag-e2e-writer-token-0123456789"
ADMIN = "dag-e2e-admin-token-0123456789"
SERVICE = "dag-e2e-service-token-0123456789"
WRITE = {"Authorization": f"Bearer {WRITER}", "Content-Type": "application/json"}


def shipped_second() -> list[Any]:
    """The shipped H1/L1/V1 second in 1/16-s chunks, in GPS order."""
    import gwpy

    from gwclient.chunks import plan_chunks
    from gwclient.sources import SHIPPED_SAMPLE, read_file

    path = Path(gwpy.__file__).parent / "testing" / "data" / SHIPPED_SAMPLE
    return plan_chunks(read_file(path), chunk_seconds=1 / 16)


def later(chunks: list[Any], seconds: float) -> list[Any]:
    """The same samples ``seconds`` later: new chunks for the next batch."""
    return [dataclasses.replace(c, t0=c.t0 + seconds) for c in chunks]


class Ingest:
    """Streams chunks (201 expected for each) from a thread while the DAG runs."""

    def __init__(self, api_url: str, chunks: list[Any], pause: float) -> None:
        self.api_url, self.chunks, self.pause = api_url, chunks, pause
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.api_url, headers=WRITE, timeout=30) as client:
            for chunk in self.chunks:
                self.statuses.append(client.post("/streamdata", content=chunk.body()).status_code)
                time.sleep(self.pause)


def read_back(dataset: Path, channel: str) -> tuple[float, float, np.ndarray]:
    """t0, sample rate and samples of a channel's single segment, read with gwpy."""
    from gwpy.timeseries import TimeSeries

    series = TimeSeries.read(dataset, path=f"{channel}/0000")
    return float(series.t0.value), float(series.sample_rate.value), np.asarray(series.value)


@pytest.fixture
def cycle(airflow: Airflow, stack_factory: Callable[..., Any], tmp_path: Path) -> dict[str, Any]:
    """Seal batch 1 with the shipped second, go on streaming, run the DAG once meanwhile."""
    data_dir = tmp_path / "data"
    chunks = shipped_second()
    sizes = [len(c.body()) for c in chunks]
    tokens = {
        "GLITCHFLOW_WRITER_TOKENS": WRITER,
        "GLITCHFLOW_ADMIN_TOKENS": ADMIN,
        "GLITCHFLOW_SERVICE_TOKEN": SERVICE,
        "GLITCHFLOW_LOG_LEVEL": "WARNING",
    }
    # The last chunk of the second brings the batch to MAX_SIZE: it seals batch 1 whole.
    max_size = sum(sizes) - sizes[-1] // 2
    _, layout = stack_factory(max_size=max_size, env=tokens, data_dir=data_dir)
    with httpx.Client(base_url=layout.api_url, headers=WRITE, timeout=30) as client:
        for chunk in chunks:
            answer = client.post("/streamdata", content=chunk.body())
            assert answer.status_code == 201, answer.text
        assert answer.json()["body"]["sealed"] is True
        # Rotate: the next chunks open batch 2 at once.
        before = later(chunks, 1.0)[:6]
        for chunk in before:
            assert client.post("/streamdata", content=chunk.body()).status_code == 201
    airflow.env.update(
        {
            "AIRFLOW_CONN_GLITCHFLOW_API": connection_uri(layout.api_url, ADMIN),
            "GLITCHFLOW_CLI": str(Path(sys.executable).with_name("glitchflow")),
            "GLITCHFLOW_ARCHIVE_ROOT": str(data_dir / "archive"),
            "GLITCHFLOW_OUTPUT_DIR": str(tmp_path / "datasets"),
        }
    )
    ingest = Ingest(layout.api_url, later(chunks, 1.0)[6:18], pause=0.5)
    ingest.thread.start()
    run = airflow.driver("run", timeout=400)
    ingest.thread.join(60)
    assert run.result["state"] == "success", run.output[-6000:]
    return {
        "run": run,
        "record": run.result["xcom"]["record.return_value"],
        "accepted": chunks,
        "batch_2": 6 + len(ingest.statuses),
        "statuses": ingest.statuses,
        "data_dir": data_dir,
        "api_url": layout.api_url,
    }


def test_dag_takes_the_sealed_batch_to_a_model_while_ingest_goes_on(
    cycle: dict[str, Any],
) -> None:
    record, accepted = cycle["record"], cycle["accepted"]
    run = cycle["run"]
    assert {task: t["state"] for task, t in run.result["tasks"].items()} == {
        "wait_for_frozen": "success",
        "flush": "success",
        "export": "success",
        "train": "success",
        "record": "success",
    }
    frozen = run.result["xcom"]["wait_for_frozen.return_value"]
    assert record["batch"] == frozen["batch"] == 1
    assert record["files"] == len(accepted)
    assert record["already_flushed"] is False

    # The batch is archived, with its manifest, under the folder the flush answered.
    archive = cycle["data_dir"] / "archive" / record["archive"]
    assert (archive / "manifest.json").is_file()
    chunk_files = [p for p in archive.iterdir() if p.name.endswith("json") and "__" in p.name]
    assert len(chunk_files) == len(accepted)
    assert record["bytes"] == sum(p.stat().st_size for p in chunk_files)

    # The dataset reads back, bit for bit, as what the buffer accepted: the whole second.
    dataset = Path(record["dataset"])
    assert dataset.parent.name == record["archive"]
    for channel in sorted({c.channel for c in accepted}):
        mine = [c for c in accepted if c.channel == channel]
        t0, rate, samples = read_back(dataset, channel)
        assert t0 == mine[0].t0
        assert rate == 1 / mine[0].dt
        assert np.array_equal(samples, np.concatenate([c.h for c in mine]))

    # The trainer scored the 1-s segments, and its report is on disk and in the record.
    report = record["report"]
    assert json.loads(Path(record["report_path"]).read_text()) == report
    assert report["windows"] >= 3 and report["skipped_segments"] == []

    # The results are recorded with the batch: /batches shows them, through the API.
    admin = {"Authorization": f"Bearer {ADMIN}"}  # a listing: a reader or admin token
    with httpx.Client(base_url=cycle["api_url"], timeout=30, headers=admin) as client:
        listed = client.get("/batches").json()["batches"]
        mine = next(b for b in listed if b["batch"] == record["batch"])
        results = mine["results"]
        assert results["archive"] == record["archive"]
        assert results["dag_run_id"] == run.result["run_id"]
        assert (results["dataset"], results["files"]) == (record["dataset"], len(accepted))
        assert results["report"]["windows"] == report["windows"]
        assert results["report"]["flagged"] == report["flagged"]
        assert [c["gps"] for c in results["report"]["top"]] == [c["gps"] for c in report["top"]]
        assert results["recorded_at"] == record["recorded_at"]
        assert (cycle["data_dir"] / "archive" / record["archive"] / "results.json").is_file()

        # Ingest never paused: every chunk sent while the DAG ran was stored, in batch 2.
        assert cycle["statuses"] == [201] * len(cycle["statuses"])
        assert client.get("/desc").json()["resp"] == "OPERATIONAL"
        stats = client.get("/stats").json()
        assert (stats["batch"], stats["n_itm"]) == (2, cycle["batch_2"])
