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
- repeated calls, cap L: tool calls are told apart by `attributes.call_key` (the tool and its
  canonical arguments). The first call past L of any key is refused, as the runner refuses it,
  and the run goes on as it was recorded (the agent might have changed course); the second is
  the cut. Steps recorded without a call key (older or ingested runs) are not compared.
- spend windows (across runs, `backtest(windows=...)`): runs are taken oldest first, each
  window's spend per calendar period counted from the runs checked (earlier spend is unknown, so
  0). A run starting in a period whose window is spent would not have started (the cut, with no
  step: `cut_at_seq` None); a model call whose cost takes a window above its limit is the cut.
  Costs are the recorded ones; the runner, which reserves the worst case, stops a little sooner.

Steps the runner refused (`attributes.refused`) were never executed and count for nothing;
`lifecycle` steps record how a run ended, not work it did, and are not checked against the wall
clock; time a run spent awaiting approval (its `awaiting_approval` steps) is not on it either. When
one step passes several caps, the one the runner checks first names the cut: the deadline, then
repeated calls and tool calls, or model calls, spend, tokens and spend windows. `saved_usd` of a
cut run is the cost of its steps from the cut on: the refused step and everything after it would
not have happened.
Per-tool timeouts are not simulated: a timeout does not end a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .approvals import WAIT_STEP
from .caps import ENDING, MODEL_CALLS, REPEATS, SPEND, SPEND_WINDOW, TOKENS, TOOL_CALLS, WALL, Caps
from .windows import Account, Window, period_start, scopes_of

# Every cap a run can be cut by: the caps of the table that end a run, and spend windows.
CAPS_CHECKED = (*(cap.name for cap in ENDING), SPEND_WINDOW)
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
    repeats_refused: int = 0


def check_run(run: Mapping, caps: Caps, accounts: list[Account] = ()) -> RunCheck:
    """Walk `run`'s steps in seq order against `caps` and the spend-window `accounts` covering
    it (see the module docstring); the cost of what it still did is added to the accounts."""
    start = run.get("started_at")
    used = _Used()
    cap = cut_seq = None
    saved = ZERO
    last_offset = waited = 0.0
    calls_by_key: dict[str, int] = {}
    if any(account.exhausted for account in accounts):
        cap = SPEND_WINDOW  # it would not have started
    for step in sorted(run.get("steps") or (), key=lambda s: s["seq"]):
        if _refused(step):
            continue
        cost = _cost(step)
        tokens = (step.get("input_tokens") or 0) + (step.get("output_tokens") or 0)
        if cap is None:
            offset = _offset(start, step.get("started_at"))
            offset = offset - waited if offset is not None else None
            cap = _cap_passed(step, caps, used, offset, cost, tokens, calls_by_key)
            if cap is _REFUSED:  # a first repeat past the cap: refused, the run goes on
                cap = None
                continue
            if cap is None and cost and not all(a.fits(cost) for a in accounts):
                cap = SPEND_WINDOW
            if cap is not None:
                cut_seq = step["seq"]
        if cap is not None:
            saved += cost
        else:
            for account in accounts:
                account.spent += cost
        if step.get("kind") == "model_call":
            used.model_calls += 1
            used.spend += cost
            used.tokens += tokens
        elif step.get("kind") == "tool_call":
            used.tool_calls += 1
        end = _offset(start, step.get("ended_at") or step.get("started_at"))
        if end is not None:
            last_offset = max(last_offset, end)
        if step.get("name") == WAIT_STEP and step.get("kind") == "lifecycle":
            waited += _offset(step.get("started_at"), step.get("ended_at")) or 0.0
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


_REFUSED = "refused"


def _cap_passed(step, caps, used: _Used, offset, cost, tokens, calls_by_key) -> str | None:
    kind = step.get("kind")
    if kind != "lifecycle" and offset is not None and offset >= caps[WALL]:
        return WALL.name
    if kind == "tool_call":
        repeat = _repeat_passed(step, caps, used, calls_by_key)
        if repeat is not None:
            return repeat
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


def _repeat_passed(step, caps: Caps, used: _Used, calls_by_key: dict) -> str | None:
    key = (step.get("attributes") or {}).get("call_key")
    if key is None or caps[REPEATS] is None:
        return None
    calls_by_key[key] = count = calls_by_key.get(key, 0) + 1
    if count <= caps[REPEATS]:
        return None
    used.repeats_refused += 1
    return REPEATS.name if used.repeats_refused > 1 else _REFUSED


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
    runs: Iterable[Mapping],
    caps_for: Callable[[str], Caps],
    *,
    windows: Iterable[Window] = (),
    examples: int = EXAMPLES,
) -> Backtest:
    """Check every run against `caps_for(run's agent)` (asked once per agent name) and the
    spend `windows` covering it. Runs are checked oldest first (windows add up across runs) and
    reported in the order given. A run may carry `user_ref` and `key_prefix` for the windows."""
    runs = list(runs)
    windows = list(windows)
    by_agent: dict[str, Caps] = {}
    accounts: dict[tuple, Account] = {}
    checks: dict[int, RunCheck] = {}
    for index in sorted(range(len(runs)), key=lambda i: _start_key(runs[i])):
        run = runs[index]
        agent = run.get("agent", "")
        if agent not in by_agent:
            by_agent[agent] = caps_for(agent)
        covering = []
        if windows and run.get("started_at") is not None:
            scopes = scopes_of(
                agent=agent,
                user_ref=run.get("user_ref") or "",
                key_prefix=run.get("key_prefix") or "",
            )
            for window in windows:
                if window.covers(scopes):
                    starts = period_start(window.period, run["started_at"])
                    key = (window, starts)
                    covering.append(accounts.setdefault(key, Account(window, starts)))
        checks[index] = check_run(run, by_agent[agent], covering)
    return Backtest(checks=[checks[i] for i in range(len(runs))], examples_limit=examples)


def _start_key(run: Mapping):
    start = run.get("started_at")
    return (start is None, start.timestamp() if start is not None else 0.0, str(run.get("id")))
