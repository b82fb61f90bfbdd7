"""/caps/ (admin): the cap policy per scope with its audit trail, and a backtest of proposed values
against recent runs before they are saved."""

from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..agents import all_agents, get_agent
from ..engine.approvals import EXTENSION_FIELD, TOOLS_FIELD, resolve_approval_policy
from ..engine.caps import (
    BY_NAME,
    ENDING,
    SPEND,
    SPEND_WINDOW,
    TABLE,
    TOOL_CALLS,
    TOOL_TIMEOUT,
    TOOL_TIMEOUTS,
    USD,
    WALL,
)
from ..engine.tools import all_tools
from ..engine.windows import PERIODS
from ..errors import AppError
from ..models import GLOBAL_SCOPE
from ..roles import ADMIN, role_required
from ..selectors import caps as caps_read
from ..selectors.windows import windows_state
from ..services import caps as caps_write
from ..services.windows import AUDIT_SCOPE
from .charts import histogram
from .forms import CapPolicyForm
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
    names |= set((stored or {}).get(TOOLS_FIELD) or ())
    return {name: declared.get(name) for name in names}


def _form(scope: str, policies: dict, data=None) -> CapPolicyForm:
    stored = policies.get(scope)
    inherited = None
    if scope != GLOBAL_SCOPE:
        inherited = caps_read.effective_caps({GLOBAL_SCOPE: policies.get(GLOBAL_SCOPE)}, scope)
    initial = None
    if data is None:
        version = caps_read.cap_policy_last_change_id(scope=scope)
        initial = CapPolicyForm.initial_from(stored, version)
    approvals = None
    if scope != GLOBAL_SCOPE:
        approvals = resolve_approval_policy(policies.get(GLOBAL_SCOPE), None)
    return CapPolicyForm(
        data,
        initial=initial,
        scope=scope,
        inherited=inherited,
        tools=_tools_for(scope, stored),
        approvals=approvals,
    )


def _caps_url(scope: str) -> str:
    return f"{reverse('runs:caps')}?{urlencode({'scope': scope})}"


def _check_scope(scope: str, policies: dict) -> None:
    """404 unless `scope` is global, a registered agent, or an override still stored."""
    if scope != GLOBAL_SCOPE and get_agent(scope) is None and scope not in policies:
        raise Http404(f"no agent named {scope!r} is registered here")


def _render(request, scope, form: CapPolicyForm, *, status=200, result=None, backtest_tried=False):
    overview = caps_read.caps_overview()
    registered = [spec.name for spec in all_agents()]
    overridden = {p.scope for p in overview["overrides"]}
    changes = caps_read.cap_policy_changes(scope=scope, limit=AUDIT_SHOWN)
    window_changes = caps_read.cap_policy_changes(scope=AUDIT_SCOPE, limit=AUDIT_SHOWN)
    context = {
        "scope": scope,
        "form": form,
        "editable": scope == GLOBAL_SCOPE or scope in registered,
        "has_override": scope in overridden,
        "agents": _agent_rows(registered, overview),
        "cap_labels": [cap.label for cap in TABLE],
        "stale_scopes": sorted(overridden - set(registered)),
        "global_policy": overview["global"],
        "changes": [(c, _diff_rows(c, scope)) for c in changes],
        "tool_timeout_bounds": f"{TOOL_TIMEOUT.bounds}, per tool",
        "backtest_tried": backtest_tried,
        "windows": windows_state(),
        "window_changes": window_changes,
        "window_periods": PERIODS,
        "agent_names": registered,
        **(_backtest_context(result) if result else {}),
    }
    return render(request, "runs/caps.html", context, status=status)


def _agent_rows(registered: list[str], overview: dict) -> list[dict]:
    """Each registered agent's effective caps, marking the values its override sets."""
    overrides = {p.scope: p for p in overview["overrides"]}
    rows = []
    for name in registered:
        effective = overview["effective"].get(name)
        own = overrides.get(name)
        cells = [
            {
                "value": cap.show(effective[cap]) if effective is not None else "off",
                "own": own is not None and own.values.get(cap.name) is not None,
            }
            for cap in TABLE
        ]
        rows.append(
            {
                "name": name,
                "overridden": own is not None,
                "valid": effective is not None,
                "cells": cells,
            }
        )
    return rows


def _shown(value, field: str, empty: str) -> str:
    """An audit trail value: `field` is a cap's name or `tool_timeouts.NAME`."""
    cap = TOOL_TIMEOUT if field.startswith(f"{TOOL_TIMEOUTS}.") else BY_NAME.get(field)
    if field.startswith(f"{EXTENSION_FIELD}."):
        cap = BY_NAME.get(field.partition(".")[2])
    if cap is None or value is None:
        return empty if value is None else str(value)
    return cap.show(Decimal(str(value)) if cap.kind == USD else value, empty)


def _diff_rows(change, scope: str) -> list[tuple[str, str, str]]:
    empty = "off" if scope == GLOBAL_SCOPE else "inherit"
    return [
        (field, _shown(old, field, empty), _shown(new, field, empty))
        for field, old, new in caps_read.change_diff(change)
    ]


@role_required(ADMIN)
def caps_page(request):
    """GET: the scope's policy. POST: save it (then back to the page), or show what is wrong."""
    scope = _scope_of(request)
    policies = caps_read.cap_policy_dicts()
    _check_scope(scope, policies)
    if request.method != "POST":
        return _render(request, scope, _form(scope, policies))
    form = _form(scope, policies, data=request.POST)
    if form.is_valid():
        try:
            saved = caps_write.cap_policy_set(
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
        caps_write.cap_policy_remove(
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
    policies = caps_read.cap_policy_dicts()
    _check_scope(scope, policies)
    form = _form(scope, policies, data=request.POST)
    result = None
    if form.is_valid():
        result = caps_read.caps_backtest(
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
            current=now[TOOL_CALLS],
            proposed=then[TOOL_CALLS],
        ),
        histogram(
            "Spend per run (USD)",
            [c.spend_usd for c in checks],
            unit="$",
            current=now[SPEND],
            proposed=then[SPEND],
        ),
        histogram(
            "Duration per run (seconds)",
            [c.duration_s for c in checks],
            unit="s",
            current=now[WALL],
            proposed=then[WALL],
        ),
    ]
    cap_rows = [
        {
            "cap": cap.name,
            "now": cap.show(now[cap]),
            "proposed": cap.show(then[cap]),
            "changed": now[cap] != then[cap],
            "cut_now": result.current.by_cap[cap.name] if result.current else None,
            "cut_proposed": result.proposed.by_cap[cap.name],
        }
        for cap in ENDING
    ]
    if result.proposed.by_cap[SPEND_WINDOW] or (
        result.current and result.current.by_cap[SPEND_WINDOW]
    ):
        cap_rows.append(
            {
                "cap": "spend windows",
                "now": "in force",
                "proposed": "in force",
                "changed": False,
                "cut_now": result.current.by_cap[SPEND_WINDOW] if result.current else None,
                "cut_proposed": result.proposed.by_cap[SPEND_WINDOW],
            }
        )
    examples = [
        {
            "check": c,
            "url": step_url(c.run_id, c.cut_at_seq)
            if c.cut_at_seq is not None
            else reverse("runs:run", args=[c.run_id]),
        }
        for c in result.proposed.examples
    ]
    return {"result": result, "charts": charts, "examples": examples, "cap_rows": cap_rows}
