"""The reference trainer finds glitches injected at known times into synthetic noise."""

from __future__ import annotations

import joblib
import orjson
import pytest
from dataset.conftest import GWPY_WARNING, archive_batch, run_cli

from glitchflow_dataset.cli import main
from gwclient import sources
from gwclient.chunks import plan_chunks

pytestmark = pytest.mark.filterwarnings(GWPY_WARNING)

START = 1_400_000_000.0
GLITCH_OFFSETS = (5.3, 13.7, 22.1, 31.9, 40.4, 49.2, 57.6)


@pytest.fixture(scope="module")
def glitchy_dataset(tmp_path_factory):
    """64 s of H1 and L1 noise at 1024 Hz with 7 glitches each, archived and exported."""
    tmp = tmp_path_factory.mktemp("glitchy")
    times = [START + t for t in GLITCH_OFFSETS]
    source, glitches = sources.synthetic(
        ["H1", "L1"], duration=64, sample_rate=1024, seed=3, glitches=times
    )
    folder = archive_batch(tmp / "store", plan_chunks(source, 1.0))
    dataset = tmp / "glitchy.h5"
    assert main(["export", str(folder), "--out", str(dataset), "--quiet"]) == 0
    return dataset, glitches


def test_injected_glitches_rank_above_clean_windows(glitchy_dataset, tmp_path):
    dataset, glitches = glitchy_dataset
    out = tmp_path / "model"
    assert main(["train-ref", "--dataset", str(dataset), "--out", str(out), "--top", "14"]) == 0

    report = orjson.loads((out / "report.json").read_bytes())
    assert report["channels"] == ["H1:SYNTH-STRAIN", "L1:SYNTH-STRAIN"]
    # 64 s less the whitening filter's second at each end, in 0.5 s windows, two channels.
    assert report["windows"] == 2 * 124
    assert report["dataset"] == str(dataset.resolve()) and report["batch"] == 1
    top = report["top"]
    assert len(top) == 14
    assert [c["score"] for c in top] == sorted((c["score"] for c in top), reverse=True)

    def is_glitch(candidate: dict) -> bool:
        detector = candidate["channel"][:2]
        return any(
            g.detector == detector and abs(candidate["gps"] - g.time) < 0.25 for g in glitches
        )

    found = {
        (g.detector, g.time)
        for g in glitches
        for c in top
        if c["channel"].startswith(g.detector) and abs(c["gps"] - g.time) < 0.25
    }
    # 14 glitches, 14 candidates: most candidates are glitches and most glitches are found.
    assert sum(map(is_glitch, top)) >= 11, top
    assert len(found) >= 11
    # The loudest candidates are all glitches, and the flagged windows are mostly glitches.
    assert all(map(is_glitch, top[:5]))
    assert 7 <= report["flagged"] <= 40

    model = joblib.load(out / "model.joblib")
    assert model["params"]["window"] == 0.5
    assert model["model"].n_features_in_ == model["params"]["bands"]


def test_clean_noise_gives_no_confident_candidates(tmp_path):
    source, _ = sources.synthetic(["H1"], duration=32, sample_rate=1024, seed=5)
    folder = archive_batch(tmp_path / "store", plan_chunks(source, 1.0))
    dataset = tmp_path / "clean.h5"
    assert main(["export", str(folder), "--out", str(dataset), "--quiet"]) == 0
    out = tmp_path / "model"
    assert main(["train-ref", "--dataset", str(dataset), "--out", str(out), "--quiet"]) == 0
    clean = orjson.loads((out / "report.json").read_bytes())
    # Without glitches, the best candidate scores lower than any glitch does with them.
    glitchy_out = tmp_path / "glitchy"
    glitchy, _ = sources.synthetic(
        ["H1"], duration=32, sample_rate=1024, seed=5, glitches=[START + 10.2, START + 20.7]
    )
    folder = archive_batch(tmp_path / "store2", plan_chunks(glitchy, 1.0))
    assert main(["export", str(folder), "--out", str(tmp_path / "g.h5"), "--quiet"]) == 0
    assert main(["train-ref", "--dataset", str(tmp_path / "g.h5"), "--out", str(glitchy_out)]) == 0
    with_glitches = orjson.loads((glitchy_out / "report.json").read_bytes())
    assert with_glitches["top"][1]["score"] > clean["top"][0]["score"]
    assert {round(c["gps"] - START) for c in with_glitches["top"][:2]} == {10, 21}


def test_train_ref_command_writes_model_and_report(glitchy_dataset, tmp_path):
    dataset, _ = glitchy_dataset
    out = tmp_path / "cli"
    done = run_cli("train-ref", "--dataset", str(dataset), "--out", str(out), "--top", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("trained on 248 windows of ")
    assert sorted(p.name for p in out.iterdir()) == ["model.joblib", "report.json"]
    assert len(orjson.loads((out / "report.json").read_bytes())["top"]) == 3


def test_one_second_segments_are_scored_and_nothing_usable_is_one_line(tmp_path, capsys):
    source, _ = sources.synthetic(["H1", "L1"], duration=1, sample_rate=2048, start=START, seed=7)
    folder = archive_batch(tmp_path / "store", plan_chunks(source, 0.25))
    dataset = tmp_path / "short.h5"
    assert main(["export", str(folder), "--out", str(dataset), "--quiet"]) == 0
    out = tmp_path / "model"
    assert main(["train-ref", "--dataset", str(dataset), "--out", str(out), "--quiet"]) == 0
    report = orjson.loads((out / "report.json").read_bytes())
    # A quarter-second filter: one 0.5-s window between its edges, per channel.
    assert (report["windows"], report["skipped_segments"]) == (2, [])
    assert all(START + 0.125 <= c["gps"] < START + 0.875 for c in report["top"])

    capsys.readouterr()
    wide = ["train-ref", "--dataset", str(dataset), "--out", str(tmp_path / "w"), "--window", "0.9"]
    assert main(wide) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(
        f"train-ref: error: {dataset}: no segment long enough to score (each of the 2 needs at"
        " least 1.2 s and 64 samples for --window 0.9)"
    )
    assert not (tmp_path / "w").exists()
