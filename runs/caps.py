"""Editing the cap policy, and testing a proposed one against past runs.

The policy is one `global` row (every required cap set) and optional per-agent overrides (a null
field inherits the global value), each with per-tool timeouts. `cap_policy_set` and
`cap_policy_remove` are the only writes: every field is validated (one message per field), and
every change leaves a CapPolicyChange (who, when, before → after). A change applies to runs
created after it; a run keeps the caps frozen on it when it was created.

Bounds of a policy (documented in the README):
- `max_tool_calls`, `max_model_calls`, `max_tokens`: whole numbers from 1 to 1,000,000,000;
- `max_cost_usd`: USD from 0 to 99,999.9999, at most 4 decimal places;
- `max_wall_seconds`: whole seconds from 1 to 604,800 (7 days);
- `tool_timeout_seconds` and per-tool timeouts: whole seconds from 1 to 86,400 (a day).
`max_model_calls` and `max_tokens` are off when the global policy leaves them empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import selectors
from .agents import all_agents, get_agent
from .errors import Conflict, InvalidInput, NotFound
from .limits import COST_PLACES, MAX_SECONDS, CapError, Caps, _count, _seconds, resolve_caps
from .models import GLOBAL_SCOPE, CapPolicy, CapPolicyChange
from .selectors import POLICY_FIELDS
from .tools import all_tools

REQUIRED_FIELDS = ("max_tool_calls", "max_cost_usd", "max_wall_seconds", "tool_timeout_seconds")
OPTIONAL_FIELDS = ("max_model_calls", "max_tokens")
SCALAR_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
MAX_POLICY_USD = Decimal("99999.9999")
MAX_TOOL_TIMEOUT_SECONDS = 86_400
BOUNDS = {
    "max_tool_calls": "a whole number from 1 to 1000000000",
    "max_cost_usd": f"USD from 0 to {MAX_POLICY_USD}, at most {COST_PLACES} decimal places",
    "max_wall_seconds": f"whole seconds from 1 to {MAX_SECONDS}",
    "tool_timeout_seconds": f"whole seconds from 1 to {MAX_TOOL_TIMEOUT_SECONDS}",
    "tool_timeouts": f"whole seconds from 1 to {MAX_TOOL_TIMEOUT_SECONDS}, per tool",
    "max_model_calls": "a whole number from 1 to 1000000000",
    "max_tokens": "a whole number from 1 to 1000000000",
}


class CapPolicyInvalid(InvalidInput):
    """Some fields of a policy are not valid: `errors` maps each field to its message."""

    code = "invalid_caps"

    def __init__(self, errors: dict[str, str]):
        message = "; ".join(f"{name}: {why}" for name, why in errors.items())
        super().__init__(message, details={"fields": errors})
        self.errors = errors


# Validation.


def _usd(name: str, value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CapError(name, "must be an amount in USD, like 0.50")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise CapError(name, "must be an amount in USD, like 0.50") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_POLICY_USD:
        raise CapError(name, f"must be between 0 and {MAX_POLICY_USD}")
    if amount.normalize().as_tuple().exponent < -COST_PLACES:
        raise CapError(name, f"must have at most {COST_PLACES} decimal places")
    return amount


def _whole_seconds(most: int):
    def clean(name: str, value) -> int:
        try:
            seconds = _seconds(name, value)
        except CapError:
            seconds = None
        if not isinstance(seconds, int) or not 1 <= seconds <= most:
            raise CapError(name, f"must be a whole number of seconds from 1 to {most}")
        return seconds

    return clean


_CLEANERS = {
    "max_tool_calls": _count,
    "max_cost_usd": _usd,
    "max_wall_seconds": _whole_seconds(MAX_SECONDS),
    "tool_timeout_seconds": _whole_seconds(MAX_TOOL_TIMEOUT_SECONDS),
    "max_model_calls": _count,
    "max_tokens": _count,
}
_tool_seconds = _whole_seconds(MAX_TOOL_TIMEOUT_SECONDS)


def is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_scope(scope: str) -> None:
    """`global` or a registered agent's name; else CapPolicyInvalid on `scope`."""
    if scope != GLOBAL_SCOPE and get_agent(scope) is None:
        raise CapPolicyInvalid({"scope": f"no agent named {scope!r} is registered here"})


def clean_policy(scope: str, values: Mapping) -> dict:
    """The policy for `scope` from raw `values` (JSON or form strings; None or "" = empty),
    with every POLICY_FIELDS key. Raises CapPolicyInvalid naming every bad field at once."""
    if not isinstance(values, Mapping):
        raise CapPolicyInvalid({"caps": "must be an object of cap names to values"})
    errors = {str(k): "unknown cap" for k in values if k not in POLICY_FIELDS}
    out: dict = {}
    for name in SCALAR_FIELDS:
        raw = values.get(name)
        out[name] = None
        if is_blank(raw):
            if scope == GLOBAL_SCOPE and name in REQUIRED_FIELDS:
                errors[name] = "is required in the global policy (every agent inherits it)"
            continue
        try:
            out[name] = _CLEANERS[name](name, raw.strip() if isinstance(raw, str) else raw)
        except CapError as exc:
            errors[name] = exc.message
    out["tool_timeouts"] = _clean_tool_timeouts(values.get("tool_timeouts"), errors)
    if errors:
        raise CapPolicyInvalid(errors)
    return out


def _clean_tool_timeouts(raw, errors: dict) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors["tool_timeouts"] = "must be an object of tool name to seconds"
        return {}
    known = {t.name for t in all_tools()}
    out = {}
    for tool, seconds in raw.items():
        field = f"tool_timeouts.{tool}"
        if not isinstance(tool, str) or tool not in known:
            errors[field] = f"no tool named {tool!r} is registered here"
        elif not is_blank(seconds):  # an empty timeout removes the tool's entry
            try:
                out[tool] = _tool_seconds(field, seconds)
            except CapError as exc:
                errors[field] = exc.message
    return dict(sorted(out.items()))


def policy_json(values: Mapping | None) -> dict | None:
    """A policy as JSON-safe values (what the audit trail and the API show)."""
    if values is None:
        return None
    out = {}
    for name in SCALAR_FIELDS:
        value = values.get(name)
        if name == "max_cost_usd" and value is not None:
            out[name] = usd_text(value)
        elif isinstance(value, Decimal):
            out[name] = int(value) if value == value.to_integral_value() else float(value)
        else:
            out[name] = value
    out["tool_timeouts"] = dict(sorted((values.get("tool_timeouts") or {}).items()))
    return out


def usd_text(value) -> str:
    """0.5 → "0.50", 0.0125 → "0.0125", 100 → "100.00"."""
    text = f"{Decimal(value).quantize(Decimal(1).scaleb(-COST_PLACES)):f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _values(policy: CapPolicy) -> dict:
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def _is_empty(policy: Mapping) -> bool:
    return all(policy.get(n) is None for n in SCALAR_FIELDS) and not policy.get("tool_timeouts")


# Writes.


@dataclass(frozen=True)
class Saved:
    policy: CapPolicy | None  # None: the agent has no override (any more)
    change: CapPolicyChange | None  # None: nothing changed, nothing recorded


def cap_policy_set(
    *,
    scope: str,
    values: Mapping,
    changed_by=None,
    actor: str = "",
    expected_change_id: int | None = None,
) -> Saved:
    """Replace `scope`'s policy with `values` (fields left out are empty: an agent inherits
    them). An agent policy left wholly empty is removed. Raises CapPolicyInvalid, or Conflict
    (`stale_policy`) when `expected_change_id` is given and the scope changed since then."""
    check_scope(scope)
    cleaned = clean_policy(scope, values)
    if scope != GLOBAL_SCOPE and _is_empty(cleaned):
        return _remove(scope, changed_by, actor, expected_change_id, missing_ok=True)
    if scope == GLOBAL_SCOPE:
        global_values, override = cleaned, None
    else:
        global_values, override = selectors.cap_policies_for(scope)[0], cleaned
    try:
        resolve_caps(global_values, override, {}, may_raise=True)
    except CapError as exc:  # not expected after clean_policy; never save what runs cannot use
        raise CapPolicyInvalid({exc.field: exc.message}) from None
    try:
        with transaction.atomic():
            policy = CapPolicy.objects.select_for_update().filter(scope=scope).first()
            _check_fresh(scope, expected_change_id)
            before = policy_json(_values(policy)) if policy else None
            after = policy_json(cleaned)
            if before == after:
                return Saved(policy, None)
            policy = policy or CapPolicy(scope=scope)
            now = timezone.now()
            for name, value in cleaned.items():
                setattr(policy, name, value)
            policy.updated_at, policy.updated_by = now, changed_by
            try:
                policy.full_clean()
            except ValidationError as exc:  # not expected after clean_policy
                raise CapPolicyInvalid(
                    {name: " ".join(msgs) for name, msgs in exc.message_dict.items()}
                ) from None
            policy.save()
            change = _record(scope, before, after, changed_by, actor, now)
    except IntegrityError:
        raise Conflict(
            f"the {scope} policy was created by someone else just now; try again",
            code="stale_policy",
        ) from None
    return Saved(policy, change)


def cap_policy_remove(
    *, scope: str, changed_by=None, actor: str = "", expected_change_id: int | None = None
) -> Saved:
    """Remove an agent's override: its runs take the global values again. The global policy
    cannot be removed (CapPolicyInvalid); a scope without an override raises NotFound. An
    override of an agent no longer registered can still be removed."""
    if scope == GLOBAL_SCOPE:
        raise CapPolicyInvalid({"scope": "the global policy cannot be removed"})
    return _remove(scope, changed_by, actor, expected_change_id, missing_ok=False)


def _remove(scope, changed_by, actor, expected_change_id, *, missing_ok: bool) -> Saved:
    with transaction.atomic():
        policy = CapPolicy.objects.select_for_update().filter(scope=scope).first()
        _check_fresh(scope, expected_change_id)
        if policy is None:
            if missing_ok:
                return Saved(None, None)
            raise NotFound(f"{scope!r} has no cap override")
        before = policy_json(_values(policy))
        policy.delete()
        change = _record(scope, before, None, changed_by, actor, timezone.now())
    return Saved(None, change)


def _check_fresh(scope: str, expected_change_id: int | None) -> None:
    if expected_change_id is None:
        return
    last = selectors.cap_policy_changes(scope=scope, limit=1)
    if (last[0].id if last else 0) == expected_change_id:
        return
    who = f" by {last[0].actor or 'someone'} at {last[0].changed_at:%H:%M:%S} UTC" if last else ""
    raise Conflict(
        f"the {scope} policy was changed{who} after you opened it; review the values now in "
        "force and save again",
        code="stale_policy",
    )


def _record(scope, before, after, changed_by, actor, when) -> CapPolicyChange:
    if not actor and changed_by is not None:
        actor = f"user:{changed_by.get_username()}"
    return CapPolicyChange.objects.create(
        scope=scope,
        changed_at=when,
        changed_by=changed_by,
        actor=actor[:200],
        before=before,
        after=after,
    )


def change_diff(change: CapPolicyChange) -> list[tuple[str, object, object]]:
    """(field, before, after) for each field the change altered; a tool's timeout is its own
    field (`tool_timeouts.NAME`). None stands for empty (inherit, or off)."""
    before, after = change.before or {}, change.after or {}
    rows = [(n, before.get(n), after.get(n)) for n in SCALAR_FIELDS]
    old_t, new_t = before.get("tool_timeouts") or {}, after.get("tool_timeouts") or {}
    rows += [(f"tool_timeouts.{t}", old_t.get(t), new_t.get(t)) for t in sorted({*old_t, *new_t})]
    return [row for row in rows if row[1] != row[2]]


# Reads.


def effective_caps(policies: Mapping[str, dict], agent: str) -> Caps:
    """The caps a run of `agent` gets when it asks for nothing (global ← override)."""
    return resolve_caps(policies.get(GLOBAL_SCOPE), policies.get(agent), {}, may_raise=True)


def caps_overview() -> dict:
    """Every policy row and the caps each registered agent's runs get now."""
    rows = selectors.cap_policy_rows()
    dicts = {scope: _values(p) for scope, p in rows.items()}
    effective = {}
    for spec in all_agents():
        try:
            effective[spec.name] = effective_caps(dicts, spec.name)
        except CapError:  # an override saved before validation existed: runs cannot start
            effective[spec.name] = None
    return {
        "global": rows.get(GLOBAL_SCOPE),
        "overrides": [rows[s] for s in sorted(rows) if s != GLOBAL_SCOPE],
        "effective": effective,
    }
