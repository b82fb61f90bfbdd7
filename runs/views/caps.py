"""/caps/ (admin): the cap policy per scope with its audit trail, and a backtest of proposed values
against recent runs before they are saved."""

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from .. import caps, selectors
from ..agents import all_agents, get_agent
from ..backtest import CAPS_CHECKED, histogram
from ..caps import SCALAR_FIELDS
from ..caps_backtest import caps_backtest
from ..errors import AppError
from ..forms_caps import LABELS, CapPolicyForm
from ..models import GLOBAL_SCOPE
from ..roles import ADMIN, role_required
from ..tools import all_tools
from .run_page import int_param, step_url

AUDIT_SHOWN = 30


# Caps.


def _scope_of(request) -> str:
    return (request.POST.get("scope") or request.GET.get("scope") or GLOBAL_SCOPE).strip()


def _tools_for(scope: str, stored: dict | None) -> dict:
    """Tools that may get a timeout in `scope`: the agent's own (all, for the global policy or
    an agent that may call any), plus any the stored policy names. name → declared timeout."""
    declared = {t.name: t.timeout for t in all_tools()}
    spec = get_agent(scope)
    names = set(spec.tools) if spec is not None and spec.tools else set(declared)
    names |= set((stored or {}).get("tool_timeouts") or {})
    return {name: declared.get(name) for name in names}


def _form(scope: str, policies: dict, data=None) -> CapPolicyForm:
    stored = policies.get(scope)
    inherited = None
    if scope != GLOBAL_SCOPE:
        inherited = caps.effective_caps({GLOBAL_SCOPE: policies.get(GLOBAL_SCOPE)}, scope)
    initial = None
    if data is None:
        version = selectors.cap_policy_last_change_id(scope=scope)
        initial = CapPolicyForm.initial_from(stored, version)
    return CapPolicyForm(
        data, initial=initial, scope=scope, inherited=inherited, tools=_tools_for(scope, stored)
    )


def _caps_url(scope: str) -> str:
    return f"{reverse('runs:caps')}?{urlencode({'scope': scope})}"


def _check_scope(scope: str, policies: dict) -> None:
    """404 unless `scope` is global, a registered agent, or an override still stored."""
    if scope != GLOBAL_SCOPE and get_agent(scope) is None and scope not in policies:
        raise Http404(f"no agent named {scope!r} is registered here")


def _render(request, scope, form: CapPolicyForm, *, status=200, result=None, backtest_tried=False):
    overview = caps.caps_overview()
    registered = [spec.name for spec in all_agents()]
    overridden = {p.scope for p in overview["overrides"]}
    changes = selectors.cap_policy_changes(scope=scope, limit=AUDIT_SHOWN)
    context = {
        "scope": scope,
        "form": form,
        "editable": scope == GLOBAL_SCOPE or scope in registered,
        "has_override": scope in overridden,
        "agents": _agent_rows(registered, overview),
        "cap_labels": [LABELS[name] for name in SCALAR_FIELDS],
        "stale_scopes": sorted(overridden - set(registered)),
        "global_policy": overview["global"],
        "changes": [(c, _diff_rows(c, scope)) for c in changes],
        "bounds": caps.BOUNDS,
        "backtest_tried": backtest_tried,
        **(_backtest_context(result) if result else {}),
    }
    return render(request, "runs/caps.html", context, status=status)


def _agent_rows(registered: list[str], overview: dict) -> list[dict]:
    """Each registered agent's effective caps, marking the values its override sets."""
    overrides = {p.scope: p for p in overview["overrides"]}
    rows = []
    for name in registered:
        effective = overview["effective"].get(name)
        values = effective.to_dict() if effective is not None else {}
        own = overrides.get(name)
        cells = [
            {
                "value": _shown(values.get(field), field, "off"),
                "own": own is not None and getattr(own, field) is not None,
            }
            for field in SCALAR_FIELDS
        ]
        rows.append(
            {"name": name, "overridden": own is not None, "valid": bool(values), "cells": cells}
        )
    return rows


def _shown(value, field: str, empty: str) -> str:
    if value is None:
        return empty
    if field == "max_cost_usd":
        return "$" + caps.usd_text(value)
    if field in ("max_wall_seconds", "tool_timeout_seconds") or field.startswith("tool_timeouts."):
        return f"{value} s"
    return str(value)


def _diff_rows(change, scope: str) -> list[tuple[str, str, str]]:
    empty = "off" if scope == GLOBAL_SCOPE else "inherit"
    return [
        (field, _shown(old, field, empty), _shown(new, field, empty))
        for field, old, new in caps.change_diff(change)
    ]


@role_required(ADMIN)
def caps_page(request):
    """GET: the scope's policy. POST: save it (then back to the page), or show what is wrong."""
    scope = _scope_of(request)
    policies = selectors.cap_policy_dicts()
    _check_scope(scope, policies)
    if request.method != "POST":
        return _render(request, scope, _form(scope, policies))
    form = _form(scope, policies, data=request.POST)
    if form.is_valid():
        try:
            saved = caps.cap_policy_set(
                scope=scope,
                values=form.policy,
                changed_by=request.user,
                expected_change_id=form.cleaned_data.get("version"),
            )
        except AppError as exc:
            form.add_error(None, exc.message)
            return _render(request, scope, form, status=exc.status)
        if saved.change is None:
            messages.info(request, f"Nothing changed: the {scope} policy already had these values.")
        else:
            messages.success(
                request,
                f"Saved the {scope} policy. Runs created from now on get it; runs already "
                "queued or running keep the caps they started with.",
            )
        return redirect(_caps_url(scope))
    return _render(request, scope, form, status=422)


@require_POST
@role_required(ADMIN)
def caps_remove(request):
    scope = _scope_of(request)
    try:
        caps.cap_policy_remove(
            scope=scope,
            changed_by=request.user,
            expected_change_id=int_param(request.POST.get("version")),
        )
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Removed the {scope} override: its new runs get the global policy."
        )
    return redirect(_caps_url(scope))


@require_POST
@role_required(ADMIN)
def caps_backtest_view(request):
    """The form's values (not saved) against recent runs: the backtest panel for htmx, or the
    whole page with it filled in for a plain form post."""
    scope = _scope_of(request)
    policies = selectors.cap_policy_dicts()
    _check_scope(scope, policies)
    form = _form(scope, policies, data=request.POST)
    result = None
    if form.is_valid():
        result = caps_backtest(
            proposed=form.proposal(policies.get(GLOBAL_SCOPE)),
            agent=None if scope == GLOBAL_SCOPE else scope,
            last_n=form.cleaned_data["last_n"],
            with_current=True,
        )
    if request.htmx:
        context = {
            "form": form,
            "scope": scope,
            "backtest_tried": True,
            **(_backtest_context(result) if result else {}),
        }
        return render(request, "runs/caps.html#backtest", context)
    return _render(
        request, scope, form, result=result, status=200 if result else 422, backtest_tried=True
    )


def _backtest_context(result) -> dict:
    checks = result.proposed.checks
    now, then = result.current_caps, result.proposed_caps
    charts = [
        histogram(
            "Tool calls per run",
            [c.tool_calls for c in checks],
            whole=True,
            current=now.max_tool_calls,
            proposed=then.max_tool_calls,
        ),
        histogram(
            "Spend per run (USD)",
            [c.spend_usd for c in checks],
            unit="$",
            current=now.max_cost_usd,
            proposed=then.max_cost_usd,
        ),
        histogram(
            "Duration per run (seconds)",
            [c.duration_s for c in checks],
            unit="s",
            current=now.max_wall_seconds,
            proposed=then.max_wall_seconds,
        ),
    ]
    cap_rows = [
        {
            "cap": cap,
            "now": _shown(getattr(now, cap), cap, "off"),
            "proposed": _shown(getattr(then, cap), cap, "off"),
            "changed": getattr(now, cap) != getattr(then, cap),
            "cut_now": result.current.by_cap[cap] if result.current else None,
            "cut_proposed": result.proposed.by_cap[cap],
        }
        for cap in CAPS_CHECKED
    ]
    examples = [
        {"check": c, "url": step_url(c.run_id, c.cut_at_seq)} for c in result.proposed.examples
    ]
    return {"result": result, "charts": charts, "examples": examples, "cap_rows": cap_rows}
