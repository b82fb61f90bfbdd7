"""A cap policy (the global one, or an agent's override) as people and the API send it: every
value checked against the cap table, one message per field, the same wherever it came from (the
caps page, the API, a backtest's proposal). Plain Python."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ..errors import InvalidInput
from .approvals import FIELDS, approval_json, clean_approval_fields
from .caps import BY_NAME, TABLE, TOOL_TIMEOUT, TOOL_TIMEOUTS, CapError


class CapPolicyInvalid(InvalidInput):
    """Some fields of a policy are not valid: `errors` maps each field to its message."""

    code = "invalid_caps"

    def __init__(self, errors: dict[str, str]):
        message = "; ".join(f"{name}: {why}" for name, why in errors.items())
        super().__init__(message, details={"fields": errors})
        self.errors = errors


def is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def clean_policy(values: Mapping, *, complete: bool, tools: Collection[str]) -> dict:
    """A policy from raw `values` (JSON or form strings; None or "" = empty), with every cap of
    the table (None where empty) and `tool_timeouts` (only the registered `tools`; an empty
    timeout drops the tool's entry). `complete`: the global policy, where every required cap
    must be set and an optional cap left out takes the table's default (null turns it off), so a
    client that does not know a newer cap does not switch it off. The approval fields beside the
    caps (on_cap…) are cleaned by `approvals.clean_approval_fields`. Raises CapPolicyInvalid
    naming every bad field at once, with the same message per field wherever it came from."""
    if not isinstance(values, Mapping):
        raise CapPolicyInvalid({"caps": "must be an object of cap names to values"})
    known = {*BY_NAME, TOOL_TIMEOUTS, *FIELDS}
    errors = {str(k): "unknown cap" for k in values if k not in known}
    out: dict = {}
    for cap in TABLE:
        if complete and cap.optional and cap.name not in values:
            out[cap.name] = cap.default
            continue
        raw = values.get(cap.name)
        out[cap.name] = None
        if is_blank(raw):
            if complete and not cap.optional:
                errors[cap.name] = "is required in the global policy (every agent inherits it)"
            continue
        try:
            out[cap.name] = cap.parse(raw.strip() if isinstance(raw, str) else raw)
        except CapError as exc:
            errors[cap.name] = exc.message
    out[TOOL_TIMEOUTS] = _clean_tool_timeouts(values.get(TOOL_TIMEOUTS), tools, errors)
    out.update(clean_approval_fields(values, complete=complete, tools=tools, errors=errors))
    if errors:
        raise CapPolicyInvalid(errors)
    return out


def _clean_tool_timeouts(raw, tools: Collection[str], errors: dict) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors[TOOL_TIMEOUTS] = "must be an object of tool name to seconds"
        return {}
    out = {}
    for tool, seconds in raw.items():
        field = f"{TOOL_TIMEOUTS}.{tool}"
        if not isinstance(tool, str) or tool not in tools:
            errors[field] = f"no tool named {tool!r} is registered here"
        elif not is_blank(seconds):
            try:
                out[tool] = TOOL_TIMEOUT.parse(seconds, field)
            except CapError as exc:
                errors[field] = exc.message
    return dict(sorted(out.items()))


def policy_json(values: Mapping | None) -> dict | None:
    """A policy (as `clean_policy` returns it, or as stored) in JSON: what is stored, what the
    audit trail and the API show. Every cap and approval field is present (None: empty)."""
    if values is None:
        return None
    out = {cap.name: cap.to_json(values.get(cap.name)) for cap in TABLE}
    out[TOOL_TIMEOUTS] = dict(sorted((values.get(TOOL_TIMEOUTS) or {}).items()))
    out.update(approval_json(values))
    return out
