"""Template filters for run pages. Every one returns plain text: autoescape still applies, so
agent-written content is never rendered as HTML."""

import json
from decimal import Decimal

from django import template

register = template.Library()


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
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    return f"{ms / 1000:.2f} s"
