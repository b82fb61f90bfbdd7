"""Forms of the pages: the runs list's search and filters (GET, so the URL holds them) and the
start-a-run form of the agents page."""

import json
from datetime import UTC, datetime, timedelta

from django import forms
from django.utils import timezone

from .agents import all_agents
from .models import RunSource, RunStatus
from .run_list import DEFAULT_SORT, SORTS
from .selectors import RunFilters

CAPS = ("max_tool_calls", "max_cost_usd", "max_wall_seconds", "max_model_calls", "max_tokens")
ERROR_CODES = (
    "budget_exceeded", "agent_error", "provider_error", "cancelled", "worker_lost",
    "invalid_input", "unknown_agent", "internal_error",
)  # fmt: skip
PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}  # fmt: skip
PERIOD_LABELS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days",
                 "30d": "Last 30 days"}  # fmt: skip
# Filter fields that narrow the list (everything but the search box, sort and cursor).
FILTER_FIELDS = (
    "status", "agent", "period", "since", "until", "cost_min", "cost_max", "cap_hit",
    "error_code", "tag", "source", "tool", "tool_failed",
)  # fmt: skip


class TimeField(forms.DateTimeField):
    """A time as typed in a datetime-local input (UTC: the pages show UTC) or ISO 8601."""

    input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]

    def to_python(self, value):
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip())
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except ValueError:
                pass
        result = super().to_python(value)
        if result is not None and timezone.is_naive(result):
            result = result.replace(tzinfo=UTC)
        return result


class RunListForm(forms.Form):
    q = forms.CharField(required=False, max_length=500, strip=True)
    status = forms.MultipleChoiceField(required=False, choices=RunStatus.choices)
    agent = forms.CharField(required=False, max_length=100)
    period = forms.ChoiceField(required=False, choices=[("", "Any time"), *PERIOD_LABELS.items()])
    since = TimeField(required=False)
    until = TimeField(required=False)
    cost_min = forms.DecimalField(required=False, min_value=0, max_digits=14, decimal_places=6)
    cost_max = forms.DecimalField(required=False, min_value=0, max_digits=14, decimal_places=6)
    cap_hit = forms.ChoiceField(
        required=False, choices=[("", "—"), ("any", "Any cap"), *((c, c) for c in CAPS)]
    )
    error_code = forms.CharField(required=False, max_length=40)
    tag = forms.CharField(required=False, max_length=100)
    source = forms.ChoiceField(required=False, choices=[("", "Any"), *RunSource.choices])
    tool = forms.CharField(required=False, max_length=200)
    tool_failed = forms.BooleanField(required=False)
    sort = forms.ChoiceField(required=False, choices=[(s.key, s.label) for s in SORTS.values()])
    cursor = forms.CharField(required=False, max_length=400)

    def filters(self, now=None) -> RunFilters:
        """RunFilters from the valid fields (call after is_valid(); invalid fields are ignored)."""
        data = {name: value for name, value in self.cleaned_data.items() if name not in self.errors}
        since = data.get("since")
        period = PERIODS.get(data.get("period") or "")
        if period:
            relative = (now or timezone.now()) - period
            since = max(since, relative) if since else relative
        return RunFilters(
            statuses=tuple(data.get("status") or ()),
            agent=data.get("agent") or "",
            since=since,
            until=data.get("until"),
            cost_min=data.get("cost_min"),
            cost_max=data.get("cost_max"),
            cap_hit="" if data.get("cap_hit") == "any" else data.get("cap_hit") or "",
            capped=data.get("cap_hit") == "any",
            error_code=data.get("error_code") or "",
            tag=data.get("tag") or "",
            source=data.get("source") or "",
            tool=data.get("tool") or "",
            tool_failed=bool(data.get("tool_failed")),
        )

    @property
    def sort_key(self) -> str:
        return (self.cleaned_data.get("sort") if self.is_bound else "") or DEFAULT_SORT

    def active_filters(self) -> bool:
        return any(self.data.get(name) for name in FILTER_FIELDS)


def _agent_choices():
    return [(spec.name, spec.name) for spec in all_agents()]


class StartRunForm(forms.Form):
    agent = forms.ChoiceField(choices=_agent_choices)
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        initial='{"question": "Where is my order A-1001?"}',
        help_text='JSON; the demo agents take {"question": "..."}.',
    )
    user_ref = forms.CharField(required=False, max_length=200, label="User ref")
    session_ref = forms.CharField(required=False, max_length=200, label="Session ref")
    tags = forms.CharField(required=False, max_length=500, help_text="Comma-separated.")
    max_tool_calls = forms.IntegerField(required=False, min_value=0, label="Max tool calls")
    max_cost_usd = forms.DecimalField(
        required=False, min_value=0, decimal_places=4, label="Max cost (USD)"
    )
    max_wall_seconds = forms.IntegerField(required=False, min_value=1, label="Max wall seconds")

    def clean_input(self):
        try:
            return json.loads(self.cleaned_data["input"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def clean_tags(self):
        raw = self.cleaned_data.get("tags") or ""
        return [t.strip() for t in raw.split(",") if t.strip()][:20]

    def caps(self) -> dict:
        """Caps the starter asked for (only the fields filled in)."""
        names = ("max_tool_calls", "max_cost_usd", "max_wall_seconds")
        return {n: self.cleaned_data[n] for n in names if self.cleaned_data.get(n) is not None}
