"""``POST /batches/{batch}/results`` and ``GET /batches`` at the API: validated, relayed."""

from __future__ import annotations

import httpx
import orjson
import pytest
from fake_upstream import FakeUpstream

RESULTS = {
    "dag_run_id": "manual__2026-12-03T03:00:00+00:00",
    "dataset": "/datasets/000003-20261203T030000Z/dataset.h5",
    "files": 48,
    "report": {
        "windows": 14,
        "flagged": 2,
        "top": [{"channel": "H1:LOSC-STRAIN", "gps": 968654552.25, "score": 0.61}],
    },
}
RECORDED = {
    "resp": "RECORDED",
    "batch": 3,
    "archive": "000003-20261203T030000Z",
    "replaced": False,
    "bucket": None,
    "results": {**RESULTS, "batch": 3, "recorded_at": "2026-12-03T03:01:00Z"},
}


async def test_results_are_validated_and_relayed(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    route = logic.post("/batches/3/results").respond(200, json=RECORDED)
    answer = await api.post("/batches/3/results", json=RESULTS)
    assert (answer.status_code, answer.json()) == (200, RECORDED)
    assert orjson.loads(route.calls.last.content) == RESULTS


async def test_results_of_a_batch_not_archived_relay_the_404(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    refusal = {"resp": "UNKNOWN_BATCH", "batch": 9, "detail": "batch 9 is not archived"}
    logic.post("/batches/9/results").respond(404, json=refusal)
    answer = await api.post("/batches/9/results", json=RESULTS)
    assert (answer.status_code, answer.json()) == (404, refusal)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/batches/3/results", {**RESULTS, "dag_run_id": ""}, "dag_run_id"),
        ("/batches/3/results", {"dataset": "/x.h5"}, "dag_run_id"),
        ("/batches/3/results", {**RESULTS, "extra": 1}, "extra"),
        (
            "/batches/3/results",
            {**RESULTS, "report": {"windows": -1, "flagged": 0}},
            "report.windows",
        ),
        (
            "/batches/3/results",
            {**RESULTS, "report": {"windows": 1, "flagged": 0, "top": [{}] * 21}},
            "report.top",
        ),
        ("/batches/0/results", RESULTS, "batch"),
        ("/batches/x/results", RESULTS, "batch"),
    ],
    ids=["empty-run", "no-run", "unknown-field", "negative", "too-many-top", "batch-0", "batch-x"],
)
async def test_bad_results_are_422_naming_the_field_and_not_sent(
    api: httpx.AsyncClient, logic: FakeUpstream, path: str, body: dict, field: str
) -> None:
    route = logic.post("/batches/3/results").respond(200, json=RECORDED)
    answer = await api.post(path, json=body)
    assert answer.status_code == 422
    assert answer.json()["detail"]["field"] == field
    assert not route.called


async def test_results_need_an_admin_token(
    secured_api: httpx.AsyncClient, logic: FakeUpstream, tokens
) -> None:
    route = logic.post("/batches/3/results").respond(200, json=RECORDED)
    writer = await secured_api.post(
        "/batches/3/results", json=RESULTS, headers={"Authorization": f"Bearer {tokens.writer}"}
    )
    nobody = await secured_api.post("/batches/3/results", json=RESULTS)
    admin = await secured_api.post(
        "/batches/3/results", json=RESULTS, headers={"Authorization": f"Bearer {tokens.admin}"}
    )
    assert (writer.status_code, nobody.status_code, admin.status_code) == (403, 401, 200)
    assert route.call_count == 1


async def test_batches_are_relayed_with_their_results(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    listed = {
        "batches": [{"batch": 3, "archive": RECORDED["archive"], "results": RECORDED["results"]}],
        "total": 3,
        "offset": 0,
        "limit": 1,
        "sealed": [],
    }
    route = logic.get("/batches").respond(200, json=listed)
    answer = await api.get("/batches?limit=1")
    assert (answer.status_code, answer.json()) == (200, listed)
    assert route.calls.last.query == {"limit": "1"}
    assert (await api.get("/batches?limit=5000")).status_code == 422
