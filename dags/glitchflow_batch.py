"""One run per batch: wait for the freeze, flush at once, export the batch, train on it, record.

``wait_for_frozen`` pokes the API's ``POST /train`` in reschedule mode (no worker slot held while
waiting) until it answers ``FROZEN``; ``flush`` sends ``/cleanbuf`` for that batch right away, so
ingestion resumes while the batch is exported (``glitchflow export``) and trained on (``glitchflow
train-ref`` or the operator's trainer); ``record`` posts the batch's results (dataset, counts,
model, the report's windows, flagged windows and top candidates) to the API's
``POST /batches/{batch}/results``, which keeps them beside the batch's manifest (idempotent: a
retry replaces them), and keeps the whole summary in XCom. ``GLITCHFLOW_RUNNER`` chooses where
export and training run: ``local`` (subprocesses of the project's CLI in the worker) or
``kubernetes`` (pods). The API's address and
token come from the Airflow connection ``glitchflow_api``. Settings: docs/AIRFLOW.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import PokeReturnValue, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from glitchflow_dags.config import CONN_ID, DagSettings, run_setting

SETTINGS = DagSettings.from_env()


@task.sensor(
    mode="reschedule",
    poke_interval=SETTINGS.poke_interval,
    timeout=SETTINGS.sensor_timeout,
)
def wait_for_frozen() -> PokeReturnValue:
    """Poke ``/train`` until the API answers FROZEN; the frozen batch's id and counts to XCom."""
    from glitchflow_dags import api

    user = run_setting("GLITCHFLOW_API_USER", "airflow") or "airflow"
    frozen = api.poke_train(user, conn_id=CONN_ID, timeout=SETTINGS.api_timeout)
    return PokeReturnValue(is_done=frozen is not None, xcom_value=frozen)


@task
def flush(frozen: dict[str, Any]) -> dict[str, Any]:
    """``/cleanbuf`` for the frozen batch: its id and archive folder (CLEANED again on a retry)."""
    from glitchflow_dags import api

    run_id = get_current_context()["run_id"]
    runner = run_setting("GLITCHFLOW_RUNNER", SETTINGS.runner)
    if runner != SETTINGS.runner:
        # The runner shapes the graph, so it is read when the file is parsed: a Variable set
        # only in the metadata database is seen here too late.
        raise AirflowFailException(
            f"GLITCHFLOW_RUNNER is {runner!r} at run time but the DAG was parsed with "
            f"{SETTINGS.runner!r}: set it in the environment of the DAG processor and workers"
        )
    return api.flush(
        frozen,
        f"airflow {run_id}: batch {frozen.get('batch')} taken for training",
        conn_id=CONN_ID,
        timeout=SETTINGS.api_timeout,
    )


@task
def export(flushed: dict[str, Any]) -> dict[str, Any]:
    """``glitchflow export`` of the flushed batch into its dataset file (local runner)."""
    from glitchflow_dags import local

    return local.export(flushed)


@task
def train(exported: dict[str, Any]) -> dict[str, Any]:
    """The reference trainer on the dataset; its report (local runner)."""
    from glitchflow_dags import local

    return local.train(exported)


@task
def record(
    flushed: dict[str, Any], paths: dict[str, Any], trained: dict[str, Any] | None
) -> dict[str, Any]:
    """Record the batch's results through the API; the whole summary (id, archive, counts,
    dataset, model, the trainer's report) in one XCom."""
    import logging

    from glitchflow_dags import api

    # Local runner: ``trained`` is train's answer (report path and report); Kubernetes: it is the
    # report itself, from the train pod's XCom sidecar, and the paths are the pods' paths.
    summary = {
        "batch": flushed.get("batch"),
        "archive": flushed["archive"],
        "already_flushed": flushed.get("already_flushed", False),
        "files": flushed.get("files"),
        "bytes": flushed.get("bytes"),
        **paths,
        "report_path": (trained or {}).get("report_path", f"{paths['model_dir']}/report.json"),
        "report": (trained or {}).get("report", trained),
    }
    log = logging.getLogger(__name__)
    log.info("batch %s trained: %s", summary["batch"], summary)
    if summary["batch"] is None:
        log.warning("the API named no batch id: results kept in XCom only")
        return summary
    run_id = get_current_context()["run_id"]
    recorded = api.record_results(
        summary["batch"],
        api.results_body(run_id, summary),
        conn_id=CONN_ID,
        timeout=SETTINGS.api_timeout,
    )
    return {**summary, "recorded_at": recorded.get("results", {}).get("recorded_at")}


@dag(
    dag_id="glitchflow_batch",
    schedule="@continuous",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": SETTINGS.retries,
        "retry_delay": timedelta(seconds=SETTINGS.retry_delay),
    },
    tags=["glitchflow"],
    doc_md=__doc__,
)
def glitchflow_batch() -> None:
    flushed = flush(wait_for_frozen())
    if SETTINGS.runner == "kubernetes":
        from glitchflow_dags import pods

        batch = "{{ ti.xcom_pull(task_ids='flush')['batch'] }}"
        archive = "{{ ti.xcom_pull(task_ids='flush')['archive'] }}"
        export_pod = pods.export_operator(SETTINGS, batch, archive)
        train_pod = pods.train_operator(SETTINGS, archive)
        flushed >> export_pod >> train_pod
        paths = pods.pod_paths(archive)
        record(flushed, paths, train_pod.output)
    else:
        exported = export(flushed)
        record(flushed, exported, train(exported))


glitchflow_batch()
