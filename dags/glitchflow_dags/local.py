"""The local runner: export and train as subprocesses of the project's CLI, in the worker.

Settings, read when the task runs (Airflow Variable, else environment):

- ``GLITCHFLOW_CLI``: the command line of the project's CLI (default: ``glitchflow`` on ``PATH``);
- ``GLITCHFLOW_ARCHIVE_ROOT``: the buffer's archive folder (``DATA_DIR/archive``);
- ``GLITCHFLOW_OUTPUT_DIR``: where datasets and models go (default: ``datasets`` beside the
  archive root); each batch gets ``OUTPUT_DIR/<archive folder>/dataset.h5`` and ``.../model/``.

Both steps write the same files for the same batch, so a retried task redoes its step in place.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from glitchflow_dags.config import run_setting

log = logging.getLogger(__name__)

BAD_INPUT = 2
"""The CLI's exit status for input it refuses (unknown batch, broken archive): not retried."""


def cli() -> list[str]:
    """The CLI's command line from ``GLITCHFLOW_CLI``, its program resolved on ``PATH``."""
    words = shlex.split(run_setting("GLITCHFLOW_CLI", "glitchflow") or "")
    program = shutil.which(words[0]) if words else None
    if program is None:
        raise AirflowFailException(
            f"GLITCHFLOW_CLI: {words[0] if words else '(empty)'!r} not found; "
            "set it to the project's glitchflow command"
        )
    return [program, *words[1:]]


def batch_folders(archive: str) -> dict[str, str]:
    """Archive root, dataset file and model folder of the batch archived in folder ``archive``."""
    if Path(archive).name != archive or archive in ("", ".", ".."):
        raise AirflowFailException(f"archive folder {archive!r} is not a plain folder name")
    root = run_setting("GLITCHFLOW_ARCHIVE_ROOT")
    if root is None:
        raise AirflowFailException("GLITCHFLOW_ARCHIVE_ROOT is not set (the buffer's archive)")
    output = Path(run_setting("GLITCHFLOW_OUTPUT_DIR") or Path(root).parent / "datasets")
    return {
        "archive_root": str(root),
        "dataset": str(output / archive / "dataset.h5"),
        "model_dir": str(output / archive / "model"),
    }


def batch_argument(flushed: dict[str, Any], archive_root: str) -> str:
    """The batch id for ``glitchflow export``, or its archive folder when the API gave no id."""
    if flushed.get("batch") is not None:
        return str(flushed["batch"])
    return str(Path(archive_root) / flushed["archive"])


def run(args: list[str]) -> None:
    """Run the CLI with ``args``; its output goes to the task log.

    Raises
    ------
    AirflowFailException
        Exit status `BAD_INPUT`: the CLI refused the input, a retry would fail the same way.
    AirflowException
        Any other failure (retried).
    """
    argv = [*cli(), *args]
    log.info("running %s", shlex.join(argv))
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        log.info("| %s", line)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        error = AirflowFailException if done.returncode == BAD_INPUT else AirflowException
        raise error(f"{args[0]} exited with status {done.returncode}: {last}")


def export(flushed: dict[str, Any]) -> dict[str, Any]:
    """``glitchflow export BATCH --out DATASET --archive-root ROOT`` for the flushed batch."""
    folders = batch_folders(flushed["archive"])
    Path(folders["dataset"]).parent.mkdir(parents=True, exist_ok=True)
    run(
        [
            "export",
            batch_argument(flushed, folders["archive_root"]),
            "--out",
            folders["dataset"],
            "--archive-root",
            folders["archive_root"],
        ]
    )
    dataset = Path(folders["dataset"])
    if not dataset.is_file():
        raise AirflowException(f"export finished but wrote no {dataset}")
    return {**folders, "dataset_bytes": dataset.stat().st_size}


def train(exported: dict[str, Any]) -> dict[str, Any]:
    """``glitchflow train-ref --dataset DATASET --out MODEL_DIR``; the report it wrote."""
    run(["train-ref", "--dataset", exported["dataset"], "--out", exported["model_dir"]])
    report = Path(exported["model_dir"]) / "report.json"
    try:
        return {"report_path": str(report), "report": json.loads(report.read_text())}
    except (OSError, ValueError) as exc:
        raise AirflowException(f"train-ref finished but its report is unreadable: {exc}") from exc
