"""Asking a person: a run whose policy says `on_cap: ask` holds the call that would pass a cap
until someone extends the cap or stops the run, and a tool that requires approval waits for
someone to approve or deny each call. Plain Python: the questions and answers live wherever the
`Approvals` port keeps them (`services.approvals.DbApprovals`: the database; `MemoryApprovals`:
here).

While it waits, the run holds no database connection between looks, the wall clock is paused
(waiting does not count against the wall-clock cap), and a cancel still stops it. Nobody
answering within the policy's `approval_timeout_seconds` is a `timeout`: for a cap as `stop`
would be, for a tool as `deny`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from .caps import (
    APPROVAL_FIELDS,
    ASKABLE,
    BY_NAME,
    EXTENSION_FIELD,
    ON_CAP_FIELD,
    TIMEOUT_FIELD,
    TOOLS_FIELD,
    USD,
    CapError,
    CapRaiseNotAllowed,
    Caps,
)
from .stops import GuardedRecorder, guarded

CAP, TOOL = "cap", "tool"
EXTEND, APPROVE, DENY, STOP, TIMEOUT = "extend", "approve", "deny", "stop", "timeout"
# How a wait can also end without a person: the run was cancelled, or its worker was lost.
CANCELLED, LOST = "cancelled", "lost"
DECISIONS = {CAP: (EXTEND, STOP), TOOL: (APPROVE, DENY)}
GRANTED = (EXTEND, APPROVE)
ON_CAP = ("stop", "ask")
POLL_S = 1.0  # how often a waiting run looks for an answer
WAIT_STEP = "awaiting_approval"  # the lifecycle step of a wait, on the run's timeline

# The policy's fields beside the caps (global and per agent; see `clean_approval_fields`):
# on_cap, approval_timeout_seconds, max_extension {cap name: the most a person may extend it
# to}, requires_approval [tool names whose every call waits for a person].
FIELDS = APPROVAL_FIELDS
DEFAULT_TIMEOUT_S = 900
MAX_TIMEOUT_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Decision:
    """What a person (or the clock) decided. `caps`: the new values of an extension."""

    decision: str
    by: str = ""
    caps: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"decision": self.decision, "by": self.by}
        if self.caps:
            out["caps"] = dict(self.caps)
        return out


class Approvals(Protocol):
    """Where a run's questions go, and where their answers come from."""

    def ask(self, *, kind: str, subject: str, request: dict) -> Any:
        """Record a question (`kind` CAP or TOOL; `subject` the cap's or the tool's name;
        `request` what the held call wants and what the run has spent). The run now awaits
        approval. Returns a reference for `answer` and `close`."""

    def answer(self, ref: Any) -> Decision | None:
        """The decision, once someone made it; None while nobody has."""

    def close(self, ref: Any, decision: Decision) -> Decision | None:
        """The wait is over (answered, timed out or cancelled): the run runs again, or ends.
        A timeout or cancel is recorded here, so that a late answer finds the question closed.
        Returns the decision that stands: a person's answer that came first wins."""


class MemoryApprovals:
    """Approvals kept in memory: for tests and trying an agent out. `decide(ref, decision)`
    answers from any thread; `on_ask(ref, kind, subject, request)` is called as each question is
    asked (a test's stand-in for the person)."""

    def __init__(self, on_ask=None):
        self.asked: list[dict] = []
        self.closed: list[tuple[int, Decision]] = []
        self._answers: dict[int, Decision] = {}
        self._lock = threading.Lock()
        self._on_ask = on_ask

    def ask(self, *, kind: str, subject: str, request: dict) -> int:
        with self._lock:
            ref = len(self.asked)
            self.asked.append({"kind": kind, "subject": subject, "request": request})
        if self._on_ask is not None:
            self._on_ask(self, ref)
        return ref

    def decide(self, ref: int, decision: Decision) -> None:
        with self._lock:
            self._answers[ref] = decision

    def answer(self, ref: int) -> Decision | None:
        with self._lock:
            return self._answers.get(ref)

    def close(self, ref: int, decision: Decision) -> Decision:
        with self._lock:
            decision = self._answers.setdefault(ref, decision)
        self.closed.append((ref, decision))
        return decision


def tool_denied(tool_name: str, by: str) -> dict:
    """What the agent gets for a tool call nobody approved (DESIGN §7's shape)."""
    return {"error": "tool_denied", "tool": tool_name, "by": by}


# The policy.


@dataclass(frozen=True)
class ApprovalPolicy:
    """What a run does at a cap and which tools wait for a person, frozen on the run like its
    caps. `max_extension`: cap name → the most a person may extend that cap to (a cap absent
    cannot be extended)."""

    on_cap: str = "stop"
    timeout_s: int = DEFAULT_TIMEOUT_S
    max_extension: Mapping = field(default_factory=dict)
    tools: frozenset = frozenset()

    def to_dict(self) -> dict:
        return {
            ON_CAP_FIELD: self.on_cap,
            TIMEOUT_FIELD: self.timeout_s,
            EXTENSION_FIELD: {k: BY_NAME[k].to_json(v) for k, v in self.max_extension.items()},
            TOOLS_FIELD: sorted(self.tools),
        }

    @classmethod
    def from_dict(cls, data: Mapping | None) -> ApprovalPolicy:
        """From `to_dict` output (or a stored policy's fields); missing keys take defaults."""
        data = data or {}
        return cls(
            on_cap=data.get(ON_CAP_FIELD) or "stop",
            timeout_s=int(data.get(TIMEOUT_FIELD) or DEFAULT_TIMEOUT_S),
            max_extension={
                name: _typed(name, value)
                for name, value in (data.get(EXTENSION_FIELD) or {}).items()
                if name in BY_NAME and value is not None
            },
            tools=frozenset(data.get(TOOLS_FIELD) or ()),
        )


def _typed(name: str, value):
    return Decimal(str(value)) if BY_NAME[name].kind == USD else value


def resolve_approval_policy(global_policy: Mapping | None, agent_policy: Mapping | None):
    """The approval policy a run gets: the agent's values over the global ones (None inherits;
    ceilings merge per cap, and the tools that need approval are those of both)."""
    base, own = global_policy or {}, agent_policy or {}
    return ApprovalPolicy.from_dict(
        {
            ON_CAP_FIELD: own.get(ON_CAP_FIELD) or base.get(ON_CAP_FIELD),
            TIMEOUT_FIELD: own.get(TIMEOUT_FIELD) or base.get(TIMEOUT_FIELD),
            EXTENSION_FIELD: {
                **(base.get(EXTENSION_FIELD) or {}),
                **{k: v for k, v in (own.get(EXTENSION_FIELD) or {}).items() if v is not None},
            },
            TOOLS_FIELD: {*(base.get(TOOLS_FIELD) or ()), *(own.get(TOOLS_FIELD) or ())},
        }
    )


def clean_approval_fields(values: Mapping, *, complete: bool, tools: Collection[str], errors):
    """The approval fields of a policy from raw `values` (JSON or form strings), each error
    added to `errors` under its field (`max_extension.NAME` for a ceiling). `complete` (the
    global policy): an empty on_cap is `stop` and an empty timeout the default; in an agent's
    override, empty inherits (None)."""
    out: dict = {}
    on_cap = values.get(ON_CAP_FIELD)
    if on_cap is None or on_cap == "":
        out[ON_CAP_FIELD] = "stop" if complete else None
    elif on_cap not in ON_CAP:
        errors[ON_CAP_FIELD] = "must be stop or ask"
    else:
        out[ON_CAP_FIELD] = on_cap
    raw = values.get(TIMEOUT_FIELD)
    out[TIMEOUT_FIELD] = DEFAULT_TIMEOUT_S if complete else None
    if not (raw is None or (isinstance(raw, str) and not raw.strip())):
        try:
            out[TIMEOUT_FIELD] = _seconds(raw)
        except CapError as exc:
            errors[TIMEOUT_FIELD] = exc.message
    out[EXTENSION_FIELD] = _clean_ceilings(values.get(EXTENSION_FIELD), errors)
    out[TOOLS_FIELD] = _clean_tools(values.get(TOOLS_FIELD), tools, errors)
    return out


_SECONDS = f"must be a whole number of seconds from 1 to {MAX_TIMEOUT_S}"


def _seconds(raw) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise CapError(TIMEOUT_FIELD, _SECONDS)
    try:
        value = int(raw.strip()) if isinstance(raw, str) else raw
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TIMEOUT_S:
        raise CapError(TIMEOUT_FIELD, _SECONDS)
    return value


def _clean_ceilings(raw, errors) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors[EXTENSION_FIELD] = "must be an object of cap name to the most it may be extended to"
        return {}
    askable = {cap.name: cap for cap in ASKABLE}
    out = {}
    for name, value in raw.items():
        where = f"{EXTENSION_FIELD}.{name}"
        if name not in askable:
            errors[where] = "unknown cap" if name not in BY_NAME else "cannot be extended"
        elif not (value is None or (isinstance(value, str) and not value.strip())):
            try:
                out[name] = askable[name].parse(value.strip() if isinstance(value, str) else value)
            except CapError as exc:
                errors[where] = exc.message
    return {cap.name: out[cap.name] for cap in ASKABLE if cap.name in out}


def _clean_tools(raw, tools: Collection[str], errors) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list | tuple) or not all(isinstance(t, str) for t in raw):
        errors[TOOLS_FIELD] = "must be a list of tool names"
        return []
    unknown = sorted(set(raw) - set(tools))
    if unknown:
        errors[TOOLS_FIELD] = f"no tool named {unknown[0]!r} is registered here"
    return sorted(set(raw) & set(tools))


def approval_json(values: Mapping) -> dict:
    """The approval fields of a cleaned (or stored) policy, as stored and shown."""
    ceilings = values.get(EXTENSION_FIELD) or {}
    return {
        ON_CAP_FIELD: values.get(ON_CAP_FIELD),
        TIMEOUT_FIELD: values.get(TIMEOUT_FIELD),
        EXTENSION_FIELD: {
            k: BY_NAME[k].to_json(v) for k, v in ceilings.items() if k in BY_NAME and v is not None
        },
        TOOLS_FIELD: sorted(values.get(TOOLS_FIELD) or ()),
    }


def check_extension(policy: ApprovalPolicy, caps: Caps, subject: str, requested) -> dict:
    """The new values a person asked for while a run waits on cap `subject`, checked: each an
    askable cap, above the run's limit now, and at most the policy's ceiling for it; `subject`
    must be among them. Raises CapError (bad input) or CapRaiseNotAllowed (above a ceiling, or
    a cap with none). Returns {cap name: typed value}."""
    if not isinstance(requested, Mapping) or not requested:
        raise CapError("caps", f"must name the new value of {subject}, like {{{subject!r}: ...}}")
    askable = {cap.name: cap for cap in ASKABLE}
    out = {}
    for name, raw in requested.items():
        cap = askable.get(name)
        if cap is None:
            raise CapError(
                str(name), "unknown cap" if name not in BY_NAME else "cannot be extended"
            )
        value = cap.parse(raw)
        if caps[cap] is not None and value <= caps[cap]:
            raise CapError(name, f"must be above the run's limit of {cap.show(caps[cap])}")
        ceiling = policy.max_extension.get(name)
        if ceiling is None:
            raise CapRaiseNotAllowed(name, "has no max_extension: an admin sets one per cap")
        if value > ceiling:
            raise CapRaiseNotAllowed(
                name, f"{cap.show(value)} is above the ceiling of {cap.show(ceiling)} an admin set"
            )
        out[name] = value
    if subject not in out:
        raise CapError(subject, "the run waits on this cap: the extension must raise it")
    return out


# Waiting.


class Asker:
    """Holds a run's call for a person: asks, waits in slices of `poll_s` (checking a cancel
    between looks), and records the wait as a `lifecycle` step named `awaiting_approval` whose
    output says who decided what and when. The budget's wall clock is held while it waits."""

    def __init__(
        self,
        approvals: Approvals | None,
        policy: ApprovalPolicy,
        recorder: GuardedRecorder,
        budget,
        clock: Callable[[], float],
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = POLL_S,
    ):
        self._approvals = approvals
        self.policy = policy
        self._recorder = recorder
        self._budget = budget
        self._clock = clock
        self._sleep = sleep
        self._poll_s = poll_s

    def asks_on(self, cap_name: str) -> bool:
        """Whether passing this cap waits for a person instead of ending the run."""
        askable = any(cap.name == cap_name for cap in ASKABLE)
        return self._approvals is not None and self.policy.on_cap == "ask" and askable

    def needs_approval(self, tool) -> bool:
        return bool(getattr(tool, "requires_approval", False)) or tool.name in self.policy.tools

    def hold_at_cap(self, exc, call: str, name: str, args) -> Decision:
        """Wait on the cap `exc` (a BudgetExceeded) refused a `call` (model_call or tool_call)
        of `name` at: the question says what the call wants and what the run has used."""
        wants = {"call": call, "name": name, "limit": exc.limit, "used": exc.used}
        if call == "tool_call":
            wants["args"] = args
        return self.wait(kind=CAP, subject=exc.cap, request=wants)

    def wait(self, *, kind: str, subject: str, request: dict, parent=None) -> Decision:
        """Ask, and wait for the decision that stands: a person's, the clock's or a cancel's.
        The question also says what the run has used (`usage`)."""
        request = {**request, "usage": self._budget.usage.to_dict()}
        step = self._recorder.step_started(
            "lifecycle",
            WAIT_STEP,
            input={"kind": kind, "subject": subject, **request},
            parent=parent,
        )
        if self._approvals is None:  # nobody can answer here: a tool is denied
            decision = Decision(DENY, by="nobody (approvals are off here)")
            self._recorder.step_ended(step, "error", output=decision.to_dict())
            return decision
        self._recorder.cancel_requested()  # writes the step: the wait is visible at once
        self._budget.hold()
        deadline = self._clock() + self.policy.timeout_s
        try:
            ref = guarded(self._approvals.ask, kind=kind, subject=subject, request=request)
            while True:
                if self._recorder.cancel_requested():
                    decision = Decision(CANCELLED, by="cancel")
                    break
                answer = guarded(self._approvals.answer, ref)
                if answer is not None:
                    decision = answer
                    break
                left = deadline - self._clock()
                if left <= 0:
                    decision = Decision(TIMEOUT, by="timeout")
                    break
                self._sleep(min(self._poll_s, left))
        finally:
            waited = self._budget.release()
        decision = guarded(self._approvals.close, ref, decision) or decision
        status = {TIMEOUT: "timeout", CANCELLED: "cancelled"}.get(decision.decision, "error")
        self._recorder.step_ended(
            step,
            "ok" if decision.decision in GRANTED else status,
            output={**decision.to_dict(), "waited_s": round(waited, 3)},
        )
        return decision
