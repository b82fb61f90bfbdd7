"""POST /api/v1/ingest: a batch of runs and steps from an agent that runs elsewhere.

Each item is validated on its own; valid ones are stored, rejected ones are listed with their
index, id and reason (207). Limits (documented in the README): the body (413), the number of
items (413), the size of each item (that item is rejected).
"""

from typing import Any, Literal

from django.conf import settings
from ninja import Router, Schema, Status
from pydantic import Field

from runs.errors import InvalidInput, TooLarge
from runs.services.ingest import ingest_batch

from .auth import api_auth, require_scope
from .batch_body import read_batch
from .batch_fast import valid_batch
from .items import EventItem, RunItem, validate_items
from .schemas import ErrorOut
from .throttle import throttle

router = Router(auth=api_auth, tags=["ingest"])


class BatchIn(Schema):
    """The documented shape of the body. The operation reads the body itself (`batch_body`):
    items are checked one by one, so one bad item is rejected alone."""

    runs: list[Any] = Field(
        default_factory=list, json_schema_extra={"items": RunItem.model_json_schema()}
    )
    events: list[Any] = Field(
        default_factory=list, json_schema_extra={"items": EventItem.model_json_schema()}
    )


class RejectedItem(Schema):
    type: Literal["run", "event"]
    index: int
    id: str
    reason: str


class AcceptedCounts(Schema):
    runs: int
    events: int


class BatchOut(Schema):
    accepted: AcceptedCounts
    rejected: list[RejectedItem]


ERRORS = {code: ErrorOut for code in (400, 401, 403, 413, 422, 429, 503)}
_BODY = {
    "required": True,
    "content": {"application/json": {"schema": BatchIn.model_json_schema()}},
}


@router.post(
    "/ingest",
    response={200: BatchOut, 207: BatchOut, **ERRORS},
    openapi_extra={"requestBody": _BODY},
)
def ingest(request):
    """Store a batch of external runs and steps. 200 when every item was stored; 207 listing
    each rejected item (index, id, reason) while the valid ones are stored. Idempotent by id:
    re-sending an item changes only the fields it carries. The answer means committed."""
    who = require_scope(request, "ingest")
    throttle(request, who)
    max_items = settings.AGENTOPS_INGEST_MAX_ITEMS
    max_bytes = settings.AGENTOPS_INGEST_MAX_ITEM_BYTES
    rejected: list[dict] = []
    # Most batches are wholly valid: read in one pass; any other is read item by item.
    valid = valid_batch(request.body, max_items=max_items, max_bytes=max_bytes)
    if valid is None:
        valid = _checked_items(request.body, max_items, max_bytes, rejected)
    accepted = {"runs": 0, "events": 0}
    if valid["runs"] or valid["events"]:
        accepted, refused = ingest_batch(
            runs=valid["runs"], events=valid["events"], api_key=who.key
        )
        rejected.extend(refused)
    rejected.sort(key=lambda r: (r["type"] != "run", r["index"]))
    return Status(207 if rejected else 200, {"accepted": accepted, "rejected": rejected})


def _checked_items(body: bytes, max_items: int, max_bytes: int, rejected: list) -> dict:
    """The batch's valid rows, each item checked on its own; each invalid one is appended to
    `rejected`. Raises for a body that is not a batch, or one with no items or too many."""
    batch = read_batch(body)
    count = len(batch["runs"]) + len(batch["events"])
    if count > max_items:
        raise TooLarge(
            f"a batch holds at most {max_items} items; this one has {count}",
            details={"max_items": max_items, "items": count},
        )
    if not count:
        raise InvalidInput("the batch has no runs and no events")
    valid = {}
    for kind, name, model in (("run", "runs", RunItem), ("event", "events", EventItem)):
        items = [item for item, _ in batch[name]]
        sizes = [size for _, size in batch[name]]
        valid[name] = validate_items(kind, model, items, max_bytes, rejected, sizes)
    return valid
