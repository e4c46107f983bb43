"""The DAG's client of the Glitchflow API: ``POST /train`` (the freeze signal), ``POST /cleanbuf``.

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
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from glitchflow_dags.config import CONN_ID

log = logging.getLogger(__name__)


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
