"""The DAG's client of the Glitchflow API: ``POST /train`` (the freeze signal), ``POST /cleanbuf``,
``POST /batches/{batch}/results`` (what the run made of the batch).

The address and the admin token come from the Airflow connection `CONN_ID` (HTTP): the token is the
connection's password, sent as a bearer header (and in ``/train``'s body, as the original API
wants); an ``Authorization`` header in the connection's extra works too.

How answers are read:

- ``/train`` ``WAITING``: not enough data yet, the sensor pokes again later.
- the API cannot be reached (refused, timed out): logged as ``API unreachable: ...``, and the
  sensor pokes again later; it fails only at its timeout.
- any other answer (a 5xx such as 502 ``UPSTREAM_ERROR``, an unknown ``resp``): the task fails with
  what the API said; a 4xx (bad token, invalid body) fails without retries, since sending the same
  call again cannot help.
- ``/batches/{batch}/results`` is idempotent (a repeat replaces the record), so an unreachable API
  or a 5xx is tried again within the task (tenacity, backoff with jitter), then by the task's
  own retries.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from glitchflow_dags.config import CONN_ID

log = logging.getLogger(__name__)

TOP_RECORDED = 20
"""Candidates of the trainer's report recorded with the batch (the API takes at most 20)."""
RECORD_ATTEMPTS = 4
"""Tries of ``/batches/{batch}/results`` within one task try."""


class ApiFailed(AirflowException):
    """Raised when the API answers with a server error or an answer the DAG cannot use (retried)."""


class ApiRefused(AirflowFailException):
    """Raised when the API refuses the call (4xx): the same call would be refused again."""


def _token(conn: Any) -> str | None:
    if conn.password:
        return str(conn.password)
    header = conn.extra_dejson.get("Authorization", "")
    scheme, _, token = str(header).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _failure(path: str, status: int, doc: dict[str, Any], text: str) -> AirflowException:
    """The exception for an answer that is not a usable one, with the API's own words in it."""
    said = " ".join(
        f"{key}={doc[key]!r}" for key in ("resp", "upstream", "detail", "body") if key in doc
    )
    message = f"{path} answered {status}: {said or repr(text[:500])}"
    return ApiRefused(message) if 400 <= status < 500 else ApiFailed(message)


def call(
    path: str, body: dict[str, Any], *, conn_id: str = CONN_ID, timeout: float = 30.0
) -> tuple[int, dict[str, Any], str]:
    """POST ``body`` as JSON to ``path``; the status, the JSON object answered (or {}) and the text.

    Raises
    ------
    requests.ConnectionError, requests.Timeout
        The API could not be reached or did not answer in ``timeout`` seconds.
    """
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=conn_id)
    token = _token(hook.get_connection(conn_id))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
        if path == "/train":
            body = {**body, "token": token}
    response = hook.run(
        path,
        json=body,
        headers=headers,
        extra_options={"check_response": False, "timeout": timeout},
    )
    try:
        doc = response.json()
    except ValueError:
        doc = {}
    return response.status_code, doc if isinstance(doc, dict) else {}, response.text


def poke_train(
    user: str, *, conn_id: str = CONN_ID, timeout: float = 30.0
) -> dict[str, Any] | None:
    """One ``/train`` call: the frozen batch (``batch``, ``files``, ``bytes``), or None to wait.

    Raises
    ------
    ApiFailed, ApiRefused
        The API answered something other than ``FROZEN`` or ``WAITING``.
    """
    import requests

    try:
        status, doc, text = call("/train", {"user": user}, conn_id=conn_id, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        log.warning("API unreachable: %s; waiting for the next poke", exc)
        return None
    resp = doc.get("resp")
    if status == 200 and resp == "WAITING":
        log.info(
            "WAITING: the batch holds %s files, %s bytes (it freezes at %s bytes)",
            doc.get("n_f"),
            doc.get("bt_wrt"),
            doc.get("max_size"),
        )
        return None
    if status == 200 and resp == "FROZEN":
        frozen = {"batch": doc.get("batch"), "files": doc.get("n_f"), "bytes": doc.get("bt_wrt")}
        log.info("FROZEN: batch %(batch)s, %(files)s files, %(bytes)s bytes", frozen)
        return frozen
    raise _failure("/train", status, doc, text)


def flush(
    frozen: dict[str, Any], msg: str, *, conn_id: str = CONN_ID, timeout: float = 30.0
) -> dict[str, Any]:
    """``/cleanbuf`` for the frozen batch: its id, archive folder and counts.

    Naming the batch makes the call idempotent: a retry after a lost answer gets ``CLEANED`` again
    (``already_flushed``). Without a batch id (the original API) the current batch is archived.

    Raises
    ------
    ApiFailed, ApiRefused
        The API did not answer ``CLEANED`` with an archive folder.
    requests.ConnectionError, requests.Timeout
        The API could not be reached (the task is retried).
    """
    body: dict[str, Any] = {"msg": msg}
    if frozen.get("batch") is not None:
        body["batch"] = frozen["batch"]
    status, doc, text = call("/cleanbuf", body, conn_id=conn_id, timeout=timeout)
    if status != 200 or doc.get("resp") != "CLEANED":
        raise _failure("/cleanbuf", status, doc, text)
    inner = doc.get("body") if isinstance(doc.get("body"), dict) else {}
    archive = doc.get("archive") or inner.get("archive")
    if not archive:
        raise ApiFailed(f"/cleanbuf answered CLEANED without an archive folder: {text[:500]!r}")
    flushed = {
        **frozen,
        "batch": doc.get("batch", frozen.get("batch")),
        "archive": archive,
        "already_flushed": bool(doc.get("already_flushed") or inner.get("already_flushed")),
    }
    log.info("CLEANED: batch %(batch)s archived in %(archive)s", flushed)
    return flushed


def results_body(run_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The ``/batches/{batch}/results`` body (the API's ``BatchResults``) of a run's summary:
    dataset, counts, model and the report reduced to windows, flagged and top candidates."""
    report = summary.get("report") if isinstance(summary.get("report"), dict) else {}
    body: dict[str, Any] = {
        "dag_run_id": run_id,
        "dataset": summary.get("dataset"),
        "dataset_bytes": summary.get("dataset_bytes"),
        "files": summary.get("files"),
        "bytes": summary.get("bytes"),
        "model": report.get("model") or f"{summary['model_dir']}/model.joblib",
        "report_path": summary.get("report_path"),
    }
    counts = [report.get(key) for key in ("windows", "flagged")]
    if all(isinstance(count, int) and count >= 0 for count in counts):
        skipped = report.get("skipped_segments")
        top = [
            {key: item[key] for key in ("channel", "gps", "score", "peak_frequency") if key in item}
            for item in report.get("top") or []
            if isinstance(item, dict) and "channel" in item and "gps" in item
        ]
        body["report"] = {
            "windows": counts[0],
            "flagged": counts[1],
            "channels": [str(c) for c in report.get("channels") or []][:100],
            "top": top[:TOP_RECORDED],
            "skipped_segments": len(skipped) if isinstance(skipped, list) else None,
            "trained_at": report.get("trained_at"),
        }
    return _without_none(body)


def _without_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _without_none(value) if isinstance(value, dict) else value
        for key, value in doc.items()
        if value is not None
    }


def record_results(
    batch: int, results: dict[str, Any], *, conn_id: str = CONN_ID, timeout: float = 30.0
) -> dict[str, Any]:
    """``POST /batches/{batch}/results``: the record as the buffer stored it (``RECORDED``).

    The call is idempotent, so an unreachable API and 5xx answers are tried again
    (`RECORD_ATTEMPTS` tries, exponential backoff with jitter).

    Raises
    ------
    ApiRefused
        A 4xx: the batch is not archived (404), the body is refused (422), a bad token.
    ApiFailed, requests.ConnectionError, requests.Timeout
        Still failing after the last try (the task's retries go on from there).
    """
    import requests
    import tenacity

    path = f"/batches/{batch}/results"
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(RECORD_ATTEMPTS),
        wait=tenacity.wait_exponential_jitter(initial=1, max=15),
        retry=tenacity.retry_if_exception_type(
            (requests.ConnectionError, requests.Timeout, ApiFailed)
        ),
        before_sleep=lambda state: log.warning(
            "%s failed (%s); trying again", path, state.outcome.exception() if state.outcome else ""
        ),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            status, doc, text = call(path, results, conn_id=conn_id, timeout=timeout)
            if status != 200 or doc.get("resp") != "RECORDED":
                raise _failure(path, status, doc, text)
    log.info("RECORDED: results of batch %s in %s", batch, doc.get("archive"))
    return doc
