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
from pydantic import BaseModel, ConfigDict, Field, create_model

from runs.engine.caps import (
    COUNT,
    EXTENSION_FIELD,
    ON_CAP_FIELD,
    TABLE,
    TIMEOUT_FIELD,
    TOOL_TIMEOUT,
    TOOL_TIMEOUTS,
    TOOLS_FIELD,
    USD,
)
from runs.engine.policy import policy_json
from runs.selectors import caps as cap_reads
from runs.selectors.caps import DEFAULT_BACKTEST_RUNS, MAX_BACKTEST_RUNS, MAX_CHANGES
from runs.selectors.windows import windows_state
from runs.services import caps as cap_writes
from runs.services import windows as cap_writes_windows

from .auth import api_auth, require_scope
from .schemas import ErrorOut

router = Router(auth=api_auth, tags=["caps"])
ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
_NUMBER = "a whole number, or null"


# The cap fields of every schema below come from the cap table, one per cap.


def _value_type(cap, *, optional: bool):
    kind = str if cap.kind == USD else int if cap.kind == COUNT else int | float
    return kind | None if optional else kind


def _described(cap) -> str:
    return cap.bounds + (" (string or number)" if cap.kind == USD else "")


# A scope's whole policy: fields left out or null are empty (an agent inherits them from the
# global policy; in the global policy an optional cap is then off). Values are typed loosely and
# checked against the cap table, so the API and the page give the same message per field;
# unknown keys are kept and answered 422 per field too. (A plain pydantic model: ninja's Schema
# reads attributes and would drop extra keys or accept a list.)
PolicyIn = create_model(
    "PolicyIn",
    __config__=ConfigDict(extra="allow"),
    **{cap.name: (Any, Field(None, description=_described(cap))) for cap in TABLE},
    **{TOOL_TIMEOUTS: (Any, Field(None, description="{tool name: seconds}; " + _NUMBER))},
    **{ON_CAP_FIELD: (Any, Field(None, description="stop (the default) or ask"))},
    **{TIMEOUT_FIELD: (Any, Field(None, description="how long a run waits for a person"))},
    **{EXTENSION_FIELD: (Any, Field(None, description="{cap: the most it may be extended to}"))},
    **{TOOLS_FIELD: (Any, Field(None, description="tools whose every call waits for a person"))},
)
PolicyOut = create_model(
    "PolicyOut",
    __base__=Schema,
    scope=(str, ...),
    **{cap.name: (_value_type(cap, optional=True), ...) for cap in TABLE},
    **{TOOL_TIMEOUTS: (dict[str, int | float], ...)},
    **{ON_CAP_FIELD: (str | None, ...), TIMEOUT_FIELD: (int | None, ...)},
    **{EXTENSION_FIELD: (dict[str, str | int], ...), TOOLS_FIELD: (list[str], ...)},
    updated_at=(datetime, ...),
)
CapsOut = create_model(  # the caps a run gets (as frozen on a run)
    "CapsOut",
    __base__=Schema,
    **{cap.name: (_value_type(cap, optional=cap.optional), ...) for cap in TABLE},
    **{TOOL_TIMEOUTS: (dict[str, int | float], ...)},
)


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Any = Field(description='"global", "agent:NAME", "user:REF" or "key:PREFIX"')
    period: Any = Field(description="hour, day, week or month (calendar UTC)")
    limit_usd: Any = Field(description='USD per period, like "5.00"')


class WindowOut(Schema):
    id: int
    scope: str
    period: str
    limit_usd: Decimal
    spent: Decimal = Field(description="spent this period")
    reserved: Decimal = Field(description="held by model calls in flight")
    refused: int = Field(description="runs and calls refused this period")
    period_start: datetime
    resets_at: datetime


class WindowPage(Schema):
    items: list[WindowOut]


class CapsStateOut(Schema):
    global_policy: PolicyOut = Field(alias="global")
    overrides: list[PolicyOut]
    effective: dict[str, CapsOut | None] = Field(
        description="per registered agent, the caps its runs get when they ask for none "
        "(null: its override is invalid and its runs cannot start)"
    )
    bounds: dict[str, str]
    windows: list[WindowOut] = Field(description="spend windows, as GET /caps/windows")


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
    windows: list[Any] = Field(
        default_factory=list,
        max_length=50,
        description="Spend windows {scope, period, limit_usd} proposed beside those in force "
        "(one of the same scope and period replaces it).",
    )


class Example(Schema):
    run_id: str
    cut_at_seq: int | None = Field(description="null: the run would not have started")
    cap: str


class BacktestOut(Schema):
    runs_checked: int
    runs_cut: int
    by_cap: dict[str, int]
    saved_usd: Decimal
    examples: list[Example]


class ChangeQuery(Schema):
    scope: str | None = Field(None, max_length=100)
    limit: int = Field(50, ge=1, le=MAX_CHANGES)


def _policy_out(policy) -> dict | None:
    if policy is None:
        return None
    values = policy_json(cap_reads.policy_values(policy))
    return {"scope": policy.scope, **values, "updated_at": policy.updated_at}


@router.get("/caps", response={200: CapsStateOut, **ERRORS}, by_alias=True)
def caps_read(request):
    """The global policy, every agent override, and each registered agent's effective caps."""
    require_scope(request, "runs:read")
    state = cap_reads.caps_overview()
    return {
        "global": _policy_out(state["global"]),
        "overrides": [_policy_out(p) for p in state["overrides"]],
        "effective": {
            name: c.to_dict() if c is not None else None for name, c in state["effective"].items()
        },
        "windows": [window.to_dict() for window in windows_state()],
        "bounds": {
            **{cap.name: cap.bounds for cap in TABLE},
            TOOL_TIMEOUTS: f"{TOOL_TIMEOUT.bounds}, per tool",
        },
    }


@router.get("/caps/changes", response={200: ChangePage, **ERRORS})
def caps_changes(request, query: Query[ChangeQuery]):
    """The audit trail, newest first: who changed which scope, when, from what to what. A read:
    `runs:read` is enough, as for the policy itself."""
    require_scope(request, "runs:read")
    changes = cap_reads.cap_policy_changes(scope=query.scope, limit=query.limit)
    return {"items": changes}


@router.post("/caps/backtest", response={200: BacktestOut, **ERRORS})
def caps_backtest_run(request, body: BacktestIn):
    """What the proposed caps would have done to the last `last_n` finished runs (of `agent`,
    or of every agent), from their stored steps: runs cut, by which cap, at which step, and the
    dollars saved (the cost of the steps from each cut on)."""
    require_scope(request, "admin")
    result = cap_reads.caps_backtest(
        proposed=body.caps, agent=body.agent, last_n=body.last_n, windows=body.windows
    )
    return result.proposed.to_dict()


@router.get("/caps/windows", response={200: WindowPage, **ERRORS})
def windows_read(request):
    """Every spend window with this period's spent, reserved, refusals and reset time."""
    require_scope(request, "runs:read")
    return {"items": [state.to_dict() for state in windows_state()]}


@router.post("/caps/windows", response={201: WindowOut, **ERRORS})
def windows_add(request, body: WindowIn):
    """Add a spend window: `limit_usd` per calendar UTC `period` for the runs of `scope`. Every
    model call of a run it covers must fit it (409 when the scope has one of that period)."""
    who = require_scope(request, "admin")
    window = cap_writes_windows.window_create(
        scope=body.scope,
        period=body.period,
        limit_usd=body.limit_usd,
        created_by=who.user,
        actor=who.name,
    )
    state = next(s for s in windows_state(scopes=[window.scope]) if s.window.id == window.id)
    return Status(201, state.to_dict())


@router.delete("/caps/windows/{window_id}", response={204: None, **ERRORS})
def windows_remove(request, window_id: int):
    who = require_scope(request, "admin")
    cap_writes_windows.window_delete(window_id=window_id, changed_by=who.user, actor=who.name)
    return Status(204, None)


# After the fixed paths above: /caps/{scope} would match them too.
@router.put("/caps/{scope}", response={200: PolicySaved, **ERRORS})
def caps_replace(request, scope: str, body: PolicyIn):
    """Replace `scope`'s policy (`global` or a registered agent). Applies to runs created from
    now on; an agent policy sent wholly empty removes the override."""
    who = require_scope(request, "admin")
    saved = cap_writes.cap_policy_set(
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
    cap_writes.cap_policy_remove(scope=scope, changed_by=who.user, actor=who.name)
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


for _fixed in ("changes", "backtest", "windows"):
    _as_scope(_fixed)
