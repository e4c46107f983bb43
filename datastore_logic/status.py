"""The status page's data (``GET /status``) and the page itself, apart from the HTTP layer.

The numbers come from one ``GET /status`` of the databuffer, which keeps them up to date as
chunks arrive; this module adds the policy (``MAX_SIZE``, fill, what frees a frozen buffer) and
pages the stored chunks. The page is one HTML document with its style and script inline, so the
API can serve it as it is; a Content-Security-Policy built from their hashes lets it load nothing
from anywhere but its own origin.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from markupsafe import Markup

from datastore_logic.policy import FROZEN, ROTATE, Policy

PAGE_SIZE = 50
"""Stored chunks listed per page."""
FREEZE_HINT = (
    "Writes are refused until this batch is archived: the Airflow DAG does it on its next run "
    "(POST /train, then /cleanbuf); by hand, run client_scripts/cleanbuf.sh (POST /cleanbuf "
    "with an admin token)."
)
QUEUE_FULL_HINT = (
    "Writes are refused because MAX_SEALED sealed batches already wait for training: the Airflow "
    "DAG hands over the oldest on its next run (POST /train, then /cleanbuf), which makes room "
    "and seals this batch; by hand, run client_scripts/cleanbuf.sh (POST /cleanbuf with an admin "
    "token)."
)
NO_PAUSE: dict[str, Any] = {
    "paused": False,
    "current_seconds": 0.0,
    "total_seconds": 0.0,
    "batches": [],
}


def status_document(buffer_doc: dict[str, Any], policy: Policy, page: int) -> dict[str, Any]:
    """The ``/status`` answer from the databuffer's ``/status`` answer and the policy."""
    stat = buffer_doc.get("stat") or {}
    state = buffer_doc.get("state") or {}
    stored_bytes = int(stat.get("buff_size") or 0)
    chunks = buffer_doc.get("chunks") or {}
    total = int(chunks.get("total") or 0)
    frozen = None
    if stat.get("dstatus") == FROZEN:
        frozen = {
            "at": state.get("frozen_at"),
            "for_s": buffer_doc.get("frozen_for_s"),
            "by": state.get("user"),
            "reason": state.get("frozen_reason"),
            "hint": QUEUE_FULL_HINT if state.get("awaiting_seal") else FREEZE_HINT,
        }
    return {
        "resp": "OK",
        "state": stat.get("dstatus"),
        "batch": stat.get("batch"),
        "batch_started": state.get("batch_started"),
        "n_itm": int(stat.get("n_itm") or 0),
        "buff_size": stored_bytes,
        "max_size": policy.max_size,
        "fill": policy.fill_ratio(stored_bytes),
        "frozen": frozen,
        "rate": buffer_doc.get("rate"),
        "sealed": sealed_queue(buffer_doc.get("sealed") or [], policy),
        "ingest_pause": buffer_doc.get("ingest_pause") or NO_PAUSE,
        "archive_store": buffer_doc.get("archive_store"),
        "channels": buffer_doc.get("channels") or [],
        "archives": buffer_doc.get("archives") or {"total": 0, "items": []},
        "chunks": {
            "page": page,
            "pages": pages_for(total),
            "page_size": PAGE_SIZE,
            "total": total,
            "items": chunks.get("items") or [],
        },
        "generated_at": buffer_doc.get("now"),
    }


def sealed_queue(items: list[dict[str, Any]], policy: Policy) -> dict[str, Any]:
    """The sealed batches waiting for training (oldest first) against ``MAX_SEALED``."""
    rotate = policy.freeze_mode == ROTATE
    waiting = [item.get("waiting_s") for item in items if item.get("waiting_s") is not None]
    return {
        "mode": policy.freeze_mode,
        "max_sealed": policy.max_sealed if rotate else None,
        "count": len(items),
        "full": rotate and len(items) >= policy.max_sealed,
        "oldest_waiting_s": max(waiting) if waiting else None,
        "items": items,
    }


def pages_for(total: int) -> int:
    """Pages of `PAGE_SIZE` chunks that list ``total`` chunks; an empty list has one page."""
    return max(1, math.ceil(total / PAGE_SIZE))


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass(frozen=True)
class PageAssets:
    """The page's inline style and script, and the policy that allows exactly them."""

    style: Markup
    script: Markup
    csp: str

    @classmethod
    def load(cls) -> PageAssets:
        """Read the style and script shipped in the package."""
        folder = resources.files("datastore_logic") / "static"
        style = (folder / "status.css").read_text(encoding="utf-8")
        script = (folder / "status.js").read_text(encoding="utf-8")
        csp = "; ".join(
            (
                "default-src 'none'",
                f"script-src {_csp_hash(script)}",
                f"style-src {_csp_hash(style)}",
                "connect-src 'self'",
                "img-src 'self'",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors 'none'",
            )
        )
        # Our own files, shipped in the package: no input of anyone's reaches them.
        return cls(Markup(style), Markup(script), csp)  # noqa: S704
