"""Editing the cap policy: the only writes to it.

The policy is one `global` row (every required cap set) and optional per-agent overrides (a cap
left empty inherits the global value), each with per-tool timeouts. `cap_policy_set` and
`cap_policy_remove` validate every field against the cap table (one message per field) and leave
a CapPolicyChange for every change (who, when, before → after). A change applies to runs created
after it; a run keeps the caps frozen on it when it was created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..agents import get_agent
from ..engine.approvals import FIELDS
from ..engine.caps import BY_NAME, TABLE, TOOL_TIMEOUTS, CapError, resolve_caps
from ..engine.policy import CapPolicyInvalid, clean_policy, policy_json
from ..engine.tools import all_tools
from ..errors import Conflict, NotFound
from ..models import GLOBAL_SCOPE, CapPolicy, CapPolicyChange
from ..selectors.caps import cap_policies_for, cap_policy_changes, policy_values


def check_scope(scope: str) -> None:
    """`global` or a registered agent's name; else CapPolicyInvalid on `scope`."""
    if scope != GLOBAL_SCOPE and get_agent(scope) is None:
        raise CapPolicyInvalid({"scope": f"no agent named {scope!r} is registered here"})


def clean_scope_policy(scope: str, values: Mapping) -> dict:
    """`values` checked as `scope`'s whole policy (see `engine.policy.clean_policy`)."""
    tools = {t.name for t in all_tools()}
    return clean_policy(values, complete=scope == GLOBAL_SCOPE, tools=tools)


def _is_empty(policy: Mapping) -> bool:
    return (
        all(policy.get(cap.name) is None for cap in TABLE)
        and not policy.get(TOOL_TIMEOUTS)
        and not any(policy.get(name) for name in FIELDS)
    )


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
    cleaned = clean_scope_policy(scope, values)
    if scope != GLOBAL_SCOPE and _is_empty(cleaned):
        return _remove(scope, changed_by, actor, expected_change_id, missing_ok=True)
    if scope == GLOBAL_SCOPE:
        global_values, override = cleaned, None
    else:
        global_values, override = cap_policies_for(scope)[0], cleaned
    try:
        resolve_caps(global_values, override, {}, may_raise=True)
    except CapError as exc:  # not expected after clean_policy; never save what runs cannot use
        raise CapPolicyInvalid({exc.field: exc.message}) from None
    after = policy_json(cleaned)
    try:
        with transaction.atomic():
            policy = CapPolicy.objects.select_for_update().filter(scope=scope).first()
            _check_fresh(scope, expected_change_id)
            before = policy_json(policy_values(policy)) if policy else None
            if before == after:
                return Saved(policy, None)
            policy = policy or CapPolicy(scope=scope)
            now = timezone.now()
            # The global policy keeps every cap, an off one as null (a cap it does not mention
            # has the table's default); an override keeps only what it sets.
            policy.values = {
                k: v
                for k, v in after.items()
                if k in BY_NAME and (v is not None or scope == GLOBAL_SCOPE)
            }
            policy.tool_timeouts = after[TOOL_TIMEOUTS]
            policy.approvals = {k: after[k] for k in FIELDS if after[k]}
            policy.updated_at, policy.updated_by = now, changed_by
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
        before = policy_json(policy_values(policy))
        policy.delete()
        change = _record(scope, before, None, changed_by, actor, timezone.now())
    return Saved(None, change)


def _check_fresh(scope: str, expected_change_id: int | None) -> None:
    if expected_change_id is None:
        return
    last = cap_policy_changes(scope=scope, limit=1)
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
