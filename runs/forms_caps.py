"""Forms of the caps and prices pages. The caps form only collects what was typed: every value
is checked by runs.caps.clean_policy, so the page and the API give the same message per field."""

from datetime import UTC, datetime

from django import forms

from . import caps
from .caps_backtest import DEFAULT_BACKTEST_RUNS
from .forms import TimeField
from .limits import Caps, resolve_caps
from .models import GLOBAL_SCOPE

LABELS = {
    "max_tool_calls": "Max tool calls",
    "max_cost_usd": "Max spend (USD)",
    "max_wall_seconds": "Max wall clock (seconds)",
    "tool_timeout_seconds": "Tool timeout (seconds)",
    "max_model_calls": "Max model calls",
    "max_tokens": "Max tokens",
}
TOOL_PREFIX = "tool__"
LAST_N_CHOICES = [(n, f"last {n}") for n in (20, 50, DEFAULT_BACKTEST_RUNS, 200, 500)]


class CapPolicyForm(forms.Form):
    """One scope's policy. `inherited` (agent scopes) are the global values an empty field
    falls back to; `tools` are the tools that may get their own timeout (name → the timeout
    the tool declared, or None)."""

    version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    last_n = forms.TypedChoiceField(
        choices=LAST_N_CHOICES, coerce=int, initial=DEFAULT_BACKTEST_RUNS, label="Backtest on the"
    )

    def __init__(self, *args, scope: str, inherited: Caps | None, tools: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.scope = scope
        self.policy: dict | None = None
        for name in caps.SCALAR_FIELDS:
            self.fields[name] = forms.CharField(
                required=False,
                label=LABELS[name],
                help_text=caps.BOUNDS[name],
                widget=forms.TextInput(
                    attrs={
                        "inputmode": "decimal" if name == "max_cost_usd" else "numeric",
                        "placeholder": self._placeholder(name, inherited),
                        "size": 12,
                    }
                ),
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

    def _placeholder(self, name: str, inherited: Caps | None) -> str:
        if inherited is None:
            return "off" if name in caps.OPTIONAL_FIELDS else ""
        value = inherited.to_dict()[name]
        return "inherits: off" if value is None else f"inherits {value}"

    def tool_fields(self):
        return [self[name] for name in self.fields if name.startswith(TOOL_PREFIX)]

    def cap_fields(self):
        return [self[name] for name in caps.SCALAR_FIELDS]

    def clean(self):
        data = super().clean()
        values = {name: data.get(name) for name in caps.SCALAR_FIELDS}
        values["tool_timeouts"] = {
            name[len(TOOL_PREFIX) :]: data.get(name)
            for name in self.fields
            if name.startswith(TOOL_PREFIX)
        }
        try:
            self.policy = caps.clean_policy(self.scope, values)
        except caps.CapPolicyInvalid as exc:
            for field, message in exc.errors.items():
                name = field.replace("tool_timeouts.", TOOL_PREFIX, 1)
                self.add_error(name if name in self.fields else None, f"{message}")
        return data

    @staticmethod
    def initial_from(policy: dict | None, version: int) -> dict:
        """Initial values from a stored policy (None: no override yet)."""
        values = caps.policy_json(policy) or {}
        initial = {"version": version, "last_n": DEFAULT_BACKTEST_RUNS}
        for name in caps.SCALAR_FIELDS:
            if values.get(name) is not None:
                initial[name] = str(values[name])
        for tool, seconds in (values.get("tool_timeouts") or {}).items():
            initial[TOOL_PREFIX + tool] = str(seconds)
        return initial

    def proposal(self, global_policy: dict | None) -> dict:
        """Backtest input (call after is_valid()): every cap this scope's runs would get, so a
        backtest of it equals POST /api/v1/caps/backtest with it as `caps`. An agent's empty
        fields take `global_policy`'s values."""
        if self.scope == GLOBAL_SCOPE:
            values = dict(self.policy)
        else:
            values = resolve_caps(global_policy, self.policy, {}, may_raise=True).to_dict()
        return {name: values[name] for name in caps.SCALAR_FIELDS}


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
