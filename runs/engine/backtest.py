"""What proposed caps would have done to past runs, worked out from their stored steps. Plain
Python: no Django, no database; the steps come in as plain dicts.

A run is a mapping with `id`, `agent`, `started_at` (a datetime; the wall clock counts from it),
optionally `duration_s` (its recorded wall time) and `steps`: dicts with the Event columns `seq`,
`kind`, `status`, `started_at`, `ended_at`, `input_tokens`, `output_tokens`, `cost_usd` and
`attributes`. `check_run` walks the steps in seq order, counting what the runner's Budget counts,
and stops at the first step the caps would have refused (the cut):

- tool calls, cap L: the tool call numbered L+1 is the cut; a run with exactly L calls is not cut.
- model calls, cap L: likewise for model calls.
- spend, cap L: the model call whose cost takes the run's cumulative spend above L is the cut; a
  run that spends exactly L is not cut. (The runner would have clamped that call's max_tokens
  rather than refuse it when part of it fitted; the backtest counts the whole call as saved.)
- tokens, cap L: the model call whose input + output tokens take the total above L.
- wall clock, cap L: the first step that started L seconds or more after the run started (the
  runner's deadline check is `elapsed >= L`).

Steps the runner refused (`attributes.refused`) were never executed and count for nothing;
`lifecycle` steps record how a run ended, not work it did, and are not checked against the wall
clock. When one step passes several caps, the one the runner checks first names the cut: the
deadline, then model calls, spend, tokens. `saved_usd` of a cut run is the cost of
its steps from the cut on: the refused step and everything after it would not have happened.
Per-tool timeouts are not simulated: a timeout does not end a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .caps import MODEL_CALLS, PER_RUN, SPEND, TOKENS, TOOL_CALLS, WALL, Caps

# Every cap a run can be cut by: the per-run caps of the table.
CAPS_CHECKED = tuple(cap.name for cap in PER_RUN)
EXAMPLES = 10
ZERO = Decimal(0)


@dataclass(frozen=True)
class RunCheck:
    """One run against the caps: what it used in full, and where (if anywhere) it is cut."""

    run_id: str
    agent: str
    tool_calls: int
    model_calls: int
    tokens: int
    spend_usd: Decimal
    duration_s: float
    cap: str | None = None
    cut_at_seq: int | None = None
    saved_usd: Decimal = ZERO

    @property
    def is_cut(self) -> bool:
        return self.cap is not None


@dataclass
class _Used:
    tool_calls: int = 0
    model_calls: int = 0
    tokens: int = 0
    spend: Decimal = ZERO


def check_run(run: Mapping, caps: Caps) -> RunCheck:
    """Walk `run`'s steps in seq order against `caps` (see the module docstring)."""
    start = run.get("started_at")
    used = _Used()
    cap = cut_seq = None
    saved = ZERO
    last_offset = 0.0
    for step in sorted(run.get("steps") or (), key=lambda s: s["seq"]):
        if _refused(step):
            continue
        cost = _cost(step)
        tokens = (step.get("input_tokens") or 0) + (step.get("output_tokens") or 0)
        if cap is None:
            offset = _offset(start, step.get("started_at"))
            cap = _cap_passed(step, caps, used, offset, cost, tokens)
            if cap is not None:
                cut_seq = step["seq"]
        if cap is not None:
            saved += cost
        if step.get("kind") == "model_call":
            used.model_calls += 1
            used.spend += cost
            used.tokens += tokens
        elif step.get("kind") == "tool_call":
            used.tool_calls += 1
        end = _offset(start, step.get("ended_at") or step.get("started_at"))
        if end is not None:
            last_offset = max(last_offset, end)
    duration = run.get("duration_s")
    return RunCheck(
        run_id=str(run["id"]),
        agent=run.get("agent", ""),
        tool_calls=used.tool_calls,
        model_calls=used.model_calls,
        tokens=used.tokens,
        spend_usd=used.spend,
        duration_s=float(duration) if duration is not None else round(last_offset, 3),
        cap=cap,
        cut_at_seq=cut_seq,
        saved_usd=saved,
    )


def _cap_passed(step, caps: Caps, used: _Used, offset, cost: Decimal, tokens: int) -> str | None:
    kind = step.get("kind")
    if kind != "lifecycle" and offset is not None and offset >= caps[WALL]:
        return WALL.name
    if kind == "model_call":
        if caps[MODEL_CALLS] is not None and used.model_calls >= caps[MODEL_CALLS]:
            return MODEL_CALLS.name
        if used.spend + cost > caps[SPEND]:
            return SPEND.name
        if caps[TOKENS] is not None and used.tokens + tokens > caps[TOKENS]:
            return TOKENS.name
    elif kind == "tool_call" and used.tool_calls >= caps[TOOL_CALLS]:
        return TOOL_CALLS.name
    return None


def _refused(step) -> bool:
    return bool((step.get("attributes") or {}).get("refused"))


def _cost(step) -> Decimal:
    if step.get("kind") != "model_call" or step.get("cost_usd") is None:
        return ZERO
    return Decimal(str(step["cost_usd"]))


def _offset(start, when) -> float | None:
    if start is None or when is None:
        return None
    return (when - start).total_seconds()


@dataclass(frozen=True)
class Backtest:
    """The checks of every run, newest first as given, and the §9 numbers over them."""

    checks: list[RunCheck]
    examples_limit: int = EXAMPLES

    @property
    def runs_checked(self) -> int:
        return len(self.checks)

    @property
    def cut(self) -> list[RunCheck]:
        return [c for c in self.checks if c.is_cut]

    @property
    def runs_cut(self) -> int:
        return len(self.cut)

    @property
    def by_cap(self) -> dict[str, int]:
        """Runs cut by each cap (every cap listed, zeros included)."""
        counts = dict.fromkeys(CAPS_CHECKED, 0)
        for check in self.cut:
            counts[check.cap] += 1
        return counts

    @property
    def saved_usd(self) -> Decimal:
        return sum((c.saved_usd for c in self.cut), ZERO)

    @property
    def examples(self) -> list[RunCheck]:
        return self.cut[: self.examples_limit]

    def to_dict(self) -> dict:
        """DESIGN §9's answer to POST /caps/backtest (saved_usd as a Decimal)."""
        return {
            "runs_checked": self.runs_checked,
            "runs_cut": self.runs_cut,
            "by_cap": self.by_cap,
            "saved_usd": self.saved_usd,
            "examples": [
                {"run_id": c.run_id, "cut_at_seq": c.cut_at_seq, "cap": c.cap}
                for c in self.examples
            ],
        }


def backtest(
    runs: Iterable[Mapping], caps_for: Callable[[str], Caps], *, examples: int = EXAMPLES
) -> Backtest:
    """Check every run against `caps_for(run's agent)` (asked once per agent name)."""
    by_agent: dict[str, Caps] = {}
    checks = []
    for run in runs:
        agent = run.get("agent", "")
        if agent not in by_agent:
            by_agent[agent] = caps_for(agent)
        checks.append(check_run(run, by_agent[agent]))
    return Backtest(checks=checks, examples_limit=examples)
