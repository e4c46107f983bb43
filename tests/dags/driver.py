"""Run by the Airflow venv's python (not by pytest): load the DAG, build pods, run it.

``driver.py dagbag [ENV_JSON ...]``: the DagBag's import errors, DAGs and tasks, as JSON; once
per ``ENV_JSON`` (environment variables set for that parse), or once as it is.
``driver.py pods BATCH ARCHIVE``: the export and train pods' manifests, built offline, as JSON.
``driver.py run [TASK_ID ...]``: ``dag.test()`` of the DAG (or only those tasks); the last line of
the output is ``RESULT {json}`` with the run's state and id, each task's state and tries, and the
XComs.

The test sets ``AIRFLOW_HOME``, ``AIRFLOW__CORE__DAGS_FOLDER`` and the ``GLITCHFLOW_*`` settings.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

WATCHED = {
    "gwpy",
    "h5py",
    "kubernetes",
    "glitchflow_dags.api",
    "glitchflow_dags.local",
    "glitchflow_dags.pods",
    "airflow.providers.http.hooks.http",
    "airflow.providers.cncf.kubernetes.operators.pod",
}
"""Modules the DAG file must not import when it is parsed with the local runner."""


def _dagbag() -> Any:
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    return BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")


def dagbag(*variants: str) -> list[dict[str, Any]]:
    results = []
    for variant in variants or ("{}",):
        saved = dict(os.environ)
        os.environ.update(json.loads(variant))
        try:
            results.append(_describe(_dagbag()))
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return results


def _describe(bag: Any) -> dict[str, Any]:
    return {
        "import_errors": bag.import_errors,
        "dags": {
            dag_id: {
                "tasks": [t.task_id for t in dag.tasks],
                "max_active_runs": dag.max_active_runs,
                "catchup": dag.catchup,
                "schedule": str(dag.schedule),
                "sensor": {
                    "mode": dag.task_dict["wait_for_frozen"].mode,
                    "poke_interval": dag.task_dict["wait_for_frozen"].poke_interval,
                },
                "retries": {t.task_id: t.retries for t in dag.tasks},
            }
            for dag_id, dag in bag.dags.items()
        },
        "modules": sorted(m for m in WATCHED if m in sys.modules),
    }


def pods(batch: str, archive: str) -> dict[str, Any]:
    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    sys.path.insert(0, folder)
    from glitchflow_dags import pods as glitchflow_pods
    from glitchflow_dags.config import DagSettings

    settings = DagSettings.from_env()
    export = glitchflow_pods.export_operator(settings, batch, archive)
    train = glitchflow_pods.train_operator(settings, archive)
    return {"export": glitchflow_pods.manifest(export), "train": glitchflow_pods.manifest(train)}


def run(task_ids: list[str]) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = _dagbag().dags["glitchflow_batch"]
    if task_ids:
        dag = dag.partial_subset(task_ids, include_downstream=False, include_upstream=False)
    dr = dag.test()
    with create_session() as session:
        tis = dr.get_task_instances(session=session)
        rows = session.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dag.dag_id)).all()
        xcom = {
            f"{row.task_id}.{row.key}": XComModel.deserialize_value(row)
            for row in rows
            if row.key == "return_value"
        }
        return {
            "state": str(dr.state),
            "run_id": dr.run_id,
            "tasks": {ti.task_id: {"state": str(ti.state), "try": ti.try_number} for ti in tis},
            "xcom": xcom,
        }


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "dagbag":
        result = dagbag(*args)
    elif command == "pods":
        result = pods(*args)
    elif command == "run":
        result = run(args)
    else:
        raise SystemExit(f"unknown command {command!r}")
    sys.stdout.flush()
    print("RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
