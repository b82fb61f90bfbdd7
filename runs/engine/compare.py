"""Two runs side by side: steps aligned, the first divergence, and what differs in outcome,
output, cost, tool calls and time. Plain Python over step dicts (Event field names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from difflib import SequenceMatcher
from typing import Any

from .budget import COUNTERS

# What makes two steps "the same step with the same content". Ids, times, costs and provider
# bookkeeping differ between any two executions and say nothing about behaviour.
COMPARED_FIELDS = ("kind", "name", "status", "input", "output", "error")
IGNORED_KEYS = frozenset({"id", "tool_call_id", "raw", "recorded_index", "traceback", "cost_usd"})
RUN_FIGURES = COUNTERS


@dataclass
class StepPair:
    """One row of the side-by-side view; `left` or `right` is None where a run has no match."""

    left: dict | None
    right: dict | None
    differs: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.differs


@dataclass
class Comparison:
    pairs: list[StepPair]
    first_divergence: int | None  # index into pairs, None when every step matches
    outcome: dict  # status, error code, output equal?
    figures: dict  # name -> {"left", "right", "delta"}

    @property
    def diverged_at(self) -> tuple[int | None, int | None] | None:
        """The seq of the first diverging step in each run, or None."""
        if self.first_divergence is None:
            return None
        pair = self.pairs[self.first_divergence]
        return (
            pair.left["seq"] if pair.left else None,
            pair.right["seq"] if pair.right else None,
        )


def normal(value: Any) -> Any:
    """`value` without the keys that differ between executions of the same behaviour."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if k not in IGNORED_KEYS}
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


def step_differences(left: dict, right: dict) -> list[str]:
    return [f for f in COMPARED_FIELDS if normal(left.get(f)) != normal(right.get(f))]


def _signature(step: dict) -> tuple:
    return step.get("kind"), step.get("name")


def align(left: list[dict], right: list[dict]) -> list[StepPair]:
    """Pair steps by kind and name in order; extra or missing steps stand alone."""
    matcher = SequenceMatcher(
        a=[_signature(s) for s in left], b=[_signature(s) for s in right], autojunk=False
    )
    pairs: list[StepPair] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            n = min(i2 - i1, j2 - j1)
            for k in range(n):
                a, b = left[i1 + k], right[j1 + k]
                pairs.append(StepPair(a, b, step_differences(a, b)))
            extra_left, extra_right = range(i1 + n, i2), range(j1 + n, j2)
        else:
            extra_left, extra_right = range(i1, i2), range(j1, j2)
        pairs.extend(StepPair(left[i], None, ["missing"]) for i in extra_left)
        pairs.extend(StepPair(None, right[j], ["missing"]) for j in extra_right)
    return pairs


def compare_runs(left_run: dict, left_steps: list[dict], right_run: dict, right_steps: list[dict]):
    """Compare two runs (dicts with Run field names) and their steps (sorted by seq)."""
    pairs = align(left_steps, right_steps)
    first = next((i for i, pair in enumerate(pairs) if not pair.same), None)
    outcome = {
        "status": (left_run.get("status"), right_run.get("status")),
        "error_code": (
            (left_run.get("error") or {}).get("code"),
            (right_run.get("error") or {}).get("code"),
        ),
        "output_same": normal(left_run.get("output")) == normal(right_run.get("output")),
    }
    figures = {}
    for name in RUN_FIGURES:
        a, b = left_run.get(name), right_run.get(name)
        delta = None
        if a is not None and b is not None:
            delta = Decimal(str(b)) - Decimal(str(a)) if name == "cost_usd" else b - a
        figures[name] = {"left": a, "right": b, "delta": delta}
    return Comparison(pairs=pairs, first_divergence=first, outcome=outcome, figures=figures)
