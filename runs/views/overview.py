"""/: runs, failures, cap hits and spend over a window as SVG bar charts; the slowest and most
failing tools; the latest cap hits; how many runs await approval now. Every number links to
the run list it counts."""

from urllib.parse import quote_plus, urlencode

from django.shortcuts import render
from django.urls import reverse

from ..models import RunStatus
from ..roles import SUPPORT, role_required
from ..selectors import stats
from ..selectors.approvals import awaiting_count
from .charts import bar_chart

TIME_FORMAT = "%Y-%m-%dT%H:%M"  # what the run list's since/until fields read (UTC)


def runs_url(**params) -> str:
    """The run list filtered by `params` (lists become repeated parameters)."""
    pairs = []
    for key, value in params.items():
        for v in value if isinstance(value, list | tuple) else [value]:
            if v not in (None, ""):
                pairs.append((key, v.strftime(TIME_FORMAT) if hasattr(v, "strftime") else v))
    return reverse("runs:list") + ("?" + urlencode(pairs) if pairs else "")


FAILURES = [str(s) for s in stats.FAILURE_STATUSES]


def _label(start, unit: str) -> str:
    return start.strftime("%H:%M") if unit == "hour" else start.strftime("%b %d")


@role_required(SUPPORT)
def overview(request):
    window = stats.WINDOWS.get(request.GET.get("window", "")) or stats.WINDOWS[stats.DEFAULT_WINDOW]
    buckets = stats.runs_over_time(window)
    since, until = buckets[0]["start"], buckets[-1]["end"]

    # Each bar links to its runs: runs_url(since=start, until=end, **filters), made from parts
    # shared by the four charts (30 days draw 120 bars).
    list_url = reverse("runs:list")
    labels = [_label(b["start"], window.unit) for b in buckets]
    spans = [
        f"since={quote_plus(b['start'].strftime(TIME_FORMAT))}"
        f"&until={quote_plus(b['end'].strftime(TIME_FORMAT))}"
        for b in buckets
    ]

    def series(title, key, **filters):
        tail = runs_url(**filters).partition("?")[2]
        tail = f"&{tail}" if tail else ""
        points = zip(labels, buckets, spans, strict=True)
        return bar_chart(
            title, [(label, b[key], f"{list_url}?{span}{tail}") for label, b, span in points]
        )

    charts = [
        (series("Runs", "runs"), runs_url(since=since, until=until)),
        (
            series("Failures", "failures", status=FAILURES),
            runs_url(since=since, until=until, status=FAILURES),
        ),
        (
            series("Cap hits", "cap_hits", cap_hit="any"),
            runs_url(since=since, until=until, cap_hit="any"),
        ),
        (
            series("Spend (USD)", "spend", sort="cost"),
            runs_url(since=since, until=until, sort="cost"),
        ),
    ]
    tools = stats.tool_stats(since=since)
    for item in tools["slowest"] + tools["failing"]:
        item["runs_url"] = runs_url(tool=item["name"], since=since, until=until)
        item["failed_url"] = runs_url(tool=item["name"], tool_failed="on", since=since)
    context = {
        "window": window,
        "windows": stats.WINDOWS.values(),
        "charts": charts,
        "tools": tools,
        "cap_hits": stats.recent_cap_hits(),
        "awaiting": awaiting_count(),
        "awaiting_url": runs_url(status=RunStatus.AWAITING_APPROVAL),
        "since": since,
        "until": until,
    }
    return render(request, "runs/overview.html", context)
