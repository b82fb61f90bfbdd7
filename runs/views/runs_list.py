"""/runs/: the search box and filters. The URL holds every filter, so a list is shareable and
works without JavaScript; with htmx, changing a filter swaps only the results and the address
bar is kept in step (HX-Push-Url)."""

from html import escape
from urllib.parse import quote

from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.safestring import SafeString, mark_safe
from django_htmx.http import HttpResponseClientRedirect, push_url

from ..agents import all_agents
from ..errors import InvalidInput
from ..models import Run, RunSource
from ..roles import SUPPORT, role_required
from ..selectors.runs import (
    DEFAULT_SORT,
    filters_for_intent,
    run_wall_ms,
    runs_page,
    search_intent,
)
from .formatting import duration_text, silence_text, usd_text
from .forms import ERROR_CODES, RunListForm

PAGE_SIZE = 50


DEFAULTS = {"sort": DEFAULT_SORT}


_ANY_ID = "00000000-0000-0000-0000-000000000000"


def run_rows(runs: list[Run]) -> list[SafeString]:
    """The list's table rows for runs read by `selectors.runs.runs_page`, as HTML. A page shows
    50 and every value is escaped here (html.escape, as the templates do): made in Python, a row
    costs a tenth of the same markup as template tags and filters (one URL prefix, no `{% url %}`
    per row)."""
    run_url = reverse("runs:run", args=[_ANY_ID])
    list_url = reverse("runs:list")
    return [_run_row(run, run_url, list_url) for run in runs]


def _run_row(run: Run, run_url: str, list_url: str) -> SafeString:
    run_id = str(run.id)
    status = escape(run.status)
    marks = ""
    silent = run.no_heartbeat_seconds
    if silent is not None:
        marks += f'<br><span class="error">{escape(silence_text(silent))}</span>'
    if run.cap_hit:
        marks += f'<br><span class="cap-hit">{escape(run.cap_hit)}</span>'
    elif run.error_code:
        marks += f'<br><span class="muted">{escape(run.error_code)}</span>'
    external = ' <span class="muted">(external)</span>' if run.source == RunSource.EXTERNAL else ""
    if run.user_ref:
        user_url = escape(f"{list_url}?q={quote(run.user_ref)}")  # as |urlencode
        user = f'<a href="{user_url}">{escape(run.user_ref)}</a>'
    else:
        user = '<span class="muted">—</span>'
    created = timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M:%S")
    return mark_safe(  # noqa: S308 (every value above is escaped)
        f'<tr>\n<td><a class="mono run-link" href="{escape(run_url.replace(_ANY_ID, run_id))}">'
        f"{run_id}</a></td>\n"
        f'<td><span class="status status-{status}">{status}</span>{marks}</td>\n'
        f'<td class="agent">{escape(run.agent)}{external}</td>\n'
        f'<td class="user">{user}</td>\n'
        f'<td class="preview">{escape(run.input_preview or "")}</td>\n'
        f'<td class="nowrap">{created}</td>\n'
        f'<td class="num">{escape(duration_text(run_wall_ms(run)))}</td>\n'
        f'<td class="num">{run.tool_calls}</td>\n'
        f'<td class="num">{escape(usd_text(run.cost_usd))}</td>\n</tr>\n'
    )


def canonical_query(params: QueryDict, *, drop=("cursor",)) -> QueryDict:
    """`params` without empty or default values (and without `drop`), for clean, shareable
    URLs."""
    clean = QueryDict(mutable=True)
    for key in params:
        if key in drop:
            continue
        values = [v for v in params.getlist(key) if v.strip() and v != DEFAULTS.get(key)]
        if values:
            clean.setlist(key, values)
    return clean


def is_partial(request) -> bool:
    """An htmx request that wants a fragment (a history restore wants the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


@role_required(SUPPORT)
def run_list(request):
    form = RunListForm(request.GET)
    form.is_valid()  # invalid fields are shown and ignored; the rest still filter
    intent = search_intent(form.cleaned_data.get("q", ""))
    if intent.kind == "run":
        url = reverse("runs:run", args=[intent.run.id])
        return HttpResponseClientRedirect(url) if is_partial(request) else redirect(url)

    filters = filters_for_intent(intent, form.filters())
    problem = None
    try:
        runs, next_cursor = runs_page(
            filters=filters,
            sort=form.sort_key,
            cursor=form.cleaned_data.get("cursor", ""),
            limit=PAGE_SIZE,
        )
    except InvalidInput as exc:
        problem = exc.message
        runs, next_cursor = runs_page(filters=filters, sort=form.sort_key, limit=PAGE_SIZE)

    query = canonical_query(request.GET)
    next_query = None
    if next_cursor:
        next_query = query.copy()
        next_query["cursor"] = next_cursor
    context = {
        "form": form,
        "intent": intent,
        "runs": run_rows(runs),
        "problem": problem,
        "is_later_page": bool(form.cleaned_data.get("cursor")) and problem is None,
        "first_page_url": f"{request.path}?{query.urlencode()}" if query else request.path,
        "next_url": f"{request.path}?{next_query.urlencode()}" if next_query else None,
        "agent_names": [spec.name for spec in all_agents()],
        "error_codes": ERROR_CODES,
        "page_size": PAGE_SIZE,
    }
    if is_partial(request):
        response = render(request, "runs/runs_list.html#results", context)
        # The address bar shows this list's clean URL (empty fields dropped, a page kept).
        shown = canonical_query(request.GET, drop=())
        push_url(response, f"{request.path}?{shown.urlencode()}" if shown else request.path)
    else:
        response = render(request, "runs/runs_list.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response
