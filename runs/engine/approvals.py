"""Asking a person: a run whose policy says `on_cap: ask` holds the call that would pass a cap
until someone extends the cap or stops the run, and a tool that requires approval waits for
someone to approve or deny each call. Plain Python: the questions and answers live wherever the
`Approvals` port keeps them (`runs.worker.DbApprovals`: the database; `MemoryApprovals`: here).

While it waits, the run holds no database connection between looks, the wall clock is paused
(waiting does not count against the wall-clock cap), and a cancel still stops it. Nobody
answering within the policy's `approval_timeout_seconds` is a `timeout`: for a cap as `stop`
would be, for a tool as `deny`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

CAP, TOOL = "cap", "tool"
EXTEND, APPROVE, DENY, STOP, TIMEOUT = "extend", "approve", "deny", "stop", "timeout"
DECISIONS = {CAP: (EXTEND, STOP), TOOL: (APPROVE, DENY, STOP)}
ON_CAP = ("stop", "ask")
POLL_S = 1.0  # how often a waiting run looks for an answer


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

    def close(self, ref: Any, decision: Decision) -> None:
        """The wait is over (answered, timed out or cancelled): the run runs again, or ends.
        A timeout is recorded here, so that a late answer finds the question closed."""


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

    def close(self, ref: int, decision: Decision) -> None:
        self.closed.append((ref, decision))
