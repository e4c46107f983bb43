"""The whole cycle with ``dag.test()`` against the three services as real processes.

Six seconds of synthetic noise with glitches, then the real H1/L1/V1 second that ships with gwpy
are streamed until the buffer freezes (during the real strain). The DAG then flushes the batch,
exports it with ``glitchflow export``, trains ``glitchflow train-ref`` on it, and records what it
did. The batch must be archived, the HDF5 must read back equal to what was accepted, the report
must exist, and the buffer must take data again. The synthetic seconds are there because the
reference trainer scores only segments of at least 4 s (its whitening filter), and the shipped
strain is one second long.
"""

from __future__ import annotations

import json
import sys
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
    # gwpy 4.1 still reads astropy's COPY_IF_NEEDED, which astropy 8 deprecates; nothing of ours.
    pytest.mark.filterwarnings(
        "ignore:COPY_IF_NEEDED is no longer needed"
        ":astropy.utils.exceptions.AstropyPendingDeprecationWarning"
    ),
]

WRITER = "dag-e2e-writer-token-0123456789"
ADMIN = "dag-e2e-admin-token-0123456789"
SERVICE = "dag-e2e-service-token-0123456789"
SYNTHETIC_RATE = 2048.0
SYNTHETIC_SECONDS = 6.0
MAX_SIZE = 520_000
"""The synthetic seconds (~220 kB) and about 17 of the shipped second's 48 chunks of 1/16 s."""


def stream_plan() -> list[Any]:
    """Synthetic noise with two glitches (1-s chunks), then the shipped strain (1/16-s chunks)."""
    import gwpy

    from gwclient.chunks import chunk_array, plan_chunks
    from gwclient.sources import SHIPPED_SAMPLE, read_file
    from gwclient.synthetic import synthetic_series

    start = 968_654_500.0
    noise, _ = synthetic_series("H1", SYNTHETIC_SECONDS, SYNTHETIC_RATE, start, glitches=2)
    synthetic = chunk_array(noise, start, 1 / SYNTHETIC_RATE, "H1:SYNTHETIC-STRAIN", 1.0)
    path = Path(gwpy.__file__).parent / "testing" / "data" / SHIPPED_SAMPLE
    return [*synthetic, *plan_chunks(read_file(path), chunk_seconds=1 / 16)]


def stream_until_frozen(api_url: str, chunks: list[Any]) -> tuple[list[Any], list[Any]]:
    """POST chunks until the API refuses one as FROZEN: (accepted, not sent or refused)."""
    headers = {"Authorization": f"Bearer {WRITER}", "Content-Type": "application/json"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        for index, chunk in enumerate(chunks):
            answer = client.post("/streamdata", content=chunk.body())
            if answer.status_code == 503:
                assert answer.json()["resp"] == "FROZEN"
                return chunks[:index], chunks[index:]
            assert answer.status_code == 201, answer.text
    pytest.fail(f"{len(chunks)} chunks never filled a {MAX_SIZE}-byte buffer")


def read_back(dataset: Path, channel: str) -> tuple[float, float, np.ndarray]:
    """t0, sample rate and samples of a channel's single segment, read with gwpy."""
    from gwpy.timeseries import TimeSeries

    series = TimeSeries.read(dataset, path=f"{channel}/0000")
    return float(series.t0.value), float(series.sample_rate.value), np.asarray(series.value)


@pytest.fixture
def cycle(airflow: Airflow, stack_factory: Callable[..., Any], tmp_path: Path) -> dict[str, Any]:
    """Stream until frozen, run the DAG once; what it recorded and what the test needs."""
    data_dir = tmp_path / "data"
    tokens = {
        "GLITCHFLOW_WRITER_TOKENS": WRITER,
        "GLITCHFLOW_ADMIN_TOKENS": ADMIN,
        "GLITCHFLOW_SERVICE_TOKEN": SERVICE,
        "GLITCHFLOW_LOG_LEVEL": "WARNING",
        # Streamed until the buffer refuses a chunk: the hold mode's freeze.
        "GLITCHFLOW_FREEZE_MODE": "hold",
    }
    _, layout = stack_factory(max_size=MAX_SIZE, env=tokens, data_dir=data_dir)
    accepted, rest = stream_until_frozen(layout.api_url, stream_plan())
    assert rest[0].dt == 1 / 16384, "the buffer froze before the real strain"
    airflow.env.update(
        {
            "AIRFLOW_CONN_GLITCHFLOW_API": connection_uri(layout.api_url, ADMIN),
            "GLITCHFLOW_CLI": str(Path(sys.executable).with_name("glitchflow")),
            "GLITCHFLOW_ARCHIVE_ROOT": str(data_dir / "archive"),
            "GLITCHFLOW_OUTPUT_DIR": str(tmp_path / "datasets"),
        }
    )
    run = airflow.driver("run", timeout=400)
    assert run.result["state"] == "success", run.output[-6000:]
    return {
        "run": run,
        "record": run.result["xcom"]["record.return_value"],
        "accepted": accepted,
        "rest": rest,
        "data_dir": data_dir,
        "api_url": layout.api_url,
    }


def test_dag_takes_a_frozen_batch_to_a_model_and_reopens_the_buffer(cycle: dict[str, Any]) -> None:
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
    assert record["batch"] == frozen["batch"]
    assert record["files"] == len(accepted)
    assert record["already_flushed"] is False

    # The batch is archived, with its manifest, under the folder the flush answered.
    archive = cycle["data_dir"] / "archive" / record["archive"]
    assert (archive / "manifest.json").is_file()
    chunk_files = [p for p in archive.iterdir() if p.name != "manifest.json"]
    assert len(chunk_files) == len(accepted)
    assert record["bytes"] == sum(p.stat().st_size for p in chunk_files)

    # The dataset reads back, bit for bit, as what the buffer accepted.
    dataset = Path(record["dataset"])
    assert dataset.is_file()
    assert dataset.parent.name == record["archive"]
    for channel in sorted({c.channel for c in accepted}):
        mine = [c for c in accepted if c.channel == channel]
        t0, rate, samples = read_back(dataset, channel)
        assert t0 == mine[0].t0
        assert rate == 1 / mine[0].dt
        assert np.array_equal(samples, np.concatenate([c.h for c in mine]))

    # The trainer's report is on disk and in the record.
    report = Path(record["report_path"])
    assert report.is_file()
    assert json.loads(report.read_text()) == record["report"]
    assert record["report"]["windows"] > 0

    # The store is OPERATIONAL again and takes the chunk it refused while frozen.
    with httpx.Client(base_url=cycle["api_url"], timeout=30) as client:
        assert client.get("/desc").json()["resp"] == "OPERATIONAL"
        answer = client.post(
            "/streamdata",
            content=cycle["rest"][0].body(),
            headers={"Authorization": f"Bearer {WRITER}", "Content-Type": "application/json"},
        )
        assert answer.status_code == 201, answer.text
        assert client.get("/stats").json()["n_itm"] == 1
