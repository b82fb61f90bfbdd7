"""POST /api/v1/runs/{id}/approval: a person's answer to what a run awaits (DESIGN §9).

`extend` (with `caps`) or `stop` for a held cap; `approve` or `deny` for a tool that requires
approval. Needs `runs:write` (an API key, or the session of an engineer or admin). 403 above
the ceiling an admin set (`max_extension`), 409 when the run awaits nothing, 422 for a decision
or values that do not fit the question."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from ninja import Router
from pydantic import BaseModel, ConfigDict, Field

from runs.engine.caps import SPEND
from runs.selectors.runs import run_get
from runs.services.approvals import approval_decide

from .auth import api_auth, require_scope
from .schemas import ErrorOut

router = Router(auth=api_auth, tags=["runs"])


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["extend", "stop", "approve", "deny"]
    caps: dict[str, Any] | None = Field(
        None, description=f'With extend: new values of the caps, like {{"{SPEND.name}": 1.0}}'
    )


class ApprovalOut(BaseModel):
    run: UUID
    kind: str = Field(description="cap or tool")
    subject: str = Field(description="the cap's or the tool's name")
    decision: str
    caps: dict[str, Any]
    by: str
    decided_at: datetime


@router.post(
    "/runs/{ref}/approval",
    response={200: ApprovalOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut,
              422: ErrorOut},
)  # fmt: skip
def approval(request, ref: str, body: ApprovalIn):
    """Answer the call the run holds: the run goes on (extend, approve), ends budget_exceeded
    (stop), or its agent gets tool_denied (deny)."""
    who = require_scope(request, "runs:write")
    answered = approval_decide(
        run=run_get(ref=ref),
        decision=body.decision,
        caps=body.caps,
        decided_by=who.user,
        actor=who.name,
    )
    return {
        "run": answered.run_id,
        "kind": answered.kind,
        "subject": answered.subject,
        "decision": answered.decision,
        "caps": answered.caps,
        "by": answered.actor,
        "decided_at": answered.decided_at,
    }
