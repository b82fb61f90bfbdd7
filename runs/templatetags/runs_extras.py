"""Template filters for run pages. Every one returns plain text: autoescape still applies, so
agent-written content is never rendered as HTML."""

import json
from decimal import Decimal

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..engine.caps import SECONDS, USD, cap_named
from ..selectors.runs import run_wall_ms
from ..views.formatting import duration_text, silence_text, usd_text
from ..views.submission import FIELD, new_token
from ..views.transcript import fold_html

register = template.Library()


@register.simple_tag
def submission_field():
    """A hidden one-time token: a form that starts a run, submitted twice, starts it once."""
    return format_html('<input type="hidden" name="{}" value="{}">', FIELD, new_token())


@register.filter
def pretty_json(value) -> str:
    """Indented JSON as text (a string shown as itself)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def percent_of(used, limit) -> int:
    """used/limit as a whole percentage for a bar, 0..100; 0 when there is no limit."""
    try:
        used, limit = Decimal(str(used or 0)), Decimal(str(limit))
    except (ArithmeticError, ValueError, TypeError):
        return 0
    if limit <= 0:
        return 100 if used > 0 else 0
    return int(min(Decimal(100), used * 100 / limit))


@register.filter
def duration(ms) -> str:
    return duration_text(ms)


register.filter("run_duration_ms", run_wall_ms)  # the run's wall time so far, or at its end


@register.filter
def usd(value) -> str:
    return usd_text(value)


@register.filter
def cap_amount(value, cap) -> str:
    """A cap's used or limit value in its unit: dollars, seconds, or a count. `cap` is an entry
    of the cap table or its name."""
    if value is None:
        return "no limit"
    kind = (cap if hasattr(cap, "kind") else cap_named(cap)).kind
    if kind == USD:
        return usd(value)
    if kind == SECONDS:
        return f"{Decimal(str(value)).normalize():f} s"
    return str(value)


@register.filter
def getlist(query_dict, key) -> list:
    """All values of `key` in a QueryDict (a form's submitted data)."""
    try:
        return query_dict.getlist(key)
    except AttributeError:
        return []


@register.filter
def time_after(value, earlier) -> str:
    """A time (UTC) beside an earlier one it follows: "H:M:S" on the same day, with the date
    when the day is another (a run that ran past midnight, or a time out of step)."""
    if value is None:
        return ""
    if earlier is not None and value.date() == earlier.date():
        return f"{value:%H:%M:%S}"
    return f"{value:%Y-%m-%d %H:%M:%S}"


@register.filter
def fold(text, fold_id="") -> str:
    """A runs.views.transcript.Text that folds when long, as escaped HTML; `fold_id` keeps the
    fold as the reader left it across live updates."""
    return mark_safe(fold_html(text, fold_id))  # noqa: S308 (fold_html escapes every value)


@register.filter
def silence(seconds) -> str:
    return silence_text(seconds)


@register.filter
def minutes_text(delta) -> str:
    """A timedelta as whole minutes for a reader: "15 minutes", "1 minute"."""
    try:
        minutes = max(1, round(delta.total_seconds() / 60))
    except AttributeError:
        return ""
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
