"""/api/v1/caps: read the cap policy, replace or remove a scope's policy, read the audit trail,
and backtest proposed caps against recent finished runs (DESIGN §9).

Scopes: reading the policy needs `runs:read` (every run already shows the caps it was given);
everything else needs `admin`. Bad values answer 422 `invalid_caps` with one message per field in
`details.fields`, exactly as the caps page shows them.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field

from runs import caps, selectors
from runs.caps_backtest import DEFAULT_BACKTEST_RUNS, MAX_BACKTEST_RUNS, caps_backtest

from .auth import api_auth, require_scope
from .schemas import ErrorOut

router = Router(auth=api_auth, tags=["caps"])
ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
_NUMBER = "a whole number, or null"


class PolicyIn(BaseModel):
    """A scope's whole policy: fields left out or null are empty (an agent inherits them from
    the global policy; in the global policy, max_model_calls and max_tokens are then off)."""

    # Values are typed loosely and checked by runs.caps, so the API and the page give the same
    # message per field; unknown keys are kept and answered 422 per field too. (A plain pydantic
    # model: ninja's Schema reads attributes and would drop extra keys or accept a list.)
    model_config = ConfigDict(extra="allow")

    max_tool_calls: Any = Field(None, description=caps.BOUNDS["max_tool_calls"])
    max_cost_usd: Any = Field(None, description=caps.BOUNDS["max_cost_usd"] + " (string or number)")
    max_wall_seconds: Any = Field(None, description=caps.BOUNDS["max_wall_seconds"])
    tool_timeout_seconds: Any = Field(None, description=caps.BOUNDS["tool_timeout_seconds"])
    tool_timeouts: Any = Field(None, description="{tool name: seconds}; " + _NUMBER)
    max_model_calls: Any = Field(None, description=caps.BOUNDS["max_model_calls"])
    max_tokens: Any = Field(None, description=caps.BOUNDS["max_tokens"])


class PolicyOut(Schema):
    scope: str
    max_tool_calls: int | None
    max_cost_usd: str | None = Field(description="USD as an exact decimal string")
    max_wall_seconds: int | None
    tool_timeout_seconds: int | float | None
    tool_timeouts: dict[str, int | float]
    max_model_calls: int | None
    max_tokens: int | None
    updated_at: datetime


class CapsOut(Schema):
    """The caps a run gets (as frozen on a run)."""

    max_tool_calls: int
    max_cost_usd: str
    max_wall_seconds: int | float
    tool_timeout_seconds: int | float
    tool_timeouts: dict[str, int | float]
    max_model_calls: int | None
    max_tokens: int | None


class CapsStateOut(Schema):
    global_policy: PolicyOut = Field(alias="global")
    overrides: list[PolicyOut]
    effective: dict[str, CapsOut | None] = Field(
        description="per registered agent, the caps its runs get when they ask for none "
        "(null: its override is invalid and its runs cannot start)"
    )
    bounds: dict[str, str]


class PolicySaved(Schema):
    scope: str
    changed: bool = Field(description="false when the policy already had these values")
    policy: PolicyOut | None = Field(description="null: the agent has no override (any more)")


class ChangeOut(Schema):
    id: int
    scope: str
    changed_at: datetime
    actor: str = Field(description="user:NAME or key:NAME")
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ChangePage(Schema):
    items: list[ChangeOut]


class BacktestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caps: dict[str, Any] = Field(
        default_factory=dict,
        description="Proposed values laid over the policy in force; fields left out keep "
        "their values. With `agent`, over that agent's caps; without, over the global policy.",
    )
    agent: str | None = Field(None, min_length=1, max_length=100)
    last_n: int = Field(DEFAULT_BACKTEST_RUNS, ge=1, le=MAX_BACKTEST_RUNS)


class Example(Schema):
    run_id: str
    cut_at_seq: int
    cap: str


class BacktestOut(Schema):
    runs_checked: int
    runs_cut: int
    by_cap: dict[str, int]
    saved_usd: Decimal
    examples: list[Example]


class ChangeQuery(Schema):
    scope: str | None = Field(None, max_length=100)
    limit: int = Field(50, ge=1, le=selectors.MAX_PAGE)


def _policy_out(policy) -> dict | None:
    if policy is None:
        return None
    values = {name: getattr(policy, name) for name in selectors.POLICY_FIELDS}
    return {"scope": policy.scope, **caps.policy_json(values), "updated_at": policy.updated_at}


@router.get("/caps", response={200: CapsStateOut, **ERRORS}, by_alias=True)
def caps_read(request):
    """The global policy, every agent override, and each registered agent's effective caps."""
    require_scope(request, "runs:read")
    state = caps.caps_overview()
    return {
        "global": _policy_out(state["global"]),
        "overrides": [_policy_out(p) for p in state["overrides"]],
        "effective": {
            name: c.to_dict() if c is not None else None for name, c in state["effective"].items()
        },
        "bounds": caps.BOUNDS,
    }


@router.get("/caps/changes", response={200: ChangePage, **ERRORS})
def caps_changes(request, query: Query[ChangeQuery]):
    """The audit trail, newest first: who changed which scope, when, from what to what."""
    require_scope(request, "admin")
    changes = selectors.cap_policy_changes(scope=query.scope, limit=query.limit)
    return {"items": changes}


@router.post("/caps/backtest", response={200: BacktestOut, **ERRORS})
def caps_backtest_run(request, body: BacktestIn):
    """What the proposed caps would have done to the last `last_n` finished runs (of `agent`,
    or of every agent), from their stored steps: runs cut, by which cap, at which step, and the
    dollars saved (the cost of the steps from each cut on)."""
    require_scope(request, "admin")
    result = caps_backtest(proposed=body.caps, agent=body.agent, last_n=body.last_n)
    return result.proposed.to_dict()


# After the fixed paths above: /caps/{scope} would match them too.
@router.put("/caps/{scope}", response={200: PolicySaved, **ERRORS})
def caps_replace(request, scope: str, body: PolicyIn):
    """Replace `scope`'s policy (`global` or a registered agent). Applies to runs created from
    now on; an agent policy sent wholly empty removes the override."""
    who = require_scope(request, "admin")
    saved = caps.cap_policy_set(
        scope=scope, values=body.model_dump(), changed_by=who.user, actor=who.name
    )
    return {
        "scope": scope,
        "changed": saved.change is not None,
        "policy": _policy_out(saved.policy),
    }


@router.delete("/caps/{scope}", response={204: None, **ERRORS})
def caps_remove(request, scope: str):
    """Remove an agent's override: its runs take the global values again (404 when it has
    none; the global policy cannot be removed: 422)."""
    who = require_scope(request, "admin")
    caps.cap_policy_remove(scope=scope, changed_by=who.user, actor=who.name)
    return Status(204, None)


# /caps/changes and /caps/backtest are matched before /caps/{scope}, so PUT or DELETE there would
# be answered 405. They mean the scope of that name, like any other: answer them the same way.
def _as_scope(name: str):
    def replace(request, body: PolicyIn):
        return caps_replace(request, name, body)

    def remove(request):
        return caps_remove(request, name)

    router.put(
        f"/caps/{name}", response={200: PolicySaved, **ERRORS}, include_in_schema=False,
        operation_id=f"caps_replace_{name}",
    )(replace)  # fmt: skip
    router.delete(
        f"/caps/{name}", response={204: None, **ERRORS}, include_in_schema=False,
        operation_id=f"caps_remove_{name}",
    )(remove)  # fmt: skip


for _fixed in ("changes", "backtest"):
    _as_scope(_fixed)
