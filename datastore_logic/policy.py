"""The freeze and flush policy, kept apart from HTTP so it reads (and tests) on its own.

The buffer applies the policy atomically: every write carries the freeze threshold and the freeze
mode, so the write that brings ``buff_size`` to ``MAX_SIZE`` closes the batch under the buffer's
lock, and no other write can slip in between a size check here and a freeze there. ``hold``
freezes the full batch in place (writes refused until it is flushed, the original's behaviour);
``rotate`` seals it into a queue of at most ``max_sealed`` batches and ingest goes on in the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FROZEN = "FROZEN"
WAITING = "WAITING"
OPERATIONAL = "OPERATIONAL"
HOLD = "hold"
ROTATE = "rotate"


@dataclass(frozen=True, slots=True)
class Policy:
    """When a batch is full (``max_size`` bytes, or optionally ``max_batch_age`` seconds old)
    and what then: ``freeze_mode`` ``hold``, or ``rotate`` with at most ``max_sealed`` sealed
    batches waiting."""

    max_size: int
    max_batch_age: float | None = None
    freeze_mode: str = ROTATE
    max_sealed: int = 4

    def _mode(self) -> dict[str, str]:
        if self.freeze_mode == HOLD:
            return {"mode": HOLD}
        return {"mode": ROTATE, "max_sealed": str(self.max_sealed)}

    def write_params(self) -> dict[str, str]:
        """Query parameters of ``/sendF`` that make the buffer close the batch on the filling
        write."""
        params = {"freeze_at": str(self.max_size), **self._mode()}
        if self.max_batch_age is not None:
            params["max_age"] = _seconds(self.max_batch_age)
        return params

    def freeze_request(self, user: str) -> dict[str, Any]:
        """Body of ``/upddsc``: freeze, but only if the batch is full (or old enough)."""
        body: dict[str, Any] = {
            "dstatus": FROZEN,
            "user": user,
            "if_size_at_least": self.max_size,
            "mode": self.freeze_mode,
        }
        if self.freeze_mode == ROTATE:
            body["max_sealed"] = self.max_sealed
        if self.max_batch_age is not None:
            body["max_age"] = self.max_batch_age
        return body

    def freeze_answer(self, buffer_answer: dict[str, Any]) -> dict[str, Any] | None:
        """The ``/freezeds`` answer from the buffer's ``/upddsc`` answer; None if it is no answer.

        WAITING is only ever the buffer saying "not full yet"; anything else is not a freeze result.
        """
        resp = buffer_answer.get("resp")
        stored_files = buffer_answer.get("n_itm")
        stored_bytes = buffer_answer.get("buff_size")
        if not isinstance(stored_files, int) or not isinstance(stored_bytes, int):
            return None
        if resp == FROZEN:
            answer = {
                "resp": FROZEN,
                "n_f": stored_files,
                "bt_wrt": stored_bytes,
                "batch": buffer_answer.get("batch"),
            }
            # Rotate mode: the sealed batch's archive folder, reserved when it was sealed.
            for key in ("archive", "sealed"):
                if key in buffer_answer:
                    answer[key] = buffer_answer[key]
            return answer
        if resp == WAITING:
            return {
                "resp": WAITING,
                "n_f": stored_files,
                "bt_wrt": stored_bytes,
                "max_size": self.max_size,
                "batch": buffer_answer.get("batch"),
            }
        return None

    def fill_ratio(self, stored_bytes: int) -> float:
        """How full the batch is, 0 to 1 (capped: the filling write may overshoot)."""
        return min(stored_bytes / self.max_size, 1.0) if self.max_size else 1.0


def flush_request(msg: str, batch: int | None, force: bool = False) -> dict[str, Any]:
    """Body of ``/cleanall``: the named batch only, or (no batch) the current one even partial.

    A flush without a batch id does what the original did: it archives what is there, frozen or
    not, so it is always forced. A named batch is flushed only if it is sealed (idempotent).
    """
    return {"msg": msg, "batch": batch, "force": force or batch is None}


def flush_answer(buffer_answer: dict[str, Any]) -> dict[str, Any] | None:
    """The ``/flushbuf`` answer from the buffer's ``/cleanall`` answer; None unless CLEANED."""
    if buffer_answer.get("resp") != "CLEANED":
        return None
    return {
        "resp": "CLEANED",
        "batch": buffer_answer.get("batch"),
        "archive": buffer_answer.get("archive"),
        "body": buffer_answer,
    }


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
