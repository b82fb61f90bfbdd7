"""Forms of the pages: the runs list's search and filters (GET, so the URL holds them), the
start-a-run form of the agents page, the cap policy editor and the prices form.

Cap values are only collected here; each is checked against the cap table (runs.engine.caps), so
a page and the API give the same message for the same value.
"""

import json
from datetime import UTC, datetime, timedelta

from django import forms
from django.utils import timezone

from ..agents import all_agents
from ..engine.approvals import (
    DEFAULT_TIMEOUT_S,
    EXTENSION_FIELD,
    MAX_TIMEOUT_S,
    ON_CAP_FIELD,
    TIMEOUT_FIELD,
    TOOLS_FIELD,
)
from ..engine.caps import ASKABLE, PER_RUN, REPLAY_CAPS, TABLE, USD, Caps, resolve_caps
from ..engine.policy import CapPolicyInvalid, clean_policy, policy_json
from ..engine.tools import all_tools
from ..models import GLOBAL_SCOPE, RunSource, RunStatus
from ..selectors.caps import DEFAULT_BACKTEST_RUNS
from ..selectors.runs import DEFAULT_SORT, SORTS, RunFilters
from ..services.events import MAX_JSON_DEPTH, nesting_depth

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
        required=False,
        choices=[("", "—"), ("any", "Any cap"), *((c.name, c.name) for c in PER_RUN)],
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for cap in REPLAY_CAPS:
            self.fields[cap.name] = cap_field(cap, placeholder="the agent's")

    def clean_input(self):
        deep = forms.ValidationError(f"Nested more than {MAX_JSON_DEPTH} levels deep.")
        try:
            value = json.loads(self.cleaned_data["input"])
        except RecursionError:
            raise deep from None
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if nesting_depth(value) > MAX_JSON_DEPTH:
            raise deep
        return value

    def clean_tags(self):
        raw = self.cleaned_data.get("tags") or ""
        return [t.strip() for t in raw.split(",") if t.strip()][:20]

    def caps(self) -> dict:
        """Caps the starter asked for (only the fields filled in), as typed: `run_create`
        checks them against the cap table."""
        return {
            cap.name: self.cleaned_data[cap.name].strip()
            for cap in REPLAY_CAPS
            if (self.cleaned_data.get(cap.name) or "").strip()
        }

    def add_cap_error(self, field: str | None, message: str) -> None:
        """Show a refused cap beside its field (the whole form's error otherwise)."""
        self.add_error(field if field in self.fields else None, message)


def cap_field(cap, *, placeholder: str = "", help_text: str = "") -> forms.CharField:
    """A text field for one cap of the table: its label, its bounds as help, the right keypad."""
    return forms.CharField(
        required=False,
        label=cap.label,
        help_text=help_text,
        widget=forms.TextInput(
            attrs={
                "inputmode": "decimal" if cap.kind == USD else "numeric",
                "placeholder": placeholder,
                "size": 12,
            }
        ),
    )


TOOL_PREFIX = "tool__"
EXTENSION_PREFIX = "extend__"
LAST_N_CHOICES = [(n, f"last {n}") for n in (20, 50, DEFAULT_BACKTEST_RUNS, 200, 500)]


class CapPolicyForm(forms.Form):
    """One scope's policy. `inherited` (agent scopes) are the global values an empty field
    falls back to; `tools` are the tools that may get their own timeout (name → the timeout
    the tool declared, or None)."""

    version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    last_n = forms.TypedChoiceField(
        choices=LAST_N_CHOICES, coerce=int, initial=DEFAULT_BACKTEST_RUNS, label="Backtest on the"
    )

    def __init__(
        self, *args, scope: str, inherited: Caps | None, tools: dict, approvals=None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.scope = scope
        self.policy: dict | None = None
        self._approval_fields(tools, approvals)
        for cap in TABLE:
            self.fields[cap.name] = cap_field(
                cap, placeholder=self._placeholder(cap, inherited), help_text=cap.bounds
            )
        for tool, declared in sorted(tools.items()):
            fallback = f"{declared:g} s, as the tool declares" if declared else "the tool timeout"
            self.fields[TOOL_PREFIX + tool] = forms.CharField(
                required=False,
                label=tool,
                widget=forms.TextInput(
                    attrs={"inputmode": "numeric", "placeholder": f"{fallback}", "size": 12}
                ),
            )

    def _placeholder(self, cap, inherited: Caps | None) -> str:
        if inherited is None:
            return "off" if cap.optional else ""
        value = inherited.to_dict()[cap.name]
        return "inherits: off" if value is None else f"inherits {value}"

    def _approval_fields(self, tools: dict, inherited) -> None:
        """on_cap, the timeout, a ceiling per askable cap and the tools that need approval.
        `inherited`: the global policy's values an agent's empty field falls back to."""
        inherit = [("", f"inherit ({inherited.on_cap})")] if inherited else []
        self.fields[ON_CAP_FIELD] = forms.ChoiceField(
            required=False,
            label="When a cap is reached",
            choices=[*inherit, ("stop", "stop the run"), ("ask", "ask a person")],
        )
        fallback = inherited.timeout_s if inherited else DEFAULT_TIMEOUT_S
        self.fields[TIMEOUT_FIELD] = forms.CharField(
            required=False,
            label="Approval timeout (seconds)",
            help_text=f"whole seconds from 1 to {MAX_TIMEOUT_S}; then a cap stops the run and "
            "a tool call is denied",
            widget=forms.TextInput(
                attrs={"inputmode": "numeric", "size": 12, "placeholder": f"{fallback}"}
            ),
        )
        for cap in ASKABLE:
            ceiling = inherited.max_extension.get(cap.name) if inherited else None
            self.fields[EXTENSION_PREFIX + cap.name] = cap_field(
                cap,
                placeholder=f"inherits {cap.show(ceiling)}" if ceiling is not None else "none",
                help_text="the most a person may extend it to; empty: it cannot be extended",
            )
            # Named by the cap's name: its label belongs to the cap's own field above.
            self.fields[EXTENSION_PREFIX + cap.name].label = f"Ceiling of {cap.name}"
        self.fields[TOOLS_FIELD] = forms.MultipleChoiceField(
            required=False,
            label="Tools whose every call waits for a person",
            choices=[(name, name) for name in sorted(tools)],
            widget=forms.CheckboxSelectMultiple,
        )

    def approval_fields(self):
        names = [ON_CAP_FIELD, TIMEOUT_FIELD, *(EXTENSION_PREFIX + c.name for c in ASKABLE)]
        return [self[name] for name in names]

    def tool_fields(self):
        return [self[name] for name in self.fields if name.startswith(TOOL_PREFIX)]

    def cap_fields(self):
        return [self[cap.name] for cap in TABLE]

    def clean(self):
        data = super().clean()
        values = {cap.name: data.get(cap.name) for cap in TABLE}
        values["tool_timeouts"] = {
            name[len(TOOL_PREFIX) :]: data.get(name)
            for name in self.fields
            if name.startswith(TOOL_PREFIX)
        }
        values[ON_CAP_FIELD] = data.get(ON_CAP_FIELD)
        values[TIMEOUT_FIELD] = data.get(TIMEOUT_FIELD)
        values[EXTENSION_FIELD] = {c.name: data.get(EXTENSION_PREFIX + c.name) for c in ASKABLE}
        values[TOOLS_FIELD] = list(data.get(TOOLS_FIELD) or [])
        try:
            self.policy = clean_policy(
                values, complete=self.scope == GLOBAL_SCOPE, tools={t.name for t in all_tools()}
            )
        except CapPolicyInvalid as exc:
            for field, message in exc.errors.items():
                name = field.replace("tool_timeouts.", TOOL_PREFIX, 1)
                name = name.replace(f"{EXTENSION_FIELD}.", EXTENSION_PREFIX, 1)
                self.add_error(name if name in self.fields else None, f"{message}")
        return data

    @staticmethod
    def initial_from(policy: dict | None, version: int) -> dict:
        """Initial values from a stored policy (None: no override yet)."""
        values = policy_json(policy) or {}
        initial = {"version": version, "last_n": DEFAULT_BACKTEST_RUNS}
        for cap in TABLE:
            if values.get(cap.name) is not None:
                initial[cap.name] = str(values[cap.name])
        for tool, seconds in (values.get("tool_timeouts") or {}).items():
            initial[TOOL_PREFIX + tool] = str(seconds)
        initial[ON_CAP_FIELD] = values.get(ON_CAP_FIELD) or ""
        if values.get(TIMEOUT_FIELD) is not None:
            initial[TIMEOUT_FIELD] = str(values[TIMEOUT_FIELD])
        for cap, ceiling in (values.get(EXTENSION_FIELD) or {}).items():
            initial[EXTENSION_PREFIX + cap] = str(ceiling)
        initial[TOOLS_FIELD] = list(values.get(TOOLS_FIELD) or [])
        return initial

    def proposal(self, global_policy: dict | None) -> dict:
        """Backtest input (call after is_valid()): every cap this scope's runs would get, so a
        backtest of it equals POST /api/v1/caps/backtest with it as `caps`. An agent's empty
        fields take `global_policy`'s values."""
        if self.scope == GLOBAL_SCOPE:
            values = dict(self.policy)
        else:
            values = resolve_caps(global_policy, self.policy, {}, may_raise=True).to_dict()
        return {cap.name: values[cap.name] for cap in TABLE}


class PriceForm(forms.Form):
    model = forms.CharField(max_length=200, label="Model")
    input_per_mtok = forms.DecimalField(
        min_value=0, max_digits=12, decimal_places=4, label="Input, USD per 1M tokens"
    )
    output_per_mtok = forms.DecimalField(
        min_value=0, max_digits=12, decimal_places=4, label="Output, USD per 1M tokens"
    )
    effective_from = TimeField(
        required=False,
        label="In effect from (UTC)",
        help_text="Empty: now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_effective_from(self):
        value = self.cleaned_data.get("effective_from")
        return value.astimezone(UTC) if isinstance(value, datetime) else value
