"""Reads of the cap policy: the rows, the caps each agent's runs get, the audit trail, and a
backtest of proposed caps against the last N finished runs' stored steps (the arithmetic is
`engine.backtest`'s; this module finds the runs and the caps each would have had)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..agents import all_agents
from ..engine.approvals import (
    DEFAULT_TIMEOUT_S,
    EXTENSION_FIELD,
    FIELDS,
    ON_CAP_FIELD,
    TIMEOUT_FIELD,
    TOOLS_FIELD,
)
from ..engine.backtest import Backtest, backtest
from ..engine.caps import TABLE, TOOL_TIMEOUTS, CapError, Caps, resolve_caps
from ..engine.policy import CapPolicyInvalid, clean_policy, is_blank, policy_json
from ..engine.tools import all_tools
from ..engine.windows import Window, parse_limit, parse_period, parse_scope
from ..models import (
    GLOBAL_SCOPE,
    TERMINAL_STATUSES,
    CapPolicy,
    CapPolicyChange,
    Event,
    Run,
    RunSource,
)
from .windows import windows_for_backtest

MAX_CHANGES = 200
DEFAULT_BACKTEST_RUNS = 100
MAX_BACKTEST_RUNS = 1000
BACKTEST_STEP_COLUMNS = (
    "run_id", "seq", "kind", "name", "status", "started_at", "ended_at", "input_tokens",
    "output_tokens", "cost_usd",
)  # fmt: skip


def policy_values(policy: CapPolicy | None) -> dict | None:
    """A stored policy as a plain dict: every cap of the table (None: empty), `tool_timeouts`
    and the approval fields (engine.approvals); values as stored (USD as strings), which
    `resolve_caps` reads. A cap the global policy does not mention (one added to the table
    since it was saved) has the table's default there; an agent's override inherits it."""
    if policy is None:
        return None
    stored = policy.values or {}
    if policy.scope == GLOBAL_SCOPE:
        values = {cap.name: stored.get(cap.name, cap.to_json(cap.default)) for cap in TABLE}
    else:
        values = {cap.name: stored.get(cap.name) for cap in TABLE}
    values[TOOL_TIMEOUTS] = dict(policy.tool_timeouts or {})
    stored = policy.approvals or {}
    values.update({name: stored.get(name) for name in FIELDS})
    if policy.scope == GLOBAL_SCOPE:
        values[ON_CAP_FIELD] = values[ON_CAP_FIELD] or "stop"
        values[TIMEOUT_FIELD] = values[TIMEOUT_FIELD] or DEFAULT_TIMEOUT_S
    return values


def cap_policies_for(agent: str) -> tuple[dict, dict | None]:
    """The global policy and `agent`'s override (None when it has none), as plain dicts."""
    rows = {p.scope: p for p in CapPolicy.objects.filter(scope__in=[GLOBAL_SCOPE, agent])}
    return policy_values(rows.get(GLOBAL_SCOPE)) or {}, policy_values(rows.get(agent))


def cap_policy_rows() -> dict[str, CapPolicy]:
    """Every CapPolicy row by scope (the global one and each agent override)."""
    return {p.scope: p for p in CapPolicy.objects.select_related("updated_by")}


def cap_policy_dicts(rows: Mapping[str, CapPolicy] | None = None) -> dict[str, dict]:
    """Every policy as `policy_values` gives it, by scope (from `rows` when already read)."""
    rows = cap_policy_rows() if rows is None else rows
    return {scope: policy_values(p) for scope, p in rows.items()}


def effective_caps(policies: Mapping[str, dict | None], agent: str) -> Caps:
    """The caps a run of `agent` gets when it asks for nothing (global ← override). Raises
    CapError for an override that no longer validates."""
    return resolve_caps(policies.get(GLOBAL_SCOPE), policies.get(agent), {}, may_raise=True)


def effective_caps_of(agent_names: list[str]) -> dict[str, Caps | None]:
    """`effective_caps` of each agent; None for an agent whose override is invalid (its runs
    cannot start). One query."""
    rows = CapPolicy.objects.filter(scope__in=[GLOBAL_SCOPE, *agent_names])
    policies = cap_policy_dicts({p.scope: p for p in rows})
    out = {}
    for name in agent_names:
        try:
            out[name] = effective_caps(policies, name)
        except CapError:  # an override saved before validation existed
            out[name] = None
    return out


def caps_overview() -> dict:
    """Every policy row and the caps each registered agent's runs get now. One query."""
    rows = cap_policy_rows()
    policies = cap_policy_dicts(rows)
    effective = {}
    for spec in all_agents():
        try:
            effective[spec.name] = effective_caps(policies, spec.name)
        except CapError:
            effective[spec.name] = None
    return {
        "global": rows.get(GLOBAL_SCOPE),
        "overrides": [rows[s] for s in sorted(rows) if s != GLOBAL_SCOPE],
        "policies": policies,
        "effective": effective,
    }


def cap_policy_changes(*, scope: str | None = None, limit: int = 50) -> list[CapPolicyChange]:
    """The newest audit entries, of one scope or all, newest first."""
    qs = CapPolicyChange.objects.select_related("changed_by").order_by("-changed_at", "-id")
    if scope is not None:
        qs = qs.filter(scope=scope)
    return list(qs[: max(1, min(limit, MAX_CHANGES))])


def cap_policy_last_change_id(*, scope: str) -> int:
    """The id of the scope's newest audit entry; 0 when it has none."""
    last = CapPolicyChange.objects.filter(scope=scope).order_by("-changed_at", "-id").first()
    return last.id if last else 0


def change_diff(change: CapPolicyChange) -> list[tuple[str, object, object]]:
    """(field, before, after) for each field the change altered; a tool's timeout is its own
    field (`tool_timeouts.NAME`). None stands for empty (inherit, or off)."""
    before, after = change.before or {}, change.after or {}
    rows = [(cap.name, before.get(cap.name), after.get(cap.name)) for cap in TABLE]
    old_t, new_t = before.get(TOOL_TIMEOUTS) or {}, after.get(TOOL_TIMEOUTS) or {}
    rows += [(f"{TOOL_TIMEOUTS}.{t}", old_t.get(t), new_t.get(t)) for t in sorted({*old_t, *new_t})]
    rows += [(name, before.get(name), after.get(name)) for name in (ON_CAP_FIELD, TIMEOUT_FIELD)]
    old_x, new_x = before.get(EXTENSION_FIELD) or {}, after.get(EXTENSION_FIELD) or {}
    rows += [
        (f"{EXTENSION_FIELD}.{c}", old_x.get(c), new_x.get(c)) for c in sorted({*old_x, *new_x})
    ]
    old_r, new_r = before.get(TOOLS_FIELD) or [], after.get(TOOLS_FIELD) or []
    if sorted(old_r) != sorted(new_r):
        rows.append((TOOLS_FIELD, ", ".join(old_r) or None, ", ".join(new_r) or None))
    return [row for row in rows if row[1] != row[2]]


# Backtests.


def runs_for_backtest(*, agent: str | None = None, last_n: int = 100) -> list[dict]:
    """The last `last_n` finished runs executed here (of `agent`, or of every agent), newest
    first, each a plain dict with its steps in seq order, as `engine.backtest` takes them.

    Two queries whatever `last_n` is, reading only the small columns the backtest needs (a
    step's `attributes` is reduced to its `refused` flag and `call_key`; no prompts or outputs
    are read).
    Ingested runs are left out: caps only govern runs executed here.
    """
    qs = Run.objects.filter(status__in=TERMINAL_STATUSES, source=RunSource.INTERNAL)
    if agent:
        qs = qs.filter(agent=agent)
    rows = qs.order_by("-created_at", "-id").values(
        "id", "agent", "user_ref", "api_key__prefix", "created_at", "started_at", "finished_at",
        "wall_ms",
    )[: max(1, last_n)]  # fmt: skip
    runs = {}
    for row in rows:
        if row["wall_ms"] is not None:
            duration = row["wall_ms"] / 1000
        elif row["started_at"] and row["finished_at"]:
            duration = (row["finished_at"] - row["started_at"]).total_seconds()
        else:
            duration = None
        runs[row["id"]] = {
            "id": row["id"],
            "agent": row["agent"],
            "user_ref": row["user_ref"],
            "key_prefix": row["api_key__prefix"] or "",
            "started_at": row["started_at"] or row["created_at"],
            "duration_s": duration,
            "steps": [],
        }
    if not runs:
        return []
    steps = (
        Event.objects.filter(run_id__in=list(runs))
        .order_by("run_id", "seq")
        .values_list(*BACKTEST_STEP_COLUMNS, "attributes__refused", "attributes__call_key")
    )
    for *values, refused, call_key in steps.iterator(chunk_size=2000):
        step = dict(zip(BACKTEST_STEP_COLUMNS, values, strict=True))
        step["attributes"] = {"refused": True} if refused is True else {}
        if call_key is not None:
            step["attributes"]["call_key"] = call_key
        runs[step.pop("run_id")]["steps"].append(step)
    return list(runs.values())


def clean_proposal(proposed: Mapping) -> dict:
    """Proposed caps for a backtest: any subset of the policy's fields, validated like a policy.
    null switches an optional cap off; the required caps cannot be switched off."""
    if not isinstance(proposed, Mapping):
        raise CapPolicyInvalid({"caps": "must be an object of cap names to values"})
    errors = {}
    for cap in TABLE:
        if not cap.optional and cap.name in proposed and is_blank(proposed[cap.name]):
            errors[cap.name] = "cannot be switched off"
    try:
        cleaned = clean_policy(proposed, complete=False, tools={t.name for t in all_tools()})
    except CapPolicyInvalid as exc:
        errors = {**exc.errors, **errors}
        cleaned = {}
    if errors:
        raise CapPolicyInvalid(errors)
    return {name: cleaned[name] for name in proposed}


@dataclass(frozen=True)
class CapsBacktest:
    proposed: Backtest
    current: Backtest | None
    proposed_caps: Caps  # for the scope: the agent's, or the global policy's
    current_caps: Caps
    agent: str | None
    last_n: int


def clean_windows(proposed) -> list[Window]:
    """Proposed spend windows for a backtest: [{scope, period, limit_usd}], each checked as a
    new window would be (CapPolicyInvalid naming `windows.N.field`)."""
    if not isinstance(proposed, list):
        raise CapPolicyInvalid({"windows": "must be a list of {scope, period, limit_usd}"})
    errors, out = {}, []
    for index, item in enumerate(proposed):
        if not isinstance(item, Mapping):
            errors[f"windows.{index}"] = "must be an object with scope, period and limit_usd"
            continue
        try:
            out.append(
                Window(
                    scope=parse_scope(item.get("scope")),
                    period=parse_period(item.get("period")),
                    limit_usd=parse_limit(item.get("limit_usd")),
                )
            )
        except CapError as exc:
            errors[f"windows.{index}.{exc.field}"] = exc.message
    if errors:
        raise CapPolicyInvalid(errors)
    return out


def caps_backtest(
    *,
    proposed: Mapping,
    agent: str | None = None,
    last_n: int = DEFAULT_BACKTEST_RUNS,
    with_current: bool = False,
    windows: list | None = None,
) -> CapsBacktest:
    """What `proposed` caps would have done to the last `last_n` finished runs (of `agent`, or
    of every agent), from their stored steps (see engine.backtest).

    The proposal is laid over the policy in force, fields left out keeping their values: with
    `agent`, over that agent's caps; without, over the global policy, so an agent whose override
    sets a cap keeps its own value for it. `with_current` also checks the same runs against the
    policy in force, for comparison. `windows` are spend windows proposed beside the ones in
    force (one of the same scope and period replaces it); windows add up across the runs
    checked. Raises CapPolicyInvalid.
    """
    extra = clean_windows(windows or [])
    now_windows = windows_for_backtest()
    taken = {(w.scope, w.period) for w in extra}
    proposed_windows = [w for w in now_windows if (w.scope, w.period) not in taken] + extra
    overlay = policy_json(clean_proposal(proposed)) or {}
    overlay = {name: overlay[name] for name in proposed}
    last_n = max(1, min(int(last_n), MAX_BACKTEST_RUNS))
    policies = cap_policy_dicts()
    global_now = policies.get(GLOBAL_SCOPE) or {}

    def current_for(name: str) -> Caps:
        try:
            return effective_caps(policies, name)
        except CapError:  # an override saved before validation existed: the global caps
            return resolve_caps(global_now, None, {}, may_raise=True)

    if agent:

        def proposed_for(name: str) -> Caps:
            return Caps.from_dict({**current_for(name).to_dict(), **overlay})

        scope_now, scope_proposed = current_for(agent), proposed_for(agent)
    else:
        global_proposed = {**global_now, **overlay}

        def proposed_for(name: str) -> Caps:
            try:
                return resolve_caps(global_proposed, policies.get(name), {}, may_raise=True)
            except CapError:
                return resolve_caps(global_proposed, None, {}, may_raise=True)

        scope_now = resolve_caps(global_now, None, {}, may_raise=True)
        scope_proposed = resolve_caps(global_proposed, None, {}, may_raise=True)
    runs = runs_for_backtest(agent=agent or None, last_n=last_n)
    return CapsBacktest(
        proposed=backtest(runs, proposed_for, windows=proposed_windows),
        current=backtest(runs, current_for, windows=now_windows) if with_current else None,
        proposed_caps=scope_proposed,
        current_caps=scope_now,
        agent=agent or None,
        last_n=last_n,
    )
