"""What proposed caps would have done to past runs, worked out from their stored steps. Plain
Python: no Django, no database; the steps come in as plain dicts.

A run is a mapping with `id`, `agent`, `started_at` (a datetime; the wall clock counts from it),
optionally `duration_s` (its recorded wall time) and `steps`: dicts with the Event columns `seq`,
`kind`, `status`, `started_at`, `ended_at`, `input_tokens`, `output_tokens`, `cost_usd` and
`attributes`. `check_run` walks the steps in seq order, counting what the runner's Budget counts,
and stops at the first step the caps would have refused (the cut):

- `max_tool_calls` L: the tool call numbered L+1 is the cut; a run with exactly L calls is not cut.
- `max_model_calls` L: likewise for model calls.
- `max_cost_usd` L: the model call whose cost takes the run's cumulative spend above L is the cut;
  a run that spends exactly L is not cut. (The runner would have clamped that call's max_tokens
  rather than refuse it when part of it fitted; the backtest counts the whole call as saved.)
- `max_tokens` L: the model call whose input + output tokens take the total above L.
- `max_wall_seconds` L: the first step that started L seconds or more after the run started (the
  runner's deadline check is `elapsed >= L`).

Steps the runner refused (`attributes.refused`) were never executed and count for nothing;
`lifecycle` steps record how a run ended, not work it did, and are not checked against the wall
clock. When one step passes several caps, the one the runner checks first names the cut: the
deadline, then max_model_calls, max_cost_usd, max_tokens. `saved_usd` of a cut run is the cost of
its steps from the cut on: the refused step and everything after it would not have happened.
Per-tool timeouts are not simulated: a timeout does not end a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .limits import Caps

CAPS_CHECKED = (
    "max_tool_calls",
    "max_cost_usd",
    "max_wall_seconds",
    "max_model_calls",
    "max_tokens",
)
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
    if kind != "lifecycle" and offset is not None and offset >= caps.max_wall_seconds:
        return "max_wall_seconds"
    if kind == "model_call":
        if caps.max_model_calls is not None and used.model_calls >= caps.max_model_calls:
            return "max_model_calls"
        if used.spend + cost > caps.max_cost_usd:
            return "max_cost_usd"
        if caps.max_tokens is not None and used.tokens + tokens > caps.max_tokens:
            return "max_tokens"
    elif kind == "tool_call" and used.tool_calls >= caps.max_tool_calls:
        return "max_tool_calls"
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


# Histograms: runs by tool calls, spend or duration, with the current and proposed cap drawn as
# vertical lines. Geometry in a fixed viewBox, for a server-rendered SVG.

WIDTH = 400  # about the size a third of the page shows it at, so its text stays legible
HEIGHT = 140
TOP = 28  # room for the two cap lines' labels
BOTTOM = 18  # room for the axis labels
BINS = 20


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    label: str  # the values it holds, as people read them: "3", "2–3", "0.01–0.02"
    count: int
    x: float
    y: float
    width: float
    height: float
    past_proposed: bool  # every run in it is beyond the proposed cap


@dataclass(frozen=True)
class CapLine:
    label: str  # "current" or "proposed"
    value: float
    x: float
    off_chart: bool  # the cap is far beyond every run: drawn at the right edge

    @property
    def label_left(self) -> bool:
        """Near the right edge: put the label on the line's left."""
        return self.x > WIDTH * 0.7


@dataclass(frozen=True)
class Histogram:
    title: str
    whole: bool
    unit: str
    bins: list[Bin]
    lines: list[CapLine]
    x_max: float
    max_count: int
    runs: int
    width: int = WIDTH
    height: int = HEIGHT
    axis_y: float = HEIGHT - BOTTOM


def histogram(
    title: str,
    values: list,
    *,
    current=None,
    proposed=None,
    unit: str = "",
    whole: bool = False,
    bins: int = BINS,
) -> Histogram:
    """Runs binned by `values` (ints when `whole`, else any non-negative numbers).

    The axis runs from 0 to the largest value, stretched to show a cap up to twice that; a cap
    further out is drawn at the right edge as off the chart. For whole numbers a cap L is drawn
    between L and L+1 (a run with L is within it), and bins are whole numbers wide.
    """
    data = [float(v) for v in values]
    caps = [float(c) for c in (current, proposed) if c is not None]
    top = max(data, default=0.0)
    x_max = max([top, *[c for c in caps if c <= 2 * top]])
    if x_max <= 0:
        x_max = min(caps) if caps else 1.0
    if whole:
        width = max(1, math.ceil((x_max + 1) / bins))
        count = max(1, math.ceil((x_max + 1) / width))
        span = float(width * count)
    else:
        width = x_max / bins
        count = bins
        span = x_max
    counts = [0] * count
    for v in data:
        counts[min(int(v // width), count - 1)] += 1
    plot_h = HEIGHT - TOP - BOTTOM
    slot = WIDTH / count
    tallest = max(counts, default=0)
    limit = None if proposed is None else float(proposed)
    out = []
    for i, n in enumerate(counts):
        lo, hi = i * width, (i + 1) * width
        h = plot_h * n / tallest if tallest else 0.0
        if n:
            h = max(h, 1.5)
        out.append(
            Bin(
                lo=lo,
                hi=hi,
                label=_bin_label(lo, hi, whole),
                count=n,
                x=round(i * slot + 0.5, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(max(slot - 1, 0.5), 2),
                height=round(h, 2),
                past_proposed=limit is not None and (lo > limit if whole else lo >= limit),
            )
        )
    lines = []
    for label, value in (("current", current), ("proposed", proposed)):
        if value is None:
            continue
        at = float(value) + (1 if whole else 0)
        off = at > span
        lines.append(
            CapLine(
                label=label,
                value=value,
                x=WIDTH if off else round(at / span * WIDTH, 2),
                off_chart=off,
            )
        )
    return Histogram(
        title=title,
        whole=whole,
        unit=unit,
        bins=out,
        lines=lines,
        x_max=span,
        max_count=tallest,
        runs=len(data),
    )


def _bin_label(lo: float, hi: float, whole: bool) -> str:
    if whole:
        first, last = int(lo), int(hi) - 1
        return str(first) if first == last else f"{first}–{last}"
    return f"{lo:.4g}–{hi:.4g}"
