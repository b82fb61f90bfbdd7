"""/runs/: the search box and filters. The URL holds every filter, so a list is shareable and
works without JavaScript; with htmx, changing a filter swaps only the results and the address
bar is kept in step (HX-Push-Url)."""

from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect, push_url

from ..agents import all_agents
from ..errors import InvalidInput
from ..roles import SUPPORT, role_required
from ..selectors.runs import DEFAULT_SORT, filters_for_intent, runs_page, search_intent
from .forms import ERROR_CODES, RunListForm

PAGE_SIZE = 50


DEFAULTS = {"sort": DEFAULT_SORT}


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
        "runs": runs,
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
