"""Bad input to ``export`` and ``train-ref``: one line naming the problem, status 2, no output.

Each case runs the command line as a subprocess against a real archived batch it damages.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from dataset.conftest import archive_batch, run_cli

from glitchflow_dataset.cli import main
from gwclient.chunks import chunk_array

START = 1_400_000_000.0


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """An archive root with batch 1: 4 chunks of H1."""
    import numpy as np

    root = tmp_path_factory.mktemp("pristine")
    h = np.random.default_rng(0).normal(size=1024)
    archive_batch(root / "store", chunk_array(h, START, 1 / 256, "H1:TEST-STRAIN", 1.0))
    return root / "store" / "archive"


def _batch(root: Path) -> Path:
    return next(p for p in root.iterdir() if p.name.startswith("000001-"))


def _manifest(root: Path) -> dict:
    return orjson.loads((_batch(root) / "manifest.json").read_bytes())


def _first_chunk(root: Path) -> Path:
    return _batch(root) / _manifest(root)["files"][0]["name"]


def _no_manifest(root: Path) -> None:
    (_batch(root) / "manifest.json").unlink()


def _staging_only(root: Path) -> None:
    batch = _batch(root)
    (batch / "manifest.json").unlink()
    batch.rename(root / f".{batch.name}.partial")


def _truncate(root: Path) -> None:
    path = _first_chunk(root)
    path.write_bytes(path.read_bytes()[:-10])


def _flip(root: Path) -> None:
    path = _first_chunk(root)
    data = bytearray(path.read_bytes())
    data[20] = ord("7") if data[20] != ord("7") else ord("3")
    path.write_bytes(bytes(data))


def _remove(root: Path) -> None:
    _first_chunk(root).unlink()


def _extra(root: Path) -> None:
    name = "H1%3ATEST-STRAIN__01500000000000000000__4__0.00390625.json"
    (_batch(root) / name).write_bytes(b'{"h":[1,2,3,4],"t":[1500000000.0,0.00390625]}')


def _bad_manifest_json(root: Path) -> None:
    (_batch(root) / "manifest.json").write_bytes(b'{"batch": 1, "files": [')


def _manifest_path_escape(root: Path) -> None:
    doc = _manifest(root)
    doc["files"][0]["name"] = "../../etc/passwd"
    (_batch(root) / "manifest.json").write_bytes(orjson.dumps(doc))


def _not_a_chunk(root: Path) -> None:
    # Consistent with its manifest, but not a chunk: size and sha256 rewritten to match.
    import hashlib

    path = _first_chunk(root)
    path.write_bytes(b'{"h": [], "t": [1, 1]}')
    doc = _manifest(root)
    data = path.read_bytes()
    doc["files"][0].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (_batch(root) / "manifest.json").write_bytes(orjson.dumps(doc))


def _channel_count_differs(root: Path) -> None:
    doc = _manifest(root)
    doc["channels"]["H1:TEST-STRAIN"]["n_itm"] = 5
    (_batch(root) / "manifest.json").write_bytes(orjson.dumps(doc))


def _nothing(root: Path) -> None:
    pass


CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("unknown id", _nothing, "42", "no archived batch 42 in "),
    ("unknown name", _nothing, "000042-20260101T000000Z", "no archived batch '000042-"),
    ("no manifest", _no_manifest, "1", "is half-written: no manifest.json in "),
    ("no manifest, latest", _no_manifest, "latest", "no archived batch with a manifest in "),
    ("staging folder only", _staging_only, "1", "batch 1 is half-written (000001-"),
    ("size differs", _truncate, "1", "bytes, the manifest says "),
    ("sha256 differs", _flip, "1", "does not match its manifest sha256"),
    ("file missing", _remove, "1", "is in the manifest but missing"),
    (
        "file unlisted",
        _extra,
        "1",
        "H1%3ATEST-STRAIN__01500000000000000000__4__0.00390625.json is not in the manifest",
    ),
    ("manifest not json", _bad_manifest_json, "1", "manifest.json is not valid JSON"),
    ("manifest escapes", _manifest_path_escape, "1", "lists '../../etc/passwd', not a chunk"),
    (
        "channel count differs",
        _channel_count_differs,
        "1",
        "the manifest says channel H1:TEST-STRAIN has 5 chunks, the files hold 4",
    ),
    ("not a chunk", _not_a_chunk, "1", "is not a valid chunk (h: must hold at least one sample)"),
]


@pytest.mark.parametrize(
    ("damage", "batch", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_batch_is_one_line_status_2_and_no_output(tmp_path, pristine, damage, batch, message):
    root = tmp_path / "archive"
    shutil.copytree(pristine, root)
    damage(root)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    done = run_cli("export", batch, "--archive-root", str(root), "--out", str(out_dir / "b.h5"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("glitchflow-dataset export: error: ")
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


def test_batch_folder_path_that_is_missing_is_named(tmp_path):
    done = run_cli(
        "export", str(tmp_path / "000001-20260101T000000Z"), "--out", str(tmp_path / "o.h5")
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert "no batch folder " in done.stderr and not (tmp_path / "o.h5").exists()


def test_missing_archive_root_is_named(tmp_path):
    done = run_cli(
        "export",
        "latest",
        "--archive-root",
        str(tmp_path / "nowhere"),
        "--out",
        str(tmp_path / "o.h5"),
    )
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert f"no archive folder {tmp_path / 'nowhere'}" in done.stderr


def test_a_failed_export_leaves_an_existing_output_untouched(tmp_path, pristine):
    root = tmp_path / "archive"
    shutil.copytree(pristine, root)
    _flip(root)
    out = tmp_path / "b.h5"
    out.write_bytes(b"previous")
    done = run_cli("export", "1", "--archive-root", str(root), "--out", str(out))
    assert done.returncode == 2 and out.read_bytes() == b"previous"


def test_good_batch_by_path_exits_zero_with_one_line(tmp_path, pristine):
    out = tmp_path / "b.h5"
    done = run_cli("export", str(_batch(pristine)), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exported batch 1 (4 chunks, ") and done.stdout.count("\n") == 1
    assert out.stat().st_size > 8 * 1024


def test_export_makes_the_folder_of_its_output(tmp_path, pristine):
    # The DAG's export pod writes to /datasets/<archive>/dataset.h5 on a fresh volume.
    out = tmp_path / "datasets" / _batch(pristine).name / "dataset.h5"
    done = run_cli("export", str(_batch(pristine)), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 8 * 1024
    assert [p.name for p in out.parent.iterdir()] == ["dataset.h5"]


@pytest.mark.parametrize("spec", ["1", "latest", "name", "path"])
def test_batch_by_id_latest_name_or_path_is_the_same_batch(tmp_path, pristine, spec, capsys):
    batch = _batch(pristine)
    arg = {"name": batch.name, "path": str(batch)}.get(spec, spec)
    out = tmp_path / "b.h5"
    assert main(["export", arg, "--archive-root", str(pristine), "--out", str(out)]) == 0
    assert "exported batch 1 (4 chunks, " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no dataset "), (b"not hdf5", "is not an HDF5 dataset")],
)
def test_train_ref_on_a_bad_dataset_is_one_line_status_2(tmp_path, content, message):
    dataset = tmp_path / "d.h5"
    if content is not None:
        dataset.write_bytes(content)
    done = run_cli("train-ref", "--dataset", str(dataset), "--out", str(tmp_path / "model"))
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert message in done.stderr
    assert not (tmp_path / "model" / "report.json").exists()


def test_usage_error_is_status_2(tmp_path):
    done = run_cli("export", "1")
    assert done.returncode == 2 and "--out" in done.stderr


def test_main_returns_the_status_of_a_usage_error(capsys):
    assert main(["export", "1"]) == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_glitchflow_dataset_console_script_is_registered():
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="glitchflow-dataset")
    assert script.value == "glitchflow_dataset.cli:console"
