"""Backtesting a proposed cap policy: the proposal laid over the policy in force, checked against
the last N finished runs' stored steps (the arithmetic is runs.backtest's; this module finds the
runs and the caps each would have had)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import selectors
from .backtest import Backtest, backtest
from .caps import REQUIRED_FIELDS, CapPolicyInvalid, clean_policy, effective_caps, is_blank
from .limits import CapError, Caps, resolve_caps
from .models import GLOBAL_SCOPE

DEFAULT_BACKTEST_RUNS = 100
MAX_BACKTEST_RUNS = 1000


def clean_proposal(proposed: Mapping) -> dict:
    """Proposed caps for a backtest: any subset of the policy fields, validated like a policy.
    null switches an optional cap off; the required caps cannot be switched off."""
    if not isinstance(proposed, Mapping):
        raise CapPolicyInvalid({"caps": "must be an object of cap names to values"})
    errors = {}
    for name in REQUIRED_FIELDS:
        if name in proposed and is_blank(proposed[name]):
            errors[name] = "cannot be switched off"
    try:
        cleaned = clean_policy("", proposed)
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


def caps_backtest(
    *,
    proposed: Mapping,
    agent: str | None = None,
    last_n: int = DEFAULT_BACKTEST_RUNS,
    with_current: bool = False,
) -> CapsBacktest:
    """What `proposed` caps would have done to the last `last_n` finished runs (of `agent`, or
    of every agent), from their stored steps (see runs.backtest).

    The proposal is laid over the policy in force, fields left out keeping their values: with
    `agent`, over that agent's caps; without, over the global policy, so an agent whose override
    sets a cap keeps its own value for it. `with_current` also checks the same runs against the
    policy in force, for comparison. Raises CapPolicyInvalid.
    """
    overlay = clean_proposal(proposed)
    last_n = max(1, min(int(last_n), MAX_BACKTEST_RUNS))
    policies = selectors.cap_policy_dicts()
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
    runs = selectors.runs_for_backtest(agent=agent or None, last_n=last_n)
    return CapsBacktest(
        proposed=backtest(runs, proposed_for),
        current=backtest(runs, current_for) if with_current else None,
        proposed_caps=scope_proposed,
        current_caps=scope_now,
        agent=agent or None,
        last_n=last_n,
    )
