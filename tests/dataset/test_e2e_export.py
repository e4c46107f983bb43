"""Through the real services: stream -> freeze -> flush -> export -> read back -> train."""

from __future__ import annotations

import httpx
import orjson
import pytest
from dataset.conftest import GWPY_WARNING, run_cli, samples_equal
from gwpy.segments import DataQualityDict
from gwpy.timeseries import TimeSeriesDict

from gwclient.chunks import plan_chunks
from gwclient.sender import stream

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings(GWPY_WARNING)]


def test_streamed_real_strain_is_exported_bit_exact_after_freeze_and_flush(
    stack_factory, tmp_path, shipped
):
    chunks = plan_chunks(shipped, 0.25)
    # The buffer stores each body as sent: the last chunk brings it exactly to MAX_SIZE.
    max_size = sum(len(c.body()) for c in chunks)
    data_dir = tmp_path / "store"
    _, layout = stack_factory(data_dir=data_dir, max_size=max_size)

    summary = stream(chunks, layout.api_url, concurrency=1)
    assert summary.ok and summary.created == 12, summary.line()
    with httpx.Client(base_url=layout.api_url, timeout=30) as client:
        train = client.post("/train", json={"user": "test", "token": ""}).json()
        assert train["resp"] == "FROZEN" and train["n_f"] == 12
        clean = client.post("/cleanbuf", json={"msg": "export test"}).json()
        assert clean["resp"] == "CLEANED" and clean["batch"] == train["batch"]
        assert client.get("/desc").json()["resp"] == "OPERATIONAL"

    out = tmp_path / "batch.h5"
    done = run_cli(
        "export", str(clean["batch"]), "--archive-root", str(data_dir / "archive"),
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"exported batch {clean['batch']} (12 chunks, {max_size} bytes")

    for name, series in shipped.items():
        read = TimeSeriesDict.read(out, group=name)
        assert len(read) == 1
        got = read["0000"]
        assert samples_equal(got.value, series.value)
        assert (got.t0.value, got.dt.value) == (series.t0.value, series.dt.value)
    flags = DataQualityDict.read(out, path="segments")
    assert sorted(flags) == sorted(shipped)

    # The same batch named by its archive folder, as /cleanbuf answered it, gives the same data.
    again = tmp_path / "again.h5"
    folder = data_dir / "archive" / clean["archive"]
    assert run_cli("export", str(folder), "--out", str(again)).returncode == 0
    first = TimeSeriesDict.read(out, group="L1:LDAS-STRAIN")["0000"]
    assert samples_equal(TimeSeriesDict.read(again, group="L1:LDAS-STRAIN")["0000"].value, first)

    # The trainer whitens each 1-s segment with a filter and FFTs of its own length's fraction:
    # one 0.5-s window per channel is scored once the filter's edges are left out.
    trained = run_cli("train-ref", "--dataset", str(out), "--out", str(tmp_path / "model"))
    assert trained.returncode == 0, trained.stderr
    report = orjson.loads((tmp_path / "model" / "report.json").read_bytes())
    assert (report["windows"], report["skipped_segments"]) == (3, [])
    assert sorted(report["channels"]) == sorted(shipped)
    assert all(shipped[c["channel"]].span[0] < c["gps"] < shipped[c["channel"]].span[1]
               for c in report["top"])  # fmt: skip
