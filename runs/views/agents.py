"""/agents/: the registered agents with their caps and recent numbers, and (engineer, admin) a
form that starts a run and lands on its live page."""

from datetime import timedelta

from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ..agents import all_agents
from ..engine.caps import TABLE, TOOL_TIMEOUT
from ..engine.tools import UnknownToolError, get_tool
from ..errors import AppError
from ..roles import ADMIN, ENGINEER, SUPPORT, has_role, role_required
from ..selectors import stats
from ..selectors.caps import effective_caps_of
from ..services.runs import run_create
from .forms import StartRunForm
from .submission import start_once

STATS_DAYS = 7


def _page(request, form: StartRunForm | None, status: int = 200):
    specs = all_agents()
    names = [spec.name for spec in specs]
    numbers = stats.agent_run_stats(since=timezone.now() - timedelta(days=STATS_DAYS))
    caps = effective_caps_of(names)
    agents = [
        {
            "spec": spec,
            "caps": _cap_rows(caps.get(spec.name), spec.tools),
            "stats": numbers.get(spec.name),
            "recent": stats.recent_runs_of(spec.name),
        }
        for spec in specs
    ]
    others = sorted((name, row) for name, row in numbers.items() if name not in set(names))
    context = {"agents": agents, "others": others, "form": form, "stats_days": STATS_DAYS}
    return render(request, "runs/agents.html", context, status=status)


def _cap_rows(caps, tools=()) -> list[tuple[str, str]] | None:
    """(label, value) of each cap an agent's runs get (an optional cap only when it is on). The
    tool timeout is shown per tool for an agent that lists its tools: a tool's own timeout or
    the policy's per-tool one wins over the cap."""
    if caps is None:
        return None
    rows = []
    for cap in TABLE:
        if cap is TOOL_TIMEOUT and tools:
            each = [f"{name} {cap.show(_timeout(caps, name))}" for name in tools]
            rows.append(("Tool timeouts", ", ".join(each)))
        elif caps[cap] is not None or not cap.optional:
            rows.append((cap.label, cap.show(caps[cap], "no limit")))
    return rows


def _timeout(caps, tool_name: str):
    try:
        declared = get_tool(tool_name).timeout
    except UnknownToolError:
        declared = None
    seconds = caps.timeout_for(tool_name, declared)
    return int(seconds) if float(seconds).is_integer() else seconds


@role_required(SUPPORT)
def agent_list(request):
    form = None
    if has_role(request.user, ENGINEER):
        form = StartRunForm(initial={"agent": request.GET.get("agent", "demo-support")})
    return _page(request, form)


@require_POST
@role_required(ENGINEER)
def run_start(request):
    form = StartRunForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data

        def create():
            return run_create(
                agent=data["agent"],
                input=data["input"],
                caps=form.caps(),
                may_raise_caps=has_role(request.user, ADMIN),
                user_ref=data["user_ref"],
                session_ref=data["session_ref"],
                tags=data["tags"],
                created_by=request.user,
            )

        try:
            run = start_once(request, operation="page_start", create=create)
        except AppError as exc:
            form.add_cap_error((exc.details or {}).get("cap"), exc.message)
        else:
            return redirect("runs:run", run_id=run.id)
    return _page(request, form, status=422)
